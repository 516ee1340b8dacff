// A margin decoded from a file with a value outside its range is a DecodingError naming the key
// and the accepted range, never the initializer's precondition trap (issue 10).
import Foundation
import Testing
import MarginLosses

@Suite struct MarginDecodingTests {
    /// Decodes `json` as `M` and returns the `dataCorrupted` context it threw (nil, recorded as an
    /// issue, for a success or any other error).
    static func corruption<M: Decodable>(_ type: M.Type, _ json: String) -> DecodingError.Context? {
        do {
            let value = try JSONDecoder().decode(M.self, from: Data(json.utf8))
            Issue.record("\(json) decoded as \(value)")
        } catch let DecodingError.dataCorrupted(context) {
            return context
        } catch {
            Issue.record("\(json): expected DecodingError.dataCorrupted, got \(error)")
        }
        return nil
    }

    /// Expects `json` to fail at `key` with a description containing each of `phrases`.
    static func expectRejected<M: Decodable>(_ type: M.Type, _ json: String, key: String, saying phrases: [String]) {
        guard let context = corruption(type, json) else { return }
        #expect(context.codingPath.map(\.stringValue) == [key], "\(json)")
        for phrase in phrases {
            #expect(context.debugDescription.contains(phrase), "\(json): \(context.debugDescription)")
        }
    }

    @Test("ArcFaceMargin: a margin outside [0, π/2] is an error at margin")
    func arcFace() {
        Self.expectRejected(ArcFaceMargin.self, #"{"margin": 2, "fallback": "hard"}"#, key: "margin", saying: ["[0, π/2]", "2.0"])
        Self.expectRejected(ArcFaceMargin.self, #"{"margin": -0.5}"#, key: "margin", saying: ["[0, π/2]", "-0.5"])
    }

    @Test("CosFaceMargin: a negative margin is an error at margin stating ≥ 0; valid ones decode")
    func cosFace() throws {
        Self.expectRejected(CosFaceMargin.self, #"{"margin": -0.35}"#, key: "margin", saying: ["≥ 0", "-0.35"])
        #expect(try JSONDecoder().decode(CosFaceMargin.self, from: Data(#"{"margin": 0.35}"#.utf8)) == CosFaceMargin(margin: 0.35))
        #expect(try JSONDecoder().decode(CosFaceMargin.self, from: Data(#"{"margin": 0}"#.utf8)) == CosFaceMargin(margin: 0))
    }

    @Test("SphereFaceMargin: multiplier < 1 and annealingWeight < 0 are errors at their keys; valid ones decode")
    func sphereFace() throws {
        Self.expectRejected(SphereFaceMargin.self, #"{"multiplier": 0, "annealingWeight": 0}"#, key: "multiplier",
                            saying: ["≥ 1", ": 0"])
        Self.expectRejected(SphereFaceMargin.self, #"{"multiplier": -4, "annealingWeight": 0}"#, key: "multiplier",
                            saying: ["≥ 1", "-4"])
        Self.expectRejected(SphereFaceMargin.self, #"{"multiplier": 4, "annealingWeight": -1}"#, key: "annealingWeight",
                            saying: ["≥ 0", "-1.0"])
        let json = #"{"multiplier": 4, "annealingWeight": 5}"#
        #expect(try JSONDecoder().decode(SphereFaceMargin.self, from: Data(json.utf8))
                == SphereFaceMargin(multiplier: 4, annealingWeight: 5))
    }

    @Test("CombinedMargin: each of m1, m2, m3 out of range, and a threshold margin above π/2, is an error at its key")
    func combined() throws {
        func json(_ m1: String, _ m2: String, _ m3: String) -> String {
            #"{"angularMultiplier": \#(m1), "angularMargin": \#(m2), "cosineMargin": \#(m3)}"#
        }
        Self.expectRejected(CombinedMargin.self, json("0", "0.3", "0.2"), key: "angularMultiplier", saying: ["> 0", ": 0.0"])
        Self.expectRejected(CombinedMargin.self, json("-1", "0.3", "0.2"), key: "angularMultiplier", saying: ["> 0", "-1.0"])
        Self.expectRejected(CombinedMargin.self, json("1", "-0.3", "0.2"), key: "angularMargin", saying: ["[0, π)", "-0.3"])
        Self.expectRejected(CombinedMargin.self, json("1", "3.5", "0.2"), key: "angularMargin", saying: ["[0, π)", "3.5"])
        Self.expectRejected(CombinedMargin.self, json("1", "0.3", "-0.2"), key: "cosineMargin", saying: ["≥ 0", "-0.2"])
        // m1 = 3, m2 = 0: π − π/3 = 2.094 > π/2. Valid one by one, not together.
        Self.expectRejected(CombinedMargin.self, json("3", "0", "0"), key: "angularMargin",
                            saying: ["π/2", "angularMultiplier m1 = 3.0", "angularMargin m2 = 0.0"])
        #expect(try JSONDecoder().decode(CombinedMargin.self, from: Data(json("1", "0.3", "0.2").utf8))
                == CombinedMargin(angularMultiplier: 1, angularMargin: 0.3, cosineMargin: 0.2))
    }

    @Test("a margin nested in another object reports the full coding path")
    func nestedPath() {
        struct Wrapper: Decodable { let head: CosFaceMargin }
        guard let context = Self.corruption(Wrapper.self, #"{"head": {"margin": -1}}"#) else { return }
        #expect(context.codingPath.map(\.stringValue) == ["head", "margin"])
    }
}
