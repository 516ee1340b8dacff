import Foundation
import Testing
import SwiftProtobuf
import _TestSupport
import TensorCore
import Layers
import ONNXExport

/// A small backbone with non-trivial BatchNorm statistics and PReLU slopes (the defaults, mean 0,
/// variance 1 and slopes 0.25 everywhere, would hide a swapped or misshaped initializer).
func perturbedBackbone(residual: Bool, seed: UInt64 = 3) -> Backbone {
    let configuration = BackboneConfiguration(inputChannels: 3, inputHeight: 14, inputWidth: 11, stageChannels: [4, 6],
                                              embeddingDimension: 5, dropout: 0.5, residual: residual)
    let backbone = Backbone(configuration: configuration, seed: seed)
    var generator = SeededGenerator(seed: seed &+ 100)
    for buffer in backbone.buffers {
        for i in buffer.value.storage.indices {
            buffer.value.storage[i] = buffer.name.hasSuffix("running_var")
                ? 0.5 + generator.nextUniform() : 0.3 * generator.nextNormal()
        }
    }
    for parameter in backbone.parameters where !parameter.name.hasSuffix("conv.weight") && !parameter.name.hasSuffix("fc.weight") {
        for i in parameter.value.storage.indices { parameter.value.storage[i] += 0.2 * generator.nextNormal() }
    }
    return backbone
}

func parse(_ data: Data) throws -> Onnx_ModelProto {
    try Onnx_ModelProto(serializedBytes: data)
}

/// The static sizes and symbolic names of a value's shape (`"N"` for a symbolic axis).
func dimensions(_ info: Onnx_ValueInfoProto) -> [String] {
    info.type.tensorType.shape.dim.map { dim -> String in
        switch dim.value {
        case let .dimParam(name)?: return "param:" + name
        case let .dimValue(size)?: return String(size)
        case nil: return "?"
        }
    }
}

func attribute(_ node: Onnx_NodeProto, _ name: String) -> Onnx_AttributeProto? {
    node.attribute.first { $0.name == name }
}

@Suite struct ONNXExportTests {
    @Test("the plain backbone: one input data [N, C, H, W] (symbolic N), one output, nodes in order, attributes")
    func plainContract() throws {
        let backbone = perturbedBackbone(residual: false)
        let model = try parse(try ONNXExporter.model(of: backbone))
        #expect(model.irVersion == 7)
        #expect(model.opsetImport.map(\.version) == [13])
        #expect(model.opsetImport.map(\.domain) == [""])
        let graph = model.graph
        #expect(graph.input.map(\.name) == ["data"])
        #expect(dimensions(graph.input[0]) == ["param:N", "3", "14", "11"])
        #expect(graph.input[0].type.tensorType.elemType == 1)
        #expect(graph.output.map(\.name) == ["embedding"])
        #expect(dimensions(graph.output[0]) == ["param:N", "5"])
        #expect(graph.node.map(\.opType) == [
            "Conv", "BatchNormalization", "PRelu", "MaxPool",
            "Conv", "BatchNormalization", "PRelu", "MaxPool",
            "Flatten", "Gemm", "BatchNormalization",
        ])
        #expect(graph.node.map(\.name) == [
            "backbone.stage1.conv", "backbone.stage1.bn", "backbone.stage1.prelu", "backbone.stage1.pool",
            "backbone.stage2.conv", "backbone.stage2.bn", "backbone.stage2.prelu", "backbone.stage2.pool",
            "backbone.flatten", "backbone.fc", "backbone.features",
        ])
        // The graph is a chain from data to embedding.
        #expect(graph.node[0].input[0] == "data")
        for (previous, node) in zip(graph.node, graph.node.dropFirst()) { #expect(node.input[0] == previous.output[0]) }
        #expect(graph.node.last?.output == ["embedding"])

        let flatten = try #require(graph.node.first { $0.opType == "Flatten" })
        #expect(attribute(flatten, "axis")?.i == 1)
        let gemm = try #require(graph.node.first { $0.opType == "Gemm" })
        #expect(attribute(gemm, "transB")?.i == 1)
        #expect(attribute(gemm, "transA")?.i ?? 0 == 0)
        #expect(gemm.input == ["backbone.flatten", "backbone.fc.weight", "backbone.fc.bias"])
        let conv = graph.node[0]
        #expect(attribute(conv, "kernel_shape")?.ints == [3, 3])
        #expect(attribute(conv, "pads")?.ints == [1, 1, 1, 1])
        #expect(attribute(conv, "strides")?.ints == [1, 1])
        #expect(attribute(conv, "group")?.i == 1)
        let pool = graph.node[3]
        #expect(attribute(pool, "kernel_shape")?.ints == [2, 2])
        #expect(attribute(pool, "strides")?.ints == [2, 2])
        let bn = graph.node[1]
        #expect(bn.input == ["backbone.stage1.conv", "backbone.stage1.bn.weight", "backbone.stage1.bn.bias",
                             "backbone.stage1.bn.running_mean", "backbone.stage1.bn.running_var"])
        #expect(bn.output.count == 1)
        #expect(attribute(bn, "epsilon")?.f == Float(1e-5))
        // InsightFace guesses the input normalization from the first nodes: none may be Sub or Mul,
        // and a fixed-batch Reshape breaks batching (insightface issue #2406).
        #expect(!graph.node.contains { ["Sub", "Mul", "Div", "Reshape"].contains($0.opType) })
    }

    @Test("initializers are the parameters and buffers by name, with their shapes; PReLU slopes [C, 1, 1]")
    func initializers() throws {
        for residual in [false, true] {
            let backbone = perturbedBackbone(residual: residual)
            let graph = try parse(try ONNXExporter.model(of: backbone)).graph
            let expected = backbone.parameters.map { ($0.name, $0.value) } + backbone.buffers.map { ($0.name, $0.value) }
            #expect(Set(graph.initializer.map(\.name)) == Set(expected.map(\.0)), "residual \(residual)")
            #expect(graph.initializer.count == expected.count)
            for (name, tensor) in expected {
                let initializer = try #require(graph.initializer.first { $0.name == name })
                let shape = name.contains("prelu") ? [tensor.shape[0], 1, 1] : tensor.shape
                #expect(initializer.dims == shape.map(Int64.init), "\(name)")
                #expect(initializer.floatData == tensor.storage, "\(name)")
                #expect(initializer.dataType == 1)
            }
            let prelu = try #require(graph.node.first { $0.opType == "PRelu" })
            let slope = try #require(graph.initializer.first { $0.name == prelu.input[1] })
            #expect(slope.dims.count == 3 && slope.dims[1] == 1 && slope.dims[2] == 1)
        }
    }

    @Test("the residual backbone: both blocks' branches, the projection shortcut and Add")
    func residualContract() throws {
        let graph = try parse(try ONNXExporter.model(of: perturbedBackbone(residual: true))).graph
        let block = ["Conv", "BatchNormalization", "PRelu", "Conv", "BatchNormalization", "Conv", "BatchNormalization", "Add", "MaxPool"]
        #expect(graph.node.map(\.opType) == block + block + ["Flatten", "Gemm", "BatchNormalization"])
        let add = graph.node[7]
        #expect(add.name == "backbone.stage1.block.add")
        #expect(add.input == ["backbone.stage1.block.bn2", "backbone.stage1.block.shortcut.bn"])
        #expect(graph.node[5].input[0] == "data")   // the shortcut reads the block's input
        #expect(graph.node[8].name == "backbone.stage1.pool")
        #expect(graph.output.map(\.name) == ["embedding"])
    }

    @Test("the reference evaluation of the parsed graph equals the backbone's inference forward pass",
          arguments: [false, true])
    func referenceEvaluation(residual: Bool) throws {
        let backbone = perturbedBackbone(residual: residual)
        let model = try parse(try ONNXExporter.model(of: backbone))
        let c = backbone.configuration
        for batchSize in [1, 3] {   // the batch axis is symbolic: any N
            let shape = [batchSize, c.inputChannels, c.inputHeight, c.inputWidth]
            let input = randomArray(shape.reduce(1, *), seed: UInt64(batchSize) + (residual ? 10 : 20))
            let expected = backbone.forward(Tensor(shape: shape, storage: input), mode: .inference).output
            let actual = try evaluateReference(model, input: ReferenceTensor(shape: shape, values: input.map(Double.init)))
            #expect(actual.shape == expected.shape)
            let comparison = compare(expected.storage, actual.values, atol: 1e-4, rtol: 1e-4, label: "residual \(residual), N \(batchSize)")
            #expect(comparison.passed, "\(comparison)")
            // The check can fail: a slope exported per channel in the wrong order would not pass.
            #expect(expected.storage.contains { abs($0) > 0.1 })
        }
    }

    @Test("a layer without an ONNX form is a typed error naming it and where it is")
    func unsupportedLayer() throws {
        final class Custom: Layer {
            func forward(_ input: Tensor, mode: Mode) -> (output: Tensor, cache: any LayerCache) { fatalError() }
            func backward(_ outputGradient: Tensor, cache: any LayerCache) -> Tensor { fatalError() }
            var parameters: [Parameter] { [] }
            var buffers: [Buffer] { [] }
        }
        var generator = SeededGenerator(seed: 1)
        let network = ResidualBlock(inputChannels: 2, outputChannels: 2, name: "block", generator: &generator)
        let wrapped = Sequential([network, Custom()])
        #expect(throws: ONNXExportError.unsupportedLayer(type: "Custom", location: "")) {
            _ = try ONNXExporter.model(of: wrapped, inputShape: [2, 4, 4])
        }
        #expect(throws: ONNXExportError.shapeMismatch(layer: "block.conv1", expected: "[N, 2, H, W]", found: [3, 4, 4])) {
            _ = try ONNXExporter.model(of: network, inputShape: [3, 4, 4])
        }
        // An identity block (Cin == Cout) adds its input.
        let graph = try parse(try ONNXExporter.model(of: network, inputShape: [2, 4, 4])).graph
        #expect(graph.node.last?.input == ["block.bn2", "data"])
        #expect(graph.node.last?.output == ["embedding"])
    }

    @Test("a network that computes nothing still has one output, through Identity")
    func identityNetwork() throws {
        var generator = SeededGenerator(seed: 1)
        let graph = try parse(try ONNXExporter.model(of: Dropout(probability: 0.5, generator: generator.split()), inputShape: [4])).graph
        #expect(graph.node.map(\.opType) == ["Identity"])
        #expect(graph.output.map(\.name) == ["embedding"])
        #expect(graph.node[0].input == ["data"])
    }

    @Test("write: durable (replaces an old file whole), an unwritable path is a typed error and leaves nothing")
    func writing() throws {
        let directory = TemporaryDirectory()
        let path = directory.path + "/model.onnx"
        try Data("old".utf8).write(to: URL(fileURLWithPath: path))
        let data = try ONNXExporter.model(of: perturbedBackbone(residual: false))
        try ONNXExporter.write(data, to: path)
        #expect(try Data(contentsOf: URL(fileURLWithPath: path)) == data)
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory.path) == ["model.onnx"])

        let missing = directory.path + "/no-such-folder/model.onnx"
        do {
            try ONNXExporter.write(data, to: missing)
            Issue.record("writing into a missing folder succeeded")
        } catch {
            guard case let .writeFailed(failedPath, _) = error else { Issue.record("\(error)"); return }
            #expect(failedPath == missing)
            #expect(error.description.contains("cannot write"))
        }
        // A folder in the way: refused, the folder unchanged.
        let folder = directory.path + "/folder.onnx"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: false)
        #expect(throws: ONNXExportError.self) { try ONNXExporter.write(data, to: folder) }
        #expect(try FileManager.default.contentsOfDirectory(atPath: folder).isEmpty)
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory.path).sorted() == ["folder.onnx", "model.onnx"])
    }
}
