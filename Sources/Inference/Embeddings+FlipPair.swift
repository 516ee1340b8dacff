// Both evaluation embeddings from one loop: the original images' and the flip-summed ones
// (original + mirrored), for reporting verification with and without flip-summing side by side.
import TensorCore
import Layers
import FaceData

/// The backbone's embeddings of `count` images with and without flip-summing, from one forward
/// pass over the originals and one over the mirrored images (the cost of `flipSum: true` alone).
///
/// `flipSummed` equals `embeddings(count:backbone:flipSum: true, …)` and `original` equals
/// `flipSum: false`, bit for bit (same batches, same forward calls, `original + mirrored` added
/// in the same order).
///
/// - Parameters: as `embeddings(count:backbone:flipSum:batchSize:progress:images:)`.
/// - Returns: `original` and `flipSummed`, `[N, D]` each, not normalized.
/// - Throws: whatever `images` throws.
public func embeddingsWithAndWithoutFlip<Failure: Error>(
    count: Int, backbone: any EmbeddingBackbone, batchSize: Int = 50, progress: (Int, Int) -> Void = { _, _ in },
    images: (Range<Int>) throws(Failure) -> [FaceImage]
) throws(Failure) -> (original: Tensor, flipSummed: Tensor) {
    var original: [Float] = [], summed: [Float] = []
    let dimension = try forEachEmbeddingBatch(count: count, backbone: backbone, mirrored: true, batchSize: batchSize,
                                              progress: progress, images: images) { output, mirrored in
        var sum = output
        if let mirrored { sum += mirrored }
        original.append(contentsOf: output.storage)
        summed.append(contentsOf: sum.storage)
    }
    return (Tensor(shape: [count, dimension], storage: original), Tensor(shape: [count, dimension], storage: summed))
}

/// `embeddingsWithAndWithoutFlip(count:backbone:batchSize:progress:images:)` over every image of
/// `dataset`.
public func embeddingsWithAndWithoutFlip(of dataset: FaceDataset, backbone: any EmbeddingBackbone, batchSize: Int = 50,
                                         progress: (Int, Int) -> Void = { _, _ in }) -> (original: Tensor, flipSummed: Tensor) {
    embeddingsWithAndWithoutFlip(count: dataset.count, backbone: backbone, batchSize: batchSize, progress: progress) {
        range in Array(dataset.images[range])
    }
}
