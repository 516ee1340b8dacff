// Shared helpers for the test bundles: tolerance comparison that reports the worst element,
// and central finite differences. Kept free of any test framework so every bundle can use it.
import TensorCore

/// The outcome of comparing two arrays element by element with `|a − b| ≤ atol + rtol·|ref|`.
public struct Comparison: CustomStringConvertible {
    public let label: String
    public let passed: Bool
    public let worstIndex: Int?
    public let worstActual: Double
    public let worstExpected: Double
    public let maxAbsoluteDifference: Double
    public let mismatchCount: Int
    public let count: Int

    public var description: String {
        let verdict = passed ? "OK" : "NOT OK"
        guard let index = worstIndex else { return "\(label): \(verdict) (\(count) elements)" }
        return "\(label): \(verdict); \(mismatchCount)/\(count) outside tolerance; max |diff| \(maxAbsoluteDifference)"
            + " at [\(index)]: actual \(worstActual), expected \(worstExpected)"
    }
}

/// Compares `actual` with the reference `expected`: each element must satisfy
/// `|a − e| ≤ atol + rtol·|e|` (a NaN anywhere fails). Reports the worst element
/// (the largest excess over its tolerance).
public func compare<A: BinaryFloatingPoint, E: BinaryFloatingPoint>(
    _ actual: [A], _ expected: [E], atol: Double, rtol: Double, label: String = "values"
) -> Comparison {
    precondition(atol >= 0 && rtol >= 0, "tolerances must be non-negative")
    guard actual.count == expected.count else {
        return Comparison(label: "\(label) (count \(actual.count) vs \(expected.count))", passed: false, worstIndex: nil,
                          worstActual: .nan, worstExpected: .nan, maxAbsoluteDifference: .infinity,
                          mismatchCount: max(actual.count, expected.count), count: actual.count)
    }
    var worst: Int? = nil
    var worstExcess = -Double.infinity
    var maxDiff = 0.0
    var mismatches = 0
    for i in actual.indices {
        let a = Double(actual[i]), e = Double(expected[i])
        let diff = abs(a - e)
        let tolerance = atol + rtol * abs(e)
        let excess = diff.isNaN ? .infinity : diff - tolerance
        if diff.isNaN || diff > tolerance { mismatches += 1 }
        if diff.isNaN || diff > maxDiff { maxDiff = diff.isNaN ? .nan : diff }
        if excess > worstExcess { worstExcess = excess; worst = i }
    }
    return Comparison(label: label, passed: mismatches == 0, worstIndex: worst,
                      worstActual: worst.map { Double(actual[$0]) } ?? .nan,
                      worstExpected: worst.map { Double(expected[$0]) } ?? .nan,
                      maxAbsoluteDifference: maxDiff, mismatchCount: mismatches, count: actual.count)
}

/// Central finite differences of a scalar function of `Double` inputs:
/// `∂f/∂xᵢ ≈ (f(x + h·eᵢ) − f(x − h·eᵢ)) / 2h`.
public func numericalGradient(at x: [Double], step h: Double = 1e-6, _ f: ([Double]) -> Double) -> [Double] {
    var point = x
    var gradient = [Double](repeating: 0, count: x.count)
    for i in x.indices {
        let original = point[i]
        point[i] = original + h
        let plus = f(point)
        point[i] = original - h
        let minus = f(point)
        point[i] = original
        gradient[i] = (plus - minus) / (2 * h)
    }
    return gradient
}

/// Central finite differences of a scalar function of `Float` inputs, evaluated with the
/// perturbation applied in `Float` and the difference quotient formed in `Double`
/// (the actually applied step, `Float(x+h) − Float(x−h)`, is used as the denominator).
public func numericalGradient(at x: [Float], step h: Float = 1e-2, _ f: ([Float]) -> Double) -> [Double] {
    var point = x
    var gradient = [Double](repeating: 0, count: x.count)
    for i in x.indices {
        let original = point[i]
        let up = original + h, down = original - h
        point[i] = up
        let plus = f(point)
        point[i] = down
        let minus = f(point)
        point[i] = original
        gradient[i] = (plus - minus) / (Double(up) - Double(down))
    }
    return gradient
}

/// A deterministic pseudo-random array for tests (normal, given standard deviation).
public func randomArray(_ count: Int, seed: UInt64, standardDeviation: Float = 1) -> [Float] {
    var generator = SeededGenerator(seed: seed)
    return (0..<count).map { _ in generator.nextNormal() * standardDeviation }
}
