import TensorCore

/// Images as a network input, for evaluation over image lists that are not a `FaceDataset`
/// (verification `.bin` sets, LFW pairs, RecordIO samples).
///
/// - Parameters:
///   - images: `[N]` images of one size and channel count.
///   - flipped: mirror every image left–right (test-time flip augmentation).
/// - Returns: `[N, C, H, W]` row-major, values `x·2 − 1` in [−1, 1].
/// - Precondition: `images` is not empty; all images share size and channel count.
public func makeInputTensor(images: [FaceImage], flipped: Bool = false) -> Tensor {
    let dataset = FaceDataset(identities: ["images"], images: images,
                              labels: [Int](repeating: 0, count: images.count),
                              paths: images.indices.map { "image \($0)" })
    return dataset.makeTensor(indices: Array(images.indices), flipped: flipped)
}

extension FaceImage {
    /// The image prepared for a network whose input is `[channels, size.height, size.width]`:
    /// converted to grey (1 channel) or RGB (3), then `resizedAndCropped(to:)`.
    ///
    /// - Precondition: `channels` is 1 or 3.
    public func prepared(channels: Int, size: ImageSize) -> FaceImage {
        precondition(channels == 1 || channels == 3, "prepared: channels must be 1 or 3, got \(channels)")
        return converted(to: channels == 1 ? .grayscale : .rgb).resizedAndCropped(to: size)
    }
}
