import Foundation
import Testing
@testable import FaceData

/// `SimilarityTransform.estimate`: the issue's float64 test vectors (the transform maps the
/// source landmarks onto the template), the closed form against a brute-force check of
/// optimality, and the degenerate cases.
@Suite struct SimilarityTransformTests {
    /// `|actual − expected| ≤ tolerance` for each of the six matrix entries.
    func expectMatrix(_ transform: SimilarityTransform?, _ expected: [[Double]], tolerance: Double,
                      sourceLocation: SourceLocation = #_sourceLocation) {
        guard let transform else {
            Issue.record("no transform", sourceLocation: sourceLocation)
            return
        }
        let m = transform.matrix
        for row in 0..<2 {
            for column in 0..<3 {
                #expect(abs(m[row][column] - expected[row][column]) <= tolerance,
                        "[\(row)][\(column)]: \(m[row][column]) vs \(expected[row][column]) (matrix \(m))",
                        sourceLocation: sourceLocation)
            }
        }
    }

    @Test("the template onto itself is the identity")
    func templateIsIdentity() {
        let transform = SimilarityTransform.estimate(from: ArcFaceTemplate.points112, to: ArcFaceTemplate.points112)
        expectMatrix(transform, [[1, 0, 0], [0, 1, 0]], tolerance: 1e-12)
    }

    @Test("the template ×2, rotated 15°, shifted (100, 50) → the inverse transform")
    func scaledRotatedShifted() {
        // source = 2·R(15°)·template + (100, 50); the estimate must undo it:
        // 0.5·R(−15°) = [[0.5 cos 15°, 0.5 sin 15°], [−0.5 sin 15°, 0.5 cos 15°]].
        let forward = SimilarityTransform(scale: 2, rotation: 15 * Double.pi / 180, translation: SIMD2(100, 50))
        let source = ArcFaceTemplate.points112.map { forward($0) }
        let transform = SimilarityTransform.estimate(from: source, to: ArcFaceTemplate.points112)
        expectMatrix(transform, [[0.482963, 0.129410, -54.766767], [-0.129410, 0.482963, -11.207193]], tolerance: 1e-6)
        // And exactly the inverse of the forward transform (to rounding).
        expectMatrix(transform, forward.inverse!.matrix, tolerance: 1e-12)
    }

    static let detectedLandmarks: [SIMD2<Double>] = [
        SIMD2(251.2, 302.5), SIMD2(323.7, 298.1), SIMD2(290.3, 345.0), SIMD2(262.4, 390.8), SIMD2(318.9, 387.6),
    ]

    @Test("detected landmarks → the issue's matrix (insightface's float32 template: 1e-6)")
    func detectedLandmarksFloat32Template() {
        // insightface stores the template as float32; the issue's vector was computed with it.
        let template32 = ArcFaceTemplate.points112.map { SIMD2(Double(Float($0.x)), Double(Float($0.y))) }
        let transform = SimilarityTransform.estimate(from: Self.detectedLandmarks, to: template32)
        expectMatrix(transform, [[0.470639, -0.018303, -73.818835], [0.018303, 0.470639, -95.670515]], tolerance: 1e-6)
    }

    @Test("detected landmarks → the issue's matrix (the Double template: a, b to 1e-6, t to 1e-5)")
    func detectedLandmarksDoubleTemplate() {
        // The decimal (Double) template differs from the float32 one by < 2e-6 px, which moves
        // the translation by ≈ 5e-6 px (−73.818840 here vs −73.818835).
        let transform = SimilarityTransform.estimate(from: Self.detectedLandmarks, to: ArcFaceTemplate.points112)
        #expect(abs((transform?.a ?? .nan) - 0.470639) <= 1e-6)
        #expect(abs((transform?.b ?? .nan) - 0.018303) <= 1e-6)
        expectMatrix(transform, [[0.470639, -0.018303, -73.818835], [0.018303, 0.470639, -95.670515]], tolerance: 1e-5)
    }

    @Test("the estimate is the least-squares optimum: no nearby similarity has a smaller residual")
    func leastSquaresOptimum() throws {
        let source = Self.detectedLandmarks, target = ArcFaceTemplate.points112
        let best = try #require(SimilarityTransform.estimate(from: source, to: target))
        func residual(_ t: SimilarityTransform) -> Double {
            zip(source, target).reduce(0) { sum, pair in sum + ((t(pair.0) - pair.1) * (t(pair.0) - pair.1)).sum() }
        }
        let optimum = residual(best)
        for delta in [1e-4, -1e-4] {
            let perturbed = [
                SimilarityTransform(a: best.a + delta, b: best.b, translation: best.translation),
                SimilarityTransform(a: best.a, b: best.b + delta, translation: best.translation),
                SimilarityTransform(a: best.a, b: best.b, translation: best.translation + SIMD2(delta * 100, 0)),
                SimilarityTransform(a: best.a, b: best.b, translation: best.translation + SIMD2(0, delta * 100)),
            ]
            for t in perturbed { #expect(residual(t) > optimum, "\(t.matrix): \(residual(t)) ≤ \(optimum)") }
        }
    }

    @Test("a mirrored point set still gives a rotation (no reflection), as skimage's estimator")
    func noReflection() throws {
        let mirrored = ArcFaceTemplate.points112.map { SIMD2(112 - $0.x, $0.y) }
        let transform = try #require(SimilarityTransform.estimate(from: mirrored, to: ArcFaceTemplate.points112))
        // A proper similarity: the linear part [[a, −b], [b, a]] has determinant a² + b² > 0.
        #expect(transform.a * transform.a + transform.b * transform.b > 0)
        #expect(transform.matrix[0][1] == -transform.matrix[1][0] && transform.matrix[0][0] == transform.matrix[1][1])
    }

    @Test("points without spread give no transform")
    func degenerate() {
        let same = [SIMD2<Double>](repeating: SIMD2(123.4, 56.7), count: 5)
        #expect(SimilarityTransform.estimate(from: same, to: ArcFaceTemplate.points112) == nil)
        #expect(SimilarityTransform.hasNoSpread(same))
        #expect(SimilarityTransform.hasNoSpread([SIMD2(0, 0), SIMD2(0, 0), SIMD2(0, 0), SIMD2(0, 0), SIMD2(0, 0)]))
        #expect(SimilarityTransform.hasNoSpread([SIMD2(1, 2), SIMD2(1, 2), SIMD2(1, 2), SIMD2(1, 2), SIMD2(.nan, 2)]))
        #expect(!SimilarityTransform.hasNoSpread(ArcFaceTemplate.points112))
        #expect(!SimilarityTransform.hasNoSpread([SIMD2(5, 5), SIMD2(5, 5), SIMD2(5, 5), SIMD2(5, 5), SIMD2(5, 6)]))
    }

    @Test("inverse and composition")
    func inverseAndComposition() throws {
        let t = SimilarityTransform(scale: 1.7, rotation: -0.4, translation: SIMD2(-3, 8))
        let inverse = try #require(t.inverse)
        let identity = inverse.concatenating(after: t)
        #expect(abs(identity.a - 1) < 1e-12 && abs(identity.b) < 1e-12)
        #expect(abs(identity.translation.x) < 1e-12 && abs(identity.translation.y) < 1e-12)
        let p = SIMD2(12.5, -7.25)
        let q = t(p)
        // By hand: a = 1.7 cos(−0.4), b = 1.7 sin(−0.4); q = (a·x − b·y − 3, b·x + a·y + 8).
        let a = 1.7 * cos(-0.4), b = 1.7 * sin(-0.4)
        #expect(abs(q.x - (a * 12.5 - b * -7.25 - 3)) < 1e-12 && abs(q.y - (b * 12.5 + a * -7.25 + 8)) < 1e-12)
        #expect(abs(t.scale - 1.7) < 1e-12 && abs(t.rotation + 0.4) < 1e-12)
        #expect(SimilarityTransform(a: 0, b: 0, translation: SIMD2(1, 1)).inverse == nil)
    }

    @Test("template positions: 112·k scaled by k; 128·k scaled by k and shifted right by 8·k; others refused")
    func templateSizes() throws {
        let t224 = try #require(ArcFaceTemplate.points(size: 224))
        #expect(t224[0] == SIMD2(38.2946 * 2, 51.6963 * 2))
        let t128 = try #require(ArcFaceTemplate.points(size: 128))
        #expect(t128[0] == SIMD2(38.2946 + 8, 51.6963))
        let t256 = try #require(ArcFaceTemplate.points(size: 256))
        #expect(t256[4] == SIMD2(70.7299 * 2 + 16, 92.2041 * 2))
        #expect(ArcFaceTemplate.points(size: 112) == ArcFaceTemplate.points112)
        for size in [0, -112, 100, 150, 113] { #expect(ArcFaceTemplate.points(size: size) == nil, "\(size)") }
        // A crop is allocated whole: 1120000 (a multiple of 112) asked for 5 TB and trapped.
        #expect(ArcFaceTemplate.isSupported(size: 4096) && ArcFaceTemplate.isSupported(size: 3584))
        for size in [4224, 1_120_000, 112 << 50] { #expect(!ArcFaceTemplate.isSupported(size: size), "\(size)") }
    }
}
