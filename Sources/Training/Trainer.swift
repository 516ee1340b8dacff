import Foundation
import TensorCore
import Layers
import MarginLosses
import Optimizers
import FaceData

/// One finished epoch of training.
public struct EpochSummary: Sendable, Codable, Equatable {
    /// 1-based epoch number.
    public var epoch: Int
    /// Mean training loss over the epoch's steps.
    public var loss: Double
    /// Fraction of training images whose largest logit was their own class.
    public var accuracy: Double
    /// Learning rate of the epoch's last step.
    public var learningRate: Double
    /// Training images per second over the epoch (data + forward + backward + optimizer).
    public var imagesPerSecond: Double
    /// Wall-clock seconds of the epoch.
    public var seconds: Double
    /// Steps skipped for a non-finite value (policy `NonFinitePolicy.skip`); not in `loss`.
    public var skippedSteps: Int = 0
    /// ROC AUC of verification on every pair of the validation identities' images at the
    /// epoch's end (`TrainingConfiguration.validationIdentities`); nil without a validation split.
    public var validationAUC: Double?

    public init(epoch: Int, loss: Double, accuracy: Double, learningRate: Double, imagesPerSecond: Double,
                seconds: Double, skippedSteps: Int = 0) {
        self.epoch = epoch
        self.loss = loss
        self.accuracy = accuracy
        self.learningRate = learningRate
        self.imagesPerSecond = imagesPerSecond
        self.seconds = seconds
        self.skippedSteps = skippedSteps
    }

    enum CodingKeys: String, CodingKey {
        case epoch, loss, accuracy, learningRate, imagesPerSecond, seconds, skippedSteps, validationAUC
    }

    /// Decodes a summary; `skippedSteps` may be absent (histories written before it existed).
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        epoch = try c.decode(Int.self, forKey: .epoch)
        loss = try c.decode(Double.self, forKey: .loss)
        accuracy = try c.decode(Double.self, forKey: .accuracy)
        learningRate = try c.decode(Double.self, forKey: .learningRate)
        imagesPerSecond = try c.decode(Double.self, forKey: .imagesPerSecond)
        seconds = try c.decode(Double.self, forKey: .seconds)
        skippedSteps = try c.decodeIfPresent(Int.self, forKey: .skippedSteps) ?? 0
        validationAUC = try c.decodeIfPresent(Double.self, forKey: .validationAUC)
    }
}

/// Where training time goes, summed over a run, in seconds.
public struct TimingBreakdown: Sendable, Codable, Equatable {
    /// Batch assembly: augmentation and scaling to [−1, 1].
    public var data: Double = 0
    /// Backbone forward and the head's loss (which also computes the head's gradients).
    public var forward: Double = 0
    /// Backbone backward.
    public var backward: Double = 0
    /// Gradient checks, clipping and the SGD update.
    public var optimizer: Double = 0
    /// Images processed.
    public var images: Int = 0

    /// Images per second over the four phases together.
    public var imagesPerSecond: Double {
        let total = data + forward + backward + optimizer
        return total > 0 ? Double(images) / total : 0
    }
}

/// A failure that stops training.
public enum TrainingError: Error, CustomStringConvertible, Equatable {
    case invalidConfiguration(problems: [String])
    case dataset(DatasetError)
    case loss(MarginLossError, step: Int)
    /// The loss became NaN or ±Inf at `step`; `lastFiniteLoss` is the previous step's loss.
    case nonFiniteLoss(step: Int, lastFiniteLoss: Double?)
    /// A training image holds NaN or ±Inf (checked before the forward pass, so no state changes).
    case nonFiniteInput(step: Int, path: String)
    /// A parameter gradient became NaN or ±Inf at `step` (weights were not updated).
    case nonFiniteGradient(step: Int, parameter: String, lastFiniteLoss: Double?)
    case checkpoint(CheckpointError)
    case configuration(ConfigurationError)
    /// The images do not have the backbone's input size.
    case imageSizeMismatch(expected: String, found: String)
    /// The held-out identities cannot support the verification protocol.
    case heldOutSetTooSmall(reason: String)
    /// `validationIdentities` of the `trainingIdentities` training identities would leave fewer
    /// than 2 to train on or fewer than 2 to validate with.
    case validationSplitTooSmall(validationIdentities: Int, trainingIdentities: Int)
    /// No validation identity has two images, so validation has no genuine pair.
    case validationWithoutGenuinePairs(identities: [String])
    /// Training stopped on request (a signal) after `step` steps; `checkpoint` is the training
    /// state written then (nil without a checkpoint folder). Resume with `--resume`.
    case interrupted(step: Int, signal: Int32?, checkpoint: String?)
    /// A fresh run (no resume) was pointed at an output folder that already holds another run's
    /// training checkpoints; nothing was trained or changed.
    case outputHoldsCheckpoints(directory: String)
    /// Another process is training in this output folder (its lock file is held).
    case outputInUse(directory: String)
    /// Every step of `steps` in a row was skipped for non-finite values (`NonFinitePolicy.skip`):
    /// the run diverged and learns nothing. The weights are those of the last good step.
    case everyStepSkipped(step: Int, steps: Int, lastFiniteLoss: Double?)
    /// The trained model's embeddings of `count` of the `total` held-out images are not finite.
    case nonFiniteEmbeddings(count: Int, total: Int)

    public var description: String {
        switch self {
        case let .invalidConfiguration(problems): "invalid configuration: " + problems.joined(separator: "; ")
        case let .dataset(error): error.description
        case let .loss(error, step): "step \(step): \(error)"
        case let .nonFiniteLoss(step, last):
            "the loss became non-finite at step \(step) (last finite loss: \(last.map { String($0) } ?? "none")); "
                + "try a lower learning rate or scale, or gradient clipping"
        case let .nonFiniteInput(step, path): "step \(step): image \(path) contains NaN or infinite pixel values"
        case let .nonFiniteGradient(step, parameter, last):
            "the gradient of \(parameter) became non-finite at step \(step) (last finite loss: \(last.map { String($0) } ?? "none")); "
                + "the weights were not updated; try a lower learning rate, gradient clipping or --on-non-finite skip"
        case let .checkpoint(error): error.description
        case let .configuration(error): error.description
        case let .imageSizeMismatch(expected, found):
            "the images are \(found) but the backbone expects \(expected); set backbone.inputHeight/inputWidth in a --config file"
        case let .heldOutSetTooSmall(reason): "the held-out identities are too few for verification: \(reason)"
        case let .validationSplitTooSmall(validation, training):
            "validationIdentities = \(validation) of \(training) training identities leaves "
                + (validation < 2 ? "fewer than 2 to validate with" : "fewer than 2 to train on")
                + "; use 2…\(max(2, training - 2)) (or 0 for no validation split)"
        case let .validationWithoutGenuinePairs(identities):
            "no validation identity (\(identities.joined(separator: ", "))) has two images, so validation has no genuine pair; use more validationIdentities"
        case let .interrupted(step, _, checkpoint):
            "training stopped after step \(step)" + (checkpoint.map { "; checkpoint \($0) (continue with --resume)" } ?? "")
        case let .outputHoldsCheckpoints(directory):
            "\(directory) already holds the training checkpoints of a run (\(directory)/checkpoints); "
                + "continue that run with --resume \(directory), start afresh with --overwrite, or choose another --output"
        case let .outputInUse(directory):
            "another arcface process is training in \(directory) (\(directory)/.lock is held); wait for it to end"
        case let .everyStepSkipped(step, steps, last):
            "every one of the last \(steps) steps (up to step \(step)) was skipped for non-finite values: the run diverged "
                + "(last finite loss: \(last.map { String($0) } ?? "none")); try a lower learning rate or scale, or gradient clipping"
        case let .nonFiniteEmbeddings(count, total):
            "the trained model produces non-finite embeddings on \(count) of \(total) held-out images (the run diverged); "
                + "try a lower learning rate or scale, or gradient clipping"
        }
    }
}

/// How `Trainer.run` ended.
public enum TrainingOutcome: Sendable, Equatable {
    /// Every epoch ran.
    case completed
    /// A `StopRequest` (or `stopAfterStep`) stopped training after `step` steps; `checkpoint` is
    /// the training state written then, if the trainer has a checkpoint folder.
    case stopped(step: Int, checkpoint: String?)
}

/// The running totals of the epoch in progress (saved in checkpoints to resume mid-epoch).
struct EpochProgress: Codable, Sendable, Equatable {
    var epoch = 0
    /// Batches of the epoch already consumed (trained or skipped).
    var batch = 0
    var lossSum = 0.0
    var correct = 0
    var images = 0
    var steps = 0
    var skipped = 0
    var learningRate = 0.0
    var seconds = 0.0
}

/// Trains a `FaceRecognitionModel` with SGD: the loop of DESIGN.md, one step being
/// `nextBatch → zeroGradients → forward → loss → backward → step`.
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
    /// Extra string metadata stored in every checkpoint (e.g. the data folder and identities).
    public var checkpointMetadata: [String: String] = [:]
    /// Polled between steps: when set, the trainer checkpoints and returns `.stopped`.
    public var stopRequest = StopRequest()
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
    let loader: DataLoader
    private let trainingSet: FaceDataset
    let validationSet: FaceDataset?
    private(set) var lastFiniteLoss: Double?
    private(set) var progress = EpochProgress()
    private(set) var bestLoss: Double?
    private(set) var bestValidationAUC: Double?
    /// Steps skipped in a row in this session (`recordSkip`).
    private var consecutiveSkips = 0

    /// Prepares a run on `trainingSet` (labels `0..<K`). With `validationIdentities = V > 0`, V of
    /// its identities (a seeded choice, `Trainer.validationSplit`) are held out of the fit for
    /// validation and the model learns the other K − V.
    ///
    /// - Throws: `TrainingError.invalidConfiguration`, `.validationSplitTooSmall` (V < 2 or
    ///   K − V < 2), `.validationWithoutGenuinePairs`, or `.dataset` (e.g. a batch larger than the set).
    public init(configuration: TrainingConfiguration, trainingSet: FaceDataset) throws(TrainingError) {
        let problems = configuration.validationProblems()
        guard problems.isEmpty else { throw .invalidConfiguration(problems: problems) }
        self.configuration = configuration
        let (fit, validation) = try Self.validationSplit(of: trainingSet, configuration: configuration)
        let trainingSet = fit
        self.trainingSet = fit
        self.validationSet = validation
        fitIdentities = fit.identities
        validationIdentities = validation?.identities ?? []
        try Experiment.checkCompatible(trainingSet, with: configuration)
        if configuration.threads > 0 { BLAS.threadCount = configuration.threads }
        do {
            loader = try DataLoader(dataset: trainingSet, batchSize: configuration.batchSize, shuffle: true,
                                    augmentation: Augmentation(horizontalFlip: configuration.horizontalFlip,
                                                               maxTranslation: configuration.maxTranslation),
                                    dropLast: true, seed: configuration.seed &+ 0x5EED)
        } catch { throw .dataset(error) }
        do {
            model = try FaceRecognitionModel(configuration: configuration, classCount: trainingSet.identities.count,
                                             checkingMemoryForBatchSize: configuration.batchSize)
        } catch { throw .invalidConfiguration(problems: [error.description]) }
        // The loop never uses ∂L/∂images: skip the first convolution's input gradient (col2im + a GEMM).
        model.backbone.computesInputGradient = false
        optimizer = SGD(parameters: model.parameters, configuration: SGDConfiguration(
            momentum: Float(configuration.momentum), nesterov: configuration.nesterov,
            weightDecay: Float(configuration.weightDecay), decoupledWeightDecay: configuration.decoupledWeightDecay,
            gradientClipNorm: configuration.gradientClipNorm > 0 ? Float(configuration.gradientClipNorm) : nil))
        let stepsPerEpoch = loader.batchesPerEpoch
        scheduler = LearningRateScheduler(baseLearningRate: configuration.learningRate,
                                          warmupSteps: configuration.warmupEpochs * stepsPerEpoch,
                                          totalSteps: configuration.epochs * stepsPerEpoch,
                                          schedule: configuration.makeSchedule(stepsPerEpoch: stepsPerEpoch))
    }

    /// Runs the remaining epochs, calling `onEpoch` after each.
    ///
    /// With a `checkpointDirectory`, the folder is created and a probe file written **before** the
    /// first step, so an unwritable folder or a full disk fails at once, not hours later.
    ///
    /// - Returns: `.completed`, or `.stopped` when a `StopRequest` or `stopAfterStep` ended the run
    ///   (after the current step, with a checkpoint written).
    /// - Throws: `TrainingError` (non-finite values under `NonFinitePolicy.stop`, a loss error,
    ///   `.checkpoint` when a checkpoint cannot be written; earlier checkpoints stay intact).
    @discardableResult
    public func run(onEpoch: (EpochSummary) -> Void = { _ in }) throws(TrainingError) -> TrainingOutcome {
        runStart = ContinuousClock.now
        defer {
            sessionSecondsBefore = sessionSeconds
            runStart = nil
        }
        if let checkpointDirectory {
            do { try TrainingCheckpoint.prepare(directory: checkpointDirectory, writer: fileWriter) }
            catch { throw .checkpoint(error) }
        }
        while history.count < configuration.epochs {
            guard var summary = try trainCurrentEpoch() else {
                return .stopped(step: step, checkpoint: checkpointDirectory == nil ? nil : lastCheckpoint)
            }
            summary.validationAUC = validationAUC()
            history.append(summary)
            onEpoch(summary)
            if checkpointDirectory != nil { try writeCheckpoint(epochEnd: true) }
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
        model.head.beginEpoch(epoch)
        loader.epoch = epoch
        let batches = loader.nextEpoch()
        batches.skip(progress.batch)
        var dataStart = clock.now
        while let batch = batches.next() {
            let forwardStart = clock.now
            timing.data += seconds(forwardStart - dataStart)
            try trainStep(batch, clock: clock, forwardStart: forwardStart)
            progress.batch += 1
            step += 1
            dataStart = clock.now
            progress.seconds = secondsBefore + seconds(clock.now - epochStart)
            if configuration.checkpointEverySteps > 0, step % configuration.checkpointEverySteps == 0,
               checkpointDirectory != nil {
                try writeCheckpoint(epochEnd: false)
            }
            if stopRequest.isRequested || step == stopAfterStep {
                if checkpointDirectory != nil, lastCheckpoint != TrainingCheckpoint.path(in: checkpointDirectory!, step: step) {
                    try writeCheckpoint(epochEnd: false)
                }
                return nil
            }
        }
        let elapsed = secondsBefore + seconds(clock.now - epochStart)
        let p = progress
        progress = EpochProgress(epoch: epoch + 1)
        return EpochSummary(epoch: epoch + 1, loss: p.steps > 0 ? p.lossSum / Double(p.steps) : .nan,
                            accuracy: p.images > 0 ? Double(p.correct) / Double(p.images) : 0,
                            learningRate: p.learningRate, imagesPerSecond: elapsed > 0 ? Double(p.images) / elapsed : 0,
                            seconds: elapsed, skippedSteps: p.skipped)
    }

    /// One step on `batch`: forward, loss, backward, checks, update (or a skip).
    private func trainStep(_ batch: Batch, clock: ContinuousClock, forwardStart: ContinuousClock.Instant) throws(TrainingError) {
        let learningRate = scheduler.learningRate(atStep: step)
        progress.learningRate = learningRate
        let skip = configuration.onNonFinite == .skip
        if let bad = batch.images.firstNonFiniteIndex {
            let sample = batch.indices[bad / (batch.images.count / batch.labels.count)]
            guard skip else { throw .nonFiniteInput(step: step, path: trainingSet.paths[sample]) }
            try recordSkip()
            return
        }
        // BatchNorm running statistics change in the forward pass: keep them to undo a bad step.
        let buffers = model.backbone.buffers
        let savedBuffers = buffers.map(\.value)
        func undo() {
            for (buffer, value) in zip(buffers, savedBuffers) { buffer.value = value }
            optimizer.zeroGradients()
        }
        optimizer.zeroGradients()
        let (embeddings, cache) = model.backbone.forward(batch.images, mode: .training)
        let output: HeadOutput
        do {
            output = try model.head.loss(embeddings: embeddings, labels: batch.labels, reduction: .mean, computeGradients: true)
        } catch {
            undo()
            // Non-finite embeddings come from non-finite weights or activations (e.g. a diverging
            // learning rate): the non-finite policy applies. Other loss errors (labels) always stop.
            guard case .nonFiniteEmbedding = error else { throw .loss(error, step: step) }
            guard skip else { throw .nonFiniteLoss(step: step, lastFiniteLoss: lastFiniteLoss) }
            try recordSkip()
            return
        }
        // A finite loss can still come with overflowed BatchNorm statistics; never keep those.
        let buffersFinite = buffers.allSatisfy { $0.value.isFinite }
        guard output.loss.isFinite, buffersFinite else {
            undo()
            guard skip else { throw .nonFiniteLoss(step: step, lastFiniteLoss: lastFiniteLoss) }
            try recordSkip()
            return
        }
        let backwardStart = clock.now
        timing.forward += seconds(backwardStart - forwardStart)
        _ = model.backbone.backward(output.embeddingGradient, cache: cache)
        afterBackward?(step, model)
        let optimizerStart = clock.now
        timing.backward += seconds(optimizerStart - backwardStart)
        if let bad = model.parameters.first(where: { !$0.gradient.isFinite }) {
            undo()
            guard skip else { throw .nonFiniteGradient(step: step, parameter: bad.name, lastFiniteLoss: lastFiniteLoss) }
            try recordSkip()
            return
        }
        // The update itself can overflow (finite gradient × huge learning rate): check and undo.
        // The undo needs a copy of the weights and momentum, so it is kept for models up to
        // 16 M parameters (the copy costs ≈ 1 ms per 4 M); larger models only check the gradients.
        let parameters = model.parameters
        let canUndoUpdate = model.parameterCount <= 16_000_000
        let savedValues = canUndoUpdate ? parameters.map(\.value) : []
        let savedMomentum = canUndoUpdate ? optimizer.momentumBuffers : []
        optimizer.step(learningRate: Float(learningRate), updatingOnly: output.updatedRows)
        if canUndoUpdate, let bad = parameters.first(where: { !$0.value.isFinite }) {
            for (parameter, value) in zip(parameters, savedValues) { parameter.value = value }
            optimizer.momentumBuffers = savedMomentum
            undo()
            guard skip else { throw .nonFiniteGradient(step: step, parameter: bad.name, lastFiniteLoss: lastFiniteLoss) }
            try recordSkip()
            return
        }
        timing.optimizer += seconds(clock.now - optimizerStart)
        consecutiveSkips = 0
        lastFiniteLoss = output.loss
        progress.lossSum += output.loss
        progress.correct += output.correctCount
        progress.images += batch.labels.count
        progress.steps += 1
        timing.images += batch.labels.count
    }

    /// Counts a skipped step (`NonFinitePolicy.skip`); a whole epoch's worth of skips in a row
    /// means the run diverged, and stops it.
    private func recordSkip() throws(TrainingError) {
        progress.skipped += 1
        consecutiveSkips += 1
        if consecutiveSkips >= loader.batchesPerEpoch {
            throw .everyStepSkipped(step: step + 1, steps: consecutiveSkips, lastFiniteLoss: lastFiniteLoss)
        }
    }

    /// Writes the training state to `checkpointDirectory`, prunes old step checkpoints and, at an
    /// epoch end with a new highest validation AUC (with a validation split) or else a new lowest
    /// training loss, makes it `best.safetensors` (ties keep the earlier epoch). The new best value
    /// is recorded before the checkpoint is written, so that a run resumed from that checkpoint
    /// compares later epochs with it (not with the previous best).
    private func writeCheckpoint(epochEnd: Bool) throws(TrainingError) {
        guard let checkpointDirectory else { return }
        var isBest = false
        if epochEnd, validationSet != nil {
            if let auc = history.last?.validationAUC, auc.isFinite, auc > (bestValidationAUC ?? -.infinity) {
                bestValidationAUC = auc
                isBest = true
            }
        } else if epochEnd, let loss = history.last?.loss, loss.isFinite, loss < (bestLoss ?? .infinity) {
            bestLoss = loss
            isBest = true
        }
        do {
            let path = try TrainingCheckpoint.write(self, to: checkpointDirectory)
            lastCheckpoint = path
            if isBest { try TrainingCheckpoint.markBest(path, in: checkpointDirectory, writer: fileWriter) }
            TrainingCheckpoint.prune(directory: checkpointDirectory, keep: configuration.keepCheckpoints)
        } catch { throw .checkpoint(error) }
    }

    /// The state that `restore` needs besides tensors.
    var state: TrainingProgress {
        TrainingProgress(step: step, history: history, epoch: progress, lastFiniteLoss: lastFiniteLoss,
                         bestLoss: bestLoss, bestValidationAUC: bestValidationAUC,
                         dropoutGenerator: model.backbone.dropout.generator, timing: timing,
                         sessions: session, seconds: totalSeconds)
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
            let checkpoint = try TrainingCheckpoint.read(path: path)
            try checkpoint.validate(against: self)
            try model.load(checkpoint.modelTensors, path: path)
            optimizer.momentumBuffers = optimizer.parameters.map { checkpoint.momentum[$0.name]! }
            let state = checkpoint.progress
            step = state.step
            history = state.history
            progress = state.epoch
            lastFiniteLoss = state.lastFiniteLoss
            bestLoss = state.bestLoss
            bestValidationAUC = state.bestValidationAUC
            model.backbone.dropout.generator = state.dropoutGenerator
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
