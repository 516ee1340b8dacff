// arcface: train, evaluate and compare face-embedding models. Thin: parses arguments, resolves
// the configuration, prints it, and calls the `Training` library.
import ArgumentParser
import ArcFace
import Foundation

@main
struct ArcFaceCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "arcface",
        abstract: "Train and evaluate face-embedding networks with angular-margin losses.",
        subcommands: [Train.self, Evaluate.self, EvaluateProtocol.self, Compare.self, Embed.self, Export.self, Align.self,
                      Pack.self, MakePairs.self])
}

/// The `--checkpoint` option of `evaluate`, `evaluate-protocol` and `embed`.
struct CheckpointOption: ParsableArguments {
    @Option(name: .customLong("checkpoint"), help: ArgumentHelp("A model.safetensors file or the run folder holding it; embed, evaluate-protocol and export also take a backbone-only file (convert_arcface_torch.py, a raw arcface_torch state_dict).", valueName: "checkpoint"))
    var path: String
}

/// Options shared by `train` and `compare`: each overrides the configuration file and defaults.
struct HyperparameterOptions: ParsableArguments {
    @Option(help: "A JSON configuration file overriding any subset of the defaults (unknown keys are an error).")
    var config: String?
    @Option(help: "Loss: arcface, cosface, normface, softmax or combined.")
    var loss: LossKind?
    @Option(parsing: .unconditional, help: "Logit scale s, or auto for √2·ln(C − 1) (AdaCos's fixed scale; 4.76 for 30 classes).")
    var scale: ScaleOption?
    @Option(help: "Gradient through the margin: straight-through (default) or exact.")
    var marginGradient: MarginGradientOption?
    @Option(parsing: .unconditional, help: "Margin m: radians for arcface (angularMargin), cosine units for cosface (cosineMargin); m2 (radians) for combined.")
    var margin: Double?
    @Option(parsing: .unconditional, help: "Training epochs (≥ 1).")
    var epochs: Int?
    @Option(parsing: .unconditional, help: "Images per step (≥ 2).")
    var batchSize: Int?
    @Option(name: .customLong("lr"), parsing: .unconditional, help: "Peak learning rate.")
    var learningRate: Double?
    @Option(parsing: .unconditional, help: "Seed of every random stream (split, initialization, shuffling, augmentation, pairs).")
    var seed: UInt64?
    @Option(parsing: .unconditional, help: "Identities held out for verification (≥ 2).")
    var heldOutIdentities: Int?
    @Option(parsing: .unconditional, help: "Training identities held out as a validation split that chooses best.safetensors (0: none, best by training loss).")
    var validationIdentities: Int?
    @Option(parsing: .unconditional, help: "OpenBLAS threads, 0…\(TrainingConfiguration.maximumThreads) (0 or absent: the library's choice), as the configuration key threads.")
    var threads: Int?
    @Option(help: "Ramp the margin linearly from 0 at the first step to its value after this many epochs (marginWarmupEpochs; 0: none).")
    var marginWarmupEpochs: Int?
    @Option(name: .customLong("backbone-lr-scale"), parsing: .unconditional, help: "The backbone's learning rate as a fraction of the head's, 0…1 (backboneLearningRateScale; e.g. 0.1 with --init-from).")
    var backboneLearningRateScale: Double?
    @Flag(name: .customLong("freeze-batchnorm"), help: "BatchNorm layers of the backbone normalize with their running statistics and keep them (freezeBatchNorm).")
    var freezeBatchNorm = false
    @OptionGroup var marginShape: MarginOptions

    /// Range checks of the options themselves, so that a bad value is a usage error (exit 64)
    /// naming the option before any configuration file is read.
    func validate() throws {
        var problems: [String] = []
        if let epochs, epochs < 1 { problems.append("--epochs must be ≥ 1: \(epochs)") }
        if let batchSize, batchSize < 2 { problems.append("--batch-size must be ≥ 2 (BatchNorm needs a batch): \(batchSize)") }
        if let heldOutIdentities, heldOutIdentities < 2 { problems.append("--held-out-identities must be ≥ 2: \(heldOutIdentities)") }
        if let validationIdentities, validationIdentities < 0 { problems.append("--validation-identities must be ≥ 0 (0: none): \(validationIdentities)") }
        if let backboneLearningRateScale, !(0...1).contains(backboneLearningRateScale) {
            problems.append("--backbone-lr-scale must be in 0…1 (1: the head's rate): \(backboneLearningRateScale)")
        }
        if let threads, !(0...TrainingConfiguration.maximumThreads).contains(threads) {
            problems.append("--threads must be in 0…\(TrainingConfiguration.maximumThreads) (0: the library's default): \(threads)")
        }
        if !problems.isEmpty { throw ValidationError(problems.joined(separator: "\n")) }
    }

    func resolve() throws -> TrainingConfiguration {
        var configuration = TrainingConfiguration.base
        if let config {
            let data: Data
            do { data = try Data(contentsOf: URL(fileURLWithPath: config)) }
            catch { throw ValidationError(ConfigurationError.unreadable(path: config, reason: error.localizedDescription).description) }
            do { configuration = try TrainingConfiguration.decode(json: data, source: config, validate: false) }
            catch { throw ValidationError(error.description) }
        }
        if let loss { configuration.loss = loss }
        if case let .value(scale) = scale { configuration.scale = scale }
        if let marginGradient { configuration.marginGradient = marginGradient.mode }
        if let margin {
            switch configuration.loss {
            case .arcface: configuration.angularMargin = margin
            case .cosface: configuration.cosineMargin = margin
            case .combined: configuration.combinedAngularMargin = margin
            case .normface, .softmax: throw ValidationError("--margin has no meaning for --loss \(configuration.loss.rawValue)")
            }
        }
        if let epochs { configuration.epochs = epochs }
        if let batchSize { configuration.batchSize = batchSize }
        if let learningRate { configuration.learningRate = learningRate }
        if let seed { configuration.seed = seed }
        if let heldOutIdentities { configuration.heldOutIdentities = heldOutIdentities }
        if let validationIdentities { configuration.validationIdentities = validationIdentities }
        if let threads { configuration.threads = threads }
        if let marginWarmupEpochs { configuration.marginWarmupEpochs = marginWarmupEpochs }
        if let backboneLearningRateScale { configuration.backboneLearningRateScale = backboneLearningRateScale }
        if freezeBatchNorm { configuration.freezeBatchNorm = true }
        marginShape.apply(to: &configuration)
        if configuration.warmupEpochs >= configuration.epochs { configuration.warmupEpochs = max(0, configuration.epochs - 1) }
        let problems = configuration.validationProblems()
        if !problems.isEmpty { throw ValidationError(problems.joined(separator: "\n")) }
        return configuration
    }
}

extension LossKind: ExpressibleByArgument {}

struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Train on a folder-per-identity dataset and verify on held-out identities.")

    @Option(help: "Dataset folder: one subfolder of PGM, JPEG or PNG images per identity, or a RecordIO pack x.rec (x.idx beside it; streamed, see `arcface pack`) (with --resume: default the run's).")
    var data: String?
    @Option(help: "Output folder (default: runs/<run name>).")
    var output: String?
    @Flag(help: "Start afresh in an output folder that holds an earlier run: delete its checkpoints first (default: refuse such a folder).")
    var overwrite = false
    @Flag(help: "Continue the unfinished run in the output folder (it must have these settings, else an error), or start afresh as --overwrite does when the folder holds a finished run or none (make train uses it).")
    var resumeOrOverwrite = false
    @OptionGroup var hyperparameters: HyperparameterOptions
    @OptionGroup var faults: FaultToleranceOptions
    @OptionGroup var verification: VerificationOptions
    @OptionGroup var distributed: DistributedOptions
    @Option(help: "A run still near chance after its warm-ups: warn (default) or stop with an error after the checkpoint.")
    var onNoProgress: NoProgressPolicy?
    @Option(help: ArgumentHelp("Start the backbone from this file's weights and BatchNorm statistics (a run folder, its model.safetensors, a training checkpoint, or an arcface_torch state_dict as safetensors), with a new head for this data's identities; its size and CRC-32 are recorded with the run.", valueName: "file"))
    var initFrom: String?

    func validate() throws {
        if resumeOrOverwrite && overwrite { throw ValidationError("--resume-or-overwrite already starts afresh when there is nothing to resume: drop --overwrite") }
        if resumeOrOverwrite && faults.resume != nil { throw ValidationError("--resume continues the run in its folder; --resume-or-overwrite also starts afresh: choose one") }
    }

    func run() throws {
        let communicator: any Communicator
        do { communicator = try distributed.makeCommunicator() } catch { throw failure(error) }
        var configuration: TrainingConfiguration
        var data = data
        let output: String
        var resuming = false
        var trained = false  // a resumed run whose epochs are all trained: evaluate and save only
        var finishedEpochs = 0
        if let resume = faults.resume {
            guard hyperparameters.isEmpty else { throw ValidationError("--resume continues with the run's stored configuration; drop the hyperparameter options") }
            guard verification.isEmpty else { throw ValidationError("--resume continues with the run's stored verification sets (verificationSets); drop --verify, --verify-every and --best-by") }
            guard !overwrite else { throw ValidationError("--overwrite starts afresh and --resume continues: choose one") }
            if let output = self.output, URL(fileURLWithPath: output).standardized.path != URL(fileURLWithPath: resume).standardized.path {
                throw ValidationError("--resume continues in the run's own folder \(resume); drop --output \(output)")
            }
            let contents: RunFolderContents
            do { contents = try Experiment.contents(ofRunFolder: resume) } catch { throw failure(error) }
            switch contents {
            case .noRun:
                throw failure(ValidationError("no checkpoint in \(resume)/checkpoints to resume from"))
            case let .finished(run):
                say(finishedRunMessage(run, data: data ?? run.dataDirectory))
                return
            case let .unfinished(run):
                configuration = run.configuration
                data = data ?? run.dataDirectory
                (trained, finishedEpochs) = (run.isTrained, run.finishedEpochs)
                say("resuming from \(run.checkpoint)")
            }
            output = resume
            resuming = true
        } else {
            configuration = try hyperparameters.resolve()
            verification.apply(to: &configuration)
            let problems = configuration.validationProblems()
            if !problems.isEmpty { throw ValidationError(problems.joined(separator: "\n")) }
            output = self.output ?? "runs/\(configuration.runName)"
        }
        faults.apply(to: &configuration)
        if let onNoProgress { configuration.onNoProgress = onNoProgress }
        guard let data else { throw ValidationError("--data is required") }
        if !resuming {
            try hyperparameters.applyAutomaticScale(to: &configuration, data: data)
            if resumeOrOverwrite {
                let contents: RunFolderContents
                do { contents = try Experiment.resumeOrOverwrite(folder: output, configuration: configuration) } catch { throw failure(error) }
                switch contents {
                case .noRun: break
                case let .finished(run):
                    say("\(output) holds a finished run (epoch \(run.configuration.epochs)/\(run.configuration.epochs)): starting afresh, replacing it (--resume-or-overwrite)")
                case let .unfinished(run):
                    (resuming, trained, finishedEpochs) = (true, run.isTrained, run.finishedEpochs)
                    say("\(output) holds an unfinished run of these settings (epoch \(run.finishedEpochs)/\(run.configuration.epochs)): resuming from \(run.checkpoint) (--resume-or-overwrite)")
                }
            }
        }
        if trained {
            say("training had finished (epoch \(finishedEpochs)/\(configuration.epochs)) but its results were not saved: "
                + "no training left; evaluating the final weights and saving them")
        }
        let stopRequest = StopRequest(), trainingFinished = StopRequest(), stopDuringTraining = StopRequest()
        if trained { trainingFinished.request() }
        let signalSources = installStopHandlers(stopRequest, trainingFinished: trainingFinished,
                                                stopDuringTraining: stopDuringTraining)
        defer { signalSources.forEach { $0.cancel() } }
        say("configuration:")
        say(String(decoding: configuration.jsonData(), as: UTF8.self))
        let threadCount = configuration.threads > 0 ? configuration.threads : BLAS.threadCount
        say("OpenBLAS: \(BLAS.coreName), \(threadCount) thread\(threadCount == 1 ? "" : "s")"
            + (communicator.size > 1 ? " per rank, \(communicator.size) ranks (MPI)" : ""))
        configuration.inputWarnings.forEach { say("warning: " + $0) }
        let result: RunResult
        // No bar for a run with nothing left to train (it would stand at 0 with no ETA).
        let progress = trained ? nil : ProgressReporter(label: "training", total: configuration.epochs, unit: "epoch")
        let log: (String) -> Void = { line in if let progress { progress.log(line) } else { say(line) } }
        let verificationLines = VerificationLines(log: log)
        let onEpoch: (EpochSummary) -> Void = { summary in
            if summary.epoch == configuration.epochs { trainingFinished.request() }
            progress?.update(summary.epoch)
            let line = String(format: "epoch %3d/%d | loss %.4f | acc %.3f | lr %.4f | %.0f img/s",
                              summary.epoch, configuration.epochs, summary.loss, summary.accuracy,
                              summary.learningRate, summary.imagesPerSecond)
                + (summary.dataSeconds.map { String(format: " | data %.0f%%", summary.seconds > 0 ? 100 * $0 / summary.seconds : 0) } ?? "")
                + (summary.validationAUC.map { String(format: " | val AUC %.4f", $0) } ?? "")
                + verificationLines.epochLineSuffix()
                + (summary.skippedSteps > 0 ? " | skipped \(summary.skippedSteps) steps" : "")
                + (summary.noProgress.map { " | WARNING " + $0 } ?? "")
            log(line)
        }
        do {
            result = try Experiment.run(configuration: configuration, dataDirectory: data, outputDirectory: output,
                                        resume: resuming, replacingCheckpoints: overwrite || (resumeOrOverwrite && !resuming),
                                        stopRequest: stopRequest, initFrom: initFrom,
                                        onDataset: { report in
                                            (report.warnings + report.sources.mismatchWarnings(against: configuration.preprocessing))
                                                .forEach { say("warning: " + $0) }
                                        },
                                        onCheckpointSkipped: { path, error in
                                            writeError("warning: \(error); skipping it (renamed to \((path as NSString).lastPathComponent).unloadable)\n")
                                        }, onStart: sayStart, onVerification: verificationLines.record,
                                        onVerificationSets: { sets in
                                            sets.flatMap { $0.inputWarnings(against: configuration.preprocessing) }
                                                .forEach { say("warning: " + $0) }
                                        }, communicator: communicator, onEpoch: onEpoch)
        } catch let TrainingError.interrupted(step, signal, checkpoint) {
            say("stopped after step \(step)" + (checkpoint.map { "; checkpoint \($0)" } ?? ""))
            if checkpoint != nil { say("continue with: \(resumeCommand(output: output, data: data))") }
            throw ExitCode(exitStatus(forStopSignal: signal))
        } catch let TrainingError.distributed(.communication(error, step, what)) where communicator.size > 1 {
            // A rank died or hangs: end every rank (MPI_Abort) with the reason.
            communicator.abort("error: step \(step), \(what): \(error)", exitCode: 1)
        } catch { throw failure(error) }
        progress?.finish()
        if stopDuringTraining.isRequested { say("the stop came after the last step: the run finished, evaluated and saved") }
        printReport(result.metrics)
        if let ranks = result.metrics.distributed {
            say(String(format: "ranks: %d | rank 0 in the trainer's collectives: %.1f s (metrics.json \"distributed\")",
                       ranks.ranks, ranks.communicationSeconds))
        }
        if let evidence = result.metrics.takeOff?.evidence {
            say("warning: the run did not take off (metrics.json \"converged\": false): " + evidence.summary)
        }
        say("saved: \(output)/model.safetensors, config.json, metrics.json, report.html")
    }
}

/// The command that continues the run in `output` on `data`, to paste into a shell from any
/// folder: this executable's absolute path, absolute paths, every word shell-quoted.
func resumeCommand(output: String, data: String) -> ShellCommand {
    ShellCommand([ShellCommand.currentExecutable, "train", "--resume", ShellCommand.absolutePath(output),
                  "--data", ShellCommand.absolutePath(data)])
}

/// What `--resume` of a finished run prints: that there is nothing to resume (nothing was
/// changed), and the commands that train it again or re-evaluate it.
func finishedRunMessage(_ run: StoredRun, data: String?) -> String {
    let executable = ShellCommand.currentExecutable, folder = ShellCommand.absolutePath(run.folder)
    let dataWords = data.map { ["--data", ShellCommand.absolutePath($0)] } ?? []
    let epochs = run.configuration.epochs
    return """
    run already finished (epoch \(epochs)/\(epochs); its model, metrics.json and report.html are in \(folder)): nothing to resume, nothing was changed
      to train it again from scratch (replacing it): \(ShellCommand([executable, "train", "--config", folder + "/config.json"] + dataWords + ["--output", folder, "--overwrite"]))
      to re-evaluate its model: \(ShellCommand([executable, "evaluate", "--checkpoint", folder] + dataWords))
    """ + (data == nil ? "\n  (add --data with the run's dataset folder: the checkpoint does not name it)" : "")
}

struct Evaluate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Re-evaluate a checkpoint on the held-out identities of its run's split.")

    @OptionGroup var checkpoint: CheckpointOption
    @Option(help: "Dataset folder the model was trained on (the split is recomputed from the stored seed).")
    var data: String

    func run() throws {
        do {
            let loaded = try Experiment.loadEmbeddingModel(path: checkpoint.path)
            guard let model = loaded.model else {
                throw BackboneFileError.needsFullModel(
                    path: checkpoint.path, command: "evaluate",
                    reason: "evaluate recomputes the held-out identities of the run that trained it; verify this backbone with arcface evaluate-protocol (--bin, --lfw-pairs)")
            }
            let identities = loaded.identities
            if model.configuration.threads > 0 { BLAS.threadCount = model.configuration.threads }
            // The run's own data set: any conversion (grey → RGB, resizing) was warned about when it trained.
            let (train, heldOut) = try Experiment.split(directory: data, configuration: model.configuration)
            say("model input: \(model.configuration.preprocessing)")
            if !identities.isEmpty && identities != train.identities {
                throw CheckpointError.identityMismatch(
                    path: checkpoint.path, reason: "the split of \(data) gives other training identities than the checkpoint's")
            }
            if let changes = Experiment.dataChanges(sinceCheckpoint: checkpoint.path, trainingSet: train, heldOut: heldOut) {
                writeError(dataChangesWarning(changes, data: data))
            }
            let progress = ProgressReporter(label: "evaluating", total: heldOut.count, unit: "img")
            let (evaluation, flips) = Experiment.evaluateInDetailWithAndWithoutFlip(
                model, on: heldOut, configuration: model.configuration) { done, _ in progress.update(done) }
            progress.finish()
            printVerification(evaluation.report)
            printFlipComparison(flips, configured: model.configuration.flipEmbeddings)
        } catch let error as CheckpointError {
            throw failure(error)
        } catch let error as TrainingError {
            throw failure(error)
        } catch let error as BackboneFileError {
            throw failure(error)
        }
    }
}

/// The warning `evaluate` prints when the data's images are not the run's (`Experiment.dataChanges`).
func dataChangesWarning(_ changes: DataChanges, data: String) -> String {
    let consequence = changes.heldOutImages != nil
        ? "the metrics below are on another held-out set than the run's"
        : changes.heldOutChecked ? "the held-out images are the run's, so the metrics below are comparable"
        : "the checkpoint stores no fingerprint of the held-out images, so they may differ too"
    return "warning: the images in \(data) are not those of the run that wrote \(changes.checkpoint): \(changes); \(consequence)\n"
}

struct Compare: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "ArcFace, CosFace, NormFace and Softmax with the same backbone and budget over several identity splits, plus raw pixels.")

    @Option(help: "Dataset folder: one subfolder of PGM, JPEG or PNG images per identity.")
    var data: String
    @Option(help: "Number of identity splits (seeds seed, seed+1, …).")
    var splits = 3
    @Option(help: "Losses to compare, comma-separated.")
    var losses = "arcface,cosface,normface,softmax"
    @OptionGroup var hyperparameters: HyperparameterOptions

    func run() throws {
        var base = try hyperparameters.resolve()
        try hyperparameters.applyAutomaticScale(to: &base, data: data)
        base.inputWarnings.forEach { say("warning: " + $0) }
        let kinds = try losses.split(separator: ",").map { name -> LossKind in
            guard let kind = LossKind(rawValue: String(name)) else { throw ValidationError("unknown loss '\(name)'") }
            return kind
        }
        var rows = kinds.map { ComparisonRow(method: $0.rawValue, reports: [], imagesPerSecond: []) }
        var pixels = ComparisonRow(method: "raw pixels", reports: [], imagesPerSecond: [])
        do {
            for split in 0..<splits {
                var configuration = base
                configuration.seed = base.seed &+ UInt64(split)
                let (_, heldOut) = try Experiment.split(directory: data, configuration: configuration)
                pixels.reports.append(Experiment.evaluateRawPixels(on: heldOut, configuration: configuration))
                for (i, kind) in kinds.enumerated() {
                    var run = configuration
                    run.loss = kind
                    let result = try Experiment.run(configuration: run, dataDirectory: data, outputDirectory: nil)
                    let m = result.metrics
                    if let evidence = m.takeOff?.evidence { say("warning: split \(split + 1) \(run.runName): " + evidence.summary) }
                    let trainingAccuracy = result.history.last?.accuracy ?? 0
                    say(String(format: "split %d %@: train acc %.3f | balanced acc %.3f | AUC %.4f | EER %.3f | %.0f img/s",
                                 split + 1, run.runName, trainingAccuracy, m.verification.balancedAccuracy, m.verification.auc,
                                 m.verification.eer, m.trainImagesPerSecond))
                    rows[i].reports.append(m.verification)
                    rows[i].imagesPerSecond.append(m.trainImagesPerSecond)
                    rows[i].trainingAccuracies.append(trainingAccuracy)
                    rows[i].tookOff.append(m.takeOff?.converged ?? true)
                }
            }
        } catch { throw failure(error) }
        say("\n" + comparisonHeading(splits: splits, losses: kinds, configuration: base))
        say(comparisonTable(rows + [pixels]))
    }
}

func printVerification(_ r: VerificationReport) {
    say("""
    verification on held-out identities (\(r.genuinePairCount) genuine, \(r.impostorPairCount) impostor pairs):
      balanced accuracy (10-fold)  \(String(format: "%.4f ± %.4f", r.balancedAccuracy, r.balancedAccuracyStdErr))
      AUC                          \(String(format: "%.4f", r.auc))
      EER                          \(String(format: "%.4f", r.eer))
      TAR@FAR=1e-2                 \(tarFigure(r.tarAtFar1e2, note: r.falseAcceptRateNote(target: 1e-2)))
      TAR@FAR=1e-3                 \(tarFigure(r.tarAtFar1e3, note: r.falseAcceptRateNote(target: 1e-3)))
      rank-1                       \(String(format: "%.4f", r.rank1))
    """)
}

/// A TAR@FAR value, followed by why it is not a measurement when its FAR target is below
/// 1/impostor pairs (`falseAcceptRateNote`).
func tarFigure(_ value: Double, note: String?) -> String {
    String(format: "%.4f", value) + (note.map { "  (\($0))" } ?? "")
}

/// The held-out metrics with and without flip-summing, side by side.
func printFlipComparison(_ flips: FlipComparison, configured: Bool) {
    var lines = ["with and without flip-summing (above: \(configured ? "with" : "without"), flipEmbeddings \(configured)):",
                 "  " + "".padding(toLength: 29, withPad: " ", startingAt: 0) + "with flip".padding(toLength: 18, withPad: " ", startingAt: 0)
                     + "without flip"]
    for row in flips.rows {
        lines.append("  " + row.metric.padding(toLength: 29, withPad: " ", startingAt: 0)
                     + row.withFlip.padding(toLength: 18, withPad: " ", startingAt: 0) + row.withoutFlip)
    }
    say(lines.joined(separator: "\n"))
}

func printReport(_ m: RunMetrics) {
    printVerification(m.verification)
    if let flips = m.flipComparison { printFlipComparison(flips, configured: m.verification == flips.withFlip) }
    printVerificationSets(m, flipEmbeddings: m.flipComparison.map { m.verification == $0.withFlip } ?? true)
    func lines(_ title: String, _ t: TimingBreakdown, imagesPerSecond: Double, seconds: Double) -> String {
        let total = t.data + t.forward + t.backward + t.optimizer
        func share(_ x: Double) -> String { String(format: "%.1f s (%.0f%%)", x, total > 0 ? 100 * x / total : 0) }
        return """
        \(title): \(String(format: "%.0f", imagesPerSecond)) images/s over \(t.images) images, \(String(format: "%.1f", seconds)) s
          data \(share(t.data)) | forward+loss \(share(t.forward)) | backward \(share(t.backward)) | optimizer \(share(t.optimizer))
        """
    }
    // A resumed run: the totals of all sessions, then this session's own numbers, each labelled.
    let title = m.session.map { "training, all \($0.number) sessions" } ?? "training"
    say(lines(title, m.timing, imagesPerSecond: m.trainImagesPerSecond, seconds: m.trainingSeconds))
    if let s = m.session {
        say(lines("training, this session (\(s.number) of \(s.number))", s.timing, imagesPerSecond: s.imagesPerSecond,
                  seconds: s.trainingSeconds))
    }
}

/// Prints a line and flushes at once, so progress shows line by line in a pipe or log file too.
func say(_ line: String) {
    print(line)
    fflush(nil)
}

/// Reports `error` on standard error and returns the failure exit code to throw.
func failure(_ error: any Error) -> ExitCode {
    FileHandle.standardError.write(Data("error: \(error)\n".utf8))
    return ExitCode.failure
}
