import Foundation
import TensorCore
import Layers
import MarginLosses
import Optimizers
import FaceData
import RunConfiguration
import Checkpointing
import Inference
import Collectives

/// How `Trainer.run` ended.
public enum TrainingOutcome: Sendable, Equatable {
    /// Every epoch ran.
    case completed
    /// A `StopRequest` (or `stopAfterStep`) stopped training after `step` steps; `checkpoint` is
    /// the training state written then, if the trainer has a checkpoint folder.
    case stopped(step: Int, checkpoint: String?)
}

/// Trains a `FaceRecognitionModel` with SGD, one step being
/// `next batch → forward → loss → backward → check → step → log` (`trainStep`).
///
/// Fault tolerance: with a `checkpointDirectory` the trainer writes its whole state (weights,
/// momentum, schedule position, epoch and step, dropout stream, epoch totals) at every epoch end,
/// every `checkpointEverySteps` steps and when stopped; `restore(from:)` continues bit-identically.
/// A `StopRequest` (set by a signal handler) stops after the current step. Non-finite values are
/// caught before the optimizer step (`NonFinitePolicy`).
public final class Trainer {
    public let configuration: TrainingConfiguration
    public let model: FaceRecognitionModel
    public let optimizer: SGD
    public let scheduler: LearningRateScheduler
    /// Batches consumed so far (trained or skipped); the learning-rate schedule position.
    public private(set) var step = 0
    /// Where training time went, summed over every session of the run (restored on resume).
    public private(set) var timing = TimingBreakdown()
    /// `timing` when this session began (zero unless restored): `sessionTiming` is the difference.
    private var timingAtSessionStart = TimingBreakdown()
    /// Where training time went in this session only.
    public var sessionTiming: TimingBreakdown { timing.subtracting(timingAtSessionStart) }
    /// The number of training sessions of this run: 1, plus one per resume.
    public private(set) var session = 1
    /// Wall-clock seconds spent in `run` by the earlier sessions of this run (restored on resume).
    public private(set) var earlierSessionsSeconds = 0.0
    /// Wall-clock seconds spent in `run` by this session (checkpoint writes and validation included).
    public var sessionSeconds: Double {
        sessionSecondsBefore + (runStart.map { seconds(ContinuousClock.now - $0) } ?? 0)
    }
    /// Wall-clock seconds spent in `run` by every session of this run.
    public var totalSeconds: Double { earlierSessionsSeconds + sessionSeconds }
    private var sessionSecondsBefore = 0.0
    private var runStart: ContinuousClock.Instant?
    public private(set) var history: [EpochSummary] = []
    /// Steps skipped for non-finite values over the whole run.
    public var skippedSteps: Int { history.reduce(progress.skipped) { $0 + $1.skippedSteps } }
    /// Where training-state checkpoints go (`step-XXXXXXXX.safetensors`, `best.safetensors`);
    /// nil: no checkpoints.
    public var checkpointDirectory: String?
    /// Writes checkpoint files (replace to inject write failures in tests).
    public var fileWriter: any CheckpointFileWriter = DurableFileWriter()
    /// The free bytes of a folder's file system (replace to simulate a nearly full disk in tests).
    public var availableSpace: AvailableSpaceProvider = DiskSpace.available
    /// Extra string metadata stored in every checkpoint (e.g. the data folder and identities).
    public var checkpointMetadata: [String: String] = [:]
    /// Polled between steps: when set, the trainer checkpoints and returns `.stopped`.
    public var stopRequest = StopRequest()
    /// Called once after the run's first step (not on resume) with its loss next to `ln C` and
    /// the no-learning level, and a warning when the scale is far above what `C` needs.
    public var onStart: ((TakeOffStart) -> Void)?
    /// Stop (as on a `StopRequest`) once `step` reaches this value.
    public var stopAfterStep: Int?
    /// Called after the backward pass, before the non-finite checks: a fault-injection hook for tests.
    @_spi(FaultInjection) public var afterBackward: ((_ step: Int, _ model: FaceRecognitionModel) -> Void)?
    /// The path of the last checkpoint written or restored.
    public private(set) var lastCheckpoint: String?
    /// The training identities the model learns (its classes, in label order): the training set
    /// without the validation identities.
    public let fitIdentities: [String]
    /// The training identities held out of the fit for validation, chosen with the seed
    /// (`TrainingConfiguration.validationIdentities`); empty without a validation split.
    public let validationIdentities: [String]
    let loader: TrainingLoader
    let validationSet: FaceDataset?
    private(set) var lastFiniteLoss: Double?
    private(set) var progress = EpochProgress()
    private(set) var bestLoss: Double?
    private(set) var bestValidationAUC: Double?
    /// Steps skipped in a row in this session (`recordSkip`).
    private var consecutiveSkips = 0
    /// The fixed-pairs sets evaluated during training (`configuration.verificationSets`, loaded
    /// by `Experiment.loadVerificationSets`), every `verifyEverySteps` steps and after the last
    /// step (`Trainer+Verification.swift`); empty: none.
    public var verificationSets: [VerificationSet] = []
    /// The evaluations of `verificationSets` so far, oldest first (restored on resume).
    public internal(set) var verifications: [VerificationRecord] = []
    /// Called after each evaluation of `verificationSets`.
    public var onVerification: ((VerificationRecord) -> Void)?
    /// The highest accuracy of the `bestBy` set so far.
    var bestVerificationAccuracy: Double?
    /// The ranks of the run (`SingleProcessCommunicator` by default). With `P > 1` ranks each
    /// reads `batchSize / P` rows of every global batch, the head is class-parallel, the backbone
    /// gradients are all-reduced and only rank 0 writes checkpoints
    /// ([distributed training](doc:DistributedTraining)).
    public let communicator: any Communicator
    /// One process only: the number of micro-batches the global batch's backbone forward and
    /// backward are split into (BatchNorm statistics per micro-batch, running statistics
    /// averaged over them, the head on the whole batch): the one-process reference of a run on
    /// `microBatches` ranks. 1 (default): the whole batch at once. Must divide `batchSize`.
    public var microBatches = 1
    /// Every how many steps the ranks compare a checksum of their backbone replicas (0: never;
    /// default 10 in debug builds, 0 in release builds); a difference throws
    /// `DistributedTrainingError.replicasDiverged`.
    public var replicaCheckEverySteps: Int = {
        #if DEBUG
        10
        #else
        0
        #endif
    }()
    /// Seconds this session spent in collectives: the trainer's own (backbone all-reduce,
    /// BatchNorm averaging, agreements, checkpoint gathers) and the class-parallel head's
    /// (all-gather of the batch, all-reduce of the softmax statistics, reduce-scatter of ∂e; these
    /// are also inside `timing.forward`). Zero on one rank.
    public var communicationSeconds: Double { trainerCommunicationSeconds + headCommunicationSeconds }
    /// Seconds in the trainer's own collectives.
    var trainerCommunicationSeconds = 0.0
    /// Seconds in the head's collectives (nil communicator: one rank, none).
    var headCommunicationSeconds: Double { headCommunicator?.totalSeconds ?? 0 }
    /// The communicator the head uses on `P > 1` ranks: `communicator`, timed.
    let headCommunicator: TimedCommunicator?
    /// Trainable scalars over all ranks (the backbone once, every head slice).
    let globalParameterCount: Int

    /// Prepares a run on `trainingSet` (labels `0..<K`): `init(configuration:trainingImages:)`
    /// with `.folder(trainingSet)`.
    public convenience init(configuration: TrainingConfiguration, trainingSet: FaceDataset,
                            communicator: any Communicator = SingleProcessCommunicator()) throws(TrainingError) {
        try self.init(configuration: configuration, trainingImages: .folder(trainingSet), communicator: communicator)
    }

    /// Prepares a run on `trainingImages` (labels `0..<K`). With `validationIdentities = V > 0`, V of
    /// its identities (a seeded choice, `Trainer.validationSplit`) are held out of the fit for
    /// validation and the model learns the other K − V. A pack is streamed (`StreamingDataLoader`,
    /// two batches read ahead); its validation identities are decoded into memory.
    ///
    /// - Throws: `TrainingError.invalidConfiguration`, or `.data`: `.validationSplitTooSmall`
    ///   (V < 2 or K − V < 2), `.validationWithoutGenuinePairs`, `.imageSizeMismatch`,
    ///   `.dataset` (e.g. a batch larger than the set) or `.records` (a validation image of a pack);
    ///   `.distributed` on `P > 1` ranks (`batchSize` not divisible by `P`, a key without a
    ///   distributed form).
    ///
    /// With a `communicator` of `P > 1` ranks, every rank must construct its trainer with the
    /// same configuration and images; rank `r` reads part `r` of every global batch (`BatchShard`).
    public init(configuration: TrainingConfiguration, trainingImages: TrainingImages,
                communicator: any Communicator = SingleProcessCommunicator()) throws(TrainingError) {
        let problems = configuration.validationProblems()
        guard problems.isEmpty else { throw .invalidConfiguration(problems: problems) }
        if let problem = Self.distributedProblems(of: configuration, worldSize: communicator.size) { throw .distributed(problem) }
        self.configuration = configuration
        self.communicator = communicator
        headCommunicator = communicator.size > 1 ? TimedCommunicator(wrapping: communicator) : nil
        let shard = BatchShard(index: communicator.rank, count: communicator.size)
        let augmentation = Augmentation(horizontalFlip: configuration.horizontalFlip, maxTranslation: configuration.maxTranslation)
        let classCount: Int
        switch trainingImages {
        case .folder(let trainingSet):
            let (fit, validation) = try Self.validationSplit(of: trainingSet, configuration: configuration)
            validationSet = validation
            fitIdentities = fit.identities
            validationIdentities = validation?.identities ?? []
            try Experiment.checkCompatible(fit, with: configuration)
            do {
                let memory = try DataLoader(dataset: fit, batchSize: configuration.batchSize, shuffle: true,
                                            augmentation: augmentation, dropLast: true, seed: configuration.seed &+ 0x5EED)
                memory.shard = shard
                loader = TrainingLoader(.memory(memory))
            } catch { throw .data(.dataset(error)) }
            classCount = fit.identities.count
        case .pack(let trainingSet):
            let (fit, validation) = try Self.validationSplit(of: trainingSet, configuration: configuration)
            validationSet = validation
            fitIdentities = fit.identities
            validationIdentities = validation?.identities ?? []
            try Experiment.checkCompatible(fit, with: configuration)
            do {
                let streamed = try StreamingDataLoader(dataset: fit, batchSize: configuration.batchSize, shuffle: true,
                                                       augmentation: augmentation, dropLast: true, seed: configuration.seed &+ 0x5EED)
                streamed.shard = shard
                loader = TrainingLoader(.streamed(streamed))
            } catch { throw .data(.dataset(error)) }
            classCount = fit.identities.count
        }
        if configuration.threads > 0 { BLAS.threadCount = configuration.threads }
        do {
            model = try FaceRecognitionModel(configuration: configuration, classCount: classCount,
                                             checkingMemoryForBatchSize: configuration.batchSize / communicator.size,
                                             communicator: headCommunicator ?? communicator)
        } catch { throw .invalidConfiguration(problems: [error.description]) }
        globalParameterCount = communicator.size == 1 ? model.parameterCount
            : model.backbone.parameters.reduce(0) { $0 + $1.value.count }
                + classCount * configuration.subcenters * configuration.backbone.embeddingDimension
        // The loop never uses ∂L/∂images: skip the first convolution's input gradient (col2im + a GEMM).
        model.backbone.computesInputGradient = false
        optimizer = SGD(parameters: model.parameters, configuration: SGDConfiguration(
            momentum: Float(configuration.momentum), nesterov: configuration.nesterov,
            weightDecay: Float(configuration.weightDecay), decoupledWeightDecay: configuration.decoupledWeightDecay,
            gradientClipNorm: configuration.gradientClipNorm > 0 ? Float(configuration.gradientClipNorm) : nil))
        // Parameter groups: the backbone's rate is the head's × backboneLearningRateScale.
        let backboneParameterCount = model.backbone.parameters.count
        optimizer.learningRateScales = optimizer.parameters.indices.map {
            $0 < backboneParameterCount ? Float(configuration.backboneLearningRateScale) : 1
        }
        if configuration.freezeBatchNorm { setBatchNormStatisticsFrozen(true, in: model.backbone) }
        let stepsPerEpoch = loader.batchesPerEpoch
        scheduler = LearningRateScheduler(baseLearningRate: configuration.learningRate,
                                          warmupSteps: configuration.warmupEpochs * stepsPerEpoch,
                                          totalSteps: configuration.epochs * stepsPerEpoch,
                                          schedule: configuration.makeSchedule(stepsPerEpoch: stepsPerEpoch))
    }

    /// Runs the remaining epochs, calling `onEpoch` after each.
    ///
    /// With a `checkpointDirectory`, the folder is created, a probe file written and its free space
    /// checked against the run's checkpoints and final files (`bytesNeeded(in:)`) **before** the
    /// first step, so an unwritable folder or a full or nearly full disk fails at once, not hours later.
    ///
    /// - Returns: `.completed`, or `.stopped` when a `StopRequest` or `stopAfterStep` ended the run
    ///   (after the current step, with a checkpoint written).
    /// - Throws: `TrainingError.noProgress` under `NoProgressPolicy.stop` when the take-off
    ///   watchdog (`TakeOffWatchdog`) flags an epoch, after that epoch's checkpoint is written;
    ///   `TrainingError.numerics` (non-finite values under `NonFinitePolicy.stop`, or a
    ///   whole epoch of skipped steps), `.data(.batch)` (labels the head refuses), `.checkpoint`
    ///   when a checkpoint cannot be written (earlier checkpoints stay intact),
    ///   `.runFolder(.insufficientSpace)` before the first step when they would not fit.
    @discardableResult
    public func run(onEpoch: (EpochSummary) -> Void = { _ in }) throws(TrainingError) -> TrainingOutcome {
        runStart = ContinuousClock.now
        defer {
            sessionSecondsBefore = sessionSeconds
            runStart = nil
        }
        guard microBatches >= 1, configuration.batchSize % microBatches == 0, microBatches == 1 || !isDistributed else {
            throw .distributed(.invalidMicroBatches(microBatches: microBatches, batchSize: configuration.batchSize,
                                                    worldSize: communicator.size))
        }
        if let checkpointDirectory {
            _ = try onRoot("preparing the checkpoint folder") { () throws(TrainingError) in
                do throws(CheckpointError) { try TrainingCheckpoint.prepare(directory: checkpointDirectory, writer: fileWriter) }
                catch { throw .checkpoint(error) }
                if history.count < configuration.epochs { try checkFreeSpace(in: checkpointDirectory) }
            }
        }
        while history.count < configuration.epochs {
            guard var summary = try trainCurrentEpoch() else {
                return .stopped(step: step, checkpoint: checkpointDirectory == nil ? nil : lastCheckpoint)
            }
            if let validation = try agreedValidationCheck() {
                summary.validationAUC = validation.auc
                summary.validationCosineMean = validation.spread?.mean
                summary.validationCosineStandardDeviation = validation.spread?.standardDeviation
            }
            let noProgress = watchdog.check(summary)
            summary.noProgress = noProgress?.summary
            history.append(summary)
            onEpoch(summary)
            if checkpointDirectory != nil { try writeCheckpoint(epochEnd: true) }
            if let noProgress, configuration.onNoProgress == .stop { throw .noProgress(noProgress) }
        }
        return .completed
    }

    /// Trains the rest of epoch `history.count` (all of it, or what a restored checkpoint left).
    /// - Returns: the epoch's summary, or nil when a stop was requested (a checkpoint is written).
    private func trainCurrentEpoch() throws(TrainingError) -> EpochSummary? {
        let epoch = history.count
        if progress.epoch != epoch { progress = EpochProgress(epoch: epoch) }
        let clock = ContinuousClock()
        let epochStart = clock.now
        let secondsBefore = progress.seconds
        var verificationSeconds = 0.0  // not part of the epoch's time
        let batches = loader.batches(ofEpoch: epoch)
        batches.skip(progress.batch)
        var dataStart = clock.now
        while let batch = try batches.next() {
            let forwardStart = clock.now
            timing.data += seconds(forwardStart - dataStart)
            progress.dataSeconds = (progress.dataSeconds ?? 0) + seconds(forwardStart - dataStart)
            model.head.beginStep(step, stepsPerEpoch: loader.batchesPerEpoch)
            try trainStep(batch, clock: clock, forwardStart: forwardStart)
            if step == 0, let onStart, let loss = lastFiniteLoss {
                onStart(TakeOffStart(initialLoss: loss, classCount: model.classCount,
                                     noLearningLoss: watchdog.noLearningLoss,
                                     scaleWarning: TakeOffWatchdog.scaleWarning(scale: configuration.scale, classCount: model.classCount,
                                                                                loss: configuration.loss)))
            }
            progress.batch += 1
            step += 1
            // Verification (inference mode, no training state touched) is not training time.
            let verificationStart = clock.now
            let newBest = try verifyIfDue()
            verificationSeconds += seconds(clock.now - verificationStart)
            progress.seconds = secondsBefore + seconds(clock.now - epochStart) - verificationSeconds
            if configuration.checkpointEverySteps > 0 && step % configuration.checkpointEverySteps == 0 || newBest,
               checkpointDirectory != nil {
                try writeCheckpoint(epochEnd: false, newBestByVerification: newBest)
            }
            if try agreedStop() {
                if checkpointDirectory != nil, lastCheckpoint != TrainingCheckpoint.path(in: checkpointDirectory!, step: step) {
                    try writeCheckpoint(epochEnd: false)
                }
                return nil
            }
            dataStart = clock.now  // after any checkpoint write: data time is waiting for the batch only
        }
        let elapsed = secondsBefore + seconds(clock.now - epochStart) - verificationSeconds
        let p = progress
        progress = EpochProgress(epoch: epoch + 1)
        var summary = EpochSummary(epoch: epoch + 1, loss: p.steps > 0 ? p.lossSum / Double(p.steps) : .nan,
                                   accuracy: p.images > 0 ? Double(p.correct) / Double(p.images) : 0,
                                   learningRate: p.learningRate, imagesPerSecond: elapsed > 0 ? Double(p.images) / elapsed : 0,
                                   seconds: elapsed, skippedSteps: p.skipped)
        summary.dataSeconds = p.dataSeconds
        return summary
    }

    /// One step on `batch`: next → forward → loss → backward → check → step → log.
    ///
    /// A step that meets NaN or ±∞ (in the images, the loss, the BatchNorm statistics, a
    /// gradient or the updated weights) is rejected: the snapshot taken before it is restored,
    /// so nothing of it stays, and `NonFinitePolicy` decides between a skip and a typed error.
    private func trainStep(_ batch: Batch, clock: ContinuousClock, forwardStart: ContinuousClock.Instant) throws(TrainingError) {
        let learningRate = scheduler.learningRate(atStep: step)
        progress.learningRate = learningRate
        // Next: the batch's images are checked before anything changes.
        let badImage = batch.images.firstNonFiniteIndex
        if try agreedMaximum([badImage == nil ? 0 : 1], what: "agreeing on the batch's images")[0] != 0 {
            let path = badImage.map { loader.path(of: batch.indices[$0 / (batch.images.count / batch.labels.count)]) }
            return try reject(.nonFiniteInput(step: step, path: path ?? "(an image of another rank)"), restoring: nil)
        }
        let snapshot = StepSnapshot(model: model, optimizer: optimizer, holdsWeights: globalParameterCount <= 16_000_000)
        optimizer.zeroGradients()
        // Forward (BatchNorm running statistics change here; over ranks or micro-batches they are averaged).
        let forward = try forwardBackbone(batch.images)
        let embeddings = forward.embeddings
        // Loss, with the head's gradients.
        let output: HeadOutput
        do {
            output = try model.head.loss(embeddings: embeddings, labels: batch.labels, reduction: .mean, computeGradients: true)
        } catch {
            // Non-finite embeddings come from non-finite weights or activations (e.g. a diverging
            // learning rate), non-finite head rows from non-finite weights: the non-finite policy
            // applies. Other loss errors (labels) always stop.
            if case let .nonFiniteParameter(parameter, row) = error {
                return try reject(.nonFiniteParameter(step: step, parameter: parameter, row: row, lastFiniteLoss: lastFiniteLoss),
                                  restoring: snapshot)
            }
            if case let .communication(failure) = error {
                throw .distributed(.communication(failure, step: step, what: "the class-parallel head"))
            }
            guard case .nonFiniteEmbedding = error else {
                snapshot.restore()
                throw .data(.batch(error, step: step))
            }
            return try reject(.nonFiniteLoss(step: step, lastFiniteLoss: lastFiniteLoss), restoring: snapshot)
        }
        // A finite loss can still come with overflowed BatchNorm statistics; never keep those.
        guard output.loss.isFinite, snapshot.buffersAreFinite else {
            return try reject(.nonFiniteLoss(step: step, lastFiniteLoss: lastFiniteLoss), restoring: snapshot)
        }
        let backwardStart = clock.now
        timing.forward += seconds(backwardStart - forwardStart)
        // Backward.
        backwardBackbone(output.embeddingGradient, forward: forward, images: batch.images)
        afterBackward?(step, model)
        if isDistributed { try allReduceBackboneGradients() }
        let optimizerStart = clock.now
        timing.backward += seconds(optimizerStart - backwardStart)
        // Check the gradients (every rank the same verdict: the lowest parameter index of any rank).
        if let bad = try agreedFirstNonFinite(\.gradient, what: "agreeing on finite gradients") {
            return try reject(.nonFiniteGradient(step: step, parameter: bad, lastFiniteLoss: lastFiniteLoss), restoring: snapshot)
        }
        // Step. The update itself can overflow (finite gradient × huge learning rate): checked
        // when the snapshot can undo it.
        optimizer.step(learningRate: Float(learningRate), updatingOnly: output.updatedRows)
        if snapshot.holdsWeights, let bad = try agreedFirstNonFinite(\.value, what: "agreeing on finite weights") {
            return try reject(.nonFiniteGradient(step: step, parameter: bad, lastFiniteLoss: lastFiniteLoss), restoring: snapshot)
        }
        timing.optimizer += seconds(clock.now - optimizerStart)
        // Log.
        consecutiveSkips = 0
        lastFiniteLoss = output.loss
        progress.lossSum += output.loss
        progress.correct += output.correctCount
        // The global batch's images (the loss and correct count are the global batch's too).
        progress.images += batch.labels.count * communicator.size
        progress.steps += 1
        timing.images += batch.labels.count * communicator.size
    }

    /// The one rejection path of a step: restores `snapshot` (nil: nothing had changed yet), then
    /// throws `failure` under `NonFinitePolicy.stop` or counts a skipped step under `.skip`.
    private func reject(_ failure: NumericalError, restoring snapshot: StepSnapshot?) throws(TrainingError) {
        snapshot?.restore()
        guard configuration.onNonFinite == .skip else { throw .numerics(failure) }
        try recordSkip()
    }

    /// Counts a skipped step (`NonFinitePolicy.skip`); a whole epoch's worth of skips in a row
    /// means the run diverged, and stops it.
    private func recordSkip() throws(TrainingError) {
        progress.skipped += 1
        consecutiveSkips += 1
        if consecutiveSkips >= loader.batchesPerEpoch {
            throw .numerics(.everyStepSkipped(step: step + 1, steps: consecutiveSkips, lastFiniteLoss: lastFiniteLoss))
        }
    }

    /// Writes the training state to `checkpointDirectory`, prunes old step checkpoints and makes
    /// it `best.safetensors` when it is the best so far: with `bestBy`, when
    /// `newBestByVerification` (a new highest accuracy of that set, `verifyIfDue`); otherwise at
    /// an epoch end with a new highest validation AUC (with a validation split) or else a new
    /// lowest training loss (ties keep the earlier one). The new best value is recorded before
    /// the checkpoint is written, so that a run resumed from that checkpoint compares later
    /// epochs with it (not with the previous best).
    private func writeCheckpoint(epochEnd: Bool, newBestByVerification: Bool = false) throws(TrainingError) {
        guard let checkpointDirectory else { return }
        var isBest = false
        if !configuration.bestBy.isEmpty {
            isBest = newBestByVerification
        } else if epochEnd, validationSet != nil {
            if let auc = history.last?.validationAUC, auc.isFinite, auc > (bestValidationAUC ?? -.infinity) {
                bestValidationAUC = auc
                isBest = true
            }
        } else if epochEnd, let loss = history.last?.loss, loss.isFinite, loss < (bestLoss ?? .infinity) {
            bestLoss = loss
            isBest = true
        }
        let state = try checkpointState()   // every rank: the head's slices are gathered
        let written = try onRoot("writing a checkpoint") { () throws(TrainingError) in
            do throws(CheckpointError) {
                let path = try TrainingCheckpoint.write(state, to: checkpointDirectory, writer: fileWriter)
                if isBest { try TrainingCheckpoint.markBest(path, in: checkpointDirectory, writer: fileWriter) }
                TrainingCheckpoint.prune(directory: checkpointDirectory, keep: configuration.keepCheckpoints)
                return path
            } catch { throw .checkpoint(error) }
        }
        lastCheckpoint = written ?? TrainingCheckpoint.path(in: checkpointDirectory, step: step)
    }

    /// The state a checkpoint saves and `restore(from:)` puts back: the model's tensors, the
    /// momentum, the progress (step, history, epoch totals, best values, dropout stream, timing,
    /// sessions), the validation identities and `checkpointMetadata`.
    var trainingState: TrainingState {
        var progress = TrainingProgress(step: step, history: history, epoch: progress, lastFiniteLoss: lastFiniteLoss,
                                        bestLoss: bestLoss, bestValidationAUC: bestValidationAUC,
                                        dropoutGenerator: model.backbone.dropoutGenerator, timing: timing,
                                        sessions: session, seconds: totalSeconds)
        progress.verifications = verifications.isEmpty ? nil : verifications
        progress.bestVerificationAccuracy = bestVerificationAccuracy
        return TrainingState(configuration: configuration, classCount: model.classCount, modelTensors: model.namedTensors,
                             momentum: zip(optimizer.parameters, optimizer.momentumBuffers).map { ($0.name, $1) },
                             progress: progress, validationIdentities: validationIdentities,
                             metadata: checkpointMetadata.merging([InputPreprocessing.metadataKey: configuration.preprocessing.json]) { _, own in own })
    }

    /// Continues a run from a training checkpoint written by a trainer with the same
    /// configuration and training identities: weights, BatchNorm statistics, momentum, step,
    /// epoch (and position in it), dropout stream and history are restored; the next `run`
    /// continues bit-identically to an uninterrupted run with the same thread count.
    ///
    /// - Throws: `TrainingError.checkpoint` saying what does not match (another format or
    ///   version, a final model rather than a training state, another configuration or model
    ///   shape, a truncated file); on error nothing has been changed.
    public func restore(from path: String) throws(TrainingError) {
        do {
            let stored = try TrainingCheckpoint.read(path: path)
            try stored.validate(continuing: wholeShapeState, batchesPerEpoch: loader.batchesPerEpoch, path: path)
            // On P > 1 ranks each keeps its slice of the head (the file holds all of it, from any P).
            let headNames = Set(model.head.parameters.map(\.name))
            let sliced = { (tensors: [String: Tensor]) in
                Dictionary(uniqueKeysWithValues: tensors.map { headNames.contains($0.key) ? ($0.key, self.localSlice(of: $0.value)) : $0 })
            }
            try model.load(sliced(stored.modelTensorsByName), path: path)
            let momentum = sliced(stored.momentumByName)
            optimizer.momentumBuffers = optimizer.parameters.map { momentum[$0.name]! }
            let state = stored.progress
            step = state.step
            history = state.history
            progress = state.epoch
            lastFiniteLoss = state.lastFiniteLoss
            bestLoss = state.bestLoss
            bestValidationAUC = state.bestValidationAUC
            verifications = state.verifications ?? []
            bestVerificationAccuracy = state.bestVerificationAccuracy
            model.backbone.dropoutGenerator = state.dropoutGenerator
            timing = state.timing
            timingAtSessionStart = state.timing
            session = (state.sessions ?? 1) + 1
            earlierSessionsSeconds = state.seconds ?? 0
            sessionSecondsBefore = 0
            lastCheckpoint = path
        } catch { throw .checkpoint(error) }
    }
}

@inline(__always)
func seconds(_ duration: Duration) -> Double {
    let (s, attoseconds) = duration.components
    return Double(s) + Double(attoseconds) * 1e-18
}

/// What a training step may change, taken before it: the BatchNorm running statistics (changed
/// by the forward pass) and, for models of up to 16 M parameters, the weights and momentum
/// (changed by the update; the copy the update then makes costs ≈ 1 ms per 4 M parameters, so
/// larger models only check the gradients). `restore()` puts them back and clears the gradients.
private struct StepSnapshot {
    private let buffers: [Buffer]
    private let bufferValues: [Tensor]
    private let parameters: [Parameter]
    private let weights: [Tensor]
    private let momentum: [Tensor]
    private let optimizer: SGD
    /// Whether the weights and momentum were kept, so that an overflowed update can be undone.
    let holdsWeights: Bool

    /// - Parameter holdsWeights: whether to keep the weights and momentum (the same on every rank).
    init(model: FaceRecognitionModel, optimizer: SGD, holdsWeights: Bool) {
        buffers = model.backbone.buffers
        bufferValues = buffers.map(\.value)
        parameters = model.parameters
        self.holdsWeights = holdsWeights
        weights = holdsWeights ? parameters.map(\.value) : []
        momentum = holdsWeights ? optimizer.momentumBuffers : []
        self.optimizer = optimizer
    }

    /// Whether the BatchNorm statistics are finite now.
    var buffersAreFinite: Bool { buffers.allSatisfy { $0.value.isFinite } }

    /// Puts back what the step changed and clears the gradients.
    func restore() {
        if holdsWeights {
            for (parameter, value) in zip(parameters, weights) { parameter.value = value }
            optimizer.momentumBuffers = momentum
        }
        for (buffer, value) in zip(buffers, bufferValues) { buffer.value = value }
        optimizer.zeroGradients()
    }
}
