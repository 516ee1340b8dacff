import Foundation
import Testing
import _TestSupport
import ArcFace

@Suite(.serialized) struct TrainingRunTests {
    @Test("a short run on a slice of the real faces lowers the loss", arguments: [LossKind.arcface, .softmax])
    func lossFalls(loss: LossKind) throws {
        let train = try attSlice(identityCount: 5)
        var configuration = tinyConfiguration(loss: loss)
        configuration.epochs = 6
        let trainer = try Trainer(configuration: configuration, trainingSet: train)
        try trainer.run()
        let first = trainer.history.first!.loss, last = trainer.history.last!.loss
        #expect(last < 0.8 * first, "loss \(first) → \(last)")
        #expect(trainer.model.parameters.allSatisfy { $0.value.isFinite })
    }

    @Test("save → load gives identical embeddings and metrics; evaluate reproduces them")
    func checkpointRoundTrip() throws {
        let directory = TemporaryDirectory()
        var configuration = tinyConfiguration()
        configuration.epochs = 1
        configuration.warmupEpochs = 0
        configuration.heldOutIdentities = 35  // train on 5 identities: fast
        let result = try Experiment.run(configuration: configuration, dataDirectory: attFacesDirectory,
                                        outputDirectory: directory.path)
        let loaded = try Experiment.loadModel(path: directory.path)
        let (_, heldOut) = try Experiment.split(directory: attFacesDirectory, configuration: loaded.configuration)
        #expect(loaded.configuration == configuration)
        let report = Experiment.evaluate(loaded, on: heldOut, configuration: loaded.configuration)
        #expect(report == result.metrics.verification)
        // The reloaded model computes the very same embeddings as the trained one.
        let trainedModel = FaceRecognitionModel(configuration: configuration, classCount: 5)
        let (tensors, _) = try Safetensors.read(path: directory.path + "/model.safetensors")
        try trainedModel.load(tensors, path: "model")
        #expect(embeddings(of: heldOut, backbone: loaded.backbone, flipSum: true)
                == embeddings(of: heldOut, backbone: trainedModel.backbone, flipSum: true))
        #expect(loaded.backbone.buffers.map(\.value) == trainedModel.backbone.buffers.map(\.value))
        #expect(loaded.backbone.buffers.contains { $0.value.storage.contains { $0 != 0 && $0 != 1 } },
                "BatchNorm running statistics were trained and saved")
        let metricsData = try Data(contentsOf: URL(fileURLWithPath: directory.path + "/metrics.json"))
        let keys = try #require(try JSONSerialization.jsonObject(with: metricsData) as? [String: Any]).keys
        for key in ["balancedAccuracy", "balancedAccuracyStdErr", "auc", "eer", "tarAtFar1e-2", "tarAtFar1e-3", "rank1", "trainImagesPerSecond"] {
            #expect(keys.contains(key), "metrics.json lacks \(key)")
        }
        #expect(FileManager.default.fileExists(atPath: directory.path + "/config.json"))
        // The preprocessing the scores were measured with, in metrics.json and every checkpoint.
        #expect(result.metrics.preprocessing == configuration.preprocessing)
        #expect(try JSONDecoder().decode(RunMetrics.self, from: metricsData).preprocessing == configuration.preprocessing)
        let checkpoints = try FileManager.default.contentsOfDirectory(atPath: directory.path + "/checkpoints")
            .filter { $0.hasSuffix(".safetensors") }
        #expect(!checkpoints.isEmpty)
        for name in checkpoints {
            let (_, metadata) = try Safetensors.read(path: directory.path + "/checkpoints/" + name)
            #expect(metadata["preprocessing"] == configuration.preprocessing.json, "\(name)")
        }
    }

    @Test("a checkpoint of another model shape or a truncated file is refused")
    func wrongCheckpoint() throws {
        let directory = TemporaryDirectory()
        let model = FaceRecognitionModel(configuration: tinyConfiguration(), classCount: 5)
        try Experiment.save(model, metrics: nil, identities: [], to: directory.path)
        var other = tinyConfiguration()
        other.backbone.embeddingDimension = 8
        let otherModel = FaceRecognitionModel(configuration: other, classCount: 5)
        let (tensors, _) = try Safetensors.read(path: directory.path + "/model.safetensors")
        #expect(throws: CheckpointError.self) { try otherModel.load(tensors, path: "m") }
        let file = directory.path + "/model.safetensors"
        let bytes = try Data(contentsOf: URL(fileURLWithPath: file))
        try bytes.prefix(bytes.count / 2).write(to: URL(fileURLWithPath: file))
        #expect(throws: CheckpointError.self) { try Experiment.loadModel(path: directory.path) }
        #expect(throws: CheckpointError.self) { try Experiment.loadModel(path: directory.path + "/missing") }
    }

    @Test("a batch larger than the dataset is a clear error")
    func batchTooLarge() throws {
        let train = try attSlice(identityCount: 2)
        var configuration = tinyConfiguration()
        configuration.batchSize = 64
        #expect(throws: TrainingError.self) { try Trainer(configuration: configuration, trainingSet: train) }
    }

    @Test("a NaN pixel stops training with a typed error and leaves the weights finite")
    func nanInBatch() throws {
        var train = try attSlice(identityCount: 3)
        for i in train.images.indices { train.images[i].pixels[17] = .nan }
        let trainer = try Trainer(configuration: tinyConfiguration(), trainingSet: train)
        let before = trainer.model.namedTensors.map(\.tensor)
        do {
            try trainer.run()
            Issue.record("training accepted NaN pixels")
        } catch {
            guard case .numerics(.nonFiniteInput) = error else { Issue.record("wrong error: \(error)"); return }
            #expect(error.description.contains(".pgm"))
        }
        #expect(trainer.model.namedTensors.map(\.tensor) == before)
    }

    @Test("the same seed gives the same run")
    func determinism() throws {
        let train = try attSlice(identityCount: 3)
        var configuration = tinyConfiguration()
        configuration.epochs = 2
        let a = try Trainer(configuration: configuration, trainingSet: train)
        try a.run()
        let b = try Trainer(configuration: configuration, trainingSet: train)
        try b.run()
        #expect(a.history.map(\.loss) == b.history.map(\.loss))
        #expect(a.model.parameters.map(\.value) == b.model.parameters.map(\.value))
    }

    @Test("images of another size than the backbone's input are a typed error, not a crash")
    func imageSizeMismatch() throws {
        let images = (0..<6).map { _ in FaceImage(width: 32, height: 32, repeating: 0.5) }
        let dataset = FaceDataset(identities: ["a", "b", "c"], images: images, labels: [0, 0, 1, 1, 2, 2],
                                  paths: (0..<6).map { "img\($0).pgm" })
        do {
            _ = try Trainer(configuration: tinyConfiguration(), trainingSet: dataset)
            Issue.record("accepted 32×32 images for a 112×92 backbone")
        } catch {
            guard case .data(.imageSizeMismatch) = error else { Issue.record("wrong error \(error)"); return }
        }
    }

    @Test("held-out identities without genuine pairs are refused before training")
    func heldOutTooSmall() throws {
        let directory = TemporaryDirectory()
        for identity in 0..<6 {
            let folder = directory.path + "/p\(identity)"
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
            let count = identity < 3 ? 1 : 3  // whichever identities are held out, some have one image
            for i in 0..<count {
                let image = FaceImage(width: 92, height: 112, repeating: Float(identity * 3 + i) / 20)
                try Data(encodePGM(image)).write(to: URL(fileURLWithPath: folder + "/\(i).pgm"))
            }
        }
        var configuration = tinyConfiguration()
        configuration.heldOutIdentities = 2
        configuration.folds = 10
        // Either no genuine pair or too few pairs for 10 folds: both must be typed errors.
        for seed in UInt64(1)...UInt64(4) {
            configuration.seed = seed
            do {
                _ = try Experiment.split(directory: directory.path, configuration: configuration)
                Issue.record("seed \(seed): a held-out set with at most 6 balanced pairs was accepted for 10 folds")
            } catch {
                guard case .data(.heldOutSetTooSmall) = error else { Issue.record("wrong error \(error)"); return }
            }
        }
    }

    @Test("learning-rate warm-up and margin warm-up are wired to epochs")
    func schedules() throws {
        let train = try attSlice(identityCount: 3)
        var configuration = tinyConfiguration()
        configuration.epochs = 3
        configuration.warmupEpochs = 1
        configuration.marginWarmupEpochs = 2
        let trainer = try Trainer(configuration: configuration, trainingSet: train)
        // 30 images, batch 10, drop-last: 3 steps per epoch.
        #expect(trainer.scheduler.warmupSteps == 3)
        #expect(trainer.scheduler.totalSteps == 9)
        let head = try #require(trainer.model.head as? MarginHead)
        var margins: [Double] = []
        try trainer.run(onEpoch: { _ in margins.append((head.margin as? ArcFaceMargin)?.margin ?? -1) })
        // Per step from 0 over 2 × 3 = 6 steps: the last steps of the epochs (2, 5, 8) have
        // m·2/6, m·5/6 and m.
        let expected = [0.5 * 2 / 6, 0.5 * 5 / 6, 0.5]
        #expect(zip(margins, expected).allSatisfy { abs($0 - $1) < 1e-12 } && margins.count == 3, "\(margins)")
    }

    @Test("a diverging learning rate is caught: skip keeps every weight and statistic finite, stop is a typed error")
    func divergingLearningRate() throws {
        let train = try attSlice(identityCount: 3)
        var configuration = tinyConfiguration()
        configuration.learningRate = 1e30
        configuration.epochs = 2
        configuration.onNonFinite = .skip
        let skipping = try Trainer(configuration: configuration, trainingSet: train)
        // Every step skipped for an epoch's worth of steps in a row: stopped, not skipped forever.
        do {
            try skipping.run()
            Issue.record("a diverged run went on skipping")
        } catch {
            guard case .numerics(.everyStepSkipped(_, 3, _)) = error else { Issue.record("\(error)"); return }
        }
        #expect(skipping.skippedSteps >= 3)
        #expect(skipping.model.namedTensors.allSatisfy { $0.tensor.isFinite })
        configuration.onNonFinite = .stop
        let stopping = try Trainer(configuration: configuration, trainingSet: train)
        #expect(throws: TrainingError.self) { try stopping.run() }
        #expect(stopping.model.namedTensors.allSatisfy { $0.tensor.isFinite })
    }
}

