import Foundation
import Testing
import MarginLosses
import TensorCore

@Suite struct MarginWarmupTests {
    @Test("scaled(by:) multiplies every margin term; margins without terms stay as they are")
    func scaled() {
        #expect(ArcFaceMargin(margin: 0.5, easyMargin: true).scaled(by: 0.25) == ArcFaceMargin(margin: 0.125, easyMargin: true))
        #expect(CosFaceMargin(margin: 0.35).scaled(by: 0.5) == CosFaceMargin(margin: 0.35 * 0.5))
        #expect(CombinedMargin(angularMultiplier: 1.2, angularMargin: 0.3, cosineMargin: 0.2).scaled(by: 0.5)
                == CombinedMargin(angularMultiplier: 1 + 0.2 * 0.5, angularMargin: 0.15, cosineMargin: 0.1))
        #expect(CombinedMargin(angularMultiplier: 1.2).scaled(by: 0) == CombinedMargin())
        #expect(NormFaceMargin().scaled(by: 0.3) == NormFaceMargin())
        #expect(SphereFaceMargin(multiplier: 4, annealingWeight: 5).scaled(by: 0.3) == SphereFaceMargin(multiplier: 4, annealingWeight: 5))
    }

    @Test("warming a margin that is already scaled by 1 gives the same bits as warming the raw terms")
    func scaledByOneFirst() {
        // The training model builds its margin as `configured.scaled(by: 1)` and warms that one up:
        // it must equal the configured margin warmed up directly, for every valid m1 ∈ (0, 2].
        for m1 in [0.05, 0.3, 0.45, 0.7, 0.9, 1, 1.2, 1.35, 1.9, 2] {
            let raw = CombinedMargin(angularMultiplier: m1, cosineMargin: 0.2)
            for step in 1...7 {
                let fraction = min(1, Double(step) / 6)
                #expect(raw.scaled(by: 1).scaled(by: fraction) == raw.scaled(by: fraction), "m1 = \(m1), f = \(fraction)")
            }
        }
        for m in [0, 0.1, 0.35, 0.5, 1.5] {
            #expect(ArcFaceMargin(margin: m).scaled(by: 1).scaled(by: 0.4) == ArcFaceMargin(margin: m).scaled(by: 0.4))
            #expect(CosFaceMargin(margin: m).scaled(by: 1).scaled(by: 0.4) == CosFaceMargin(margin: m).scaled(by: 0.4))
        }
    }

    @Test("the head's warm-up ramps from 0: margin·min(1, t/(W·S)) at step t, margin·min(1, e/W) at epoch e's start")
    func headWarmup() throws {
        var generator = SeededGenerator(seed: 1)
        let head = MarginHead(classCount: 4, embeddingDimension: 3, scale: 8, margin: ArcFaceMargin(margin: 0.5),
                              marginWarmupEpochs: 4, generator: &generator)
        #expect(head.marginWarmup?.epochs == 4)
        for (epoch, expected) in [(0, 0.0), (1, 0.5 * 0.25), (2, 0.5 * 0.5), (3, 0.5 * 0.75), (4, 0.5), (9, 0.5)] {
            head.beginEpoch(epoch)
            let margin = try #require(head.margin as? ArcFaceMargin)
            #expect(margin.margin == expected, "epoch \(epoch)")
        }
        // Per step, 10 steps per epoch, W = 4: 40 steps of ramp; step 0 has no margin at all.
        let steps: [(Int, Double)] = [(0, 0), (1, 0.0125), (10, 0.125), (25, 0.3125), (39, 0.4875), (40, 0.5), (1000, 0.5)]
        for (step, expected) in steps {
            head.beginStep(step, stepsPerEpoch: 10)
            let margin = try #require(head.margin as? ArcFaceMargin)
            #expect(abs(margin.margin - expected) < 1e-15, "step \(step)")
        }
        let constant = MarginHead(classCount: 4, embeddingDimension: 3, scale: 8, margin: CosFaceMargin(margin: 0.35),
                                  generator: &generator)
        constant.beginEpoch(0)
        #expect(constant.marginWarmup == nil && (constant.margin as? CosFaceMargin) == CosFaceMargin(margin: 0.35))
    }

    @Test("margins encode their terms only and decode through their initializers")
    func codable() throws {
        let arcFace = ArcFaceMargin(margin: 0.5, easyMargin: true)
        let json = try JSONEncoder().encode(arcFace)
        let keys = try #require(JSONSerialization.jsonObject(with: json) as? [String: Any]).keys
        #expect(Set(keys) == ["margin", "fallback"])
        #expect(try JSONDecoder().decode(ArcFaceMargin.self, from: json) == arcFace)
        let combined = CombinedMargin(angularMultiplier: 1.2, angularMargin: 0.2, cosineMargin: 0.1)
        #expect(try JSONDecoder().decode(CombinedMargin.self, from: JSONEncoder().encode(combined)) == combined)
        let cosFace = CosFaceMargin(margin: 0.35), sphere = SphereFaceMargin(multiplier: 3, annealingWeight: 2)
        #expect(try JSONDecoder().decode(CosFaceMargin.self, from: JSONEncoder().encode(cosFace)) == cosFace)
        #expect(try JSONDecoder().decode(SphereFaceMargin.self, from: JSONEncoder().encode(sphere)) == sphere)
    }
}
