/// A single-channel image with `Float` samples in [0, 1].
///
/// `pixels` is `[H, W]` row-major: the sample at row `y`, column `x` is `pixels[y * width + x]`.
/// A decoded PGM stores `value / maxval` for each sample, so 0 is black and 1 is white.
public struct GrayImage: Sendable, Equatable {
    /// The number of columns `W` (pixels).
    public var width: Int
    /// The number of rows `H` (pixels).
    public var height: Int
    /// The samples, `[H, W]` row-major, each in [0, 1].
    public var pixels: [Float]

    /// An image over `pixels` (`[H, W]` row-major).
    ///
    /// - Precondition: `width ≥ 1`, `height ≥ 1` and `pixels.count == width * height`.
    public init(width: Int, height: Int, pixels: [Float]) {
        precondition(width >= 1 && height >= 1, "GrayImage: size must be positive, got \(width)×\(height)")
        precondition(pixels.count == width * height,
                     "GrayImage: \(pixels.count) pixels for a \(width)×\(height) image (expected \(width * height))")
        self.width = width
        self.height = height
        self.pixels = pixels
    }

    /// A `width × height` image with every sample equal to `value`.
    public init(width: Int, height: Int, repeating value: Float = 0) {
        self.init(width: width, height: height,
                  pixels: [Float](repeating: value, count: max(width, 0) * max(height, 0)))
    }

    /// The size of the image.
    public var size: ImageSize { ImageSize(width: width, height: height) }

    /// The sample at row `y`, column `x` (bounds-checked).
    public subscript(y: Int, x: Int) -> Float {
        get {
            precondition(y >= 0 && y < height && x >= 0 && x < width,
                         "GrayImage: (row \(y), column \(x)) outside \(width)×\(height)")
            return pixels[y * width + x]
        }
        set {
            precondition(y >= 0 && y < height && x >= 0 && x < width,
                         "GrayImage: (row \(y), column \(x)) outside \(width)×\(height)")
            pixels[y * width + x] = newValue
        }
    }
}

/// The size of an image in pixels, printed as `W×H` (e.g. `92×112`).
public struct ImageSize: Sendable, Hashable, Codable, CustomStringConvertible {
    /// Columns (pixels).
    public var width: Int
    /// Rows (pixels).
    public var height: Int

    public init(width: Int, height: Int) {
        self.width = width
        self.height = height
    }

    public var description: String { "\(width)×\(height)" }
}
