import TensorCore
import Layers
import FaceData
import FaceEvaluation

/// The backbone's embeddings of every image of `dataset`, in inference mode.
///
/// - Parameters:
///   - flipSum: add the embedding of the horizontally mirrored image (test-time augmentation as
///     in arcface_torch's evaluation) before returning.
///   - batchSize: images per forward pass (results do not depend on it beyond fp32 round-off).
///   - progress: called after each batch with (images done, total).
/// - Returns: `[N, D]`, not normalized.
public func embeddings(of dataset: FaceDataset, backbone: Backbone, flipSum: Bool, batchSize: Int = 50,
                       progress: (Int, Int) -> Void = { _, _ in }) -> Tensor {
    let count = dataset.images.count
    var result: [Float] = []
    var dimension = 0
    var start = 0
    while start < count {
        let range = start..<min(count, start + batchSize)
        var (output, _) = backbone.forward(dataset.makeTensor(indices: Array(range)), mode: .inference)
        if flipSum {
            let (mirrored, _) = backbone.forward(dataset.makeTensor(indices: Array(range), flipped: true), mode: .inference)
            output += mirrored
        }
        dimension = output.shape[1]
        result.append(contentsOf: output.storage)
        start = range.upperBound
        progress(start, count)
    }
    return Tensor(shape: [count, dimension], storage: result)
}

/// The no-learning baseline: each image's pixels in [−1, 1] as its embedding, `[N, H·W]`.
public func rawPixelEmbeddings(of dataset: FaceDataset) -> Tensor {
    let batch = dataset.makeTensor(indices: Array(0..<dataset.count))
    return batch.reshaped([batch.shape[0], batch.count / max(batch.shape[0], 1)])
}
