import Foundation
import Testing
import _TestSupport
import ArcFace

/// The input preprocessing is recorded in every model file, checked on load, and images that
/// differ from it are counted (warnings) or refused (`--strict-input`).
@Suite struct PreprocessingRecordTests {
    static func smallModel() -> FaceRecognitionModel {
        var configuration = TrainingConfiguration.base
        configuration.backbone.stageChannels = [4, 8]
        configuration.backbone.embeddingDimension = 16
        return FaceRecognitionModel(configuration: configuration, classCount: 2)
    }

    /// Saves `model` and rewrites its `model.safetensors` with `metadata` changed by `edit`.
    static func savedModel(_ model: FaceRecognitionModel, in directory: TemporaryDirectory,
                           edit: (inout [String: String]) -> Void = { _ in }) throws -> String {
        try Experiment.save(model, metrics: nil, identities: ["a", "b"], to: directory.path)
        let file = directory.path + "/model.safetensors"
        let (tensors, stored) = try Safetensors.read(path: file)
        var metadata = stored
        edit(&metadata)
        try Safetensors.write(tensors.sorted { $0.key < $1.key }.map { (name: $0.key, tensor: $0.value) },
                              metadata: metadata, checksum: true, to: file)
        return file
    }

    @Test("model.safetensors records the preprocessing of its configuration")
    func recorded() throws {
        let model = Self.smallModel()
        let directory = TemporaryDirectory()
        try Experiment.save(model, metrics: nil, identities: ["a", "b"], to: directory.path)
        let (_, metadata) = try Safetensors.read(path: directory.path + "/model.safetensors")
        #expect(metadata["preprocessing"] == #"{"channelOrder":"rgb","channels":1,"height":112,"mean":127.5,"standardDeviation":127.5,"width":92}"#)
        #expect(model.configuration.preprocessing.description == "1×112×92 grey, (x − 127.5)/127.5")
    }

    @Test("a model recording BGR, another normalization or a contradicting size is refused on load; none recorded loads")
    func checkedOnLoad() throws {
        let model = Self.smallModel()
        let bgr = InputPreprocessing(channels: 1, height: 112, width: 92, channelOrder: .bgr)
        #expect(bgr.unsupportedReason == nil, "a grey model has no channel order")
        let cases: [(InputPreprocessing, String)] = [
            (InputPreprocessing(channels: 1, height: 112, width: 92, mean: 0, standardDeviation: 255), "normalization (x − 0)/255"),
            (InputPreprocessing(channels: 1, height: 112, width: 112), "contradicts the configuration's 1×112×92"),
            (InputPreprocessing(channels: 3, height: 112, width: 92, channelOrder: .bgr), "expects BGR input"),
        ]
        for (recorded, reason) in cases {
            let directory = TemporaryDirectory()
            let file = try Self.savedModel(model, in: directory) { $0["preprocessing"] = recorded.json }
            let error = Self.loadError(file)
            guard case .unsupportedPreprocessing(let path, let message)? = error else {
                Issue.record("expected unsupportedPreprocessing for \(recorded), got \(String(describing: error))")
                continue
            }
            #expect(path == file)
            #expect(message.contains(reason), "\(message)")
        }
        let garbled = TemporaryDirectory()
        let garbledFile = try Self.savedModel(model, in: garbled) { $0["preprocessing"] = "{" }
        #expect(throws: CheckpointError.self) { try Experiment.loadModel(path: garbledFile) }
        let old = TemporaryDirectory()
        let oldFile = try Self.savedModel(model, in: old) { $0["preprocessing"] = nil }
        #expect(try Experiment.loadModel(path: oldFile).configuration.preprocessing == model.configuration.preprocessing)
    }

    /// The error loading `file` throws, or nil when it loads.
    static func loadError(_ file: String) -> CheckpointError? {
        do throws(CheckpointError) {
            _ = try Experiment.loadModel(path: file)
            return nil
        } catch { return error }
    }

    /// Two 4×4 PGM images (another size than the model's 92×112).
    static func smallImages(in directory: TemporaryDirectory) throws -> ImageList {
        let paths = [directory.path + "/a.pgm", directory.path + "/b.pgm"]
        for path in paths { try Data(encodePGM(FaceImage(width: 4, height: 4, repeating: 0.5))).write(to: URL(fileURLWithPath: path)) }
        return ImageList(paths: paths, labels: ["", ""])
    }

    @Test("embed converts images of another size and counts them; with .refuse it stops at the first, writing nothing")
    func embedTallyAndRefuse() throws {
        let model = Self.smallModel()
        let directory = TemporaryDirectory()
        let list = try Self.smallImages(in: directory)
        var sources = InputSourceTally()
        _ = try Experiment.exportEmbeddings(list, model: model, output: directory.path + "/e.npy", flipSum: false, sources: &sources)
        #expect(sources.imageCount == 2)
        let warnings = sources.mismatchWarnings(against: model.configuration.preprocessing)
        #expect(warnings.count == 1 && warnings[0].hasPrefix("2 of 2 images are not 92×112 (4×4"))
        var refused = InputSourceTally()
        #expect(throws: EmbeddingError.inputMismatch(path: list.paths[0],
                                                     reason: "the image is 4×4 pixels (width×height) but the model takes 92×112")) {
            try Experiment.exportEmbeddings(list, model: model, output: directory.path + "/f.npy", flipSum: false,
                                            input: .refuse, sources: &refused)
        }
        #expect(!FileManager.default.fileExists(atPath: directory.path + "/f.npy"))
    }

    @Test("a pairs protocol with images of another size: counted, or refused naming the image")
    func pairProtocolRefuse() throws {
        let model = Self.smallModel()
        let directory = TemporaryDirectory()
        let image = try encodePNG(FaceImage(width: 4, height: 4, repeating: 0.5))
        let bin = VerificationBin(path: "set.bin", encodedImages: Array(repeating: image, count: 40),
                                  isSame: (0..<20).map { $0 % 2 == 0 })
        var sources = InputSourceTally()
        _ = try PairProtocolEvaluation.evaluate(model, bin: bin, input: .convert, sources: &sources)
        #expect(sources.imageCount == 40)
        #expect(sources.mismatchWarnings(against: model.configuration.preprocessing).first?.hasPrefix("40 of 40 images") == true)
        var refused = InputSourceTally()
        #expect(throws: PairProtocolError.inputMismatch(path: "set.bin image 0",
                                                        reason: "the image is 4×4 pixels (width×height) but the model takes 92×112")) {
            try PairProtocolEvaluation.evaluate(model, bin: bin, input: .refuse, sources: &refused)
        }
        _ = directory
    }
}
