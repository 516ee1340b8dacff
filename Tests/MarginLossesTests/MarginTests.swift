#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Testing
import MarginLosses
import _TestSupport

@Suite struct ArcFaceMarginTests {
    let arcFace = ArcFaceMargin(margin: 0.5)

    @Test("s·ψ at cos θ = 0.8 is 64·cos(acos 0.8 + 0.5)")
    func targetLogitAtPointEight() {
        // θ = acos 0.8 = 0.6435011; θ + m = 1.1435011 ≤ π; cos(1.1435011) = 0.4144107263497765
        // (python3 math). Equivalently 0.8·cos 0.5 − 0.6·sin 0.5 = 0.7020661 − 0.2876554.
        // dψ/dc = cos m + c·sin m / sin θ = 0.8775826 + 0.8·0.4794255/0.6 = 1.5168166133626435.
        let (value, derivative) = arcFace.target(cosine: 0.8)
        #expect(abs(64 * value - 64 * 0.4144107263497765) < 1e-12)
        #expect(abs(64 * value - 26.522286486385696) < 1e-12)
        #expect(abs(derivative - 1.5168166133626435) < 1e-12)
    }

    @Test("θ + m > π uses the fallback c − m·sin m")
    func fallback() {
        // cos θ = −0.99 < cos(π − 0.5) = −0.8775826: θ + m > π, so ψ = −0.99 − 0.5·sin 0.5
        // = −0.99 − 0.2397128 = −1.2297127693021015 (python3 math), derivative 1.
        let (value, derivative) = arcFace.target(cosine: -0.99)
        #expect(abs(64 * value - 64 * -1.2297127693021015) < 1e-12)
        #expect(derivative == 1)
        // Either side of the threshold −cos 0.5: cos(θ + m) → cos π = −1 just above, and
        // −cos 0.5 − 0.5·sin 0.5 = −1.1172953 just below (arcface_torch's step).
        let threshold = -cos(0.5)
        #expect(abs(arcFace.target(cosine: threshold + 1e-12).value - -1) < 1e-5)
        #expect(abs(arcFace.target(cosine: threshold - 1e-12).value - (-cos(0.5) - 0.5 * sin(0.5))) < 1e-10)
        // At c = −1 the fallback gives −1 − 0.5·sin 0.5 with derivative 1.
        #expect(arcFace.target(cosine: -1) == (-1 - 0.5 * sin(0.5), 1))
    }

    @Test("an fp32 cosine of 1.0000002 is clamped: ψ = cos 0.5, derivative finite")
    func cosineAboveOne() {
        // Float(1.0000002) = 1.0000002384185791. Clamped to 1: θ = 0, ψ = cos 0.5 = 0.8775825618903728.
        // The derivative cos m + c·sin m/sin θ diverges at θ = 0; it is evaluated at the fp32
        // cosine 1 − 2⁻²⁴: 0.8775826 + (1 − 2⁻²⁴)·0.4794255/√(2⁻²⁴(2 − 2⁻²⁴)) = 1389.442202916811.
        let c = Double(Float(1.0000002))
        #expect(c > 1)
        let (value, derivative) = arcFace.target(cosine: c)
        #expect(abs(64 * value - 64 * 0.8775825618903728) < 1e-12)
        #expect(derivative.isFinite)
        #expect(abs(derivative - 1389.442202916811) < 1e-6)
        #expect(arcFace.target(cosine: 1) == arcFace.target(cosine: c))
        // The same as the exact derivative at the largest fp32 below 1.
        #expect(abs(derivative - arcFace.target(cosine: 1 - 0x1p-24).derivative) < 1e-9)
    }

    @Test("easyMargin applies the margin only where cos θ > 0")
    func easyMargin() {
        let easy = ArcFaceMargin(margin: 0.5, easyMargin: true)
        // c = −0.3 ≤ 0: ψ = c, derivative 1 (not the fallback −0.3 − 0.5·sin 0.5).
        #expect(easy.target(cosine: -0.3) == (-0.3, 1))
        #expect(easy.target(cosine: 0) == (0, 1))
        // c = −0.99: still ψ = c, whereas the default gives −1.2297128.
        #expect(easy.target(cosine: -0.99).value == -0.99)
        // c = 0.8 > 0: same as the default margin, cos(acos 0.8 + 0.5) = 0.4144107263497765.
        #expect(abs(easy.target(cosine: 0.8).value - 0.4144107263497765) < 1e-12)
        // Just above 0: cos(π/2 + 0.5) = −sin 0.5 = −0.4794255.
        #expect(abs(easy.target(cosine: 1e-12).value - -sin(0.5)) < 1e-9)
    }

    @Test("margin 0 is the plain cosine everywhere")
    func zeroMargin() {
        let plain = ArcFaceMargin(margin: 0)
        for c in stride(from: -1.0, through: 1.0, by: 0.125) {
            let (value, derivative) = plain.target(cosine: c)
            #expect(abs(value - c) < 1e-15)
            #expect(abs(derivative - 1) < 1e-12)
        }
    }
}

@Suite struct OtherMarginTests {
    @Test("NormFace: ψ = c, clamped")
    func normFace() {
        #expect(NormFaceMargin().target(cosine: 0.3) == (0.3, 1))
        #expect(NormFaceMargin().target(cosine: Double(Float(1.0000002))) == (1, 1))
    }

    @Test("CosFace: ψ = c − m")
    func cosFace() {
        // m = 0.35 (CosFace's setting): 0.8 − 0.35 = 0.45; −0.7 − 0.35 = −1.05; derivative 1.
        let cosFace = CosFaceMargin(margin: 0.35)
        #expect(abs(cosFace.target(cosine: 0.8).value - 0.45) < 1e-15)
        #expect(abs(cosFace.target(cosine: -0.7).value - -1.05) < 1e-15)
        #expect(cosFace.target(cosine: 0.8).derivative == 1)
    }

    @Test("Combined (1, 0.3, 0.2): cos(θ + 0.3) − 0.2 and its fallback")
    func combinedInsightFace() {
        let combined = CombinedMargin(angularMultiplier: 1, angularMargin: 0.3, cosineMargin: 0.2)
        // c = 0.8: cos(0.6435011 + 0.3) − 0.2 = 0.3869570673036811; dψ/dc = sin(θ + 0.3)/sin θ
        // = 0.8096183/0.6 = 1.3493634313407254 (python3 math).
        let (value, derivative) = combined.target(cosine: 0.8)
        #expect(abs(value - 0.3869570673036811) < 1e-12)
        #expect(abs(derivative - 1.3493634313407254) < 1e-12)
        // c = −0.97 < cos(π − 0.3) = −0.9553365: Δ = 0.3, fallback −0.97 − 0.2 − 0.3·sin 0.3
        // = −1.2586560619984017.
        #expect(abs(combined.target(cosine: -0.97).value - -1.2586560619984017) < 1e-12)
        #expect(combined.target(cosine: -0.97).derivative == 1)
    }

    @Test("Combined (1.35, 0, 0): multiplicative margin and the generalised fallback")
    func combinedMultiplicative() {
        let combined = CombinedMargin(angularMultiplier: 1.35)
        // θ* = π/1.35 = 2.3271056, Δ = π − θ* = 0.8144870, threshold cos θ* = −0.6862416.
        #expect(abs(combined.thresholdMargin - 0.8144869842640206) < 1e-12)
        // c = 0.8: cos(1.35·0.6435011) = 0.6457993993767626; derivative 1.35·sin(1.35θ)/sin θ
        // = 1.7178910398533291.
        #expect(abs(combined.target(cosine: 0.8).value - 0.6457993993767626) < 1e-12)
        #expect(abs(combined.target(cosine: 0.8).derivative - 1.7178910398533291) < 1e-12)
        // c = −0.9 < −0.6862416: fallback −0.9 − Δ·sin Δ = −1.492436363757971.
        #expect(abs(combined.target(cosine: -0.9).value - -1.492436363757971) < 1e-12)
        // At c = 1 with m2 = 0 the derivative is near its limit m1² = 1.8225, not 0/0.
        #expect(abs(combined.target(cosine: 1).derivative - 1.8225) < 1e-6)
    }

    @Test("Combined reduces to NormFace, ArcFace and CosFace")
    func combinedSpecialCases() {
        let pairs: [(any Margin, any Margin)] = [
            (CombinedMargin(), NormFaceMargin()),
            (CombinedMargin(angularMargin: 0.5), ArcFaceMargin(margin: 0.5)),
            (CombinedMargin(angularMargin: 0.3), ArcFaceMargin(margin: 0.3)),
            (CombinedMargin(cosineMargin: 0.35), CosFaceMargin(margin: 0.35)),
            (SphereFaceMargin(multiplier: 1), NormFaceMargin()),
        ]
        for (combined, reference) in pairs {
            for c in stride(from: -1.0, through: 1.0, by: 1.0 / 64) + [-0.99999, 0.99999, 1 - 0x1p-24, Double(Float(1.0000002))] {
                let a = combined.target(cosine: c), b = reference.target(cosine: c)
                #expect(abs(a.value - b.value) < 1e-12, "\(combined) vs \(reference) at \(c)")
                #expect(abs(a.derivative - b.derivative) < 1e-9 * max(1, abs(b.derivative)),
                        "\(combined) vs \(reference) derivative at \(c)")
            }
        }
    }

    @Test("SphereFace m = 4: (−1)ᵏ cos 4θ − 2k")
    func sphereFace() {
        let sphere = SphereFaceMargin(multiplier: 4)
        // c = 0.8: θ = 0.6435, 4θ = 2.574 < π, k = 0: T₄(0.8) = 8·0.4096 − 8·0.64 + 1 = −0.8432;
        // derivative 4·U₃(0.8) = 4·(8·0.512 − 4·0.8) = 3.584.
        #expect(abs(sphere.target(cosine: 0.8).value - -0.8432) < 1e-12)
        #expect(abs(sphere.target(cosine: 0.8).derivative - 3.584) < 1e-12)
        // c = 0.3: 4θ = 5.0645 ∈ [π, 2π], k = 1: −T₄(0.3) − 2 = −(0.0648 − 0.72 + 1) − 2 = −2.3448;
        // derivative −4·U₃(0.3) = −4·(0.216 − 1.2) = 3.936.
        #expect(abs(sphere.target(cosine: 0.3).value - -2.3448) < 1e-12)
        #expect(abs(sphere.target(cosine: 0.3).derivative - 3.936) < 1e-12)
        // c = −0.5: θ = 2π/3, 4θ = 8π/3, k = 2: cos(8π/3) − 4 = −0.5 − 4 = −4.5; derivative 4·U₃(−0.5) = 4.
        #expect(abs(sphere.target(cosine: -0.5).value - -4.5) < 1e-12)
        #expect(abs(sphere.target(cosine: -0.5).derivative - 4) < 1e-12)
        // Ends: ψ(1) = 1, ψ(−1) = 1 − 2m = −7; derivatives m² = 16 at both (U₃(±1) = ±4, k = 0 / 3).
        #expect(sphere.target(cosine: 1) == (1, 16))
        #expect(abs(sphere.target(cosine: -1).value - -7) < 1e-12)
        #expect(abs(sphere.target(cosine: -1).derivative - 16) < 1e-9)
        // λ = 5 blends in the cosine: (5·0.8 − 0.8432)/6 = 0.5261333…, derivative (5 + 3.584)/6.
        let annealed = SphereFaceMargin(multiplier: 4, annealingWeight: 5)
        #expect(abs(annealed.target(cosine: 0.8).value - (5 * 0.8 - 0.8432) / 6) < 1e-12)
        #expect(abs(annealed.target(cosine: 0.8).derivative - (5 + 3.584) / 6) < 1e-12)
    }
}

@Suite struct MarginDerivativeTests {
    /// A grid over [−1, 1], dense near ±1 and around the usual thresholds.
    static let grid: [Double] = {
        var points = Array(stride(from: -0.995, through: 0.995, by: 0.035))
        points += [-1 + 1e-7, -1 + 1e-6, -0.99999, -0.9999, -0.999, -0.99, -0.97, -0.95, -0.9, -0.88, -0.87,
                   -0.75, -0.69, -0.68, -0.5, 0.01, -0.01, 0.5, 0.999, 0.9999, 0.99999, 1 - 1e-6, 1 - 1e-7]
        return points
    }()

    @Test("dψ/dc matches central differences in Double over [−1, 1]", arguments: MarginCase.all)
    func derivativeMatchesFiniteDifferences(_ testCase: MarginCase) {
        let margin = testCase.margin
        var checked = 0
        for c in Self.grid {
            // Step well inside (−1, 1) and away from the steps of ψ.
            let h = min(1e-6, (1 - abs(c)) / 1000)
            if testCase.discontinuities.contains(where: { abs($0 - c) < 1e-4 }) { continue }
            let numeric = (margin.target(cosine: c + h).value - margin.target(cosine: c - h).value) / (2 * h)
            let analytic = margin.target(cosine: c).derivative
            #expect(abs(analytic - numeric) <= 1e-6 + 1e-5 * abs(numeric),
                    "\(testCase) at c = \(c): analytic \(analytic), numeric \(numeric)")
            checked += 1
        }
        #expect(checked > 60)
    }

    @Test("ψ and dψ/dc are finite at and beyond ±1; ψ is non-decreasing", arguments: MarginCase.all)
    func finiteAndMonotone(_ testCase: MarginCase) {
        for c in [-1.0000002, -1, -1 + 0x1p-24, 1 - 0x1p-24, 1, Double(Float(1.0000002)), 1.5] {
            let (value, derivative) = testCase.margin.target(cosine: c)
            #expect(value.isFinite && derivative.isFinite, "\(testCase) at c = \(c): \(value), \(derivative)")
            // ArcFace without a fallback decreases past θ = π − m (checked in MarginFallbackTests).
            let decreasesNearMinusOne = testCase.name.contains("none") && c < 0
            if !decreasesNearMinusOne { #expect(derivative >= -1e-12, "\(testCase) at c = \(c): derivative \(derivative) < 0") }
        }
        var previous = -Double.infinity
        for step in 0...4000 {
            let c = -1 + Double(step) / 2000
            let value = testCase.margin.target(cosine: c).value
            let allowedDrop = (testCase.discontinuities.contains { abs($0 - c) < 1e-3 } && testCase.name.contains("easy"))
                || (testCase.name.contains("none") && c <= -cos(0.5) + 1e-3)
            // Every margin is non-decreasing except easy-margin ArcFace's step at c = 0.
            if !allowedDrop { #expect(value >= previous - 1e-12, "\(testCase) decreases at c = \(c)") }
            previous = value
        }
    }
}
