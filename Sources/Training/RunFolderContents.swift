// What an output folder holds as far as resuming goes (no run, an unfinished run, a finished
// one), and the choice `arcface train --resume-or-overwrite` makes from it.
import Foundation
import RunConfiguration
import Checkpointing

/// The run stored in an output folder: its newest loadable training checkpoint and what that
/// checkpoint says.
public struct StoredRun: Equatable, Sendable {
    /// The folder.
    public var folder: String
    /// The newest step checkpoint that reads as a training state (`TrainingCheckpoint.newestLoadable`).
    public var checkpoint: String
    /// The run's configuration, stored in the checkpoint.
    public var configuration: TrainingConfiguration
    /// The data folder the run was started with (checkpoint metadata `dataDirectory`), if stored.
    public var dataDirectory: String?
    /// Epochs the checkpoint has finished, 0…`configuration.epochs`.
    public var finishedEpochs: Int
    /// Whether the folder holds the run's saved results (`model.safetensors` and `metrics.json`,
    /// written last, after the final evaluation).
    public var resultsSaved: Bool

    /// Whether every epoch is trained (the results may still be unsaved: `isFinished`).
    public var isTrained: Bool { finishedEpochs >= configuration.epochs }
    /// Whether there is nothing left to do: every epoch trained, evaluated and saved.
    public var isFinished: Bool { isTrained && resultsSaved }
}

/// What an output folder holds (`Experiment.contents(ofRunFolder:)`).
public enum RunFolderContents: Equatable, Sendable {
    /// No step checkpoint: a new, empty or unrelated folder (a `best.safetensors` alone is no
    /// run to resume).
    case noRun
    /// A run with epochs left to train, or trained but not yet evaluated and saved (stopped or
    /// killed during its final evaluation): `--resume` continues it.
    case unfinished(StoredRun)
    /// A run trained, evaluated and saved: nothing to resume.
    case finished(StoredRun)
}

extension Experiment {
    /// What the output folder `path` holds: finished means the newest loadable step checkpoint
    /// has every epoch of its configuration and `model.safetensors` and `metrics.json` exist;
    /// unfinished, a loadable step checkpoint otherwise. Reads only; changes nothing (an
    /// unloadable newer checkpoint is passed over, not yet set aside).
    ///
    /// - Throws: `TrainingError.runFolder(.inUse)` when another process is training in the folder
    ///   (its lock is held: what it holds is changing); `TrainingError.checkpoint`:
    ///   `.noLoadableCheckpoint` when step checkpoints exist but none reads, or the newest one's
    ///   other error (another format version, a final model).
    public static func contents(ofRunFolder path: String) throws(TrainingError) -> RunFolderContents {
        if RunLock.isHeld(folder: path) { throw .runFolder(.inUse(directory: path)) }
        let checkpoints = path + "/checkpoints"
        guard TrainingCheckpoint.latest(in: checkpoints) != nil else { return .noRun }
        let run: StoredRun
        do {
            let newest = try TrainingCheckpoint.newestLoadable(in: checkpoints).path
            let stored = try TrainingCheckpoint.configuration(at: newest)
            let saved = ["model.safetensors", "metrics.json"].allSatisfy { FileManager.default.fileExists(atPath: path + "/" + $0) }
            run = StoredRun(folder: path, checkpoint: newest, configuration: stored.configuration,
                            dataDirectory: stored.metadata["dataDirectory"],
                            finishedEpochs: try TrainingCheckpoint.finishedEpochs(at: newest), resultsSaved: saved)
        } catch { throw .checkpoint(error) }
        return run.isFinished ? .finished(run) : .unfinished(run)
    }

    /// What `arcface train --resume-or-overwrite` finds in `folder`, checked: `.unfinished` is
    /// the run to resume; `.noRun` and `.finished` mean start afresh, replacing a finished run's
    /// checkpoints and results (`replacingCheckpoints`).
    ///
    /// An unfinished run is resumed only when it is the run `configuration` describes: every key
    /// that changes the arithmetic of a step must be equal (the check `Trainer.restore` makes;
    /// `onNonFinite`, `onBadImage`, `keepCheckpoints`, `checkpointEverySteps` and `onNoProgress`
    /// may differ). The training images are checked when the run resumes
    /// (`CheckpointError.trainingSetChanged`).
    ///
    /// - Throws: `TrainingError.runFolder(.holdsOtherUnfinishedRun)` naming the keys that differ
    ///   (nothing was changed), or the errors of `contents(ofRunFolder:)`.
    public static func resumeOrOverwrite(folder: String,
                                         configuration: TrainingConfiguration) throws(TrainingError) -> RunFolderContents {
        let contents = try contents(ofRunFolder: folder)
        if case let .unfinished(run) = contents {
            let differences = TrainingConfiguration.differingKeys(run.configuration, configuration)
            guard differences.isEmpty else {
                throw .runFolder(.holdsOtherUnfinishedRun(directory: folder, finishedEpochs: run.finishedEpochs,
                                                          epochs: run.configuration.epochs, differingKeys: differences))
            }
        }
        return contents
    }
}
