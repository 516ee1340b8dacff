import Foundation
import Testing
import _TestSupport
import ArcFace

@Suite struct PairProtocolEvaluationTests {
    /// 40 AT&T images (4 identities × 10) as 20 pairs: pair i is images 2i, 2i+1; the first 10
    /// pairs are within one identity, the last 10 across identities.
    func protocolImages() throws -> (dataset: FaceDataset, isSame: [Bool]) {
        let faces = try attSlice(identityCount: 4)
        var order: [Int] = []
        for i in 0..<10 { order += [i / 5 * 10 + (i % 5) * 2, i / 5 * 10 + (i % 5) * 2 + 1] }  // same identity
        for i in 0..<10 { order += [20 + i, 30 + (i + 3) % 10] }  // identity 2 vs identity 3
        let images = order.map { faces.images[$0] }
        let dataset = FaceDataset(identities: ["all"], images: images, labels: [Int](repeating: 0, count: 40),
                                  paths: order.map { faces.paths[$0] })
        return (dataset, (0..<20).map { $0 < 10 })
    }

    @Test func binSetMatchesInMemoryEvaluation() throws {
        let model = FaceRecognitionModel(configuration: tinyConfiguration(), classCount: 5)
        let (dataset, isSame) = try protocolImages()
        let bin = VerificationBin(path: "memory.bin", encodedImages: try dataset.images.map { try encodePNG($0) }, isSame: isSame)
        let report = try PairProtocolEvaluation.evaluate(model, bin: bin)
        let expected = evaluatePairs(
            embeddings: embeddings(of: dataset, backbone: model.backbone, flipSum: model.configuration.flipEmbeddings),
            pairs: (0..<20).map { VerificationPair(first: 2 * $0, second: 2 * $0 + 1, isSame: isSame[$0]) },
            foldOfPair: contiguousFolds(pairCount: 20, folds: 10))
        #expect(report == expected)
        #expect(report.genuinePairCount == 10 && report.foldAccuracies.count == 10)
    }

    @Test func lfwPairsMatchInMemoryEvaluation() throws {
        let model = FaceRecognitionModel(configuration: tinyConfiguration(), classCount: 5)
        let (dataset, _) = try protocolImages()
        let root = TemporaryDirectory()
        // Person P<k> image n is dataset image k·10 + n − 1 (n = 1…10), written as PNG.
        var lines = ["2\t5"]
        var pairs: [VerificationPair] = []
        var folds: [Int] = []
        let images = dataset.images
        for k in 0..<4 {
            try FileManager.default.createDirectory(atPath: "\(root.path)/P\(k)", withIntermediateDirectories: true)
            for n in 1...10 {
                let data = try encodePNG(images[k * 10 + n - 1])
                try Data(data).write(to: URL(fileURLWithPath: "\(root.path)/P\(k)/P\(k)_\(String(format: "%04d", n)).png"))
            }
        }
        for fold in 0..<2 {
            for i in 0..<5 {
                let k = fold, a = 2 * i + 1, b = 2 * i + 2
                lines.append("P\(k)\t\(a)\t\(b)")
                pairs.append(VerificationPair(first: k * 10 + a - 1, second: k * 10 + b - 1, isSame: true))
                folds.append(fold)
            }
            for i in 0..<5 {
                let a = fold * 5 + i + 1, b = (fold * 5 + i + 3) % 10 + 1
                lines.append("P2\t\(a)\tP3\t\(b)")
                pairs.append(VerificationPair(first: 20 + a - 1, second: 30 + b - 1, isSame: false))
                folds.append(fold)
            }
        }
        let lfw = try LFWPairs.parse(lines.joined(separator: "\n") + "\n", path: "pairs.txt")
        let report = try PairProtocolEvaluation.evaluate(model, lfwPairs: lfw, root: root.path, fileExtension: "png")
        let allImages = FaceDataset(identities: ["all"], images: images, labels: [Int](repeating: 0, count: 40), paths: dataset.paths)
        // Reference: embeddings of every image of P0…P3 (the protocol embeds only the images it uses,
        // in batches of other composition, so compare within fp32 round-off).
        let reference = evaluatePairs(
            embeddings: embeddings(of: allImages, backbone: model.backbone, flipSum: model.configuration.flipEmbeddings),
            pairs: pairs, foldOfPair: folds)
        #expect(report.foldAccuracies == reference.foldAccuracies)
        #expect(abs(report.auc - reference.auc) < 1e-6)
        #expect(report.genuinePairCount == 10 && report.impostorPairCount == 10)
    }
}

@Test func unusablePairListsAreTypedErrors() throws {
    let model = FaceRecognitionModel(configuration: tinyConfiguration(), classCount: 5)
    let image = try encodePNG(FaceImage(width: 92, height: 112, repeating: 0.5))
    let onePair = VerificationBin(path: "one.bin", encodedImages: [image, image], isSame: [true])
    #expect(throws: PairProtocolError.unusablePairs(path: "one.bin", reason: "1 pair(s); at least 2 are needed")) {
        try PairProtocolEvaluation.evaluate(model, bin: onePair)
    }
    let allSame = VerificationBin(path: "same.bin", encodedImages: [image, image, image, image], isSame: [true, true])
    #expect(throws: PairProtocolError.unusablePairs(path: "same.bin", reason: "2 genuine of 2 pairs; both kinds are needed")) {
        try PairProtocolEvaluation.evaluate(model, bin: allSame)
    }
    // Fewer pairs than the checkpoint's 10 folds: was accuracy 0 without a word.
    let fourPairs = VerificationBin(path: "four.bin", encodedImages: [Array](repeating: image, count: 8), isSame: [true, false, true, false])
    #expect(throws: PairProtocolError.unusablePairs(path: "four.bin", reason: "4 pairs cannot fill 10 folds (the checkpoint's `folds`); k-fold accuracy needs at least one pair per fold")) {
        try PairProtocolEvaluation.evaluate(model, bin: fourPairs)
    }
    // Enough pairs, but the only genuine pair sits in one fold: its threshold has no genuine pair.
    let oneGenuine = VerificationBin(path: "lone.bin", encodedImages: [Array](repeating: image, count: 20),
                                     isSame: [true] + [Bool](repeating: false, count: 9))
    guard case .unusablePairs("lone.bin", let reason)? = thrownPairError({ () throws(PairProtocolError) in
        try PairProtocolEvaluation.evaluate(model, bin: oneGenuine)
    }) else {
        Issue.record("a fold without genuine pairs elsewhere must be refused")
        return
    }
    #expect(reason.contains("other than fold 1 hold no genuine pair"))
}

private func thrownPairError(_ body: () throws(PairProtocolError) -> PairProtocolReport) -> PairProtocolError? {
    do { _ = try body(); return nil } catch { return error }
}

@Test func splitBringsImagesToTheBackbonesInput() throws {
    // A colour model on AT&T: grey 92×112 faces become 3-channel 64×64 crops.
    var configuration = tinyConfiguration()
    configuration.backbone.inputChannels = 3
    configuration.backbone.inputHeight = 64
    configuration.backbone.inputWidth = 64
    let (train, heldOut) = try Experiment.split(directory: attFacesDirectory, configuration: configuration)
    #expect(train.channelCount == 3 && train.imageSize == ImageSize(width: 64, height: 64))
    #expect(heldOut.makeTensor(indices: [0, 1]).shape == [2, 3, 64, 64])
    configuration.backbone.inputChannels = 2
    #expect(configuration.validationProblems().contains { $0.contains("inputChannels") })
}
