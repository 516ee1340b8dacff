// Whether a run took off: the verdict `metrics.json` and `report.html` carry (issue 10).
import Foundation

/// The spread of a set of pair cosines (validation pairs each epoch, held-out pairs at the final
/// evaluation): collapsed embeddings have every cosine near 1 or no spread at all.
public struct CosineSpread: Codable, Sendable, Equatable {
    /// Mean cosine similarity over the pairs.
    public var mean: Double
    /// Standard deviation of the pair cosines.
    public var standardDeviation: Double
    /// The number of pairs.
    public var pairs: Int

    /// Mean cosine `≥ 0.9`: the embeddings point (nearly) one way. Healthy runs here have
    /// impostor cosines around 0–0.3 and a mean over all pairs well below 0.5.
    public static let collapsedMean = 0.9
    /// Standard deviation `≤ 0.02`: every pair scores the same (healthy runs: 0.2–0.3).
    public static let collapsedStandardDeviation = 0.02

    public init(mean: Double, standardDeviation: Double, pairs: Int) {
        self.mean = mean
        self.standardDeviation = standardDeviation
        self.pairs = pairs
    }

    /// The spread of `cosines` (at least one value).
    public init(cosines: [Double]) {
        let n = Double(max(cosines.count, 1))
        let mean = cosines.reduce(0, +) / n
        let variance = cosines.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / n
        self.init(mean: mean, standardDeviation: variance.squareRoot(), pairs: cosines.count)
    }

    /// Whether the cosines look collapsed (`collapsedMean`, `collapsedStandardDeviation`).
    public var isCollapsed: Bool { mean >= Self.collapsedMean || standardDeviation <= Self.collapsedStandardDeviation }
}

/// The evidence that a run did not take off.
public struct NoProgressEvidence: Codable, Sendable, Equatable {
    /// The 1-based epoch the evidence is from (the final evaluation: the last epoch).
    public var epoch: Int
    /// The epoch's training accuracy (margin-free argmax; fraction of images).
    public var trainingAccuracy: Double
    /// `1/C`, the accuracy of guessing.
    public var chanceLevel: Double
    /// The accuracy below which a run counts as "near chance": `min(2/C, (1 + 1/C)/2)`.
    public var accuracyThreshold: Double
    /// The epoch's mean training loss, nats.
    public var loss: Double
    /// The loss of a network that has learned nothing (all cosines 0), nats: `ln C` without a
    /// margin, `ln(1 + (C − 1)·exp(−s·ψ(0)))` with one.
    public var noLearningLoss: Double
    /// The cosines that looked collapsed (validation pairs, or held-out pairs at the end), if any.
    public var collapsedCosines: CosineSpread?
    /// Which pairs `collapsedCosines` are: `"validation"` or `"held-out"`.
    public var collapsedSet: String?
    /// Each sign that fired, in words.
    public var signs: [String]
    /// What to try.
    public var hint: String

    public init(epoch: Int, trainingAccuracy: Double, chanceLevel: Double, accuracyThreshold: Double, loss: Double,
                noLearningLoss: Double, collapsedCosines: CosineSpread? = nil, collapsedSet: String? = nil,
                signs: [String], hint: String) {
        self.epoch = epoch
        self.trainingAccuracy = trainingAccuracy
        self.chanceLevel = chanceLevel
        self.accuracyThreshold = accuracyThreshold
        self.loss = loss
        self.noLearningLoss = noLearningLoss
        self.collapsedCosines = collapsedCosines
        self.collapsedSet = collapsedSet
        self.signs = signs
        self.hint = hint
    }

    /// One line: the signs and the hint.
    public var summary: String { "no take-off: " + signs.joined(separator: "; ") + ". Try " + hint }
}

/// Whether a run took off (`converged`), with the evidence when it did not.
public struct TakeOffVerdict: Codable, Sendable, Equatable {
    /// False when the last checked epoch was near chance or not below the no-learning loss, or
    /// the held-out cosines collapsed.
    public var converged: Bool
    /// Why not (nil when `converged`).
    public var evidence: NoProgressEvidence?

    public init(converged: Bool, evidence: NoProgressEvidence?) {
        self.converged = converged
        self.evidence = evidence
    }
}
