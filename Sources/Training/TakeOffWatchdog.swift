// The take-off watchdog (issue 10): a run that stays near chance after its warm-ups, whose loss
// is not below what a network that learned nothing gets, or whose embeddings collapsed, says so.
import Foundation
import TensorCore
import MarginLosses
import FaceData
import FaceEvaluation
import RunConfiguration
import Checkpointing
import Inference
import Reporting

/// Decides, from an epoch's summary, whether a run has taken off.
///
/// Signs (each epoch from `firstCheckedEpoch` on; the final verdict adds the held-out cosines):
/// - **near chance**: training accuracy `< min(2/C, (1 + 1/C)/2)`. Twice chance is far outside
///   the noise of guessing (C = 30, 1472 images an epoch: chance 0.033 ± 0.005, the threshold
///   0.067 is 7σ above it) and far below any run that learns (the straight-through ArcFace run
///   on att_faces_relit 24 × 24 has 0.25 at epoch 10; the stalled exact-gradient run 0.03–0.05
///   for 100 epochs). The cap `(1 + 1/C)/2` keeps it meaningful for C = 2.
/// - **loss not below the no-learning level**: epoch loss `≥ 0.99·L₀`, where `L₀` is the loss
///   with every cosine 0 (the untrained state: random embeddings in D dimensions are nearly
///   orthogonal to every center): `L₀ = ln(1 + (C − 1)·exp(−s·ψ(0)))`, which is `ln C` without a
///   margin (NormFace, softmax) and 11.04 for ArcFace s = 16, m = 0.5, C = 30. (The degenerate
///   plateau of the exact ArcFace gradient, `ln(C − 1) + s·m·sin m` = 7.20, lies below `L₀`; the
///   accuracy sign catches it.)
/// - **collapsed cosines**: validation pair cosines (each epoch, with a validation split) or
///   held-out pair cosines (final evaluation) with mean `≥ 0.9` or standard deviation `≤ 0.02`
///   (`CosineSpread.isCollapsed`).
///
/// `firstCheckedEpoch` is `max(2W, W + 1, 2)` with `W` the longer of the learning-rate and
/// margin warm-ups, capped at the last epoch: the run gets as many epochs at its full learning
/// rate and margin as the warm-up took, before it is judged.
public struct TakeOffWatchdog: Sendable {
    /// `C`, the classes the head learns.
    public let classCount: Int
    /// `1/C`.
    public let chanceLevel: Double
    /// `min(2/C, (1 + 1/C)/2)`.
    public let accuracyThreshold: Double
    /// `L₀`, nats (see the type's documentation).
    public let noLearningLoss: Double
    /// The first 1-based epoch judged.
    public let firstCheckedEpoch: Int
    /// What to try when a run did not take off.
    public let hint: String

    public init(configuration: TrainingConfiguration, classCount: Int) {
        self.classCount = classCount
        let c = Double(max(classCount, 1))
        chanceLevel = 1 / c
        accuracyThreshold = min(2 / c, (1 + 1 / c) / 2)
        noLearningLoss = Self.noLearningLoss(configuration: configuration, classCount: classCount)
        let warmup = max(configuration.warmupEpochs, configuration.loss == .softmax ? 0 : configuration.marginWarmupEpochs)
        firstCheckedEpoch = min(max(2 * warmup, warmup + 1, 2), configuration.epochs)
        hint = Self.hint(for: configuration, classCount: classCount)
    }

    /// `L₀ = ln(1 + (C − 1)·exp(−s·ψ(0)))` (softmax: `ln C`), nats.
    public static func noLearningLoss(configuration: TrainingConfiguration, classCount: Int) -> Double {
        let c = Double(max(classCount, 2))
        guard configuration.loss != .softmax else { return log(c) }
        let psi = FaceRecognitionModel.margin(for: configuration, fraction: 1).target(cosine: 0).value
        // ln(1 + (C − 1)·e^x) with x = −s·ψ(0), stable for large x.
        let x = -configuration.scale * psi + log(c - 1)
        return x > 30 ? x + log1p(exp(-x)) : log1p(exp(x))
    }

    /// AdaCos's fixed scale `√2·ln(C − 1)` (Zhang et al., "AdaCos", CVPR 2019, arXiv:1905.00292,
    /// Eq. 11): the usual lower bound of a useful scale; 4.76 for C = 30, 5.18 for C = 40. For
    /// `C ≤ 2` (where it is ≤ 0) it returns 1.
    public static func automaticScale(classCount: Int) -> Double {
        max(2.0.squareRoot() * log(Double(classCount - 1)), 1)
    }

    /// How far above `automaticScale` a scale may go before `scaleWarning` speaks: 8×. The tuned
    /// default s = 16 with 30 classes is 3.4× the bound; s = 64 with 30 classes (13×) measured
    /// worse there (README); s = 64 with 85,000 classes (MS1M) is 4×.
    public static let scaleWarningFactor = 8.0

    /// A warning when `scale > scaleWarningFactor · automaticScale(classCount)`, else nil.
    public static func scaleWarning(scale: Double, classCount: Int, loss: LossKind) -> String? {
        guard loss != .softmax else { return nil }
        let bound = automaticScale(classCount: classCount)
        guard scale > scaleWarningFactor * bound else { return nil }
        return String(format: "scale s = %g is %.0f× the √2·ln(C − 1) = %.2f that %d classes need; such a scale saturates the softmax early (try --scale auto, or 2–4× it)",
                      scale, scale / bound, bound, classCount)
    }

    static func hint(for configuration: TrainingConfiguration, classCount: Int) -> String {
        var tries: [String] = []
        if [.arcface, .combined].contains(configuration.loss), configuration.marginGradient == .exact {
            tries.append("--margin-gradient straight-through (\"marginGradient\": \"straightThrough\")")
        }
        if configuration.loss != .cosface && configuration.loss != .softmax { tries.append("--loss cosface") }
        if configuration.loss != .softmax && configuration.loss != .normface && configuration.marginWarmupEpochs == 0 {
            tries.append("--margin-warmup-epochs 20")
        }
        let auto = automaticScale(classCount: classCount)
        if configuration.loss != .softmax && configuration.scale > 2 * auto {
            tries.append(String(format: "a lower --scale (--scale auto = %.2f)", auto))
        }
        tries.append("a lower --lr if the loss rose, a higher one if it stayed flat")
        return tries.joined(separator: ", ")
    }

    /// The evidence against `summary`'s epoch, or nil (before `firstCheckedEpoch`, or all well).
    public func check(_ summary: EpochSummary) -> NoProgressEvidence? {
        guard summary.epoch >= firstCheckedEpoch else { return nil }
        var signs: [String] = []
        if summary.accuracy < accuracyThreshold {
            signs.append(String(format: "training accuracy %.3f is near chance (1/%d = %.3f; threshold %.3f)",
                                summary.accuracy, classCount, chanceLevel, accuracyThreshold))
        }
        if !(summary.loss < 0.99 * noLearningLoss) {
            signs.append(String(format: "loss %.4f is not below the no-learning level %.4f", summary.loss, noLearningLoss))
        }
        var spread: CosineSpread?
        if let mean = summary.validationCosineMean, let sd = summary.validationCosineStandardDeviation {
            let s = CosineSpread(mean: mean, standardDeviation: sd, pairs: 0)
            if s.isCollapsed {
                spread = s
                signs.append(String(format: "validation cosines collapsed (mean %.3f, std %.3f)", mean, sd))
            }
        }
        guard !signs.isEmpty else { return nil }
        return NoProgressEvidence(epoch: summary.epoch, trainingAccuracy: summary.accuracy, chanceLevel: chanceLevel,
                                  accuracyThreshold: accuracyThreshold, loss: summary.loss, noLearningLoss: noLearningLoss,
                                  collapsedCosines: spread, collapsedSet: spread == nil ? nil : "validation",
                                  signs: signs, hint: hint)
    }

    /// The run's verdict: the last epoch's evidence, plus collapsed `heldOut` cosines.
    public func verdict(history: [EpochSummary], heldOut: CosineSpread?) -> TakeOffVerdict {
        guard let last = history.last else { return TakeOffVerdict(converged: true, evidence: nil) }
        var evidence = check(last)
        if let heldOut, heldOut.isCollapsed {
            let sign = String(format: "held-out cosines collapsed (mean %.3f, std %.3f over %d pairs)",
                              heldOut.mean, heldOut.standardDeviation, heldOut.pairs)
            if evidence == nil {
                evidence = NoProgressEvidence(epoch: last.epoch, trainingAccuracy: last.accuracy, chanceLevel: chanceLevel,
                                              accuracyThreshold: accuracyThreshold, loss: last.loss,
                                              noLearningLoss: noLearningLoss, signs: [], hint: hint)
            }
            evidence!.signs.append(sign)
            evidence!.collapsedCosines = heldOut
            evidence!.collapsedSet = "held-out"
        }
        return TakeOffVerdict(converged: evidence == nil, evidence: evidence)
    }
}

/// What the trainer knows after its first step, for the start-of-training log line.
public struct TakeOffStart: Sendable {
    /// The first step's loss (before any update), nats.
    public var initialLoss: Double
    /// `C`.
    public var classCount: Int
    /// `ln C`, nats.
    public var logClassCount: Double { log(Double(classCount)) }
    /// `L₀` (`TakeOffWatchdog.noLearningLoss`), nats.
    public var noLearningLoss: Double
    /// `TakeOffWatchdog.scaleWarning`, if any.
    public var scaleWarning: String?

    /// `"initial loss 11.9700 (ln C = 3.4012 for C = 30; no-learning level 11.04)"`.
    public var line: String {
        String(format: "initial loss %.4f (ln C = %.4f for C = %d; no-learning level with this margin %.4f)",
               initialLoss, logClassCount, classCount, noLearningLoss)
    }
}

/// The pair-cosine spread of `embeddings` `[N, D]` over every pair of `labels`' images.
func cosineSpread(embeddings: Tensor, labels: [Int]) -> CosineSpread? {
    let pairs = allPairs(labels: labels)
    guard !pairs.isEmpty else { return nil }
    return CosineSpread(cosines: cosineSimilarities(embeddings: embeddings, pairs: pairs).map(Double.init))
}

extension Trainer {
    /// The validation AUC and pair-cosine spread of this epoch's model (nil without a validation split).
    func validationCheck() -> (auc: Double, spread: CosineSpread?)? {
        guard let validationSet else { return nil }
        let embedded = embeddings(of: validationSet, backbone: model.backbone, flipSum: configuration.flipEmbeddings)
        let pairs = allPairs(labels: validationSet.labels)
        let scores = cosineSimilarities(embeddings: embedded, pairs: pairs)
        let auc = areaUnderCurve(rocCurve(scores: scores, isSame: pairs.map(\.isSame)))
        return (auc, pairs.isEmpty ? nil : CosineSpread(cosines: scores.map(Double.init)))
    }

    /// The take-off watchdog of this run.
    public var watchdog: TakeOffWatchdog { TakeOffWatchdog(configuration: configuration, classCount: model.classCount) }
}

extension Experiment {
    /// The held-out pair-cosine spread of `model` (one more inference pass over `heldOut`).
    static func heldOutSpread(_ model: FaceRecognitionModel, on heldOut: FaceDataset,
                              configuration: TrainingConfiguration) -> CosineSpread? {
        let embedded = embeddings(of: heldOut, backbone: model.backbone, flipSum: configuration.flipEmbeddings)
        return cosineSpread(embeddings: embedded, labels: heldOut.labels)
    }
}
