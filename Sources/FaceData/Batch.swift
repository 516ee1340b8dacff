import TensorCore

/// One mini-batch.
public struct Batch: Sendable {
    /// The images, `[N, C, H, W]` row-major, values `x·2 − 1` in [−1, 1] (x the [0, 1] pixel).
    public var images: Tensor
    /// The label of each sample, `[N]`, in `0..<K`.
    public var labels: [Int]
    /// The data set index of each sample, `[N]`.
    public var indices: [Int]
    /// The augmentation applied to each sample, `[N]`.
    public var transforms: [SampleTransform]

    /// A batch over already assembled parts.
    ///
    /// - Precondition: `images` is `[N, C, H, W]` (C ≥ 1) and the three arrays have `N` elements.
    public init(images: Tensor, labels: [Int], indices: [Int], transforms: [SampleTransform]) {
        precondition(images.rank == 4 && images.shape[1] >= 1,
                     "Batch: images must be [N, C, H, W], got \(images.shape)")
        let n = images.shape[0]
        precondition(labels.count == n && indices.count == n && transforms.count == n,
                     "Batch: \(n) images, \(labels.count) labels, \(indices.count) indices, \(transforms.count) transforms")
        self.images = images
        self.labels = labels
        self.indices = indices
        self.transforms = transforms
    }

    /// The number of samples `N`.
    public var count: Int { labels.count }
}
