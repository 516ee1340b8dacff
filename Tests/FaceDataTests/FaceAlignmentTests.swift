import Foundation
import Testing
@testable import FaceData

/// The bilinear similarity warp (hand-computed pixels, border 0, channels kept) and the
/// alignment end to end: a face moved by a known similarity is aligned from its moved landmarks
/// to the crop of the original.
@Suite struct FaceAlignmentTests {
    /// A 3 × 2 grey image (columns 0…2, rows 0…1):
    /// ```
    /// 0.1 0.2 0.3
    /// 0.4 0.5 0.6
    /// ```
    let small = FaceImage(width: 3, height: 2, pixels: [0.1, 0.2, 0.3, 0.4, 0.5, 0.6])

    func warp(_ image: FaceImage, _ transform: SimilarityTransform, width: Int, height: Int) throws -> FaceImage {
        try #require(image.warped(by: transform, size: ImageSize(width: width, height: height)))
    }

    func expectPixels(_ image: FaceImage, _ expected: [Float], tolerance: Float = 1e-6,
                      sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(image.pixels.count == expected.count, sourceLocation: sourceLocation)
        for (i, (a, e)) in zip(image.pixels, expected).enumerated() {
            #expect(abs(a - e) <= tolerance, "pixel \(i): \(a) vs \(e) (all: \(image.pixels))", sourceLocation: sourceLocation)
        }
    }

    @Test("identity at integer positions copies the pixels; a larger output is 0 outside")
    func identity() throws {
        expectPixels(try warp(small, .identity, width: 3, height: 2), small.pixels)
        expectPixels(try warp(small, .identity, width: 4, height: 3),
                     [0.1, 0.2, 0.3, 0, 0.4, 0.5, 0.6, 0, 0, 0, 0, 0])
    }

    @Test("an integer shift moves pixels; uncovered pixels are 0")
    func integerShift() throws {
        // Output (x, y) samples the source at (x − 1, y): column 0 falls outside.
        let shifted = try warp(small, SimilarityTransform(a: 1, b: 0, translation: SIMD2(1, 0)), width: 3, height: 2)
        expectPixels(shifted, [0, 0.1, 0.2, 0, 0.4, 0.5])
        // Shifted up by one row: the bottom row samples row 2, outside.
        let up = try warp(small, SimilarityTransform(a: 1, b: 0, translation: SIMD2(0, -1)), width: 3, height: 2)
        expectPixels(up, [0.4, 0.5, 0.6, 0, 0, 0])
    }

    @Test("half-pixel positions average two or four taps; taps outside count as 0")
    func halfPixel() throws {
        // Output x samples source x − 0.5: x = 0 → ½·0 + ½·I(0); x = 1 → ½·(I(0) + I(1)); …
        let half = try warp(small, SimilarityTransform(a: 1, b: 0, translation: SIMD2(0.5, 0)), width: 4, height: 2)
        expectPixels(half, [0.05, 0.15, 0.25, 0.15, 0.2, 0.45, 0.55, 0.3])
        // Both axes: (x − 0.5, y − 0.5); output (1, 1) is the mean of all four of the left 2 × 2
        // block, (0.1 + 0.2 + 0.4 + 0.5)/4 = 0.3; output (0, 0) has one tap inside: 0.1/4.
        let quarter = try warp(small, SimilarityTransform(a: 1, b: 0, translation: SIMD2(0.5, 0.5)), width: 2, height: 2)
        expectPixels(quarter, [0.025, 0.075, 0.125, 0.3])
    }

    @Test("a quarter of a pixel weights 3:1; scale 2 samples at half the coordinates")
    func fractionalAndScale() throws {
        // x − 0.25 at x = 1: 0.25·I(0) + 0.75·I(1) = 0.025 + 0.15.
        let quarter = try warp(small, SimilarityTransform(a: 1, b: 0, translation: SIMD2(0.25, 0)), width: 3, height: 1)
        expectPixels(quarter, [0.075, 0.175, 0.275])
        // Scale 2: output (x, 0) samples (x/2, 0): 0.1, 0.15, 0.2, 0.25, 0.3, then ½·0.3 + ½·0.
        let doubled = try warp(small, SimilarityTransform(a: 2, b: 0, translation: .zero), width: 6, height: 1)
        expectPixels(doubled, [0.1, 0.15, 0.2, 0.25, 0.3, 0.15])
    }

    @Test("a 90° rotation permutes pixels exactly")
    func quarterTurn() throws {
        // (x, y) ↦ (−y + 1, x): source (0, 0) → (1, 0), (0, 1) → (0, 0), (2, 1) → (0, 2).
        let turned = try warp(small, SimilarityTransform(a: 0, b: 1, translation: SIMD2(1, 0)), width: 2, height: 3)
        // Output (x, y) samples source (y, 1 − x).
        expectPixels(turned, [0.4, 0.1, 0.5, 0.2, 0.6, 0.3])
    }

    @Test("RGB stays RGB, each channel warped alike; grey stays grey")
    func channels() throws {
        let rgb = FaceImage(width: 3, height: 2, channels: 3, pixels: small.pixels + small.pixels.map { $0 * 2 } + small.pixels.map { 1 - $0 })
        let moved = try warp(rgb, SimilarityTransform(a: 1, b: 0, translation: SIMD2(0.5, 0)), width: 4, height: 2)
        #expect(moved.channels == 3)
        let grey = try warp(small, SimilarityTransform(a: 1, b: 0, translation: SIMD2(0.5, 0)), width: 4, height: 2)
        #expect(grey.channels == 1)
        let plane = 8
        expectPixels(FaceImage(width: 4, height: 2, pixels: Array(moved.pixels[0..<plane])), grey.pixels)
        expectPixels(FaceImage(width: 4, height: 2, pixels: Array(moved.pixels[plane..<2 * plane])), grey.pixels.map { $0 * 2 })
        // 1 − I blended with the 0 border: ½·0 + ½·(1 − 0.1) = 0.45 at (0, 0).
        #expect(abs(moved.pixels[2 * plane] - 0.45) < 1e-6)
        #expect(small.warped(by: SimilarityTransform(a: 0, b: 0, translation: .zero), size: ImageSize(width: 2, height: 2)) == nil)
    }

    // MARK: - End to end

    /// A face image: the AT&T faces' s1/1.pgm (92 × 112 grey).
    func face() throws -> FaceImage {
        try loadImage(path: attFacesDirectory + "/s1/1.pgm")
    }

    /// Landmarks placed in the face image by a known similarity H of the template, so that the
    /// alignment transform is exactly H⁻¹ (the landmarks need not lie on eyes for the geometry).
    static let placement = SimilarityTransform(scale: 0.7, rotation: 0.1, translation: SIMD2(12, 10))

    @Test("a face rotated by 90° and moved: the estimate is the known inverse, the crop the original's")
    func quarterTurnedFace() throws {
        let image = try face()
        let landmarks = ArcFaceTemplate.points112.map { Self.placement($0) }
        let (direct, directTransform) = try #require(image.aligned(landmarks: landmarks))
        expectTransform(directTransform, Self.placement.inverse!, tolerance: 1e-9)
        // G: 90° turn into a 160 × 140 canvas that holds the whole face with a border of zeros.
        let move = SimilarityTransform(a: 0, b: 1, translation: SIMD2(130, 20))
        let canvas = try warp(image, move, width: 160, height: 140)
        let moved = landmarks.map { move($0) }
        let (crop, transform) = try #require(canvas.aligned(landmarks: moved))
        expectTransform(transform, Self.placement.inverse!.concatenating(after: move.inverse!), tolerance: 1e-9)
        // Bilinear interpolation commutes with the grid's quarter turns: the same crop.
        #expect(crop.width == 112 && crop.height == 112 && crop.channels == 1)
        let worst = zip(crop.pixels, direct.pixels).map { abs($0 - $1) }.max() ?? .infinity
        #expect(worst < 1e-5, "largest difference \(worst)")
        #expect(direct.pixels.contains { $0 > 0.1 }, "the crop shows the face, not the border")
    }

    @Test("a face scaled ×1.6 and rotated 20°: the known inverse, and the crop within resampling error")
    func generalSimilarity() throws {
        let image = try face()
        let landmarks = ArcFaceTemplate.points112.map { Self.placement($0) }
        let (direct, _) = try #require(image.aligned(landmarks: landmarks))
        let move = SimilarityTransform(scale: 1.6, rotation: 20 * Double.pi / 180, translation: SIMD2(70, 10))
        let canvas = try warp(image, move, width: 240, height: 240)
        let moved = landmarks.map { move($0) }
        let (crop, transform) = try #require(canvas.aligned(landmarks: moved, size: 224))
        // crop = T(canvas), T = S₂₂₄ ∘ H⁻¹ ∘ G⁻¹, with S₂₂₄ the template's scaling by 2.
        let expected = SimilarityTransform(a: 2, b: 0, translation: .zero)
            .concatenating(after: Self.placement.inverse!).concatenating(after: move.inverse!)
        expectTransform(transform, expected, tolerance: 1e-9)
        // Compare with the direct 112 crop at the 224 crop's even pixels (same source points).
        var differences: [Float] = []
        for y in stride(from: 0, to: 224, by: 2) {
            for x in stride(from: 0, to: 224, by: 2) {
                differences.append(abs(crop.pixels[y * 224 + x] - direct.pixels[(y / 2) * 112 + x / 2]))
            }
        }
        let mean = differences.reduce(0, +) / Float(differences.count)
        // Two bilinear resamplings (up by 1.6, then down) blur edges a little; AT&T faces are smooth.
        #expect(mean < 0.005, "mean difference \(mean)")
        #expect(differences.sorted()[differences.count * 99 / 100] < 0.04)
    }

    func expectTransform(_ actual: SimilarityTransform, _ expected: SimilarityTransform, tolerance: Double,
                         sourceLocation: SourceLocation = #_sourceLocation) {
        for (a, e) in zip(actual.matrix.joined(), expected.matrix.joined()) {
            #expect(abs(a - e) <= tolerance * max(1, abs(e)), "\(actual.matrix) vs \(expected.matrix)", sourceLocation: sourceLocation)
        }
    }
}
