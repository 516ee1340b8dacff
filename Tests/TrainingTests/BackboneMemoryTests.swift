import Foundation
import Testing
import _TestSupport
import ArcFace

/// Oversized backbones are refused before allocation (they used to abort with "failed to allocate").
@Suite struct BackboneMemoryTests {
    func problems(_ json: String) -> [String] {
        do { _ = try TrainingConfiguration.decode(json: Data(json.utf8), source: "c.json"); return [] }
        catch { if case let .outOfRange(_, problems) = error { return problems }; return ["\(error)"] }
    }

    @Test("the parameter count estimate is exact (plain and residual, with and without shortcuts)")
    func parameterCount() {
        #expect(BackboneConfiguration().parameterCountEstimate == 671_456)
        for configuration in [BackboneConfiguration(inputHeight: 16, inputWidth: 12, stageChannels: [4, 8, 8], embeddingDimension: 6),
                              BackboneConfiguration(inputChannels: 3, inputHeight: 16, inputWidth: 12, stageChannels: [4, 4, 8],
                                                    embeddingDimension: 5, residual: true)] {
            let backbone = Backbone(configuration: configuration, seed: 1)
            #expect(configuration.parameterCountEstimate == Double(backbone.parameters.reduce(0) { $0 + $1.value.count }))
        }
    }

    @Test("the default backbone's estimate: above its parameter state, well under 1 GiB for a batch of 32")
    func defaultEstimate() {
        let bytes = BackboneConfiguration().memoryBytesEstimate(batchSize: 32, training: true, processorCount: 2)
        // Parameters ×3 alone: 3·671,456·4 = 8,057,472 bytes; stage 1 activations alone: 32·6·16·112·92·4 = 126.6 MB.
        #expect(bytes > 8_057_472 + 126_615_552 && bytes < 1 << 30, "\(bytes)")
        #expect(BackboneConfiguration().memoryBytesEstimate(batchSize: 50, training: false, processorCount: 2) < bytes)
    }

    @Test("absurd sizes are configuration errors naming the key")
    func validationBounds() {
        #expect(problems(#"{"backbone": {"inputHeight": 100000, "inputWidth": 100000}}"#)
            == ["backbone.inputHeight and inputWidth must be ≤ 4096: 100000×100000"])
        #expect(problems(#"{"backbone": {"embeddingDimension": 100000000}}"#)
            == ["backbone.embeddingDimension must be ≤ 65536: 100000000"])
        #expect(problems(#"{"backbone": {"stageChannels": [100000]}}"#) == ["backbone.stageChannels must each be ≤ 4096: [100000]"])
    }

    @Test("a backbone within the bounds that does not fit is a typed error before allocation")
    func doesNotFit() throws {
        var c = TrainingConfiguration.base
        c.backbone = BackboneConfiguration(inputHeight: 4096, inputWidth: 4096, stageChannels: [4096], embeddingDimension: 65536)
        #expect(c.validationProblems().isEmpty)
        do {
            _ = try FaceRecognitionModel(configuration: c, classCount: 10, checkingMemoryForBatchSize: 32, availableBytes: 1 << 34)
            Issue.record("expected ModelMemoryError.backbone")
        } catch {
            guard case let .backbone(.doesNotFit(needed, available, parameters, batch, training)) = error else { Issue.record("\(error)"); return }
            #expect(needed > 3 * 4 * Int(parameters) && available == 1 << 34 && batch == 32 && training)
            #expect(error.description.hasPrefix("the backbone needs up to \(needed) bytes"))
        }
    }

    @Test("loading a checkpoint whose stored backbone cannot fit is refused before allocation")
    func checkpoint() throws {
        let model = FaceRecognitionModel(configuration: tinyConfiguration(), classCount: 3)
        var huge = tinyConfiguration()
        huge.backbone = BackboneConfiguration(inputHeight: 4096, inputWidth: 4096, stageChannels: [4096, 4096], embeddingDimension: 16)
        let directory = TemporaryDirectory()
        let path = directory.path + "/model.safetensors"
        let metadata = ["format": "swift-arcface", "version": Experiment.checkpointVersion, "classCount": "3",
                        "configuration": String(decoding: huge.jsonData(), as: UTF8.self)]
        try Safetensors.write(model.namedTensors, metadata: metadata, to: path)
        do { _ = try Experiment.loadModel(path: path); Issue.record("loaded") } catch {
            guard case let .invalidConfiguration(_, reason) = error else { Issue.record("\(error)"); return }
            #expect(reason.hasPrefix("the backbone needs up to"), "\(reason)")
        }
    }
}
