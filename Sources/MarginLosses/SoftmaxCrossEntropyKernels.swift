// The softmax cross-entropy kernels shared by the pure loss functions and both heads.
//
// They work on one row's column range of a row-major buffer that first holds the head's
// inputs x (cosines or logits) and is then overwritten, in place, by ∂L/∂x. Each function
// takes the row offset, the column count and the target's column within the range (nil when
// the target lies in another chunk), so that a later class-chunked path (online log-sum-exp
// over K in chunks) can call the same pieces per chunk and merge with `LogSumExp`.
//
// Notation for one sample (row) i with label y:
//   z_j = map(x_j) for j ≠ y         (s·clamp(cos θ_j) for a margin head, x_j for a plain softmax)
//   z_y = target.logit               (s·ψ(cos θ_y), or x_y)
//   M   = max(z_y, max_{j≠y} z_j)
//   S   = Σ_{j≠y} exp(z_j − M),  e_y = exp(z_y − M),  Z = e_y + S
//   ℓ   = (M − z_y) + log Z          (= log1p(S) when z_y = M: accurate for tiny losses)
//   ∂ℓ/∂z_j = e_j/Z (j ≠ y),  ∂ℓ/∂z_y = p_y − 1 = −S/Z (no cancellation when p_y ≈ 1)
//   ∂L/∂x_j = w·s·e_j/Z,  ∂L/∂x_y = −w·(S/Z)·target.logitDerivative,  w = 1/N for .mean else 1.
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// How an input value `x` of a non-target column becomes a logit: `z = scale·x`, with `x`
/// first clamped to `[−1, 1]` when the inputs are cosines. The clamp only removes fp32
/// rounding excursions of unit vectors (1.0000002), so the backward passes the gradient
/// through it unchanged (`∂z/∂x = scale`).
struct LogitMap {
    var scale: Double
    var clampsToUnitInterval: Bool

    @inline(__always)
    func logit(_ x: Float) -> Double {
        let v = Double(x)
        return scale * (clampsToUnitInterval ? clampedCosine(v) : v)
    }
}

/// A sample's target column: its logit `z_y` and `∂z_y/∂x_y`.
struct TargetLogit {
    /// `z_y`, e.g. `s·ψ(cos θ_y)`.
    var logit: Double
    /// `∂z_y/∂x_y`: `s·ψ'(cos θ_y)` (exact), `s` (straight-through) or 1 (plain logits).
    var logitDerivative: Double
}

extension TargetLogit {
    /// The target logit of a margin head at the target cosine `c`: `z_y = s·ψ(c)` with
    /// `∂z_y/∂c = s·ψ'(c)` (`.exact`) or `s` (`.straightThrough`).
    init(cosine c: Double, scale: Double, margin: any Margin, gradientMode: MarginGradient) {
        let (psi, derivative) = margin.target(cosine: c)
        let slope = gradientMode == .exact ? derivative : 1
        self.init(logit: scale * psi, logitDerivative: scale * slope)
    }
}

/// The target logits of a margin head from the `[rows, columns]` cosine buffer.
func marginTargetLogits(cosines: [Float], columns: Int, labels: [Int], scale: Double,
                        margin: any Margin, gradientMode: MarginGradient) -> [TargetLogit] {
    labels.enumerated().map { sample, label in
        TargetLogit(cosine: Double(cosines[sample * columns + label]), scale: scale, margin: margin,
                    gradientMode: gradientMode)
    }
}

/// The target logits of a plain softmax: `z_y = x_y`, `∂z_y/∂x_y = 1`.
func plainTargetLogits(logits: [Float], columns: Int, labels: [Int]) -> [TargetLogit] {
    labels.enumerated().map { sample, label in
        TargetLogit(logit: Double(logits[sample * columns + label]), logitDerivative: 1)
    }
}

/// The running log-sum-exp of the non-target logits of one row, merged chunk by chunk:
/// `(maximum, sum)` stands for `Σ exp(z_j) = exp(maximum)·sum` (online softmax).
struct LogSumExp {
    var maximum = -Double.infinity
    var sum = 0.0

    /// Adds a chunk's partial result with its own reference maximum.
    mutating func merge(maximum otherMaximum: Double, sum otherSum: Double) {
        guard otherSum > 0 else { return }
        if otherMaximum <= maximum {
            sum += otherSum * exp(otherMaximum - maximum)
        } else {
            sum = sum * exp(maximum - otherMaximum) + otherSum
            maximum = otherMaximum
        }
    }
}

/// Pass 1 over a row range: the largest non-target logit, and the argmax of the margin-free
/// logits over all columns of the range (for accuracy; first index on ties).
///
/// - Returns: `maximum` over `j ≠ target` (−∞ if none), `argmax` (range-local index) and its
///   margin-free logit.
func rowMaximum(_ buffer: [Float], offset: Int, count: Int, target: Int?, map: LogitMap)
    -> (maximum: Double, argmax: Int, argmaxLogit: Double)
{
    var maximum = -Double.infinity
    var argmax = 0, argmaxLogit = -Double.infinity
    for j in 0..<count {
        let z = map.logit(buffer[offset + j])
        if z > argmaxLogit { argmax = j; argmaxLogit = z }
        if j != target && z > maximum { maximum = z }
    }
    return (maximum, argmax, argmaxLogit)
}

/// Pass 2 over a row range: writes `exp(z_j − reference)` over each non-target input and
/// returns their sum (accumulated in `Double`). The target slot is left as it was.
func exponentiateRow(_ buffer: inout [Float], offset: Int, count: Int, target: Int?,
                     map: LogitMap, reference: Double) -> Double {
    var sum = 0.0
    for j in 0..<count where j != target {
        let e = exp(map.logit(buffer[offset + j]) - reference)
        buffer[offset + j] = Float(e)
        sum += e
    }
    return sum
}

/// Pass 3 over a row range: turns the exponentials written by `exponentiateRow` into
/// `∂L/∂x_j = factor·e_j` and writes `targetGradient` into the target slot.
func writeRowGradient(_ buffer: inout [Float], offset: Int, count: Int, target: Int?,
                      factor: Double, targetGradient: Double) {
    let f = Float(factor)
    for j in 0..<count { buffer[offset + j] *= f }
    if let target { buffer[offset + target] = Float(targetGradient) }
}

/// The loss of one sample from its merged statistics.
///
/// - Returns: `ℓ`, `Z = e_y + S` and `S` (all relative to `M`).
func sampleLoss(target: TargetLogit, others: LogSumExp) -> (loss: Double, normalizer: Double, othersSum: Double) {
    let zy = target.logit
    let m = max(zy, others.maximum)
    let s = others.sum > 0 ? others.sum * exp(others.maximum - m) : 0
    if zy >= m {
        return (log1p(s), 1 + s, s)
    }
    let ey = exp(zy - m)
    return ((m - zy) + log(ey + s), ey + s, s)
}

/// The summary of a batch's cross-entropy.
struct CrossEntropySummary {
    var loss: Double
    var perSample: [Double]
    var correctCount: Int
}

/// Softmax cross-entropy over whole rows of a `[rows, columns]` buffer, in place.
///
/// On entry `buffer` holds the inputs x (cosines or logits); on return, if `computeGradient`,
/// it holds `∂L/∂x` (else exponentials: scratch). Inputs must be finite and labels valid
/// (checked by the callers before any work).
func softmaxCrossEntropyInPlace(_ buffer: inout [Float], columns: Int, labels: [Int],
                                targets: [TargetLogit], map: LogitMap, reduction: Reduction,
                                computeGradient: Bool) -> CrossEntropySummary {
    let rows = labels.count
    precondition(buffer.count == rows * columns && targets.count == rows,
                 "softmaxCrossEntropyInPlace: buffer \(buffer.count) vs \(rows)×\(columns), targets \(targets.count)")
    let weight = reduction.gradientWeight(batchSize: rows)
    var perSample = [Double](repeating: 0, count: rows)
    var correct = 0
    for i in 0..<rows {
        let offset = i * columns, label = labels[i], target = targets[i]
        let (othersMaximum, argmax, _) = rowMaximum(buffer, offset: offset, count: columns, target: label, map: map)
        if argmax == label { correct += 1 }
        let reference = max(target.logit, othersMaximum)
        var others = LogSumExp()
        others.merge(maximum: reference,
                     sum: exponentiateRow(&buffer, offset: offset, count: columns, target: label,
                                          map: map, reference: reference))
        let (loss, normalizer, othersSum) = sampleLoss(target: target, others: others)
        perSample[i] = loss
        if computeGradient {
            writeRowGradient(&buffer, offset: offset, count: columns, target: label,
                             factor: weight * map.scale / normalizer,
                             targetGradient: -weight * (othersSum / normalizer) * target.logitDerivative)
        }
    }
    return CrossEntropySummary(loss: reduction.reduce(perSample), perSample: perSample, correctCount: correct)
}
