import FaceData
import TensorCore
import Testing

/// Expected batch entry for sample `image` under `transform`, computed directly from the
/// definition: T(y, x) = F(y − dy, x − dx) inside the image, else black; F mirrors columns when
/// flipped; batch value = 2·pixel − 1.
private func expectedValue(_ image: FaceImage, _ transform: SampleTransform, y: Int, x: Int) -> Float {
    let sy = y - transform.offsetY, sx = x - transform.offsetX
    guard sy >= 0, sy < image.height, sx >= 0, sx < image.width else { return -1 }
    let column = transform.isFlipped ? image.width - 1 - sx : sx
    return image[sy, column] * 2 - 1
}

/// The `[H, W]` plane of sample `n` of an `[N, 1, H, W]` tensor.
private func plane(_ tensor: Tensor, _ n: Int) -> [Float] {
    let size = tensor.shape[2] * tensor.shape[3]
    return Array(tensor.storage[(n * size)..<((n + 1) * size)])
}

private func loader(_ dataset: FaceDataset = syntheticDataset(), batchSize: Int = 5, shuffle: Bool = true,
                    augmentation: Augmentation = .none, dropLast: Bool = false, seed: UInt64 = 42,
                    prefetch: Bool = false) throws -> DataLoader {
    try DataLoader(dataset: dataset, batchSize: batchSize, shuffle: shuffle, augmentation: augmentation,
                   dropLast: dropLast, seed: seed, prefetch: prefetch)
}

/// Flip and shifts up to ±2 pixels: the standard augmentation scaled to the 5×4 synthetic images.
private let small = Augmentation(horizontalFlip: true, maxTranslation: 2)

/// Whether two epochs are identical in every field.
private func same(_ a: [Batch], _ b: [Batch]) -> Bool {
    a.count == b.count && zip(a, b).allSatisfy { x, y in
        x.images == y.images && x.labels == y.labels && x.indices == y.indices && x.transforms == y.transforms
    }
}

@Suite struct DataLoaderTests {
    @Test func batchShapes() throws {
        // 12 samples of 5×4 in batches of 5: 5, 5, 2 (or 5, 5 with dropLast).
        let keep = try loader(batchSize: 5, dropLast: false)
        #expect(keep.batchesPerEpoch == 3)
        let batches = keep.batches()
        #expect(batches.map(\.images.shape) == [[5, 1, 4, 5], [5, 1, 4, 5], [2, 1, 4, 5]])
        #expect(batches.map(\.labels.count) == [5, 5, 2])
        #expect(batches.map(\.transforms.count) == [5, 5, 2])

        let drop = try loader(batchSize: 5, dropLast: true)
        #expect(drop.batchesPerEpoch == 2)
        let dropped = drop.batches()
        #expect(dropped.map(\.images.shape) == [[5, 1, 4, 5], [5, 1, 4, 5]])
        #expect(Set(dropped.flatMap(\.indices)).count == 10)

        let exact = try loader(batchSize: 12, dropLast: true)
        #expect(exact.batchesPerEpoch == 1 && exact.batches().map(\.count) == [12])
    }

    @Test func batchLargerThanDataset() throws {
        #expect(throws: DatasetError.batchLargerThanDataset(batchSize: 13, sampleCount: 12)) {
            try loader(batchSize: 13)
        }
        let error = DatasetError.batchLargerThanDataset(batchSize: 13, sampleCount: 12)
        #expect(error.description.contains("13") && error.description.contains("12"))
    }

    @Test func unaugmentedValuesAreScaledPixels() throws {
        // Without augmentation and shuffle, batch entry = 2·pixel − 1 in dataset order; sample 0's
        // first pixel is 0/255 → −1, sample 11's last is 239/255 → 2·239/255 − 1 = 0.874509…
        let dataset = syntheticDataset()
        let batch = try loader(dataset, batchSize: 12, shuffle: false).batches()[0]
        #expect(batch.indices == Array(0..<12))
        #expect(batch.labels == dataset.labels)
        #expect(batch.images.storage == dataset.images.flatMap { $0.pixels.map { $0 * 2 - 1 } })
        #expect(batch.images.storage.first == -1)
        #expect(abs((batch.images.storage.last ?? 0) - 0.874_509_8) < 1e-6)
    }

    @Test func everySampleOncePerEpoch() throws {
        let dataset = syntheticDataset()
        let shuffled = try loader(dataset, batchSize: 5, augmentation: small)
        for _ in 0..<3 {
            let batches = shuffled.batches()
            let indices = batches.flatMap(\.indices)
            #expect(indices.sorted() == Array(0..<12))
            #expect(batches.flatMap(\.labels) == indices.map { dataset.labels[$0] })
        }
    }

    @Test func sameSeedSameBatches() throws {
        let a = try loader(batchSize: 5, augmentation: small, seed: 9)
        let b = try loader(batchSize: 5, augmentation: small, seed: 9)
        let c = try loader(batchSize: 5, augmentation: small, seed: 10)
        for _ in 0..<3 {
            let epochA = a.batches(), epochB = b.batches(), epochC = c.batches()
            #expect(same(epochA, epochB))
            #expect(!same(epochA, epochC))
        }
    }

    @Test func epochsDiffer() throws {
        let shuffled = try loader(batchSize: 12, augmentation: Augmentation(horizontalFlip: true, maxTranslation: 1))
        let first = shuffled.batches()[0], second = shuffled.batches()[0]
        #expect(shuffled.epoch == 2)
        #expect(first.indices != second.indices)
        #expect(first.transforms != second.transforms)
        // Without shuffle the order is the data set's, every epoch.
        let ordered = try loader(batchSize: 12, shuffle: false)
        #expect(ordered.batches()[0].indices == Array(0..<12))
        #expect(ordered.batches()[0].indices == Array(0..<12))
    }

    @Test func epochCanBeResumed() throws {
        let run = try loader(batchSize: 4, augmentation: small, seed: 5)
        let epochs = (0..<3).map { _ in run.batches() }
        let resumed = try loader(batchSize: 4, augmentation: small, seed: 5)
        resumed.epoch = 2
        #expect(same(resumed.batches(), epochs[2]))
    }

    @Test func prefetchGivesIdenticalBatches() throws {
        let dataset = syntheticDataset(identityCount: 3, imagesPerIdentity: 4)
        let plain = try loader(dataset, batchSize: 3, augmentation: small, seed: 11, prefetch: false)
        let ahead = try loader(dataset, batchSize: 3, augmentation: small, seed: 11, prefetch: true)
        for _ in 0..<4 {
            let lazily = Array(ahead.nextEpoch())
            #expect(lazily.count == 4)
            #expect(same(plain.batches(), lazily))
        }
        // An epoch abandoned while a batch is being prefetched is harmless.
        let partial = ahead.nextEpoch()
        #expect(partial.next() != nil)
        #expect(partial.count == 4)
    }

    @Test func flipExactlyMirrors() throws {
        let dataset = syntheticDataset()
        let flips = try loader(dataset, batchSize: 12, augmentation: Augmentation(horizontalFlip: true, maxTranslation: 0))
        var flippedCount = 0
        for _ in 0..<2 {
            let batch = flips.batches()[0]
            for (n, index) in batch.indices.enumerated() {
                let transform = batch.transforms[n]
                #expect(transform.offsetX == 0 && transform.offsetY == 0)
                let image = dataset.images[index]
                let mirrored = (0..<4).flatMap { y in (0..<5).map { x in image[y, transform.isFlipped ? 4 - x : x] * 2 - 1 } }
                #expect(plane(batch.images, n) == mirrored)
                if transform.isFlipped { flippedCount += 1 }
            }
        }
        // 24 fair coin flips: both outcomes occur (fixed seed; a stuck coin would fail).
        #expect(flippedCount > 0 && flippedCount < 24)
    }

    @Test func makeTensorFlipLiteral() {
        // A 3×1 image [0, 0.5, 1] → [−1, 0, 1]; mirrored → [1, 0, −1].
        let image = FaceImage(width: 3, height: 1, pixels: [0, 0.5, 1])
        let dataset = FaceDataset(identities: ["a", "b"], images: [image, image], labels: [0, 1], paths: ["a", "b"])
        #expect(dataset.makeTensor(indices: [0]).storage == [-1, 0, 1])
        let flipped = dataset.makeTensor(indices: [1, 0], flipped: true)
        #expect(flipped.shape == [2, 1, 1, 3])
        #expect(flipped.storage == [1, 0, -1, 1, 0, -1])
    }

    @Test func transformLiterals() {
        // Image 3 wide × 2 high, pixels (a b c / d e f) = (0.1 0.2 0.3 / 0.4 0.5 0.6), i.e. batch
        // values 2p − 1 = (−0.8 −0.6 −0.4 / −0.2 0 0.2); black fill is −1.
        let image = FaceImage(width: 3, height: 2, pixels: [0.1, 0.2, 0.3, 0.4, 0.5, 0.6])
        let dataset = FaceDataset(identities: ["a", "b"], images: [image, image], labels: [0, 1], paths: ["a", "b"])
        func values(_ transform: SampleTransform) -> [Float] {
            dataset.makeBatch(indices: [0], transforms: [transform]).images.storage
        }
        let tolerance: Float = 1e-6
        func close(_ a: [Float], _ b: [Float]) -> Bool {
            a.count == b.count && zip(a, b).allSatisfy { abs($0 - $1) <= tolerance }
        }
        // Right by 1: (−1 a b / −1 d e).
        #expect(close(values(SampleTransform(offsetX: 1)), [-1, -0.8, -0.6, -1, -0.2, 0]))
        // Left by 1, up by 1: row 0 ← row 1 shifted left (e f −1), row 1 black.
        #expect(close(values(SampleTransform(offsetX: -1, offsetY: -1)), [0, 0.2, -1, -1, -1, -1]))
        // Mirror (c b a / f e d), then right by 1: (−1 c b / −1 f e).
        #expect(close(values(SampleTransform(isFlipped: true, offsetX: 1)), [-1, -0.4, -0.6, -1, 0.2, 0]))
        // Down by 1: (−1 −1 −1 / a b c).
        #expect(close(values(SampleTransform(offsetY: 1)), [-1, -1, -1, -0.8, -0.6, -0.4]))
    }

    @Test func translationShiftsByTheDrawnAmount() throws {
        let dataset = syntheticDataset()
        let shifts = try loader(dataset, batchSize: 12, augmentation: Augmentation(horizontalFlip: false, maxTranslation: 2))
        var offsets = Set<Int>()
        for _ in 0..<3 {
            let batch = shifts.batches()[0]
            for (n, index) in batch.indices.enumerated() {
                let transform = batch.transforms[n]
                #expect(!transform.isFlipped)
                #expect((-2...2).contains(transform.offsetX) && (-2...2).contains(transform.offsetY))
                offsets.insert(transform.offsetX)
                offsets.insert(transform.offsetY)
                let expected = (0..<4).flatMap { y in (0..<5).map { x in
                    expectedValue(dataset.images[index], transform, y: y, x: x) } }
                #expect(plane(batch.images, n) == expected, "sample \(index) \(transform)")
            }
        }
        #expect(offsets == Set(-2...2))  // 72 draws cover all five shifts
    }

    @Test func attFacesBatchesWithStandardAugmentation() throws {
        let faces = try requireATTFaces()
        let attLoader = try loader(faces, batchSize: 64, augmentation: .standard, dropLast: true, seed: 1)
        #expect(attLoader.batchesPerEpoch == 6)
        let epoch = attLoader.nextEpoch()
        guard let batch = epoch.next() else {
            Issue.record("no batch")
            return
        }
        #expect(batch.images.shape == [64, 1, 112, 92])
        #expect(batch.images.storage.allSatisfy { $0 >= -1 && $0 <= 1 })
        var xs = Set<Int>()
        for (n, index) in batch.indices.enumerated() {
            let transform = batch.transforms[n]
            xs.insert(transform.offsetX)
            #expect((-4...4).contains(transform.offsetX) && (-4...4).contains(transform.offsetY))
            // Spot-check a pixel that stays inside the image for any shift of at most 4.
            #expect(plane(batch.images, n)[50 * 92 + 40] == expectedValue(faces.images[index], transform, y: 50, x: 40))
        }
        #expect(xs.count > 3)
        // Evaluation tensor: sample 0's first pixels are bytes 48, 49 → 2·48/255 − 1, 2·49/255 − 1.
        let evaluation = attLoader.makeTensor(indices: [0, 399])
        #expect(evaluation.shape == [2, 1, 112, 92])
        #expect(evaluation.storage[0] == Float(48) / 255 * 2 - 1)
        #expect(evaluation.storage[1] == Float(49) / 255 * 2 - 1)
        let mirrored = attLoader.makeTensor(indices: [0], flipped: true)
        #expect(mirrored.storage[91] == evaluation.storage[0] && mirrored.storage[90] == evaluation.storage[1])
    }
}
