// `arcface train` options for fault tolerance, and the signal handling that turns SIGINT and
// SIGTERM into a checkpoint and a distinct exit status.
import ArgumentParser
import ArcFace
import Dispatch
import Foundation

/// Fault-tolerance options of `arcface train`; each overrides the configuration.
struct FaultToleranceOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Continue the run in this output folder from its newest checkpoint (<DIR>/checkpoints/step-*.safetensors), with the run's stored configuration.", valueName: "DIR"))
    var resume: String?
    @Option(help: "NaN/Inf in a batch, the loss or a gradient: stop (typed error) or skip (no update; the step is counted).")
    var onNonFinite: NonFinitePolicy?
    @Option(help: "A corrupt or unreadable image file: error, or skip (listed in <output>/skipped-images.txt).")
    var onBadImage: BadImagePolicy?
    @Option(parsing: .unconditional, help: "Step checkpoints kept in <output>/checkpoints (plus best.safetensors: highest validation AUC with a validation split, else lowest training loss).")
    var keepCheckpoints: Int?
    @Option(parsing: .unconditional, help: "Also checkpoint every this many steps (0: at epoch ends and on a stop only).")
    var checkpointEverySteps: Int?

    /// Range checks, so that a bad value is a usage error (exit 64) like every other one.
    func validate() throws {
        var problems: [String] = []
        if let keepCheckpoints, keepCheckpoints < 1 {
            problems.append("--keep-checkpoints must be ≥ 1 (the newest step checkpoint is what --resume continues from): \(keepCheckpoints)")
        }
        if let checkpointEverySteps, checkpointEverySteps < 0 {
            problems.append("--checkpoint-every-steps must be ≥ 0 (0: at epoch ends and on a stop only): \(checkpointEverySteps)")
        }
        if !problems.isEmpty { throw ValidationError(problems.joined(separator: "\n")) }
    }

    func apply(to configuration: inout TrainingConfiguration) {
        if let onNonFinite { configuration.onNonFinite = onNonFinite }
        if let onBadImage { configuration.onBadImage = onBadImage }
        if let keepCheckpoints { configuration.keepCheckpoints = keepCheckpoints }
        if let checkpointEverySteps { configuration.checkpointEverySteps = checkpointEverySteps }
    }
}

extension NonFinitePolicy: ExpressibleByArgument {}
extension BadImagePolicy: ExpressibleByArgument {}

extension HyperparameterOptions {
    /// Whether any option that changes the run's hyperparameters was given.
    var isEmpty: Bool {
        config == nil && loss == nil && scale == nil && margin == nil && epochs == nil && batchSize == nil
            && learningRate == nil && seed == nil && heldOutIdentities == nil && validationIdentities == nil && threads == nil
            && marginWarmupEpochs == nil && marginGradient == nil && marginShape.isEmpty
            && backboneLearningRateScale == nil && !freezeBatchNorm
    }
}

/// The exit status of a run stopped by a signal after writing its checkpoint: 128 + the signal
/// number (130 for SIGINT, 143 for SIGTERM), the shell convention. A second signal kills the
/// process at once with the default action (the parent sees "killed by signal").
func exitStatus(forStopSignal signal: Int32?) -> Int32 { 128 + (signal ?? SIGINT) }

/// Routes SIGINT and SIGTERM to `request`: the first asks the trainer to stop after its
/// current step (and checkpoint); a second one restores the default action and re-raises, so
/// the process ends at once. Once `trainingFinished` is set (after the last epoch) the first
/// signal no longer stops anything: the run finishes evaluating and saving, and exits 0.
/// `stopDuringTraining` is set when a first signal announced a stop (before that point).
/// Keep the returned sources alive for the whole run.
func installStopHandlers(_ request: StopRequest, trainingFinished: StopRequest? = nil,
                         stopDuringTraining: StopRequest? = nil) -> [any DispatchSourceSignal] {
    [SIGINT, SIGTERM].map { number in
        signal(number, SIG_IGN)  // let the dispatch source, not the default action, see it
        let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
        source.setEventHandler {
            // Signals that arrive before the handler runs are coalesced: `data` counts them.
            if request.request(signal: number) || source.data > 1 {
                // Default action, unblocked on this thread (dispatch threads, and processes
                // started by some parents, block signals), then delivered here: the process dies
                // by the signal. `_exit` only if that somehow returns.
                signal(number, SIG_DFL)
                var set = sigset_t()
                sigemptyset(&set)
                sigaddset(&set, number)
                pthread_sigmask(SIG_UNBLOCK, &set, nil)
                raise(number)
                _exit(128 + number)
            } else if trainingFinished?.isRequested == true {
                say("\nsignal \(number): training has finished; finishing the evaluation and saving (send it again to quit at once)")
            } else {
                stopDuringTraining?.request(signal: number)
                say("\nsignal \(number): stopping after the current step (send it again to quit at once)")
            }
        }
        source.resume()
        return source
    }
}
