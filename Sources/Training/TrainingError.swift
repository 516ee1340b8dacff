// The failures that stop a run, grouped by who can act on them: the settings, the data, the
// numerics of a step, the run folder and its files, the checkpoints, and a requested stop.
import FaceData
import MarginLosses
import RunConfiguration
import Checkpointing
import Reporting
import Inference
import Foundation

/// A failure that stops training.
public enum TrainingError: Error, CustomStringConvertible, Equatable {
    /// The settings are invalid (each problem names its key).
    case invalidConfiguration(problems: [String])
    /// A configuration file cannot be read or decoded.
    case configuration(ConfigurationError)
    /// The data cannot support the run: fix the data set or the split sizes.
    case data(TrainingDataError)
    /// A step, or the trained model, produced NaN or ±∞: lower the learning rate or scale, clip
    /// gradients, or skip such steps (`NonFinitePolicy.skip`).
    case numerics(NumericalError)
    /// The output folder cannot be used: another run holds it, it holds another run, or a file
    /// of it (not a checkpoint) cannot be written.
    case runFolder(RunFolderError)
    /// A checkpoint cannot be read, does not match the run, or cannot be written.
    case checkpoint(CheckpointError)
    /// Training stopped on request (a signal) after `step` steps; `checkpoint` is the training
    /// state written then (nil without a checkpoint folder). Resume with `--resume`.
    case interrupted(step: Int, signal: Int32?, checkpoint: String?)
    /// The take-off watchdog found the run not learning after its warm-ups and
    /// `onNoProgress` is `stop`; the epoch's checkpoint was written (resume with `--resume`
    /// after changing nothing, or start again with what the evidence's hint names).
    case noProgress(NoProgressEvidence)
    /// A verification set of `verificationSets` (`--verify`) cannot be read or evaluated: a
    /// missing or malformed file, an image that does not decode, pairs that cannot give a k-fold
    /// accuracy (each naming the file). Raised before training starts.
    case verificationSet(PairProtocolError)
    /// The backbone could not be initialized from `--init-from`'s file (`BackboneInitializationError`).
    case initialization(BackboneInitializationError)
    /// A run over several ranks cannot start or continue (`DistributedTrainingError`).
    case distributed(DistributedTrainingError)

    public var description: String {
        switch self {
        case let .invalidConfiguration(problems): "invalid configuration: " + problems.joined(separator: "; ")
        case let .configuration(error): error.description
        case let .data(error): error.description
        case let .numerics(error): error.description
        case let .runFolder(error): error.description
        case let .checkpoint(error): error.description
        case let .initialization(error): error.description
        case let .verificationSet(error): "verification set (--verify, verificationSets): " + error.description
        case let .distributed(error): error.description
        case let .noProgress(evidence):
            "stopped at epoch \(evidence.epoch) (--on-no-progress stop): " + evidence.summary
        case let .interrupted(step, _, checkpoint):
            "training stopped after step \(step)" + (checkpoint.map {
                "; checkpoint \($0) (continue with --resume \(outputFolder(ofCheckpoint: $0)))"
            } ?? "")
        }
    }
}

/// The output folder of a step checkpoint `<folder>/checkpoints/step-….safetensors`.
func outputFolder(ofCheckpoint path: String) -> String {
    ((path as NSString).deletingLastPathComponent as NSString).deletingLastPathComponent
}

/// Data that cannot support the run.
public enum TrainingDataError: Error, CustomStringConvertible, Equatable {
    /// The data set cannot be loaded or split.
    case dataset(DatasetError)
    /// A batch the head refuses (a label outside `0..<K`, an empty or mismatched batch) at `step`.
    case batch(MarginLossError, step: Int)
    /// The images do not have the backbone's input size.
    case imageSizeMismatch(expected: String, found: String)
    /// The held-out identities cannot support the verification protocol.
    case heldOutSetTooSmall(reason: String)
    /// `validationIdentities` of the `trainingIdentities` training identities would leave fewer
    /// than 2 to train on or fewer than 2 to validate with.
    case validationSplitTooSmall(validationIdentities: Int, trainingIdentities: Int)
    /// No validation identity has two images, so validation has no genuine pair.
    case validationWithoutGenuinePairs(identities: [String])
    /// A record of a RecordIO pack could not be read or decoded (a truncated or corrupt `.rec`,
    /// a wrong `.idx`); the error names the file and the byte offset or index line.
    case records(RecordIOError)

    public var description: String {
        switch self {
        case let .dataset(error): error.description
        case let .batch(error, step): "step \(step): \(error)"
        case let .imageSizeMismatch(expected, found):
            "the images are \(found) but the backbone expects \(expected); set backbone.inputHeight/inputWidth in a --config file"
        case let .heldOutSetTooSmall(reason): "the held-out identities are too few for verification: \(reason)"
        case let .validationSplitTooSmall(validation, training):
            "validationIdentities = \(validation) of \(training) training identities leaves "
                + (validation < 2 ? "fewer than 2 to validate with" : "fewer than 2 to train on")
                + "; use 2…\(max(2, training - 2)) (or 0 for no validation split)"
        case let .validationWithoutGenuinePairs(identities):
            "no validation identity (\(identities.joined(separator: ", "))) has two images, so validation has no genuine pair; use more validationIdentities"
        case let .records(error): error.description
        }
    }
}

/// NaN or ±∞ in a step or in the trained model.
public enum NumericalError: Error, CustomStringConvertible, Equatable {
    /// A training image holds NaN or ±Inf (checked before the forward pass, so no state changes).
    case nonFiniteInput(step: Int, path: String)
    /// The loss became NaN or ±Inf at `step`; `lastFiniteLoss` is the previous step's loss.
    case nonFiniteLoss(step: Int, lastFiniteLoss: Double?)
    /// A parameter gradient (or the update) became NaN or ±Inf at `step` (weights were not updated).
    case nonFiniteGradient(step: Int, parameter: String, lastFiniteLoss: Double?)
    /// Row `row` of the head's parameter `parameter` held NaN or ±Inf at `step` (found by the head
    /// before anything was computed from it; the weights were not updated). Such a row stays
    /// non-finite, so under `NonFinitePolicy.skip` every later step is skipped too and the run
    /// stops with `everyStepSkipped` after an epoch.
    case nonFiniteParameter(step: Int, parameter: String, row: Int, lastFiniteLoss: Double?)
    /// Every step of `steps` in a row was skipped for non-finite values (`NonFinitePolicy.skip`):
    /// the run diverged and learns nothing. The weights are those of the last good step.
    case everyStepSkipped(step: Int, steps: Int, lastFiniteLoss: Double?)
    /// The trained model's embeddings of `count` of the `total` held-out images are not finite.
    case nonFiniteEmbeddings(count: Int, total: Int)

    public var description: String {
        func last(_ loss: Double?) -> String { loss.map { String($0) } ?? "none" }
        return switch self {
        case let .nonFiniteInput(step, path): "step \(step): image \(path) contains NaN or infinite pixel values"
        case let .nonFiniteLoss(step, loss):
            "the loss became non-finite at step \(step) (last finite loss: \(last(loss))); "
                + "try a lower learning rate or scale, or gradient clipping"
        case let .nonFiniteGradient(step, parameter, loss):
            "the gradient of \(parameter) became non-finite at step \(step) (last finite loss: \(last(loss))); "
                + "the weights were not updated; try a lower learning rate, gradient clipping or --on-non-finite skip"
        case let .nonFiniteParameter(step, parameter, row, loss):
            "row \(row) of \(parameter) holds NaN or Inf at step \(step) (last finite loss: \(last(loss))); "
                + "the weights were not updated; resume from an earlier checkpoint with a lower learning rate or gradient clipping"
        case let .everyStepSkipped(step, steps, loss):
            "every one of the last \(steps) steps (up to step \(step)) was skipped for non-finite values: the run diverged "
                + "(last finite loss: \(last(loss))); try a lower learning rate or scale, or gradient clipping"
        case let .nonFiniteEmbeddings(count, total):
            "the trained model produces non-finite embeddings on \(count) of \(total) held-out images (the run diverged); "
                + "try a lower learning rate or scale, or gradient clipping"
        }
    }
}

/// An output folder that cannot take the run.
public enum RunFolderError: Error, CustomStringConvertible, Equatable {
    /// Another process is training in this output folder (its lock file is held).
    case inUse(directory: String)
    /// A fresh run (no resume) was pointed at an output folder that already holds another run's
    /// training checkpoints; nothing was trained or changed.
    case holdsCheckpoints(directory: String)
    /// `--resume-or-overwrite` (`Experiment.resumeOrOverwrite`) found an unfinished run in
    /// the folder (`finishedEpochs` of `epochs` trained) whose settings differ from this run's in
    /// `differingKeys`: it is neither resumed with other settings nor silently replaced; nothing
    /// was changed.
    case holdsOtherUnfinishedRun(directory: String, finishedEpochs: Int, epochs: Int, differingKeys: [String])
    /// A file or folder of the run that is not a checkpoint (the folder itself, its lock file,
    /// `skipped-images.txt`, `report.html`, an earlier run's checkpoints to delete) cannot be
    /// created, written or removed.
    case fileWriteFailed(FileWriteError)
    /// The file system of the checkpoint folder has less free space than the run's checkpoints
    /// and final files need (checked before the first step; nothing was trained).
    case insufficientSpace(InsufficientSpaceError)

    public var description: String {
        switch self {
        case let .insufficientSpace(error): error.description
        case let .inUse(directory):
            "another arcface process is training in \(directory) (\(directory)/.lock is held); wait for it to end"
        case let .holdsCheckpoints(directory):
            "\(directory) already holds the training checkpoints of a run (\(directory)/checkpoints); "
                + "continue that run with --resume \(directory), start afresh with --overwrite, or choose another --output"
        case let .holdsOtherUnfinishedRun(directory, finished, epochs, keys):
            "\(directory) holds an unfinished run (epoch \(finished)/\(epochs)) with other settings than this one "
                + "(differs in \(keys.joined(separator: ", "))); it was not resumed and nothing was changed: "
                + "continue it with its own settings with --resume \(directory), discard it and start afresh with --overwrite, "
                + "or choose another --output"
        case let .fileWriteFailed(error): error.description
        }
    }
}
