// Five-point face alignment: the ArcFace landmark template, the crop size rule, and the
// bilinear similarity warp that produces an aligned crop.
//
// Coordinates are image pixels, x to the right, y down, the centre of pixel (column i, row j) at
// (i, j) (OpenCV's convention).

/// The five-point landmark template of ArcFace crops and where it sits in a crop of a given size.
///
/// The points, in a 112 × 112 crop, in this order (left/right as seen in the image, "left" = the
/// point with the smaller x, as face detectors such as RetinaFace and MTCNN report them):
/// ```
/// left eye           (38.2946, 51.6963)
/// right eye          (73.5318, 51.5014)
/// nose tip           (56.0252, 71.7366)
/// left mouth corner  (41.5493, 92.3655)
/// right mouth corner (70.7299, 92.2041)
/// ```
/// This is the template of Deng et al., "ArcFace: Additive Angular Margin Loss for Deep Face
/// Recognition" (CVPR 2019), as insightface ships it (`arcface_dst` in
/// `python-package/insightface/utils/face_align.py`), which stores it in `float32`; here it is
/// the decimal values in `Double` (they differ from the `float32` ones by < 2·10⁻⁶ pixel).
public enum ArcFaceTemplate {
    /// The five points in a 112 × 112 crop, pixels, `[5]` (order above).
    public static let points112: [SIMD2<Double>] = [
        SIMD2(38.2946, 51.6963), SIMD2(73.5318, 51.5014), SIMD2(56.0252, 71.7366),
        SIMD2(41.5493, 92.3655), SIMD2(70.7299, 92.2041),
    ]

    /// The crop sizes (pixels, the crop is square) that have a template position.
    ///
    /// insightface's rule (`estimate_norm`): a multiple of 112, `112·k`, scales the template by
    /// k; otherwise a multiple of 128, `128·k`, scales it by k and shifts it right by `8·k`
    /// pixels (the 112-wide face centred horizontally in a 128-wide crop; vertically it is not
    /// moved). Other sizes have no agreed template position and are refused, as are sizes above
    /// `largestSize` (a crop is allocated whole: `--size 1120000` asked for 5 TB and trapped).
    public static func isSupported(size: Int) -> Bool {
        size > 0 && size <= largestSize && (size % 112 == 0 || size % 128 == 0)
    }

    /// The largest crop side accepted, pixels (a 4096 × 4096 RGB crop is 192 MiB of `Float`).
    public static let largestSize = 4096

    /// The five template points in a `size × size` crop, pixels, `[5]`; nil for a size
    /// `isSupported(size:)` refuses.
    public static func points(size: Int) -> [SIMD2<Double>]? {
        guard isSupported(size: size) else { return nil }
        if size % 112 == 0 {
            let ratio = Double(size) / 112
            return points112.map { $0 * ratio }
        }
        let ratio = Double(size) / 128
        return points112.map { $0 * ratio + SIMD2(8 * ratio, 0) }
    }
}

extension FaceImage {
    /// The `size` image whose pixel at `p` is this image sampled at `transform⁻¹(p)`: the image
    /// moved by `transform` (which maps this image's coordinates to the output's), as
    /// `cv2.warpAffine(image, transform.matrix, size, flags=INTER_LINEAR,
    /// borderMode=BORDER_CONSTANT, borderValue=0)` computes it.
    ///
    /// Concretely, output pixel `(x, y)` of channel `c` is
    /// ```
    /// (sx, sy) = transform⁻¹(x, y),   x0 = ⌊sx⌋, y0 = ⌊sy⌋, fx = sx − x0, fy = sy − y0
    /// out = (1−fy)·((1−fx)·I(x0, y0) + fx·I(x0+1, y0)) + fy·((1−fx)·I(x0, y0+1) + fx·I(x0+1, y0+1))
    /// ```
    /// with `I` = 0 outside the image (each of the four taps separately, so edges blend towards
    /// 0). Positions are computed in `Double`; OpenCV quantizes them to 1/32 pixel, so its 8-bit
    /// results can differ by one level. The output has this image's channels.
    ///
    /// - Parameters:
    ///   - transform: this image's pixel coordinates → the output's.
    ///   - size: the output's width and height, pixels.
    /// - Returns: nil when `transform` has scale 0 (it has no inverse).
    /// - Precondition: `size.width ≥ 1` and `size.height ≥ 1`.
    public func warped(by transform: SimilarityTransform, size: ImageSize) -> FaceImage? {
        precondition(size.width >= 1 && size.height >= 1, "warped(by:size:): size must be positive, got \(size)")
        guard let inverse = transform.inverse else { return nil }
        let outW = size.width, outH = size.height, plane = width * height
        var output = [Float](repeating: 0, count: channels * outH * outW)  // [C, H', W']
        for y in 0..<outH {
            for x in 0..<outW {
                let source = inverse(SIMD2(Double(x), Double(y)))
                guard source.x > -1, source.y > -1, source.x < Double(width), source.y < Double(height) else { continue }
                let x0 = Int(source.x.rounded(.down)), y0 = Int(source.y.rounded(.down))
                let fx = source.x - Double(x0), fy = source.y - Double(y0)
                // The four taps' weights, 0 for a tap outside the image.
                let inX0 = x0 >= 0, inX1 = x0 + 1 < width, inY0 = y0 >= 0, inY1 = y0 + 1 < height
                let w00 = inX0 && inY0 ? Float((1 - fx) * (1 - fy)) : 0
                let w10 = inX1 && inY0 ? Float(fx * (1 - fy)) : 0
                let w01 = inX0 && inY1 ? Float((1 - fx) * fy) : 0
                let w11 = inX1 && inY1 ? Float(fx * fy) : 0
                let cx0 = max(x0, 0), cx1 = min(x0 + 1, width - 1)
                let cy0 = max(y0, 0), cy1 = min(y0 + 1, height - 1)
                for c in 0..<channels {
                    let base = c * plane
                    let value = w00 * pixels[base + cy0 * width + cx0] + w10 * pixels[base + cy0 * width + cx1]
                        + w01 * pixels[base + cy1 * width + cx0] + w11 * pixels[base + cy1 * width + cx1]
                    output[(c * outH + y) * outW + x] = value
                }
            }
        }
        return FaceImage(width: outW, height: outH, channels: channels, pixels: output)
    }

    /// The ArcFace crop of the face whose five landmarks are `landmarks`: the similarity
    /// transform from `landmarks` to `ArcFaceTemplate.points(size:)` estimated by least squares
    /// (`SimilarityTransform.estimate(from:to:)`), then `warped(by:size:)` into a
    /// `size × size` image with this image's channels.
    ///
    /// - Parameters:
    ///   - landmarks: left eye, right eye, nose tip, left and right mouth corner in this image,
    ///     pixels, `[5]` (see `ArcFaceTemplate`).
    ///   - size: the crop's side, pixels: `112·k` or `128·k` (`ArcFaceTemplate.isSupported(size:)`).
    /// - Returns: the crop and the transform (this image → crop), or nil when the landmarks have
    ///   no spread or give a transform of scale 0.
    /// - Precondition: `landmarks.count == 5` and `ArcFaceTemplate.isSupported(size: size)`.
    public func aligned(landmarks: [SIMD2<Double>], size: Int = 112)
        -> (image: FaceImage, transform: SimilarityTransform)?
    {
        precondition(landmarks.count == 5, "aligned(landmarks:size:): need 5 landmarks, got \(landmarks.count)")
        guard let template = ArcFaceTemplate.points(size: size) else {
            preconditionFailure("aligned(landmarks:size:): no template position for size \(size) (use 112·k or 128·k)")
        }
        guard let transform = SimilarityTransform.estimate(from: landmarks, to: template),
              let crop = warped(by: transform, size: ImageSize(width: size, height: size)) else { return nil }
        return (crop, transform)
    }
}
