import TensorCore
import Layers
import FaceData
import FaceEvaluation

/// The images of `dataset` as a `[N, 1, H, W]` batch in [−1, 1] (`x·2 − 1`), optionally
/// mirrored left–right.
public func imageBatch(_ dataset: FaceDataset, indices: Range<Int>, flipped: Bool = false) -> Tensor {
    precondition(!dataset.images.isEmpty && indices.lowerBound >= 0 && indices.upperBound <= dataset.images.count,
                 "imageBatch: indices \(indices) outside \(dataset.images.count) images")
    let height = dataset.images[0].height, width = dataset.images[0].width
    var storage = [Float](repeating: 0, count: indices.count * height * width)
    var offset = 0
    for index in indices {
        let pixels = dataset.images[index].pixels
        for y in 0..<height {
            let row = y * width
            for x in 0..<width {
                storage[offset + row + x] = pixels[row + (flipped ? width - 1 - x : x)] * 2 - 1
            }
        }
        offset += height * width
    }
    return Tensor(shape: [indices.count, 1, height, width], storage: storage)
}

/// The backbone's embeddings of every image of `dataset`, in inference mode.
///
/// - Parameters:
///   - flipSum: add the embedding of the horizontally mirrored image (test-time augmentation as
///     in arcface_torch's evaluation) before returning.
///   - batchSize: images per forward pass (results do not depend on it beyond fp32 round-off).
/// - Returns: `[N, D]`, not normalized.
public func embeddings(of dataset: FaceDataset, backbone: Backbone, flipSum: Bool, batchSize: Int = 50) -> Tensor {
    let count = dataset.images.count
    var result: [Float] = []
    var dimension = 0
    var start = 0
    while start < count {
        let range = start..<min(count, start + batchSize)
        var (output, _) = backbone.forward(imageBatch(dataset, indices: range), mode: .inference)
        if flipSum {
            let (mirrored, _) = backbone.forward(imageBatch(dataset, indices: range, flipped: true), mode: .inference)
            output += mirrored
        }
        dimension = output.shape[1]
        result.append(contentsOf: output.storage)
        start = range.upperBound
    }
    return Tensor(shape: [count, dimension], storage: result)
}

/// The no-learning baseline: each image's pixels in [−1, 1] as its embedding, `[N, H·W]`.
public func rawPixelEmbeddings(of dataset: FaceDataset) -> Tensor {
    let batch = imageBatch(dataset, indices: 0..<dataset.images.count)
    return batch.reshaped([batch.shape[0], batch.count / max(batch.shape[0], 1)])
}
