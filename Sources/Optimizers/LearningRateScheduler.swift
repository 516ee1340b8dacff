// Learning-rate schedules: a linear warm-up followed by a constant, cosine, step or
// polynomial decay, as a pure function of the global step.
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The decay applied after the warm-up, as a multiplier `f(t, T)` of the base learning rate,
/// where `t = step − warmupSteps` counts the steps since the warm-up ended and
/// `T = totalSteps − warmupSteps` is the length of the decay phase (`t` is clamped to `T`).
public enum LearningRateSchedule: Codable, Sendable, Equatable {
    /// `f = 1`.
    case constant
    /// Cosine annealing (Loshchilov & Hutter, "SGDR", ICLR 2017, eq. 5, a single cycle
    /// without restarts) from 1 down to `finalFraction`:
    /// `f = finalFraction + (1 − finalFraction) · ½·(1 + cos(π·t/T))`.
    /// `finalFraction` is in [0, 1].
    case cosine(finalFraction: Double)
    /// Piecewise constant: `f = factor^k`, where `k` is the number of `milestones` that are
    /// ≤ `step`. Milestones are **absolute global steps** (not offsets from the end of the
    /// warm-up), as `torch.optim.lr_scheduler.MultiStepLR` stepped once per batch.
    /// `factor` is in (0, 1] typically (e.g. 0.1); milestones must be ≥ 0.
    case step(milestones: [Int], factor: Double)
    /// Polynomial decay to zero, `f = (1 − t/T)^power` (arcface_torch's `PolyScheduler`
    /// uses `power = 2`). `power` > 0.
    case polynomial(power: Double)
}

/// The learning rate at each global step: a linear warm-up, then a `LearningRateSchedule`.
///
/// Concretely, with base rate `η`, `W = warmupSteps`, `S = totalSteps` and step `s ≥ 0`
/// (the number of optimizer steps already taken, so the first step is `s = 0`):
/// ```
/// s < W:   η·(s + 1)/W                       linear warm-up: η/W at s = 0, η at s = W − 1
/// s ≥ W:   η·f(t, T),  t = min(s − W, T),  T = S − W
/// ```
/// This is arcface_torch's `PolyScheduler` warm-up (`η·s/W`) shifted by one step so that the
/// very first update does not have a zero learning rate (Goyal et al., "Accurate, Large
/// Minibatch SGD", 2017, §2.2 gradual warm-up). Steps past `totalSteps` keep the final value.
public struct LearningRateScheduler: Codable, Sendable, Equatable {
    /// The peak learning rate η, reached at the end of the warm-up (per step, > 0).
    public var baseLearningRate: Double
    /// The number of warm-up steps `W` (≥ 0; 0 disables the warm-up).
    public var warmupSteps: Int
    /// The total number of training steps `S` (> `warmupSteps`).
    public var totalSteps: Int
    /// The decay after the warm-up.
    public var schedule: LearningRateSchedule

    public init(baseLearningRate: Double, warmupSteps: Int = 0, totalSteps: Int,
                schedule: LearningRateSchedule) {
        self.baseLearningRate = baseLearningRate
        self.warmupSteps = warmupSteps
        self.totalSteps = totalSteps
        self.schedule = schedule
        validate()
    }

    /// Traps with the offending value when a field is outside its documented range.
    public func validate() {
        precondition(baseLearningRate.isFinite && baseLearningRate > 0,
                     "base learning rate must be finite and > 0: \(baseLearningRate)")
        precondition(warmupSteps >= 0, "warm-up steps must be ≥ 0: \(warmupSteps)")
        precondition(totalSteps > warmupSteps,
                     "total steps (\(totalSteps)) must exceed warm-up steps (\(warmupSteps))")
        switch schedule {
        case .constant:
            break
        case .cosine(let finalFraction):
            precondition(finalFraction >= 0 && finalFraction <= 1, "cosine final fraction must be in [0, 1]: \(finalFraction)")
        case .step(let milestones, let factor):
            precondition(milestones.allSatisfy { $0 >= 0 }, "step milestones must be ≥ 0: \(milestones)")
            precondition(factor.isFinite && factor > 0, "step factor must be finite and > 0: \(factor)")
        case .polynomial(let power):
            precondition(power.isFinite && power > 0, "polynomial power must be finite and > 0: \(power)")
        }
    }

    /// The learning rate for the optimizer step with index `step` (0-based), per step.
    ///
    /// - Precondition: `step ≥ 0` and the scheduler is valid.
    public func learningRate(atStep step: Int) -> Double {
        precondition(step >= 0, "learning-rate step must be ≥ 0: \(step)")
        validate()
        if step < warmupSteps {
            return baseLearningRate * Double(step + 1) / Double(warmupSteps)
        }
        let decayLength = Double(totalSteps - warmupSteps)
        let t = min(Double(step - warmupSteps), decayLength)
        let multiplier: Double
        switch schedule {
        case .constant:
            multiplier = 1
        case .cosine(let finalFraction):
            multiplier = finalFraction + (1 - finalFraction) * 0.5 * (1 + cos(Double.pi * t / decayLength))
        case .step(let milestones, let factor):
            let passed = milestones.count { $0 <= step }
            multiplier = pow(factor, Double(passed))
        case .polynomial(let power):
            multiplier = pow(1 - t / decayLength, power)
        }
        return baseLearningRate * multiplier
    }
}
