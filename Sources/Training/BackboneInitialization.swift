// `--init-from`: a new run whose backbone starts from saved weights (fine-tuning), with a new
// margin head for its own identities.
import Foundation
import TensorCore
import Layers
import Checkpointing

/// Where a run's initial backbone came from: the file and its fingerprint, stored in every
/// checkpoint and `model.safetensors` of the run under `metadataKey` (as `json`).
public struct BackboneInitialization: Sendable, Equatable, CustomStringConvertible {
    /// The checkpoint metadata key.
    public static let metadataKey = "initFrom"
    /// The file as given (a `model.safetensors`, a training checkpoint, a converted arcface_torch
    /// `state_dict`), or the `model.safetensors` of a run folder given.
    public var path: String
    /// The file's size in bytes.
    public var byteCount: Int
    /// The CRC-32 of the whole file.
    public var crc32: UInt32

    public init(path: String, byteCount: Int, crc32: UInt32) {
        self.path = path
        self.byteCount = byteCount
        self.crc32 = crc32
    }

    /// The fingerprint of the file at `path`: its size and CRC-32.
    public init(fingerprinting data: Data, path: String) {
        self.init(path: path, byteCount: data.count, crc32: CRC32.checksum(data))
    }

    /// `{"bytes":…,"crc32":"xxxxxxxx","path":"…"}`.
    public var json: String {
        let object: [String: Any] = ["path": path, "bytes": byteCount, "crc32": crc32Text]
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data()
        return String(decoding: data, as: UTF8.self)
    }

    /// Reads `json`; `nil` when it is not one.
    public init?(json: String) {
        guard let object = (try? JSONSerialization.jsonObject(with: Data(json.utf8))) as? [String: Any],
              let path = object["path"] as? String, let bytes = object["bytes"] as? Int,
              let text = object["crc32"] as? String, let crc = UInt32(text, radix: 16) else { return nil }
        self.init(path: path, byteCount: bytes, crc32: crc)
    }

    /// The CRC-32 as eight lowercase hexadecimal digits.
    public var crc32Text: String {
        let hex = String(crc32, radix: 16)
        return String(repeating: "0", count: 8 - hex.count) + hex
    }

    /// Whether `other` is the same file contents (size and CRC-32; the path may differ).
    public func sameContents(as other: BackboneInitialization) -> Bool {
        byteCount == other.byteCount && crc32 == other.crc32
    }

    public var description: String { "\(path) (\(byteCount) bytes, CRC-32 \(crc32Text))" }
}

/// Why a backbone could not be initialized from a file (`--init-from`).
public enum BackboneInitializationError: Error, CustomStringConvertible, Equatable, Sendable {
    /// The file could not be read or is not a safetensors file.
    case file(CheckpointError)
    /// The backbone has tensor `name`, the file does not.
    case missingTensor(path: String, name: String)
    /// Tensor `name` has shape `file` in the file, the new run's backbone has `backbone`.
    case shapeMismatch(path: String, name: String, file: [Int], backbone: [Int])
    /// The file holds tensor `name`, which is neither the backbone's nor a head tensor (`head.…`).
    case unexpectedTensor(path: String, name: String)
    /// Tensor `name` holds NaN or ±∞.
    case nonFiniteTensor(path: String, name: String)
    /// A resumed run was initialized from `stored`; `given` is another file's contents.
    case differentInitialization(given: BackboneInitialization, stored: BackboneInitialization)

    public var description: String {
        switch self {
        case let .file(error): "--init-from: \(error)"
        case let .missingTensor(path, name):
            "--init-from \(path): the backbone's tensor '\(name)' is not in the file (a backbone of another kind or depth?)"
        case let .shapeMismatch(path, name, file, backbone):
            "--init-from \(path): tensor '\(name)' has shape \(file) in the file, the backbone's is \(backbone) (another width, embedding size or input size?)"
        case let .unexpectedTensor(path, name):
            "--init-from \(path): tensor '\(name)' is not a tensor of this backbone (nor of a head, head.…)"
        case let .nonFiniteTensor(path, name): "--init-from \(path): tensor '\(name)' holds NaN or infinite values"
        case let .differentInitialization(given, stored):
            "--init-from \(given) is not the file this run was initialized from, \(stored): drop --init-from to resume, or start afresh"
        }
    }
}

extension FaceRecognitionModel {
    /// The backbone tensors of the safetensors file at `path` (a run folder: its
    /// `model.safetensors`): a model file of this package, a training checkpoint (its
    /// `momentum.…` tensors left out), or a file holding arcface_torch's `state_dict` keys (with
    /// or without `num_batches_tracked`); head tensors (`head.…`) are left out.
    ///
    /// - Throws: `BackboneInitializationError.file` when it cannot be read.
    public static func backboneTensors(at path: String) throws(BackboneInitializationError)
        -> (tensors: [String: Tensor], initialization: BackboneInitialization) {
        let file = Experiment.modelFile(at: path)
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: file)) }
        catch { throw .file(.unreadable(path: file, reason: error.localizedDescription)) }
        var tensors: [String: Tensor], metadata: [String: String]
        do { (tensors, metadata) = try Safetensors.decode(data, path: file) } catch { throw .file(error) }
        if metadata["kind"] == TrainingCheckpoint.kind { tensors = tensors.filter { !$0.key.hasPrefix("momentum.") } }
        tensors = tensors.filter { !$0.key.hasPrefix("head.") }
        return (tensors, BackboneInitialization(fingerprinting: data, path: file))
    }

    /// Replaces every backbone parameter and buffer (BatchNorm running statistics, a fixed γ)
    /// with the tensor of the same name in `tensors`; the head is not touched.
    ///
    /// - Throws: `BackboneInitializationError.missingTensor`, `.shapeMismatch` (naming the tensor
    ///   and both shapes), `.unexpectedTensor` (a tensor that is not the backbone's; head tensors
    ///   must be removed first, `backboneTensors(at:)`) or `.nonFiniteTensor`; on error nothing
    ///   has been changed.
    public func loadBackbone(_ tensors: [String: Tensor], path: String) throws(BackboneInitializationError) {
        do { try backbone.replaceTensors(with: tensors) } catch {
            switch error {
            case let .missing(name): throw .missingTensor(path: path, name: name)
            case let .shape(name, file, expected): throw .shapeMismatch(path: path, name: name, file: file, backbone: expected)
            case let .unexpected(name): throw .unexpectedTensor(path: path, name: name)
            case let .nonFinite(name): throw .nonFiniteTensor(path: path, name: name)
            }
        }
    }
}

/// The first tensor of a file that does not fit a backbone (`replaceTensors(with:)`).
enum BackboneTensorMismatch: Error {
    case missing(String), shape(String, file: [Int], expected: [Int]), unexpected(String), nonFinite(String)
}

extension EmbeddingBackbone {
    /// Replaces every parameter and buffer with the tensor of the same name in `tensors`, after
    /// checking all of them (present, same shape, finite; no tensor the backbone lacks): on error
    /// nothing has been changed. Shared by `--init-from` and backbone-only model files.
    func replaceTensors(with tensors: [String: Tensor]) throws(BackboneTensorMismatch) {
        let targets = parameters.map { ($0.name, $0.value.shape) } + buffers.map { ($0.name, $0.value.shape) }
        for (name, shape) in targets {
            guard let tensor = tensors[name] else { throw .missing(name) }
            guard tensor.shape == shape else { throw .shape(name, file: tensor.shape, expected: shape) }
            guard tensor.isFinite else { throw .nonFinite(name) }
        }
        let expected = Set(targets.map(\.0))
        if let extra = tensors.keys.sorted().first(where: { !expected.contains($0) }) { throw .unexpected(extra) }
        for parameter in parameters { parameter.value = tensors[parameter.name]! }
        for buffer in buffers { buffer.value = tensors[buffer.name]! }
    }
}

extension Trainer {
    /// Starts this (fresh) run's backbone from the file at `path` (`FaceRecognitionModel.backboneTensors(at:)`,
    /// `loadBackbone(_:path:)`) and records the file's fingerprint in the checkpoint metadata
    /// (`BackboneInitialization.metadataKey`). Call before `run`, after the run folder is attached.
    ///
    /// - Throws: `BackboneInitializationError`; on error the model is unchanged.
    @discardableResult
    public func initializeBackbone(from path: String) throws(BackboneInitializationError) -> BackboneInitialization {
        let (tensors, initialization) = try FaceRecognitionModel.backboneTensors(at: path)
        try model.loadBackbone(tensors, path: initialization.path)
        checkpointMetadata[BackboneInitialization.metadataKey] = initialization.json
        return initialization
    }
}
