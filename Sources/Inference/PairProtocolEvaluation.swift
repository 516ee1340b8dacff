import TensorCore
import Layers
import FaceData
import FaceEvaluation

/// A fixed-pairs verification protocol ready to evaluate, as often as needed: its pairs, their
/// folds and where its images come from. The checks of the pairs and folds run once, when it is
/// built; `PairProtocolEvaluation` embeds its images at each evaluation (decoded on demand, a
/// batch at a time, so a large set is never decoded all at once).
public struct PairProtocolSet: Sendable {
    /// The `.bin` or `pairs.txt` file (used in error descriptions).
    public let path: String
    /// The pairs, as indices into the images, `[P]`.
    public let pairs: [VerificationPair]
    /// Each pair's fold, `[P]`, in `0..<k`.
    public let foldOfPair: [Int]
    private let source: Source

    private enum Source: Sendable {
        case bin(VerificationBin)
        case files([String])
    }

    /// An InsightFace verification set: images `2i`, `2i + 1` form pair `i`; `folds` contiguous
    /// folds (insightface's `KFold(n_splits=10, shuffle=False)` for 10).
    ///
    /// - Throws: `PairProtocolError.unusablePairs`: fewer than 2 pairs, one kind only, fewer pairs
    ///   than folds, or a fold whose threshold would be chosen from pairs of one kind.
    public init(bin: VerificationBin, folds: Int) throws(PairProtocolError) {
        let pairs = bin.pairs.map { VerificationPair(first: $0.first, second: $0.second, isSame: $0.isSame) }
        try PairProtocolEvaluation.checkUsable(pairs, path: bin.path)
        guard folds >= 2, pairs.count >= folds else {
            throw .unusablePairs(path: bin.path, reason: "\(pairs.count) pairs cannot fill \(folds) folds (the checkpoint's `folds`); k-fold accuracy needs at least one pair per fold")
        }
        let foldOfPair = contiguousFolds(pairCount: pairs.count, folds: folds)
        try PairProtocolEvaluation.checkFolds(pairs, foldOfPair: foldOfPair, path: bin.path)
        (path, self.pairs, self.foldOfPair, source) = (bin.path, pairs, foldOfPair, .bin(bin))
    }

    /// LFW's `pairs.txt` protocol with the file's own folds; images `root/Name/Name_000n.<ext>`.
    ///
    /// - Throws: `PairProtocolError.pairs` (a missing image) or `.unusablePairs` (one kind of pair
    ///   only, one fold, a fold whose threshold would be chosen from pairs of one kind).
    public init(lfwPairs: LFWPairs, root: String, fileExtension: String = "jpg") throws(PairProtocolError) {
        let resolved: (imagePaths: [String], pairs: [(first: Int, second: Int, isSame: Bool, fold: Int)])
        do { resolved = try lfwPairs.resolve(root: root, fileExtension: fileExtension) } catch { throw .pairs(error) }
        let pairs = resolved.pairs.map { VerificationPair(first: $0.first, second: $0.second, isSame: $0.isSame) }
        try PairProtocolEvaluation.checkUsable(pairs, path: lfwPairs.path)
        guard lfwPairs.foldCount >= 2 else {
            throw .unusablePairs(path: lfwPairs.path, reason: "one fold; k-fold accuracy needs at least 2 (use View 2's pairs.txt)")
        }
        try PairProtocolEvaluation.checkFolds(pairs, foldOfPair: resolved.pairs.map(\.fold), path: lfwPairs.path)
        (path, self.pairs, foldOfPair, source) = (lfwPairs.path, pairs, resolved.pairs.map(\.fold), .files(resolved.imagePaths))
    }

    /// The number of images the pairs refer to.
    public var imageCount: Int {
        switch source {
        case .bin(let bin): bin.encodedImages.count
        case .files(let paths): paths.count
        }
    }

    /// Image `index`, decoded, converted to `channels` and resized and centre-cropped to `size`
    /// (`FaceImage.prepared(channels:size:)`).
    ///
    /// - Throws: `ImageDecodingError` naming the file (`<path>[index]` for a `.bin`).
    public func image(at index: Int, channels: Int, size: ImageSize) throws(ImageDecodingError) -> FaceImage {
        let decoded = switch source {
        case .bin(let bin): try bin.image(at: index)
        case .files(let paths): try loadImage(path: paths[index])
        }
        return decoded.prepared(channels: channels, size: size)
    }

    /// Decodes every image once, so that a broken one is reported now rather than at the first
    /// evaluation.
    ///
    /// - Returns: the images' decoded channels and sizes, for `InputSourceTally.mismatchWarnings`.
    /// - Throws: `PairProtocolError.image` for the first image that fails to decode.
    @discardableResult
    public func checkImages() throws(PairProtocolError) -> InputSourceTally {
        var sources = InputSourceTally()
        for index in 0..<imageCount {
            do {
                let image = switch source {
                case .bin(let bin): try bin.image(at: index)
                case .files(let paths): try loadImage(path: paths[index])
                }
                sources.record(image)
            } catch { throw .image(error) }
        }
        return sources
    }

    /// The images of `range` as decoded, each counted in `sources`, checked against `backbone`'s
    /// input under `input`, then prepared for it (`FaceImage.prepared(for:)`).
    ///
    /// - Throws: `PairProtocolError.image` (a decode failure) or, with `.refuse`,
    ///   `.inputMismatch` naming the image (its file, or `<bin> image <i>`).
    func images(_ range: Range<Int>, for backbone: any EmbeddingBackbone, input: InputMismatchPolicy,
                sources: inout InputSourceTally) throws(PairProtocolError) -> [FaceImage] {
        let shape = backbone.configuration
        let preprocessing = InputPreprocessing(channels: shape.inputChannels, height: shape.inputHeight, width: shape.inputWidth)
        var images: [FaceImage] = []
        images.reserveCapacity(range.count)
        for index in range {
            let decoded: FaceImage
            do {
                decoded = switch source {
                case .bin(let bin): try bin.image(at: index)
                case .files(let paths): try loadImage(path: paths[index])
                }
            } catch { throw .image(error) }
            sources.record(decoded)
            if input == .refuse, let reason = InputSourceTally.mismatch(of: decoded, against: preprocessing) {
                let name = switch source {
                case .bin: "\(path) image \(index)"
                case .files(let paths): paths[index]
                }
                throw .inputMismatch(path: name, reason: reason)
            }
            images.append(decoded.prepared(for: preprocessing))
        }
        return images
    }
}

/// Fixed-pairs verification protocols for a trained model.
///
/// Every evaluation runs `PairProtocolSet` → embeddings of its images in inference mode
/// (`embeddings(count:backbone:flipSum:batchSize:progress:images:)`, or both settings from one
/// loop) → `evaluatePairs(embeddings:pairs:foldOfPair:)`.
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
        try evaluate(backbone, flipSum: flipSum, set: PairProtocolSet(bin: bin, folds: folds))
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
        try evaluate(backbone, flipSum: flipSum, set: PairProtocolSet(lfwPairs: lfwPairs, root: root, fileExtension: fileExtension))
    }

    /// Evaluates `backbone` on an InsightFace verification set (`evaluate(_:folds:flipSum:bin:)`),
    /// counting the images as decoded in `sources` and, with `input: .refuse`, stopping at the
    /// first image whose channels or size differ from the backbone's input
    /// (`PairProtocolError.inputMismatch`, naming `<bin> image <i>`).
    public static func evaluate(_ backbone: any EmbeddingBackbone, folds: Int, flipSum: Bool, bin: VerificationBin,
                                input: InputMismatchPolicy = .convert,
                                sources: inout InputSourceTally) throws(PairProtocolError) -> PairProtocolReport {
        try evaluate(backbone, flipSum: flipSum, set: PairProtocolSet(bin: bin, folds: folds), input: input, sources: &sources)
    }

    /// Evaluates `backbone` on LFW's `pairs.txt` (`evaluate(_:flipSum:lfwPairs:root:fileExtension:)`),
    /// counting the images in `sources` and, with `input: .refuse`, stopping at the first image
    /// that differs from the backbone's input (`PairProtocolError.inputMismatch`, naming its file).
    public static func evaluate(_ backbone: any EmbeddingBackbone, flipSum: Bool, lfwPairs: LFWPairs, root: String,
                                fileExtension: String = "jpg", input: InputMismatchPolicy = .convert,
                                sources: inout InputSourceTally) throws(PairProtocolError) -> PairProtocolReport {
        try evaluate(backbone, flipSum: flipSum, set: PairProtocolSet(lfwPairs: lfwPairs, root: root, fileExtension: fileExtension),
                     input: input, sources: &sources)
    }

    /// Evaluates `backbone` (inference mode) on `set`, converting images that differ from its input.
    ///
    /// - Parameter flipSum: add the mirrored images' embeddings.
    /// - Throws: `PairProtocolError.image` (an image fails to decode).
    public static func evaluate(_ backbone: any EmbeddingBackbone, flipSum: Bool, set: PairProtocolSet) throws(PairProtocolError) -> PairProtocolReport {
        var sources = InputSourceTally()
        return try evaluate(backbone, flipSum: flipSum, set: set, sources: &sources)
    }

    /// Evaluates `backbone` (inference mode) on `set`, counting its images as decoded in `sources`;
    /// with `input: .refuse`, an image whose channels or size differ from the input stops it.
    ///
    /// - Throws: `PairProtocolError.image` (an image fails to decode) or `.inputMismatch`.
    public static func evaluate(_ backbone: any EmbeddingBackbone, flipSum: Bool, set: PairProtocolSet, input: InputMismatchPolicy = .convert,
                                sources: inout InputSourceTally) throws(PairProtocolError) -> PairProtocolReport {
        var tally = sources
        defer { sources = tally }
        let embedded = try embeddings(count: set.imageCount, backbone: backbone, flipSum: flipSum) {
            range throws(PairProtocolError) in try set.images(range, for: backbone, input: input, sources: &tally)
        }
        return evaluatePairs(embeddings: embedded, pairs: set.pairs, foldOfPair: set.foldOfPair)
    }

    /// Evaluates `backbone` (inference mode) on `set` with and without flip-summing, from one
    /// embedding loop (`embeddingsWithAndWithoutFlip`): each report equals `evaluate(_:flipSum:set:)`'s
    /// with that setting, bit for bit. Images that differ from the input are converted.
    ///
    /// - Throws: `PairProtocolError.image` (an image fails to decode).
    public static func evaluateWithAndWithoutFlip(_ backbone: any EmbeddingBackbone, set: PairProtocolSet) throws(PairProtocolError)
        -> (withFlip: PairProtocolReport, withoutFlip: PairProtocolReport) {
        var tally = InputSourceTally()
        let both = try embeddingsWithAndWithoutFlip(count: set.imageCount, backbone: backbone) {
            range throws(PairProtocolError) in try set.images(range, for: backbone, input: .convert, sources: &tally)
        }
        return (evaluatePairs(embeddings: both.flipSummed, pairs: set.pairs, foldOfPair: set.foldOfPair),
                evaluatePairs(embeddings: both.original, pairs: set.pairs, foldOfPair: set.foldOfPair))
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
}

/// Why a fixed-pairs protocol could not be evaluated.
public enum PairProtocolError: Error, CustomStringConvertible, Equatable {
    /// The pairs file is malformed or names a missing image.
    case pairs(VerificationSetError)
    /// An image failed to decode.
    case image(ImageDecodingError)
    /// The pairs cannot be evaluated (fewer than 2, only one kind, one fold).
    case unusablePairs(path: String, reason: String)
    /// With `InputMismatchPolicy.refuse`: an image whose channels or size differ from the
    /// model's input (`path` names it: a file, or `<bin> image <i>`).
    case inputMismatch(path: String, reason: String)

    public var description: String {
        switch self {
        case .pairs(let error): return error.description
        case .image(let error): return error.description
        case .unusablePairs(let path, let reason): return "\(path): cannot evaluate: \(reason)"
        case .inputMismatch(let path, let reason):
            return "\(path): \(reason) (refused by --strict-input; without it the image is converted, with a warning)"
        }
    }
}
