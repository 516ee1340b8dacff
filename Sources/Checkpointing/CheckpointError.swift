// The typed failures of reading, checking and writing checkpoint files.

/// A problem reading or writing a checkpoint.
public enum CheckpointError: Error, CustomStringConvertible, Equatable {
    /// The file could not be read (missing, permissions).
    case unreadable(path: String, reason: String)
    /// The bytes are not a valid safetensors file of ours; `reason` says what is wrong.
    case malformed(path: String, reason: String)
    /// Writing failed (full disk, no permission); any previous file at `path` is unchanged.
    case writeFailed(path: String, reason: String)
    /// A tensor the model needs is absent.
    case missingTensor(path: String, name: String)
    /// A tensor has another shape than the model's (a checkpoint of another model shape).
    case shapeMismatch(path: String, name: String, expected: [Int], found: [Int])
    /// The file holds a tensor the model does not have.
    case unexpectedTensor(path: String, name: String)
    /// The checkpoint format version is not the one this build reads.
    case incompatibleVersion(path: String, found: String, expected: String)
    /// The configuration stored in the metadata is invalid.
    case invalidConfiguration(path: String, reason: String)
    /// The run's identities differ from those the checkpoint was trained on.
    case identityMismatch(path: String, reason: String)
    /// A final `model.safetensors` (or another file) where a training-state checkpoint was expected.
    case notATrainingState(path: String)
    /// A training checkpoint of a run with other settings (listed keys differ).
    case configurationMismatch(path: String, keys: [String])
    /// A training checkpoint of a run with another number of training identities.
    case classCountMismatch(path: String, checkpoint: Int, model: Int)
    /// Resume found step checkpoints in `directory` but none could be read; `skipped` says why
    /// for each, newest first.
    case noLoadableCheckpoint(directory: String, skipped: [String])
    /// A stored tensor holds NaN or ±∞ (overwritten bytes, or a diverged run's state): refused
    /// on load; resume sets such a step checkpoint aside like a truncated one.
    case nonFiniteTensor(path: String, name: String)
    /// Writing was refused because tensor `name` holds NaN or ±∞ (nothing was written).
    case nonFiniteWrite(path: String, name: String)
    /// The training images differ from those the checkpoint's run trained on (`reason` says how).
    case trainingSetChanged(path: String, reason: String)
    /// The model's recorded input preprocessing (`InputPreprocessing`) is one this package
    /// cannot reproduce (BGR order, another normalization), or contradicts its configuration.
    case unsupportedPreprocessing(path: String, reason: String)

    public var description: String {
        switch self {
        case let .unreadable(path, reason): "cannot read checkpoint \(path): \(reason)"
        case let .malformed(path, reason): "\(path) is not a valid safetensors checkpoint: \(reason)"
        case let .writeFailed(path, reason): "cannot write \(path): \(reason) (any previous file there is unchanged)"
        case let .missingTensor(path, name): "\(path): tensor '\(name)' is missing (checkpoint of another model?)"
        case let .shapeMismatch(path, name, expected, found):
            "\(path): tensor '\(name)' has shape \(found), the model expects \(expected) (checkpoint of another model shape?)"
        case let .unexpectedTensor(path, name): "\(path): unexpected tensor '\(name)' (checkpoint of another model?)"
        case let .incompatibleVersion(path, found, expected):
            "\(path): checkpoint format version \(found), this build reads version \(expected)"
        case let .invalidConfiguration(path, reason): "\(path): stored configuration is invalid: \(reason)"
        case let .identityMismatch(path, reason): "\(path): \(reason) (was --data the folder this model was trained on?)"
        case let .notATrainingState(path):
            "\(path) is a final model, not a training-state checkpoint (resume from <output>/checkpoints/step-*.safetensors)"
        case let .configurationMismatch(path, keys):
            "\(path): checkpoint of a run with other settings (differs in \(keys.joined(separator: ", ")))"
        case let .classCountMismatch(path, checkpoint, model):
            "\(path): checkpoint trained on \(checkpoint) identities, this training set has \(model) (another data set or split?)"
        case let .noLoadableCheckpoint(directory, skipped):
            "no loadable checkpoint in \(directory) to resume from: " + skipped.joined(separator: "; ")
        case let .nonFiniteTensor(path, name): "\(path): tensor '\(name)' holds NaN or infinite values (corrupt file?)"
        case let .nonFiniteWrite(path, name):
            "refusing to write \(path): tensor '\(name)' holds NaN or infinite values (the run diverged)"
        case let .unsupportedPreprocessing(path, reason):
            "\(path): cannot feed this model its input: \(reason)"
        case let .trainingSetChanged(path, reason):
            "\(path): the training images changed since this run began: \(reason); resume with the same images, or start a new run with another --output"
        }
    }
}
