/// Random training-time transforms applied by `DataLoader`, drawn per sample from its seeded stream.
///
/// Concretely, for an input image `I` (`[H, W]`), the loader draws `flip` (true with
/// probability 0.5 when `horizontalFlip` is on) and the offsets `dx, dy`, each uniform over the
/// integers `−maxTranslation...maxTranslation`, and produces
/// ```
/// F(y, x) = flip ? I(y, W−1−x) : I(y, x)          // mirror first,
/// T(y, x) = F(y − dy, x − dx)  if inside, else 0   // then shift right by dx, down by dy
/// ```
/// Pixels shifted in from outside are black: 0 in the [0, 1] image, −1 in the batch tensor
/// (after `x·2 − 1`), which matches the dark background of the AT&T faces.
public struct Augmentation: Codable, Sendable, Equatable {
    /// Mirror each image left–right with probability 0.5.
    public var horizontalFlip: Bool
    /// The largest shift per axis, in pixels (0 disables translation); shifts are uniform in
    /// `−maxTranslation...maxTranslation`, independently for x and y.
    public var maxTranslation: Int

    /// - Parameters:
    ///   - horizontalFlip: mirror with probability 0.5 (default on).
    ///   - maxTranslation: largest shift per axis in pixels, ≥ 0 (default 4).
    public init(horizontalFlip: Bool = true, maxTranslation: Int = 4) {
        self.horizontalFlip = horizontalFlip
        self.maxTranslation = maxTranslation
    }

    /// No augmentation: every sample is used as decoded.
    public static let none = Augmentation(horizontalFlip: false, maxTranslation: 0)

    /// The default training augmentation: flip with p = 0.5, shifts up to ±4 pixels.
    public static let standard = Augmentation()
}

/// The transform applied to one sample of a batch (see `Augmentation` for the formula).
public struct SampleTransform: Sendable, Equatable, Codable {
    /// Whether the image was mirrored left–right (before shifting).
    public var isFlipped: Bool
    /// Shift to the right, in pixels (negative: to the left).
    public var offsetX: Int
    /// Shift downwards, in pixels (negative: upwards).
    public var offsetY: Int

    public init(isFlipped: Bool = false, offsetX: Int = 0, offsetY: Int = 0) {
        self.isFlipped = isFlipped
        self.offsetX = offsetX
        self.offsetY = offsetY
    }

    /// No change.
    public static let identity = SampleTransform()
}
