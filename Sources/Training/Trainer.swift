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
    case nonFiniteGradient(step: Int, parameter: String)
    case checkpoint(CheckpointError)
    case configuration(ConfigurationError)
    /// The images do not have the backbone's input size.
    case imageSizeMismatch(expected: String, found: String)
    /// The held-out identities cannot support the verification protocol.
    case heldOutSetTooSmall(reason: String)

    public var description: String {
        switch self {
        case let .invalidConfiguration(problems): "invalid configuration: " + problems.joined(separator: "; ")
        case let .dataset(error): error.description
        case let .loss(error, step): "step \(step): \(error)"
        case let .nonFiniteLoss(step, last):
            "the loss became non-finite at step \(step) (last finite loss: \(last.map { String($0) } ?? "none")); "
                + "try a lower learning rate or scale, or gradient clipping"
        case let .nonFiniteInput(step, path): "step \(step): image \(path) contains NaN or infinite pixel values"
        case let .nonFiniteGradient(step, parameter):
            "the gradient of \(parameter) became non-finite at step \(step); the weights were not updated"
        case let .checkpoint(error): error.description
        case let .configuration(error): error.description
        case let .imageSizeMismatch(expected, found):
            "the images are \(found) but the backbone expects \(expected); set backbone.inputHeight/inputWidth in a --config file"
        case let .heldOutSetTooSmall(reason): "the held-out identities are too few for verification: \(reason)"
        }
    }
}

/// Trains a `FaceRecognitionModel` with SGD: the loop of DESIGN.md, one step being
/// `nextBatch → zeroGradients → forward → loss → backward → step`.
public final class Trainer {
    public let configuration: TrainingConfiguration
    public let model: FaceRecognitionModel
    public let optimizer: SGD
    public let scheduler: LearningRateScheduler
    public private(set) var step = 0
    public private(set) var timing = TimingBreakdown()
    public private(set) var history: [EpochSummary] = []
    private let loader: DataLoader
    private let trainingSet: FaceDataset
    private var lastFiniteLoss: Double?

    /// Prepares a run on `trainingSet` (labels `0..<K`).
    ///
    /// - Throws: `TrainingError.invalidConfiguration` or `.dataset` (e.g. a batch larger than the set).
    public init(configuration: TrainingConfiguration, trainingSet: FaceDataset) throws(TrainingError) {
        let problems = configuration.validationProblems()
        guard problems.isEmpty else { throw .invalidConfiguration(problems: problems) }
        self.configuration = configuration
        self.trainingSet = trainingSet
        try Experiment.checkCompatible(trainingSet, with: configuration)
        if configuration.threads > 0 { BLAS.threadCount = configuration.threads }
        do {
            loader = try DataLoader(dataset: trainingSet, batchSize: configuration.batchSize, shuffle: true,
                                    augmentation: Augmentation(horizontalFlip: configuration.horizontalFlip,
                                                               maxTranslation: configuration.maxTranslation),
                                    dropLast: true, seed: configuration.seed &+ 0x5EED)
        } catch { throw .dataset(error) }
        model = FaceRecognitionModel(configuration: configuration, classCount: trainingSet.identities.count)
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

    /// Runs every epoch, calling `onEpoch` after each.
    public func run(onEpoch: (EpochSummary) -> Void = { _ in }) throws(TrainingError) {
        for epoch in history.count..<configuration.epochs {
            let summary = try trainEpoch(epoch)
            history.append(summary)
            onEpoch(summary)
        }
    }

    /// Trains one epoch (0-based `epoch`) and returns its summary.
    public func trainEpoch(_ epoch: Int) throws(TrainingError) -> EpochSummary {
        let clock = ContinuousClock()
        let epochStart = clock.now
        if let head = model.head as? MarginHead, configuration.marginWarmupEpochs > 0 {
            let fraction = min(1, Double(epoch + 1) / Double(configuration.marginWarmupEpochs))
            head.margin = FaceRecognitionModel.margin(for: configuration, fraction: fraction)
        }
        var lossSum = 0.0, correct = 0, images = 0, steps = 0
        var learningRate = 0.0
        var dataStart = clock.now
        for batch in loader.batches() {
            let forwardStart = clock.now
            timing.data += seconds(forwardStart - dataStart)
            learningRate = scheduler.learningRate(atStep: step)
            if let bad = batch.images.firstNonFiniteIndex {
                let sample = batch.indices[bad / (batch.images.count / batch.labels.count)]
                throw .nonFiniteInput(step: step, path: trainingSet.paths[sample])
            }
            optimizer.zeroGradients()
            let (embeddings, cache) = model.backbone.forward(batch.images, mode: .training)
            let output: HeadOutput
            do {
                output = try model.head.loss(embeddings: embeddings, labels: batch.labels, reduction: .mean, computeGradients: true)
            } catch { throw .loss(error, step: step) }
            guard output.loss.isFinite else { throw .nonFiniteLoss(step: step, lastFiniteLoss: lastFiniteLoss) }
            let backwardStart = clock.now
            timing.forward += seconds(backwardStart - forwardStart)
            _ = model.backbone.backward(output.embeddingGradient, cache: cache)
            let optimizerStart = clock.now
            timing.backward += seconds(optimizerStart - backwardStart)
            if let bad = model.parameters.first(where: { !$0.gradient.isFinite }) {
                throw .nonFiniteGradient(step: step, parameter: bad.name)
            }
            optimizer.step(learningRate: Float(learningRate))
            lastFiniteLoss = output.loss
            lossSum += output.loss
            correct += output.correctCount
            images += batch.labels.count
            steps += 1
            step += 1
            dataStart = clock.now
            timing.optimizer += seconds(dataStart - optimizerStart)
        }
        timing.images += images
        let elapsed = seconds(clock.now - epochStart)
        return EpochSummary(epoch: epoch + 1, loss: steps > 0 ? lossSum / Double(steps) : .nan,
                            accuracy: images > 0 ? Double(correct) / Double(images) : 0,
                            learningRate: learningRate, imagesPerSecond: elapsed > 0 ? Double(images) / elapsed : 0,
                            seconds: elapsed)
    }
}

@inline(__always)
func seconds(_ duration: Duration) -> Double {
    let (s, attoseconds) = duration.components
    return Double(s) + Double(attoseconds) * 1e-18
}
