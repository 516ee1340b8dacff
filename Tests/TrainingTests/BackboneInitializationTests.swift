// `--init-from` (a backbone from a saved file, a new head), `backboneLearningRateScale` and
// `freezeBatchNorm`, on the tiny configuration (fast in debug).
import Foundation
import Testing
import _TestSupport
import ArcFace

/// A saved model of the tiny configuration with `classCount` classes and BatchNorm statistics
/// away from their initial 0 / 1 (so that a load that skipped the buffers would show).
private func savedSourceModel(in directory: TemporaryDirectory, embeddingDimension: Int = 16,
                              classCount: Int = 5) throws -> (path: String, model: FaceRecognitionModel) {
    var configuration = tinyConfiguration()
    configuration.seed = 99
    configuration.backbone.embeddingDimension = embeddingDimension
    let model = FaceRecognitionModel(configuration: configuration, classCount: classCount)
    for (k, buffer) in model.backbone.buffers.enumerated() {
        let values = randomArray(buffer.value.count, seed: 500 + UInt64(k), standardDeviation: 0.2)
        buffer.value.storage = buffer.name.hasSuffix("running_var") ? values.map { 1 + abs($0) } : values
    }
    let path = directory.path + "/source"
    try Experiment.save(model, metrics: nil, identities: (0..<classCount).map { "s\($0)" }, to: path)
    return (path, model)
}

private func backboneTensors(_ model: FaceRecognitionModel) -> [String: Tensor] {
    Dictionary(uniqueKeysWithValues: model.backbone.parameters.map { ($0.name, $0.value) } + model.backbone.buffers.map { ($0.name, $0.value) })
}

@Suite struct BackboneInitializationTests {
    @Test("init-from our own model.safetensors: identical backbone tensors at step 0, a new head, the fingerprint recorded")
    func ownModel() throws {
        let directory = TemporaryDirectory()
        let (path, source) = try savedSourceModel(in: directory)
        let trainer = try Trainer(configuration: tinyConfiguration(), trainingSet: try attSlice(identityCount: 3))
        let before = backboneTensors(trainer.model)
        #expect(before != backboneTensors(source))   // another seed: the load must change them
        let initialization = try trainer.initializeBackbone(from: path)
        #expect(backboneTensors(trainer.model) == backboneTensors(source))
        #expect(trainer.model.head.parameters.first?.value.shape.first == 3)   // the new run's identities
        let data = try Data(contentsOf: URL(fileURLWithPath: path + "/model.safetensors"))
        #expect(initialization == BackboneInitialization(fingerprinting: data, path: path + "/model.safetensors"))
        let stored = try #require(trainer.checkpointMetadata[BackboneInitialization.metadataKey])
        #expect(BackboneInitialization(json: stored) == initialization)
    }

    @Test("init-from a backbone-only file (arcface_torch's layout: no head) loads; a head tensor is ignored")
    func backboneOnlyFile() throws {
        let directory = TemporaryDirectory()
        let (_, source) = try savedSourceModel(in: directory)
        let file = directory.path + "/backbone.safetensors"
        let tensors = source.backbone.parameters.map { ($0.name, $0.value) } + source.backbone.buffers.map { ($0.name, $0.value) }
        try Safetensors.write(tensors.map { (name: $0.0, tensor: $0.1) }, to: file)
        let model = FaceRecognitionModel(configuration: tinyConfiguration(), classCount: 3)
        let (loaded, _) = try FaceRecognitionModel.backboneTensors(at: file)
        try model.loadBackbone(loaded, path: file)
        #expect(backboneTensors(model) == backboneTensors(source))
    }

    @Test("a wrong-shape file fails naming the tensor and both shapes; a missing and an extra tensor are named; nothing changes")
    func mismatches() throws {
        let directory = TemporaryDirectory()
        let (path, source) = try savedSourceModel(in: directory, embeddingDimension: 8)
        let trainer = try Trainer(configuration: tinyConfiguration(), trainingSet: try attSlice(identityCount: 3))
        let before = backboneTensors(trainer.model)
        let file = path + "/model.safetensors"
        let fcShape = try #require(source.backbone.parameters.first { $0.name == "backbone.fc.weight" }).value.shape
        do {
            try trainer.initializeBackbone(from: path)
            Issue.record("a backbone of embedding size 8 was loaded into one of 16")
        } catch {
            #expect(error == .shapeMismatch(path: file, name: "backbone.fc.weight", file: fcShape, backbone: [16, fcShape[1]]))
            #expect(error.description.contains("backbone.fc.weight") && error.description.contains("\(fcShape)")
                    && error.description.contains("[16, \(fcShape[1])]"))
        }
        #expect(backboneTensors(trainer.model) == before)
        #expect(trainer.checkpointMetadata[BackboneInitialization.metadataKey] == nil)

        var tensors = backboneTensors(FaceRecognitionModel(configuration: tinyConfiguration(), classCount: 3))
        tensors["backbone.extra.weight"] = Tensor(shape: [2])
        #expect(throws: BackboneInitializationError.unexpectedTensor(path: "x", name: "backbone.extra.weight")) {
            try trainer.model.loadBackbone(tensors, path: "x")
        }
        tensors["backbone.extra.weight"] = nil
        let removed = try #require(trainer.model.backbone.buffers.last?.name)
        tensors[removed] = nil
        #expect(throws: BackboneInitializationError.missingTensor(path: "x", name: removed)) {
            try trainer.model.loadBackbone(tensors, path: "x")
        }
        #expect(backboneTensors(trainer.model) == before)
    }

    @Test("backboneLearningRateScale 0 keeps the backbone fixed across a step while the head moves; 1 moves it")
    func backboneLearningRateScale() throws {
        let train = try attSlice(identityCount: 3)
        for scale in [0.0, 1.0] {
            var configuration = tinyConfiguration()
            configuration.backboneLearningRateScale = scale
            configuration.warmupEpochs = 0
            let trainer = try Trainer(configuration: configuration, trainingSet: train)
            trainer.stopAfterStep = 1
            let backbone = trainer.model.backbone.parameters.map(\.value), head = trainer.model.head.parameters.map(\.value)
            try trainer.run()
            #expect(trainer.step == 1)
            #expect((trainer.model.backbone.parameters.map(\.value) == backbone) == (scale == 0), "scale \(scale)")
            #expect(trainer.model.head.parameters.map(\.value) != head, "scale \(scale)")
        }
        var bad = tinyConfiguration()
        bad.backboneLearningRateScale = 1.5
        #expect(bad.validationProblems().contains { $0.contains("backboneLearningRateScale") })
        #expect(throws: ConfigurationError.self) {
            _ = try TrainingConfiguration.decode(json: Data(#"{"backboneLearningRateScale": -0.1}"#.utf8))
        }
        #expect(try TrainingConfiguration.decode(json: Data(#"{"backboneLearningRateScale": 0.1}"#.utf8)).backboneLearningRateScale == 0.1)
    }

    @Test("freezeBatchNorm keeps every running statistic unchanged across steps while the weights train; off, they move")
    func freezeBatchNorm() throws {
        let train = try attSlice(identityCount: 3)
        for frozen in [true, false] {
            var configuration = tinyConfiguration()
            configuration.freezeBatchNorm = frozen
            let trainer = try Trainer(configuration: configuration, trainingSet: train)
            trainer.stopAfterStep = 2
            let buffers = trainer.model.backbone.buffers.map(\.value), parameters = trainer.model.backbone.parameters.map(\.value)
            try trainer.run()
            #expect(trainer.step == 2)
            #expect((trainer.model.backbone.buffers.map(\.value) == buffers) == frozen, "frozen \(frozen)")
            #expect(trainer.model.backbone.parameters.map(\.value) != parameters, "frozen \(frozen)")
        }
    }

    @Test("a run started with initFrom records the fingerprint in its checkpoints and model.safetensors; a resume keeps it and refuses another file")
    func recordedAndResumed() throws {
        let directory = TemporaryDirectory()
        let (path, _) = try savedSourceModel(in: directory)
        var configuration = tinyConfiguration()
        configuration.epochs = 2
        configuration.warmupEpochs = 0
        let run = directory.path + "/run"
        let result = try Experiment.run(configuration: configuration, dataDirectory: attFacesSubset(in: directory, identities: 6),
                                        outputDirectory: run, initFrom: path)
        #expect(result.history.count == 2)
        let model = try Safetensors.read(path: run + "/model.safetensors").metadata
        let recorded = try #require(model[BackboneInitialization.metadataKey].flatMap(BackboneInitialization.init(json:)))
        #expect(recorded.path == path + "/model.safetensors")
        let checkpoints = try FileManager.default.contentsOfDirectory(atPath: run + "/checkpoints").filter { $0.hasSuffix(".safetensors") }
        #expect(!checkpoints.isEmpty)
        for name in checkpoints {
            let metadata = try Safetensors.read(path: run + "/checkpoints/" + name).metadata
            #expect(metadata[BackboneInitialization.metadataKey].flatMap(BackboneInitialization.init(json:)) == recorded, "\(name)")
        }
        // A resume without --init-from keeps the recorded fingerprint (model.safetensors written again).
        try FileManager.default.removeItem(atPath: run + "/model.safetensors")
        _ = try Experiment.run(configuration: configuration, dataDirectory: directory.path + "/data", outputDirectory: run, resume: true)
        let resumed = try Safetensors.read(path: run + "/model.safetensors").metadata
        #expect(resumed[BackboneInitialization.metadataKey].flatMap(BackboneInitialization.init(json:)) == recorded)
        // Another file on resume: refused with both fingerprints.
        let otherDirectory = TemporaryDirectory()
        let (other, _) = try savedSourceModel(in: otherDirectory, embeddingDimension: 16, classCount: 4)
        do {
            _ = try Experiment.run(configuration: configuration, dataDirectory: directory.path + "/data", outputDirectory: run,
                                   resume: true, initFrom: other)
            Issue.record("resumed with another --init-from file")
        } catch {
            guard case let .initialization(.differentInitialization(given, stored)) = error else { Issue.record("\(error)"); return }
            #expect(stored == recorded && given.path == other + "/model.safetensors")
        }
    }
}

/// The first `identities` AT&T identities copied into `directory/data` (a folder to train on).
private func attFacesSubset(in directory: TemporaryDirectory, identities: Int) throws -> String {
    let folder = directory.path + "/data"
    try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
    let names = try FileManager.default.contentsOfDirectory(atPath: attFacesDirectory).filter { $0.hasPrefix("s") }.sorted()
    for name in names.prefix(identities) {
        try FileManager.default.copyItem(atPath: attFacesDirectory + "/" + name, toPath: folder + "/" + name)
    }
    return folder
}
