import Foundation
import Testing
import _TestSupport
import ArcFace

/// Backbone-only model files (`Experiment.saveBackbone`, converted arcface_torch `state_dict`s)
/// for `embed`, `evaluate-protocol`, `export` (`Experiment.loadEmbeddingModel`).
@Suite(.serialized) struct BackboneFileTests {
    /// A MobileFaceNet (`D` = 16) whose every parameter and BatchNorm statistic is random, so a
    /// loader that kept its own initialization or default statistics would embed differently.
    static func mobileFaceNetModel() -> FaceRecognitionModel {
        var configuration = TrainingConfiguration.base
        configuration.backbone = BackboneConfiguration(kind: .mobilefacenet, embeddingDimension: 16)
        configuration.threads = 1
        let model = FaceRecognitionModel(configuration: configuration, classCount: 3)
        var generator = SeededGenerator(seed: 77)
        for buffer in model.backbone.buffers {
            let isVariance = buffer.name.hasSuffix("running_var")
            buffer.value = Tensor(shape: buffer.value.shape, storage: buffer.value.storage.map { _ in
                isVariance ? Float.random(in: 0.5...1.5, using: &generator) : Float.random(in: -0.1...0.1, using: &generator) })
        }
        for parameter in model.backbone.parameters {
            parameter.value = Tensor(shape: parameter.value.shape, storage: parameter.value.storage.map {
                $0 + Float.random(in: -0.01...0.01, using: &generator) })
        }
        return model
    }

    /// Two deterministic RGB 112×112 images in [−1, 1].
    static func input() -> Tensor {
        Tensor(shape: [2, 3, 112, 112], storage: (0..<(2 * 3 * 112 * 112)).map { Float(($0 * 7919) % 255) / 127.5 - 1 })
    }

    static func embed(_ backbone: any EmbeddingBackbone) -> [Float] {
        backbone.forward(input(), mode: .inference).output.storage
    }

    static func backboneTensors(_ model: FaceRecognitionModel) -> [(String, Tensor)] {
        model.backbone.parameters.map { ($0.name, $0.value) } + model.backbone.buffers.map { ($0.name, $0.value) }
    }

    @Test("a backbone-only file (saveBackbone) and a raw state_dict (no metadata) embed bit-identically to the full model")
    func sameEmbeddings() throws {
        let directory = TemporaryDirectory()
        let model = Self.mobileFaceNetModel()
        try Experiment.save(model, metrics: nil, identities: ["a", "b", "c"], to: directory.path + "/full")
        try Experiment.saveBackbone(model, to: directory.path + "/backbone.safetensors")
        try Safetensors.write(Self.backboneTensors(model), metadata: [:], checksum: false, to: directory.path + "/raw.safetensors")

        let full = try Experiment.loadEmbeddingModel(path: directory.path + "/full")
        #expect(full.model != nil && full.identities == ["a", "b", "c"])
        let reference = Self.embed(full.backbone)
        #expect(reference == Self.embed(model.backbone))

        let stored = try Experiment.loadEmbeddingModel(path: directory.path + "/backbone.safetensors")
        #expect(stored.model == nil && stored.configurationSource == .stored)
        #expect(stored.configuration == model.configuration)
        #expect(Self.embed(stored.backbone) == reference)
        let tensors = try Safetensors.read(path: directory.path + "/backbone.safetensors").tensors
        #expect(!tensors.keys.contains { $0.hasPrefix("head.") })

        let raw = try Experiment.loadEmbeddingModel(path: directory.path + "/raw.safetensors")
        #expect(raw.configurationSource == .inferred)
        #expect(raw.configuration.backbone == model.configuration.backbone)
        #expect(Self.embed(raw.backbone) == reference)

        // --init-from takes the backbone-only file too.
        let other = FaceRecognitionModel(configuration: model.configuration, classCount: 5)
        let (initial, _) = try FaceRecognitionModel.backboneTensors(at: directory.path + "/backbone.safetensors")
        try other.loadBackbone(initial, path: "backbone.safetensors")
        #expect(Self.embed(other.backbone) == reference)
    }

    @Test("the family and IResNet depth are inferred from arcface_torch names and shapes; others are named")
    func inference() throws {
        for depth in [18, 34] {
            var generator = SeededGenerator(seed: 1)
            let backbone = IResNet(configuration: BackboneConfiguration(kind: .iresnet, depth: depth, embeddingDimension: 128),
                                   generator: &generator)
            let shapes = Dictionary(uniqueKeysWithValues: (backbone.parameters.map { ($0.name, $0.value.shape) }
                                                           + backbone.buffers.map { ($0.name, $0.value.shape) }))
            let inferred = try BackboneConfiguration.inferred(fromTensorShapes: shapes).get()
            #expect(inferred == BackboneConfiguration(kind: .iresnet, depth: depth, embeddingDimension: 128))
        }
        for expected in [BackboneConfiguration.mobileFaceNet(blocks: [2, 8, 12, 4], scale: 4, embeddingDimension: 256),
                         .mobileFaceNet(blocks: [2, 1, 1, 1], scale: 1), .mobileFaceNet(blocks: [1, 2, 3, 1], scale: 3)] {
            var generator = SeededGenerator(seed: 2)
            let backbone = MobileFaceNet(configuration: expected, generator: &generator)
            let shapes = Dictionary(uniqueKeysWithValues: (backbone.parameters.map { ($0.name, $0.value.shape) }
                                                           + backbone.buffers.map { ($0.name, $0.value.shape) }))
            #expect(try BackboneConfiguration.inferred(fromTensorShapes: shapes).get() == expected)
        }
        // A stem convolution of no 64·scale width: the scale from its BatchNorm (the load then names the convolution).
        var generator = SeededGenerator(seed: 3)
        let mbf = MobileFaceNet(configuration: .mobileFaceNet(scale: 3), generator: &generator)
        var shapes = Dictionary(uniqueKeysWithValues: (mbf.parameters.map { ($0.name, $0.value.shape) } + mbf.buffers.map { ($0.name, $0.value.shape) }))
        shapes["layers.0.layers.0.weight"] = [100, 3, 3, 3]
        #expect(try BackboneConfiguration.inferred(fromTensorShapes: shapes).get() == .mobileFaceNet(scale: 3))
        shapes = shapes.filter { !$0.key.hasPrefix("layers.5.") }
        guard case let .failure(missingGroup) = BackboneConfiguration.inferred(fromTensorShapes: shapes) else {
            Issue.record("a MobileFaceNet without layers.5 has a residual group of 0 blocks")
            return
        }
        #expect(missingGroup.reason.contains("blocks [1, 4, 0, 2]") && missingGroup.reason.contains("backbone.blocks"), "\(missingGroup.reason)")
        let odd = ["conv1.weight": [64, 3, 3, 3], "layer1.0.conv1.weight": [64, 64, 3, 3], "fc.weight": [512, 25088]]
        guard case let .failure(failure) = BackboneConfiguration.inferred(fromTensorShapes: odd) else {
            Issue.record("one block per stage is no arcface_torch depth")
            return
        }
        #expect(failure.reason.contains("IResNet with blocks [1, 0, 0, 0] per stage"), "\(failure.reason)")
    }

    /// The metadata scripts/convert_arcface_torch.py's `to-safetensors` writes (`backbone_metadata`:
    /// compact JSON, sorted keys) for an arcface_torch `backbone` configuration.
    static func converterMetadata(backbone: String, name: String) -> [String: String] {
        ["format": "swift-arcface", "version": "1", "kind": "backbone",
         "configuration": #"{"backbone":{"# + backbone + "}}",
         "preprocessing": #"{"channelOrder":"rgb","channels":3,"height":112,"mean":127.5,"standardDeviation":127.5,"width":112}"#,
         "source": "backbone.pth", "arcface_torch": name]
    }

    @Test("a file with the converter's metadata loads with its stored configuration (IResNet-18, MobileFaceNet), embedding as without it")
    func converterMetadata() throws {
        let directory = TemporaryDirectory()
        let model = Self.mobileFaceNetModel()
        let mbf = directory.path + "/mbf.safetensors"
        let backbone = #""blocks":[1,4,6,2],"dropout":0,"embeddingDimension":16,"inputChannels":3,"inputHeight":112,"inputWidth":112,"kind":"mobilefacenet","scale":2"#
        try Safetensors.write(Self.backboneTensors(model), metadata: Self.converterMetadata(backbone: backbone, name: "MobileFaceNet (get_mbf)"),
                              checksum: false, to: mbf)
        let loaded = try Experiment.loadEmbeddingModel(path: mbf)
        #expect(loaded.configurationSource == .stored && loaded.model == nil)
        #expect(loaded.configuration.backbone == .mobileFaceNet(embeddingDimension: 16))
        #expect(loaded.configuration.preprocessing == InputPreprocessing(channels: 3, height: 112, width: 112))
        #expect(loaded.summary == "mobilefacenet blocks [1, 4, 6, 2] scale 2, D 16, configuration stored in the file")
        #expect(Self.embed(loaded.backbone) == Self.embed(model.backbone))
        // The same tensors without metadata: the same configuration, inferred.
        let raw = directory.path + "/raw.safetensors"
        try Safetensors.write(Self.backboneTensors(model), metadata: [:], checksum: false, to: raw)
        let inferred = try Experiment.loadEmbeddingModel(path: raw)
        #expect(inferred.configurationSource == .inferred && inferred.configuration == loaded.configuration)
        #expect(inferred.summary.hasSuffix("configuration inferred from the tensor names (no configuration metadata)"))

        var generator = SeededGenerator(seed: 9)
        let r18 = IResNet(configuration: BackboneConfiguration(kind: .iresnet, depth: 18, embeddingDimension: 8), generator: &generator)
        let iresnet = directory.path + "/r18.safetensors"
        let r18Backbone = #""depth":18,"dropout":0,"embeddingDimension":8,"inputChannels":3,"inputHeight":112,"inputWidth":112,"kind":"iresnet""#
        try Safetensors.write(r18.parameters.map { ($0.name, $0.value) } + r18.buffers.map { ($0.name, $0.value) },
                              metadata: Self.converterMetadata(backbone: r18Backbone, name: "IResNet-18"), checksum: false, to: iresnet)
        let r18Loaded = try Experiment.loadEmbeddingModel(path: iresnet)
        #expect(r18Loaded.configurationSource == .stored)
        #expect(r18Loaded.configuration.backbone == BackboneConfiguration(kind: .iresnet, depth: 18, embeddingDimension: 8))
        #expect(r18Loaded.backbone is IResNet)
        #expect(r18Loaded.summary == "iresnet-18, D 8, configuration stored in the file")

        // A stored configuration that names another width than the tensors: the tensor and both shapes.
        let wrong = directory.path + "/wrong.safetensors"
        try Safetensors.write(Self.backboneTensors(model), metadata: Self.converterMetadata(
            backbone: backbone.replacingOccurrences(of: #""scale":2"#, with: #""scale":4"#), name: "?"), checksum: false, to: wrong)
        #expect(throws: BackboneFileError.shapeMismatch(path: wrong, name: "layers.0.layers.0.weight", file: [128, 3, 3, 3], expected: [256, 3, 3, 3])) {
            try Experiment.loadEmbeddingModel(path: wrong)
        }
    }

    @Test("missing tensor, wrong shape, unknown family: typed errors naming the file and tensor")
    func errors() throws {
        let directory = TemporaryDirectory()
        let model = Self.mobileFaceNetModel()
        var tensors = Self.backboneTensors(model)
        let dropped = tensors.removeLast().0
        let missing = directory.path + "/missing.safetensors"
        try Safetensors.write(tensors, metadata: [:], checksum: false, to: missing)
        #expect(throws: BackboneFileError.missingTensor(path: missing, name: dropped)) { try Experiment.loadEmbeddingModel(path: missing) }

        tensors = Self.backboneTensors(model)
        let index = try #require(tensors.firstIndex { $0.0 == "layers.0.layers.0.weight" })
        let shape = tensors[index].1.shape
        tensors[index].1 = Tensor(shape: [shape[0] + 1] + shape.dropFirst(), repeating: 0)
        let wrong = directory.path + "/wrong.safetensors"
        try Safetensors.write(tensors, metadata: [:], checksum: false, to: wrong)
        #expect(throws: BackboneFileError.shapeMismatch(path: wrong, name: "layers.0.layers.0.weight",
                                                        file: [shape[0] + 1] + shape.dropFirst(), expected: shape)) {
            try Experiment.loadEmbeddingModel(path: wrong)
        }

        let cnn = FaceRecognitionModel(configuration: tinyConfiguration(), classCount: 3)
        let unknown = directory.path + "/unknown.safetensors"
        try Safetensors.write(Self.backboneTensors(cnn), metadata: [:], checksum: false, to: unknown)
        do {
            _ = try Experiment.loadEmbeddingModel(path: unknown)
            Issue.record("a default-CNN state_dict without configuration has no family")
        } catch {
            guard case .unknownFamily(unknown, _) = error else { throw error }
            #expect(error.description.contains("nor 'layers.0.…' / 'conv_sep.…' (MobileFaceNet)"), "\(error)")
        }
    }

    @Test("CLI: export --onnx and embed take a backbone-only file (embeddings equal the full model's); evaluate refuses it; a bad file exits 1 naming the tensor",
          .enabled(if: ArcFaceBinary.path != nil))
    func commandLine() throws {
        let binary = try #require(ArcFaceBinary.path)
        let directory = TemporaryDirectory()
        let model = Self.mobileFaceNetModel()
        try Experiment.save(model, metrics: nil, identities: ["a", "b", "c"], to: directory.path + "/full")
        let backbone = directory.path + "/backbone.safetensors"
        try Experiment.saveBackbone(model, to: backbone)
        let list = directory.path + "/list.txt"
        try "\(attFacesDirectory)/s1/1.pgm\n\(attFacesDirectory)/s2/1.pgm\n".write(toFile: list, atomically: true, encoding: .utf8)

        let export = try RunFolderCLITests.run(binary, ["export", "--checkpoint", backbone, "--onnx", directory.path + "/m.onnx"])
        #expect(export.status == 0 && FileManager.default.fileExists(atPath: directory.path + "/m.onnx"), "\(export.text)")
        #expect(export.text.contains("model: mobilefacenet blocks [1, 4, 6, 2] scale 2, D 16, configuration stored in the file"), "\(export.text)")
        let raw = directory.path + "/raw.safetensors"
        try Safetensors.write(Self.backboneTensors(model), metadata: [:], checksum: false, to: raw)
        let rawExport = try RunFolderCLITests.run(binary, ["export", "--checkpoint", raw, "--onnx", directory.path + "/raw.onnx"])
        #expect(rawExport.status == 0 && rawExport.text.contains("D 16, configuration inferred from the tensor names"), "\(rawExport.text)")

        for (name, path) in [("full", directory.path + "/full"), ("backbone", backbone)] {
            let embed = try RunFolderCLITests.run(binary, ["embed", "--checkpoint", path, "--list", list,
                                                           "--output", directory.path + "/\(name).npy"])
            #expect(embed.status == 0, "\(embed.text)")
            #expect(embed.text.contains(name == "full" ? "full model file, configuration stored in it" : "configuration stored in the file"),
                    "\(embed.text)")
        }
        let fullEmbeddings = try NumPyFile.read(path: directory.path + "/full.npy")
        #expect(fullEmbeddings.shape == [2, 16])
        #expect(try NumPyFile.read(path: directory.path + "/backbone.npy") == fullEmbeddings)

        let evaluate = try RunFolderCLITests.run(binary, ["evaluate", "--checkpoint", backbone, "--data", attFacesDirectory])
        #expect(evaluate.status == 1 && evaluate.text.contains("holds a backbone without a margin head"), "\(evaluate.text)")

        var tensors = Self.backboneTensors(model)
        let dropped = tensors.removeFirst().0
        let missing = directory.path + "/missing.safetensors"
        try Safetensors.write(tensors, metadata: [:], checksum: false, to: missing)
        let bad = try RunFolderCLITests.run(binary, ["export", "--checkpoint", missing, "--onnx", directory.path + "/bad.onnx"])
        #expect(bad.status == 1 && bad.text.contains("tensor '\(dropped)' is not in the file"), "\(bad.text)")
    }
}
