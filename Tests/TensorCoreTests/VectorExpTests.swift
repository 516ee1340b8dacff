#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Testing
import TensorCore
import _TestSupport

/// The distance in units in the last place between a Float result and a Double reference
/// (one ulp = the spacing of Floats at the reference's magnitude).
func ulpError(_ value: Float, _ reference: Double) -> Double {
    let magnitude = Float(reference)
    let ulp = Double(magnitude.ulp)
    return abs(Double(value) - reference) / ulp
}

@Suite struct VectorExpTests {
    @Test("vectorExp: ≤ 2 ulp from libm's exp over [−87.3, 88.7] on a dense grid")
    func accuracy() {
        // 200,000 points (kept small for debug builds), plus the exact range ends.
        let count = 200_000
        var x = (0..<count).map { Float(-87.33 + (88.7 + 87.33) * Double($0) / Double(count - 1)) }
        x += [0, -0.0, 1, -1, 1e-8, -1e-8, .ulpOfOne, 0.34657359, -0.34657359, -87.3365, 88.72]
        var y = x
        exponentiate(&y)
        var worst = 0.0, worstX: Float = 0
        for (xi, yi) in zip(x, y) {
            let error = ulpError(yi, exp(Double(xi)))
            if error > worst { worst = error; worstX = xi }
        }
        #expect(worst <= 2, "worst \(worst) ulp at x = \(worstX)")
    }

    @Test("vectorExp: underflow to +0 below ln(FLT_MIN), +∞ above ln(FLT_MAX), NaN propagates, exp(0) = 1")
    func specialValues() {
        var x: [Float] = [-87.34, -88, -100, -1e4, -.infinity, 88.73, 1e4, .infinity, .nan, 0]
        x += [Float](repeating: -200, count: 17)   // a full vector and a tail
        exponentiate(&x)
        #expect(x[0..<5].allSatisfy { $0 == 0 && $0.sign == .plus })
        #expect(x[5..<8].allSatisfy { $0 == .infinity })
        #expect(x[8].isNaN)
        #expect(x[9] == 1)
        #expect(x[10...].allSatisfy { $0 == 0 })
        // Large negatives: monotone non-increasing toward zero.
        var grid = (0..<1000).map { Float(-80 - Double($0) * 0.01) }
        exponentiate(&grid)
        #expect(zip(grid, grid.dropFirst()).allSatisfy { $0 >= $1 })
    }
}

@Test("softmaxExponential = vectorExp bit for bit on [−100, 88], 0 below ln(FLT_MIN), NaN propagates")
func softmaxExponentialMatches() {
    var worst: Float = 0
    for i in 0..<20_000 {
        let x = -100 + 188 * Float(i) / 19_999
        let v = SIMD16<Float>((0..<16).map { x - Float($0) * 1e-3 })
        let a = softmaxExponential(v), b = vectorExp(v)
        for lane in 0..<16 where a[lane] != b[lane] { worst = max(worst, abs(a[lane] - b[lane])) }
    }
    #expect(worst == 0, "largest difference \(worst)")
    #expect(softmaxExponential(-1e4) == 0 && softmaxExponential(-.infinity) == 0 && softmaxExponential(Float.nan).isNaN)
    #expect(softmaxExponential(0) == 1)
}
