// The bytes a run's checkpoints and final files take, checked against the free space of the
// checkpoint folder before the first step, so a nearly full disk fails at once instead of after
// an epoch of training.
import Foundation
import Checkpointing

extension Trainer {
    /// The size of one training-state checkpoint, bytes (an upper estimate): the model's tensors
    /// (weights and BatchNorm running statistics) and the momentum, 4 bytes per value, a
    /// safetensors header entry per tensor, and the metadata (configuration, `checkpointMetadata`,
    /// validation identities, and the history at 512 bytes an epoch, all `configuration.epochs`).
    var checkpointBytesEstimate: Int64 {
        let modelValues = model.namedTensors.reduce(0) { $0 + $1.tensor.count }
        let momentumValues = optimizer.momentumBuffers.reduce(0) { $0 + $1.count }
        let tensors = model.namedTensors.count + optimizer.momentumBuffers.count
        return 4 * Int64(modelValues + momentumValues) + 160 * Int64(tensors) + metadataBytesEstimate
    }

    /// The size of the final `model.safetensors` (weights and statistics, no momentum), bytes.
    var modelBytesEstimate: Int64 {
        let values = model.namedTensors.reduce(0) { $0 + $1.tensor.count }
        return 4 * Int64(values) + 160 * Int64(model.namedTensors.count) + metadataBytesEstimate
    }

    private var metadataBytesEstimate: Int64 {
        let configurationBytes = configuration.jsonData().count
        let extra = checkpointMetadata.reduce(0) { $0 + $1.key.utf8.count + $1.value.utf8.count + 8 }
        let identities = (fitIdentities + validationIdentities).reduce(0) { $0 + $1.utf8.count + 4 }
        return Int64(16_384 + configurationBytes + extra + identities + 512 * configuration.epochs)
    }

    /// The free space a run still needs in `directory`: at most `keepCheckpoints + 1` step
    /// checkpoints coexist (the newest is written before the oldest is pruned), plus
    /// `best.safetensors` (a hard link, but it keeps a pruned step's bytes alive), the final
    /// `model.safetensors` and 1 MiB for `config.json`, `metrics.json` and `report.html`; less
    /// what the folder's checkpoints already take (a resumed run replaces them).
    func bytesNeeded(in directory: String) -> Int64 {
        let total = Int64(configuration.keepCheckpoints + 2) * checkpointBytesEstimate + modelBytesEstimate + 1 << 20
        let existing = ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).reduce(Int64(0)) { sum, name in
            let size = (try? FileManager.default.attributesOfItem(atPath: directory + "/" + name))?[.size] as? NSNumber
            return sum + (size?.int64Value ?? 0)
        }
        return max(0, total - existing)
    }

    /// Checks the free space of `directory` against `bytesNeeded(in:)` with `availableSpace`.
    ///
    /// - Throws: `TrainingError.runFolder(.insufficientSpace)` naming the folder, the bytes needed
    ///   and the bytes available.
    func checkFreeSpace(in directory: String) throws(TrainingError) {
        let what = "\(configuration.keepCheckpoints + 1) step checkpoints of about "
            + "\(DiskSpace.describe(checkpointBytesEstimate)) each, best.safetensors and the final model"
        do {
            try InsufficientSpaceError.check(folder: directory, what: what, needed: bytesNeeded(in: directory),
                                             available: availableSpace)
        } catch { throw .runFolder(.insufficientSpace(error)) }
    }
}
