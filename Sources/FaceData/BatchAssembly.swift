import TensorCore

// Batch assembly: a pure function of (data set, sample indices, transforms), so it gives the
// same tensor on any thread and in any order — the property that makes prefetching deterministic.

extension FaceDataset {
    /// The un-augmented images of the given samples as a network input, for evaluation.
    ///
    /// - Parameters:
    ///   - indices: sample indices, `[N]`, each in `0..<count` (repeats allowed).
    ///   - flipped: mirror every image left–right (test-time flip augmentation).
    /// - Returns: `[N, C, H, W]` row-major, values `x·2 − 1` in [−1, 1].
    /// - Precondition: every index is in `0..<count`.
    public func makeTensor(indices: [Int], flipped: Bool = false) -> Tensor {
        let transform = SampleTransform(isFlipped: flipped)
        return makeBatch(indices: indices[...],
                         transforms: [SampleTransform](repeating: transform, count: indices.count)[...]).images
    }

    /// The batch of the given samples, each with its given transform (see `Augmentation` for
    /// the formula); the `DataLoader` calls this with its drawn transforms.
    ///
    /// - Parameters:
    ///   - indices: sample indices, `[N]`, each in `0..<count`.
    ///   - transforms: one transform per sample, `[N]`.
    /// - Returns: a batch with `images` `[N, C, H, W]`, values `x·2 − 1` in [−1, 1] (−1 where a
    ///   shift leaves no source pixel).
    /// - Precondition: the counts match and every index is in `0..<count`.
    public func makeBatch(indices: [Int], transforms: [SampleTransform]) -> Batch {
        makeBatch(indices: indices[...], transforms: transforms[...])
    }

    func makeBatch(indices: ArraySlice<Int>, transforms: ArraySlice<SampleTransform>) -> Batch {
        precondition(indices.count == transforms.count,
                     "makeBatch: \(indices.count) indices but \(transforms.count) transforms")
        let height = imageSize.height, width = imageSize.width, channels = channelCount
        let plane = height * width
        // [N, C, H, W]; −1 is the fill value (black) for pixels shifted in from outside.
        var storage = [Float](repeating: -1, count: indices.count * channels * plane)
        do {  // `output` borrows `storage` until the end of this scope
            var output = storage.mutableSpan
            for (slot, (index, transform)) in zip(indices, transforms).enumerated() {
                precondition(index >= 0 && index < count, "makeBatch: sample index \(index) outside 0..<\(count)")
                let pixels = images[index].pixels  // shares storage (copy-on-write), no copy
                let source = pixels.span
                let dx = transform.offsetX, dy = transform.offsetY
                // Columns x whose source column x − dx lies inside the image.
                let columns = max(0, dx)..<min(width, width + dx)
                let length = columns.count
                guard length > 0 else { continue }
                for c in 0..<channels {  // every channel gets the same transform
                    for y in max(0, dy)..<min(height, height + dy) {
                        let sourceRow = (c * height + y - dy) * width
                        let outputStart = (slot * channels + c) * plane + y * width + columns.lowerBound
                        // A source sub-span of the row's length and one range check on the output let
                        // the optimizer drop per-element checks (forward copies vectorize: ≈ 0.8 M 92×112
                        // images/s in release; the mirrored loop stays scalar, ≈ 0.15 M/s).
                        precondition(outputStart + length <= output.count)
                        if transform.isFlipped {
                            // F(y, x) = I(y, W−1−x), so T(y, x) = I(y − dy, W−1−(x − dx)): the output row
                            // segment is the source segment below, reversed.
                            let first = sourceRow + width - columns.upperBound + dx
                            let row = source.extracting(first..<(first + length))
                            let outputLast = outputStart + length - 1
                            for i in 0..<length { output[outputLast - i] = row[i] * 2 - 1 }
                        } else {
                            let first = sourceRow + columns.lowerBound - dx
                            let row = source.extracting(first..<(first + length))
                            for i in 0..<length { output[outputStart + i] = row[i] * 2 - 1 }
                        }
                    }
                }
            }
        }
        return Batch(images: Tensor(shape: [indices.count, channels, height, width], storage: storage),
                     labels: indices.map { labels[$0] }, indices: Array(indices), transforms: Array(transforms))
    }
}
