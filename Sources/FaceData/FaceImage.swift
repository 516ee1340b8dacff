/// An image with one (grey) or three (red, green, blue) channels and `Float` samples in [0, 1].
///
/// `pixels` is `[C, H, W]` row-major (planar, as the network input `[N, C, H, W]`): the sample of
/// channel `c` at row `y`, column `x` is `pixels[(c * height + y) * width + x]`. With one channel
/// that is `[H, W]`, `pixels[y * width + x]`. Decoded 8-bit samples are `value / 255`, 16-bit
/// samples `value / 65535`, PGM samples `value / maxval`: 0 is black, 1 is full intensity.
public struct FaceImage: Sendable, Equatable {
    /// The number of columns `W` (pixels).
    public var width: Int
    /// The number of rows `H` (pixels).
    public var height: Int
    /// The number of channels `C`: 1 (grey) or 3 (RGB, in that order).
    public var channels: Int
    /// The samples, `[C, H, W]` row-major, each in [0, 1].
    public var pixels: [Float]

    /// An image over `pixels` (`[C, H, W]` row-major).
    ///
    /// - Precondition: `width ≥ 1`, `height ≥ 1`, `channels` is 1 or 3 and
    ///   `pixels.count == channels · height · width`.
    public init(width: Int, height: Int, channels: Int, pixels: [Float]) {
        precondition(width >= 1 && height >= 1, "FaceImage: size must be positive, got \(width)×\(height)")
        precondition(channels == 1 || channels == 3, "FaceImage: channels must be 1 or 3, got \(channels)")
        precondition(pixels.count == channels * width * height,
                     "FaceImage: \(pixels.count) samples for a \(width)×\(height)×\(channels) image (expected \(channels * width * height))")
        self.width = width
        self.height = height
        self.channels = channels
        self.pixels = pixels
    }

    /// A single-channel image over `pixels` (`[H, W]` row-major).
    ///
    /// - Precondition: `width ≥ 1`, `height ≥ 1` and `pixels.count == width · height`.
    public init(width: Int, height: Int, pixels: [Float]) {
        self.init(width: width, height: height, channels: 1, pixels: pixels)
    }

    /// A `width × height` image with `channels` channels and every sample equal to `value`.
    public init(width: Int, height: Int, channels: Int = 1, repeating value: Float = 0) {
        self.init(width: width, height: height, channels: channels,
                  pixels: [Float](repeating: value, count: max(width, 0) * max(height, 0) * max(channels, 0)))
    }

    /// The size of the image (width × height, without the channel count).
    public var size: ImageSize { ImageSize(width: width, height: height) }

    /// The sample at row `y`, column `x` of a single-channel image (bounds-checked).
    ///
    /// - Precondition: `channels == 1`.
    public subscript(y: Int, x: Int) -> Float {
        get {
            precondition(channels == 1, "FaceImage: [y, x] needs one channel, the image has \(channels)")
            return self[0, y, x]
        }
        set {
            precondition(channels == 1, "FaceImage: [y, x] needs one channel, the image has \(channels)")
            self[0, y, x] = newValue
        }
    }

    /// The sample of channel `c` at row `y`, column `x` (bounds-checked).
    public subscript(c: Int, y: Int, x: Int) -> Float {
        get {
            precondition(c >= 0 && c < channels && y >= 0 && y < height && x >= 0 && x < width,
                         "FaceImage: (channel \(c), row \(y), column \(x)) outside \(width)×\(height)×\(channels)")
            return pixels[(c * height + y) * width + x]
        }
        set {
            precondition(c >= 0 && c < channels && y >= 0 && y < height && x >= 0 && x < width,
                         "FaceImage: (channel \(c), row \(y), column \(x)) outside \(width)×\(height)×\(channels)")
            pixels[(c * height + y) * width + x] = newValue
        }
    }
}

/// Which channels a loader delivers.
public enum ColorMode: String, Sendable, Equatable, Codable, CaseIterable {
    /// As decoded: 1 channel for grey files (PGM, grey JPEG/PNG), 3 for colour ones.
    case asStored
    /// One channel (colour images are converted, see `FaceImage.converted(to:)`).
    case grayscale
    /// Three channels (grey images are replicated, see `FaceImage.converted(to:)`).
    case rgb
}

extension FaceImage {
    /// The image with the channels `mode` asks for.
    ///
    /// Concretely, grey → RGB copies the grey plane into R, G and B; RGB → grey is the ITU-R
    /// BT.601 luma of the encoded (gamma-compressed) values, as PIL's `convert("L")` and OpenCV's
    /// `COLOR_RGB2GRAY` compute it (both then round to 8 bits; here the value stays a `Float`):
    /// ```
    /// Y = 0.299·R + 0.587·G + 0.114·B
    /// ```
    /// `.asStored`, or a mode the image already has, returns the image unchanged.
    public func converted(to mode: ColorMode) -> FaceImage {
        let plane = width * height
        switch (mode, channels) {
        case (.grayscale, 3):
            var grey = [Float](repeating: 0, count: plane)
            for i in 0..<plane {
                grey[i] = 0.299 * pixels[i] + 0.587 * pixels[plane + i] + 0.114 * pixels[2 * plane + i]
            }
            return FaceImage(width: width, height: height, channels: 1, pixels: grey)
        case (.rgb, 1):
            return FaceImage(width: width, height: height, channels: 3, pixels: pixels + pixels + pixels)
        default:
            return self
        }
    }

    /// The image scaled by bilinear interpolation to `size` (each axis independently).
    ///
    /// Concretely, with pixel centres at half-integers (`align_corners = False`, as OpenCV's
    /// `INTER_LINEAR` and PyTorch's `interpolate(mode: "bilinear")`), output pixel `(y, x)` samples
    /// the source at
    /// ```
    /// sy = (y + 0.5)·H/H' − 0.5,   sx = (x + 0.5)·W/W' − 0.5     (clamped to [0, H−1], [0, W−1])
    /// ```
    /// and blends the four surrounding pixels linearly in `sx` and `sy`. No anti-aliasing filter
    /// is applied: shrinking by more than 2× skips source pixels (as OpenCV's `INTER_LINEAR`).
    /// The same size returns the image unchanged.
    ///
    /// - Precondition: `size.width ≥ 1` and `size.height ≥ 1`.
    public func resizedBilinear(to size: ImageSize) -> FaceImage {
        precondition(size.width >= 1 && size.height >= 1, "resizedBilinear: size must be positive, got \(size)")
        if size == self.size { return self }
        let outW = size.width, outH = size.height
        let scaleY = Double(height) / Double(outH), scaleX = Double(width) / Double(outW)
        // Per output column/row: the two source indices and the weight of the second.
        func taps(_ count: Int, _ scale: Double, _ sourceCount: Int) -> [(Int, Int, Float)] {
            (0..<count).map { i in
                let s = min(max((Double(i) + 0.5) * scale - 0.5, 0), Double(sourceCount - 1))
                let i0 = Int(s.rounded(.down))
                let i1 = min(i0 + 1, sourceCount - 1)
                return (i0, i1, Float(s - Double(i0)))
            }
        }
        let columns = taps(outW, scaleX, width), rows = taps(outH, scaleY, height)
        var output = [Float](repeating: 0, count: channels * outH * outW)  // [C, H', W']
        for c in 0..<channels {
            let source = c * height * width
            for (y, (y0, y1, wy)) in rows.enumerated() {
                let r0 = source + y0 * width, r1 = source + y1 * width
                let out = (c * outH + y) * outW
                for (x, (x0, x1, wx)) in columns.enumerated() {
                    let top = pixels[r0 + x0] + (pixels[r0 + x1] - pixels[r0 + x0]) * wx
                    let bottom = pixels[r1 + x0] + (pixels[r1 + x1] - pixels[r1 + x0]) * wx
                    output[out + x] = top + (bottom - top) * wy
                }
            }
        }
        return FaceImage(width: outW, height: outH, channels: channels, pixels: output)
    }

    /// The centred `size` window of the image: rows from `⌊(H − H')/2⌋`, columns from
    /// `⌊(W − W')/2⌋` (for an odd difference the extra pixel is cut at the bottom/right).
    ///
    /// - Precondition: `size` fits inside the image.
    public func centerCropped(to size: ImageSize) -> FaceImage {
        precondition(size.width >= 1 && size.height >= 1 && size.width <= width && size.height <= height,
                     "centerCropped: \(size) does not fit inside \(self.size)")
        if size == self.size { return self }
        let top = (height - size.height) / 2, left = (width - size.width) / 2
        var output: [Float] = []
        output.reserveCapacity(channels * size.width * size.height)
        for c in 0..<channels {
            for y in top..<(top + size.height) {
                let start = (c * height + y) * width + left
                output.append(contentsOf: pixels[start..<(start + size.width)])
            }
        }
        return FaceImage(width: size.width, height: size.height, channels: channels, pixels: output)
    }

    /// The image scaled (bilinear, aspect ratio kept) until it covers `size`, then centre-cropped to
    /// it: the usual "resize the shorter side, crop the centre" preparation of a network input.
    ///
    /// Concretely, with `s = max(W'/W, H'/H)`, the image is resized to
    /// `(max(W', round(W·s)), max(H', round(H·s)))` by `resizedBilinear(to:)`, then cropped by
    /// `centerCropped(to:)`. An image already of `size` is returned unchanged.
    public func resizedAndCropped(to size: ImageSize) -> FaceImage {
        if size == self.size { return self }
        let scale = max(Double(size.width) / Double(width), Double(size.height) / Double(height))
        let scaled = ImageSize(width: max(size.width, Int((Double(width) * scale).rounded())),
                               height: max(size.height, Int((Double(height) * scale).rounded())))
        return resizedBilinear(to: scaled).centerCropped(to: size)
    }
}
