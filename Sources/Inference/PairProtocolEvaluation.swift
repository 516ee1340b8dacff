import TensorCore
import Layers
import FaceData
import FaceEvaluation

/// Fixed-pairs verification protocols for a trained model.
public enum PairProtocolEvaluation {
    /// Evaluates `backbone` on an InsightFace verification set: images `2i`, `2i + 1` form pair
    /// `i`; folds are InsightFace's (`folds` contiguous folds, 10 by default).
    ///
    /// Each image is converted to the backbone's channel count and resized and centre-cropped to
    /// its input size (`FaceImage.prepared(channels:size:)`).
    ///
    /// - Parameters:
    ///   - folds: the number of contiguous folds (a checkpoint's `folds`).
    ///   - flipSum: add the mirrored images' embeddings (a checkpoint's `flipEmbeddings`).
    /// - Throws: `PairProtocolError.image` (an image fails to decode) or `.unusablePairs` (fewer
    ///   than 2 pairs, one kind only, fewer pairs than folds, or a fold whose threshold would be
    ///   chosen from pairs of one kind).
    public static func evaluate(_ backbone: any EmbeddingBackbone, folds: Int, flipSum: Bool,
                                bin: VerificationBin) throws(PairProtocolError) -> PairProtocolReport {
        let pairs = bin.pairs.map { VerificationPair(first: $0.first, second: $0.second, isSame: $0.isSame) }
        try checkUsable(pairs, path: bin.path)
        guard pairs.count >= folds else {
            throw .unusablePairs(path: bin.path, reason: "\(pairs.count) pairs cannot fill \(folds) folds (the checkpoint's `folds`); k-fold accuracy needs at least one pair per fold")
        }
        let foldOfPair = contiguousFolds(pairCount: pairs.count, folds: folds)
        try checkFolds(pairs, foldOfPair: foldOfPair, path: bin.path)
        let embedded: Tensor
        do {
            embedded = try embed(backbone, flipSum: flipSum, count: bin.encodedImages.count) {
                index throws(ImageDecodingError) in try bin.image(at: index)
            }
        } catch { throw .image(error) }
        return evaluatePairs(embeddings: embedded, pairs: pairs, foldOfPair: foldOfPair)
    }

    /// Evaluates `backbone` on LFW's `pairs.txt` protocol with the file's own folds.
    ///
    /// - Parameters:
    ///   - flipSum: add the mirrored images' embeddings (a checkpoint's `flipEmbeddings`).
    ///   - root: the LFW image folder (`Name/Name_0001.jpg`).
    ///   - fileExtension: the images' extension.
    /// - Throws: `PairProtocolError.pairs` (missing image) or `.image` (a file fails to decode).
    public static func evaluate(_ backbone: any EmbeddingBackbone, flipSum: Bool, lfwPairs: LFWPairs, root: String,
                                fileExtension: String = "jpg") throws(PairProtocolError) -> PairProtocolReport {
        let resolved: (imagePaths: [String], pairs: [(first: Int, second: Int, isSame: Bool, fold: Int)])
        do { resolved = try lfwPairs.resolve(root: root, fileExtension: fileExtension) } catch { throw .pairs(error) }
        try checkUsable(resolved.pairs.map { VerificationPair(first: $0.first, second: $0.second, isSame: $0.isSame) },
                        path: lfwPairs.path)
        guard lfwPairs.foldCount >= 2 else {
            throw .unusablePairs(path: lfwPairs.path, reason: "one fold; k-fold accuracy needs at least 2 (use View 2's pairs.txt)")
        }
        try checkFolds(resolved.pairs.map { VerificationPair(first: $0.first, second: $0.second, isSame: $0.isSame) },
                       foldOfPair: resolved.pairs.map(\.fold), path: lfwPairs.path)
        let embedded: Tensor
        do {
            embedded = try embed(backbone, flipSum: flipSum, count: resolved.imagePaths.count) { index throws(ImageDecodingError) in
                try loadImage(path: resolved.imagePaths[index])
            }
        } catch { throw .image(error) }
        let pairs = resolved.pairs.map { VerificationPair(first: $0.first, second: $0.second, isSame: $0.isSame) }
        return evaluatePairs(embeddings: embedded, pairs: pairs, foldOfPair: resolved.pairs.map(\.fold))
    }

    /// Pair lists the metrics cannot use are data errors, not traps.
    static func checkUsable(_ pairs: [VerificationPair], path: String) throws(PairProtocolError) {
        let genuine = pairs.count { $0.isSame }
        guard pairs.count >= 2 else { throw .unusablePairs(path: path, reason: "\(pairs.count) pair(s); at least 2 are needed") }
        guard genuine > 0 && genuine < pairs.count else {
            throw .unusablePairs(path: path, reason: "\(genuine) genuine of \(pairs.count) pairs; both kinds are needed")
        }
    }

    /// Each fold's accuracy uses the threshold chosen on the other folds' pairs: every fold needs a
    /// pair, and the other folds need both kinds, or the accuracy (often 0) means nothing.
    static func checkFolds(_ pairs: [VerificationPair], foldOfPair: [Int], path: String) throws(PairProtocolError) {
        let folds = (foldOfPair.max() ?? -1) + 1
        var genuine = [Int](repeating: 0, count: folds), total = [Int](repeating: 0, count: folds)
        for (pair, fold) in zip(pairs, foldOfPair) {
            total[fold] += 1
            if pair.isSame { genuine[fold] += 1 }
        }
        let allGenuine = genuine.reduce(0, +), all = total.reduce(0, +)
        for fold in 0..<folds {
            guard total[fold] > 0 else { throw .unusablePairs(path: path, reason: "fold \(fold + 1) of \(folds) has no pair") }
            let otherGenuine = allGenuine - genuine[fold], otherImpostor = (all - total[fold]) - otherGenuine
            guard otherGenuine > 0, otherImpostor > 0 else {
                throw .unusablePairs(path: path, reason: "the folds other than fold \(fold + 1) hold no \(otherGenuine == 0 ? "genuine" : "impostor") pair, so its threshold cannot be chosen; use more pairs or fewer folds")
            }
        }
    }

    static func embed(_ backbone: any EmbeddingBackbone, flipSum: Bool, count: Int,
                      image: (Int) throws(ImageDecodingError) -> FaceImage) throws(ImageDecodingError) -> Tensor {
        let shape = backbone.configuration
        let size = ImageSize(width: shape.inputWidth, height: shape.inputHeight)
        return try embeddings(count: count, backbone: backbone, flipSum: flipSum) {
            index throws(ImageDecodingError) in try image(index).prepared(channels: shape.inputChannels, size: size)
        }
    }
}

/// Why a fixed-pairs protocol could not be evaluated.
public enum PairProtocolError: Error, CustomStringConvertible, Equatable {
    /// The pairs file is malformed or names a missing image.
    case pairs(VerificationSetError)
    /// An image failed to decode.
    case image(ImageDecodingError)
    /// The pairs cannot be evaluated (fewer than 2, only one kind, one fold).
    case unusablePairs(path: String, reason: String)

    public var description: String {
        switch self {
        case .pairs(let error): return error.description
        case .image(let error): return error.description
        case .unusablePairs(let path, let reason): return "\(path): cannot evaluate: \(reason)"
        }
    }
}
