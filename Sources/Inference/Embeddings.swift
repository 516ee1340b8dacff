// The one embedding loop of the package (`forEachEmbeddingBatch`): images in batches through the backbone in inference
// mode, optionally adding the mirrored images' embeddings. Evaluation (`embeddings(of:)`),
// `arcface embed` (`embedImages`) and the fixed-pairs protocols (`embeddings(count:image:)`) all
// call `embeddings(count:backbone:flipSum:batchSize:progress:images:)`, so they give the same bits
// for the same images.
import TensorCore
import Layers
import FaceData

/// The backbone's embeddings of `count` images, `batchSize` at a time, in inference mode.
///
/// For each batch the input is `makeInputTensor(images:)` (`[B, C, H, W]`, values in [−1, 1]);
/// with `flipSum` the embedding of the mirrored batch is added to the original's
/// (`original += mirrored`, arcface_torch's test-time augmentation).
///
/// - Parameters:
///   - count: the number of images `N` (0 gives `[0, D]`).
///   - backbone: the embedding network; its `configuration.embeddingDimension` is `D`.
///   - flipSum: add the embedding of each horizontally mirrored image.
///   - batchSize: images per forward pass, ≥ 1 (results do not depend on it beyond fp32 round-off).
///   - progress: called after each batch with (images done, total).
///   - images: the images of the indices `range`, in order, each of the backbone's input size
///     and channel count; called once per batch, so only one batch is in memory at a time.
/// - Returns: `[N, D]`, not normalized.
/// - Throws: whatever `images` throws (nothing is returned then).
public func embeddings<Failure: Error>(count: Int, backbone: any EmbeddingBackbone, flipSum: Bool, batchSize: Int = 50,
                                       progress: (Int, Int) -> Void = { _, _ in },
                                       images: (Range<Int>) throws(Failure) -> [FaceImage]) throws(Failure) -> Tensor {
    var result: [Float] = []
    let dimension = try forEachEmbeddingBatch(count: count, backbone: backbone, mirrored: flipSum, batchSize: batchSize,
                                              progress: progress, images: images) { original, mirrored in
        var output = original
        if let mirrored { output += mirrored }
        result.append(contentsOf: output.storage)
    }
    return Tensor(shape: [count, dimension], storage: result)
}

/// The batch loop behind every embedding function: `count` images, `batchSize` at a time,
/// through the backbone in inference mode; `body` gets each batch's `[B, D]` embedding and, with
/// `mirrored`, that of the mirrored batch. Returns `D` (the backbone's configured dimension for
/// `count` 0).
func forEachEmbeddingBatch<Failure: Error>(
    count: Int, backbone: any EmbeddingBackbone, mirrored: Bool, batchSize: Int, progress: (Int, Int) -> Void,
    images: (Range<Int>) throws(Failure) -> [FaceImage], body: (Tensor, Tensor?) -> Void
) throws(Failure) -> Int {
    precondition(count >= 0 && batchSize >= 1, "embeddings: count \(count), batchSize \(batchSize)")
    var dimension = backbone.configuration.embeddingDimension
    var start = 0
    while start < count {
        let range = start..<min(count, start + batchSize)
        let batch = try images(range)
        let (output, _) = backbone.forward(makeInputTensor(images: batch), mode: .inference)
        let flipped = mirrored ? backbone.forward(makeInputTensor(images: batch, flipped: true), mode: .inference).0 : nil
        dimension = output.shape[1]
        body(output, flipped)
        start = range.upperBound
        progress(start, count)
    }
    return dimension
}

/// The backbone's embeddings of every image of `dataset`, in inference mode (see
/// `embeddings(count:backbone:flipSum:batchSize:progress:images:)`).
///
/// - Parameters:
///   - flipSum: add the embedding of the horizontally mirrored image (test-time augmentation as
///     in arcface_torch's evaluation) before returning.
///   - batchSize: images per forward pass (results do not depend on it beyond fp32 round-off).
///   - progress: called after each batch with (images done, total).
/// - Returns: `[N, D]`, not normalized.
public func embeddings(of dataset: FaceDataset, backbone: any EmbeddingBackbone, flipSum: Bool, batchSize: Int = 50,
                       progress: (Int, Int) -> Void = { _, _ in }) -> Tensor {
    embeddings(count: dataset.count, backbone: backbone, flipSum: flipSum, batchSize: batchSize, progress: progress) {
        range in Array(dataset.images[range])
    }
}

/// Embeddings of images produced on demand, a batch at a time, so a protocol's images are never
/// all decoded at once.
///
/// - Parameters:
///   - count: the number of images `N`, ≥ 1.
///   - image: image `i`, already of the backbone's input size and channel count.
///   - flipSum: add the embedding of the mirrored image (as `embeddings(of:backbone:flipSum:)`).
/// - Returns: `[N, D]`, not normalized.
/// - Throws: the first error of `image`.
public func embeddings(count: Int, backbone: any EmbeddingBackbone, flipSum: Bool, batchSize: Int = 50,
                       image: (Int) throws(ImageDecodingError) -> FaceImage) throws(ImageDecodingError) -> Tensor {
    precondition(count >= 1 && batchSize >= 1, "embeddings: count \(count), batchSize \(batchSize)")
    return try embeddings(count: count, backbone: backbone, flipSum: flipSum, batchSize: batchSize) {
        range throws(ImageDecodingError) in
        var images: [FaceImage] = []
        for index in range { images.append(try image(index)) }
        return images
    }
}

/// The no-learning baseline: each image's pixels in [−1, 1] as its embedding, `[N, H·W]`.
public func rawPixelEmbeddings(of dataset: FaceDataset) -> Tensor {
    let batch = dataset.makeTensor(indices: Array(0..<dataset.count))
    return batch.reshaped([batch.shape[0], batch.count / max(batch.shape[0], 1)])
}
