// ArcFace's fallback past θ + m = π as a named mode: values, exact derivatives against
// central differences in Double, the legacy `easyMargin` Codable key and its conflict error.
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
import Testing
import MarginLosses

@Suite struct MarginFallbackTests {
    @Test("values of each mode (python3 math)")
    func values() {
        let hard = ArcFaceMargin(margin: 0.5), easy = ArcFaceMargin(margin: 0.5, fallback: .easy)
        let none = ArcFaceMargin(margin: 0.5, fallback: .plain)
        #expect(hard.fallback == .hard && !hard.easyMargin && easy.easyMargin)
        #expect(ArcFaceMargin(margin: 0.5, easyMargin: true) == easy && ArcFaceMargin(margin: 0.5, easyMargin: false) == hard)
        // Where θ + m < π and c > 0 the three agree: cos(acos 0.8 + 0.5) = 0.4144107263497765.
        for margin in [hard, easy, none] { #expect(abs(margin.target(cosine: 0.8).value - 0.4144107263497765) < 1e-12) }
        // c = −0.3: hard and none give cos(acos(−0.3) + 0.5) = −0.7206175840020943, easy gives c.
        #expect(abs(hard.target(cosine: -0.3).value - -0.7206175840020943) < 1e-12)
        #expect(abs(none.target(cosine: -0.3).value - -0.7206175840020943) < 1e-12)
        #expect(easy.target(cosine: -0.3) == (-0.3, 1))
        // c = −0.99 (θ + m > π): hard c − m·sin m = −1.2297127693021015; none cos(θ + m) =
        // −0.9364380312214551 with dψ/dc = cos m + c·sin m/sin θ = −2.4869893979330517 < 0.
        #expect(abs(hard.target(cosine: -0.99).value - -1.2297127693021015) < 1e-12)
        #expect(abs(none.target(cosine: -0.99).value - -0.9364380312214551) < 1e-12)
        #expect(abs(none.target(cosine: -0.99).derivative - -2.4869893979330517) < 1e-9)
        // none is continuous at the hard threshold −cos m (ψ = −1 on both sides) and ends at
        // cos(π + m) = −cos m at c = −1.
        let threshold = -cos(0.5)
        #expect(abs(none.target(cosine: threshold - 1e-9).value - -1) < 1e-6)
        #expect(abs(none.target(cosine: threshold + 1e-9).value - -1) < 1e-6)
        #expect(abs(none.target(cosine: -1).value - -cos(0.5)) < 1e-12)
        #expect(none.target(cosine: -1).derivative.isFinite)
    }

    @Test("dψ/dc of each mode = central differences in Double (away from the steps)",
          arguments: MarginFallback.allCases)
    func derivatives(_ fallback: MarginFallback) {
        let margin = ArcFaceMargin(margin: 0.5, fallback: fallback)
        let steps: [Double] = switch fallback { case .hard: [-cos(0.5)]; case .easy: [0]; case .plain: [] }
        var checked = 0
        for c in stride(from: -0.9999, through: 0.9999, by: 0.0123) + [-0.99999, -0.877, -0.878, 0.99999] {
            if steps.contains(where: { abs($0 - c) < 1e-4 }) { continue }
            let h = min(1e-6, (1 - abs(c)) / 1000)
            let numeric = (margin.target(cosine: c + h).value - margin.target(cosine: c - h).value) / (2 * h)
            let analytic = margin.target(cosine: c).derivative
            #expect(abs(analytic - numeric) <= 1e-6 + 1e-5 * abs(numeric), "\(fallback) at c = \(c): \(analytic) vs \(numeric)")
            checked += 1
        }
        #expect(checked > 150)
    }

    @Test("scaled(by:) keeps the mode")
    func scaled() {
        #expect(ArcFaceMargin(margin: 0.5, fallback: .plain).scaled(by: 0.5) == ArcFaceMargin(margin: 0.25, fallback: .plain))
    }

    @Test("Codable: fallback encoded; the earlier easyMargin key decodes; a disagreeing pair is an error naming both")
    func codable() throws {
        let decoder = JSONDecoder()
        func decode(_ json: String) throws -> ArcFaceMargin { try decoder.decode(ArcFaceMargin.self, from: Data(json.utf8)) }
        for fallback in MarginFallback.allCases {
            let margin = ArcFaceMargin(margin: 0.4, fallback: fallback)
            #expect(try decoder.decode(ArcFaceMargin.self, from: JSONEncoder().encode(margin)) == margin)
        }
        #expect(try decode(#"{"margin": 0.5, "easyMargin": true}"#) == ArcFaceMargin(margin: 0.5, fallback: .easy))
        #expect(try decode(#"{"margin": 0.5, "easyMargin": false}"#) == ArcFaceMargin(margin: 0.5, fallback: .hard))
        #expect(try decode(#"{"margin": 0.5}"#) == ArcFaceMargin(margin: 0.5, fallback: .hard))
        #expect(try decode(#"{"margin": 0.5, "easyMargin": true, "fallback": "easy"}"#).fallback == .easy)
        #expect(throws: DecodingError.self) { try decode(#"{"margin": 7, "fallback": "hard"}"#) }
        do {
            _ = try decode(#"{"margin": 0.5, "easyMargin": true, "fallback": "none"}"#)
            Issue.record("a conflicting pair decoded")
        } catch let DecodingError.dataCorrupted(context) {
            #expect(context.debugDescription.contains("easyMargin") && context.debugDescription.contains("fallback"))
        }
    }
}
