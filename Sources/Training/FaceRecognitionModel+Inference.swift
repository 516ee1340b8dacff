// Inference with a trained `FaceRecognitionModel`: its backbone, input size, folds and
// flip-sum setting handed to the `Inference` functions.
import TensorCore
import FaceData
import FaceEvaluation
import Inference
import Checkpointing

extension Experiment {
    /// Embeds `list` with `model`'s backbone and writes the `.npy` matrix and its `.tsv` index
    /// (`exportEmbeddings(_:backbone:output:flipSum:normalize:protectedPaths:progress:)`).
    ///
    /// - Returns: the embeddings, `[N, D]`.
    /// - Throws: `EmbeddingError` (`.badOutputPath` before any work, a bad image, or
    ///   `.writeFailed` for the files).
    @discardableResult
    public static func exportEmbeddings(_ list: ImageList, model: FaceRecognitionModel, output: String,
                                        flipSum: Bool, normalize: Bool = false, protectedPaths: [String] = [],
                                        progress: (Int, Int) -> Void = { _, _ in },
                                        availableSpace: AvailableSpaceProvider = DiskSpace.available) throws(EmbeddingError) -> Tensor {
        var sources = InputSourceTally()
        return try exportEmbeddings(list, model: model, output: output, flipSum: flipSum, normalize: normalize,
                                    protectedPaths: protectedPaths, sources: &sources, progress: progress,
                                    availableSpace: availableSpace)
    }

    /// `exportEmbeddings(_:model:output:flipSum:normalize:protectedPaths:progress:availableSpace:)`
    /// counting the images as decoded in `sources` (compare them with `model.configuration.preprocessing`:
    /// `InputSourceTally.mismatchWarnings(against:)`) and, with `input: .refuse`, stopping at the
    /// first image whose channels or size differ from the model's input (`EmbeddingError.inputMismatch`).
    @discardableResult
    public static func exportEmbeddings(_ list: ImageList, model: FaceRecognitionModel, output: String,
                                        flipSum: Bool, normalize: Bool = false, protectedPaths: [String] = [],
                                        input: InputMismatchPolicy = .convert, sources: inout InputSourceTally,
                                        progress: (Int, Int) -> Void = { _, _ in },
                                        availableSpace: AvailableSpaceProvider = DiskSpace.available) throws(EmbeddingError) -> Tensor {
        try Inference.exportEmbeddings(list, backbone: model.backbone, output: output, flipSum: flipSum, normalize: normalize,
                                       protectedPaths: protectedPaths, input: input, sources: &sources, progress: progress,
                                       availableSpace: availableSpace)
    }
}

extension PairProtocolEvaluation {
    /// Evaluates `model` on an InsightFace verification set with the checkpoint's `folds` and
    /// `flipEmbeddings` (`evaluate(_:folds:flipSum:bin:)`).
    ///
    /// - Throws: `PairProtocolError.image` or `.unusablePairs`.
    public static func evaluate(_ model: FaceRecognitionModel, bin: VerificationBin) throws(PairProtocolError) -> PairProtocolReport {
        try evaluate(model.backbone, folds: model.configuration.folds, flipSum: model.configuration.flipEmbeddings, bin: bin)
    }

    /// `evaluate(_:bin:)` counting the images in `sources` and, with `input: .refuse`, stopping
    /// at the first image that differs from the model's input (`PairProtocolError.inputMismatch`).
    public static func evaluate(_ model: FaceRecognitionModel, bin: VerificationBin, input: InputMismatchPolicy,
                                sources: inout InputSourceTally) throws(PairProtocolError) -> PairProtocolReport {
        try evaluate(model.backbone, folds: model.configuration.folds, flipSum: model.configuration.flipEmbeddings, bin: bin,
                     input: input, sources: &sources)
    }

    /// Evaluates `model` on LFW's `pairs.txt` protocol with the file's own folds and the
    /// checkpoint's `flipEmbeddings` (`evaluate(_:flipSum:lfwPairs:root:fileExtension:)`).
    ///
    /// - Throws: `PairProtocolError.pairs` (missing image) or `.image` (a file fails to decode).
    public static func evaluate(_ model: FaceRecognitionModel, lfwPairs: LFWPairs, root: String,
                                fileExtension: String = "jpg") throws(PairProtocolError) -> PairProtocolReport {
        try evaluate(model.backbone, flipSum: model.configuration.flipEmbeddings, lfwPairs: lfwPairs, root: root,
                     fileExtension: fileExtension)
    }

    /// `evaluate(_:lfwPairs:root:fileExtension:)` counting the images in `sources` and, with
    /// `input: .refuse`, stopping at the first image that differs from the model's input.
    public static func evaluate(_ model: FaceRecognitionModel, lfwPairs: LFWPairs, root: String, fileExtension: String = "jpg",
                                input: InputMismatchPolicy, sources: inout InputSourceTally) throws(PairProtocolError) -> PairProtocolReport {
        try evaluate(model.backbone, flipSum: model.configuration.flipEmbeddings, lfwPairs: lfwPairs, root: root,
                     fileExtension: fileExtension, input: input, sources: &sources)
    }
}
