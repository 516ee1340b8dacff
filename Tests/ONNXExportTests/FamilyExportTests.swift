// ONNX export of the field's backbones (IResNet, MobileFaceNet): InsightFace's deployment contract
// and the Double reference interpreter against our inference forward pass, on reduced networks.
import Foundation
import Testing
import _TestSupport
import TensorCore
import Layers
import ONNXExport

/// Gives every BatchNorm non-trivial statistics and affine values, the PReLU slopes distinct
/// values and a fixed γ (`features.weight`) values other than 1, so that a swapped, misshaped or
/// unused initializer changes the output.
func perturbFamily(_ network: any Layer, seed: UInt64) {
    var generator = SeededGenerator(seed: seed)
    for buffer in network.buffers {
        for i in buffer.value.storage.indices {
            if buffer.name.hasSuffix("running_var") {
                buffer.value.storage[i] = 0.5 + generator.nextUniform()
            } else if buffer.name.hasSuffix("running_mean") {
                buffer.value.storage[i] = 0.3 * generator.nextNormal()
            } else {
                buffer.value.storage[i] = 1 + 0.3 * generator.nextNormal()   // a fixed γ
            }
        }
    }
    for parameter in network.parameters where parameter.value.rank == 1 {
        for i in parameter.value.storage.indices { parameter.value.storage[i] += 0.2 * generator.nextNormal() }
    }
}

/// The largest |ours − interpreter| over batches of 1 and 2, with the comparison of `_TestSupport`.
private func checkAgainstReference(_ network: any Layer, inputShape: [Int], label: String, seed: UInt64,
                                   batchSizes: [Int] = [1, 2]) throws {
    let model = try parse(try ONNXExporter.model(of: network, inputShape: inputShape))
    for batchSize in batchSizes {
        let shape = [batchSize] + inputShape
        let input = randomArray(shape.reduce(1, *), seed: seed + UInt64(batchSize))
        let expected = network.forward(Tensor(shape: shape, storage: input), mode: .inference).output
        let actual = try evaluateReference(model, input: ReferenceTensor(shape: shape, values: input.map(Double.init)))
        #expect(actual.shape == expected.shape, "\(label)")
        let comparison = compare(expected.storage, actual.values, atol: 1e-4, rtol: 1e-4, label: "\(label), N \(batchSize)")
        #expect(comparison.passed, "\(comparison)")
        #expect(expected.storage.contains { abs($0) > 0.1 }, "\(label): the output is too small to compare")
    }
}

/// The deployment contract every exported backbone meets (scripts/check_onnx.py checks the same).
private func checkDeploymentContract(_ model: Onnx_ModelProto, input: [String], output: [String]) {
    let graph = model.graph
    #expect(model.opsetImport.map(\.version) == [13])
    #expect(graph.input.map(\.name) == ["data"])
    #expect(dimensions(graph.input[0]) == input)
    #expect(graph.output.map(\.name) == ["embedding"])
    #expect(dimensions(graph.output[0]) == output)
    #expect(graph.node.first?.opType == "Conv")
    #expect(!graph.node.contains { ["Sub", "Mul", "Div", "Reshape"].contains($0.opType) })
    let initializers = Dictionary(graph.initializer.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
    for node in graph.node where node.opType == "PRelu" {
        let slope = initializers[node.input[1]]
        #expect(slope?.dims.count == 3 && slope?.dims[1] == 1 && slope?.dims[2] == 1, "\(node.name)")
    }
    let flatten = graph.node.filter { $0.opType == "Flatten" }
    #expect(flatten.count == 1 && flatten.allSatisfy { attribute($0, "axis")?.i == 1 })
    let gemms = graph.node.filter { $0.opType == "Gemm" }
    #expect(gemms.count == 1 && gemms.allSatisfy { attribute($0, "transB")?.i == 1 })
    #expect(gemms.first?.input.first == flatten.first?.output.first)
}

@Suite struct FamilyExportTests {
    /// stem 3→4 on 16×16; layer1 (1 block, 4 ch), layer2 (2 blocks, 6 ch: an identity block),
    /// layer3 (1 block, 8 ch), layer4 (1 block, 8 ch); 16 → 8 → 4 → 2 → 1; fc 8 → 5.
    static let reducedIResNet = IResNetArchitecture(inputChannels: 3, inputHeight: 16, inputWidth: 16, stemChannels: 4,
                                                    stageChannels: [4, 6, 8, 8], blocks: [1, 2, 1, 1], embeddingDimension: 5)

    @Test("IResNet: the block graph, downsample and Add, Flatten → Gemm (bias) → BatchNormalization with the fixed γ buffer")
    func iresnetContract() throws {
        var generator = SeededGenerator(seed: 5)
        let net = IResNet(architecture: Self.reducedIResNet, generator: &generator)
        perturbFamily(net, seed: 6)
        let model = try parse(try ONNXExporter.model(of: net))
        checkDeploymentContract(model, input: ["param:N", "3", "16", "16"], output: ["param:N", "5"])
        let graph = model.graph
        let downsampleBlock = ["BatchNormalization", "Conv", "BatchNormalization", "PRelu", "Conv", "BatchNormalization",
                               "Conv", "BatchNormalization", "Add"]
        let identityBlock = Array(downsampleBlock.prefix(6)) + ["Add"]
        #expect(graph.node.map(\.opType) == ["Conv", "BatchNormalization", "PRelu"] + downsampleBlock + downsampleBlock
                + identityBlock + downsampleBlock + downsampleBlock + ["BatchNormalization", "Flatten", "Gemm", "BatchNormalization"])
        #expect(graph.node.prefix(3).map(\.name) == ["conv1", "bn1", "prelu"])
        let identityAdd = try #require(graph.node.first { $0.name == "layer2.1.add" })
        #expect(identityAdd.input == ["layer2.1.bn3", "layer2.0.add"])   // the block's input itself
        let downsampleAdd = try #require(graph.node.first { $0.name == "layer2.0.add" })
        #expect(downsampleAdd.input == ["layer2.0.bn3", "layer2.0.downsample.1"])
        let downsample = try #require(graph.node.first { $0.name == "layer2.0.downsample.0" })
        #expect(attribute(downsample, "kernel_shape")?.ints == [1, 1] && attribute(downsample, "strides")?.ints == [2, 2])
        #expect(downsample.input[0] == "layer1.0.add")
        let gemm = try #require(graph.node.first { $0.opType == "Gemm" })
        #expect(gemm.input == ["iresnet.flatten", "fc.weight", "fc.bias"])
        let features = try #require(graph.node.last)
        #expect(features.input == ["fc", "features.weight", "features.bias", "features.running_mean", "features.running_var"])
        // features.weight is the fixed γ buffer (perturbed away from 1), never the unused parameter of ones.
        let gamma = try #require(graph.initializer.first { $0.name == "features.weight" })
        #expect(gamma.floatData == net.features.fixedWeight?.value.storage)
        #expect(gamma.floatData.contains { $0 != 1 })
        let expectedNames = net.parameters.map(\.name) + net.buffers.map(\.name)
        #expect(graph.initializer.map(\.name).sorted() == expectedNames.sorted())
        #expect(graph.node.allSatisfy { $0.opType != "Conv" || attribute($0, "group")?.i == 1 })
    }

    @Test("a reduced IResNet: the interpreter on the parsed graph equals the inference forward pass (≤ 1e-4)")
    func iresnetReference() throws {
        var generator = SeededGenerator(seed: 7)
        let net = IResNet(architecture: Self.reducedIResNet, generator: &generator)
        perturbFamily(net, seed: 8)
        try checkAgainstReference(net, inputShape: [3, 16, 16], label: "reduced IResNet", seed: 9)
    }

    /// MobileFaceNet's pieces at reduced width: a ConvBlock, the grouped 3×3 ConvBlock, a strided
    /// DepthWise, a residual DepthWise, the 1×1 ConvBlock, the global depthwise LinearBlock (no
    /// padding), Flatten, the bias-free Linear and the BatchNorm1d, built from the same public layers.
    static func reducedMobileFaceNet(seed: UInt64) -> Sequential {
        var generator = SeededGenerator(seed: seed)
        func block(_ cin: Int, _ cout: Int, kernel: Int, stride: Int, groups: Int, padding: Int? = nil, activation: Bool,
                   name: String) -> Sequential {
            var layers: [any Layer] = [
                Conv2D(inputChannels: cin, outputChannels: cout, kernelSize: kernel, stride: stride, padding: padding ?? kernel / 2,
                       groups: groups, bias: false, nonlinearity: .linear, name: name + ".layers.0", generator: &generator),
                BatchNorm2D(channels: cout, name: name + ".layers.1"),
            ]
            if activation { layers.append(PReLU(channels: cout, name: name + ".layers.2")) }
            return Sequential(layers)
        }
        let layers: [any Layer] = [
            block(3, 4, kernel: 3, stride: 2, groups: 1, activation: true, name: "layers.0"),         // 14 → 7
            block(4, 4, kernel: 3, stride: 1, groups: 2, activation: true, name: "layers.1"),
            MobileFaceNetDepthWise(inputChannels: 4, outputChannels: 6, expansion: 8, stride: 2, residual: false,
                                   name: "layers.2", generator: &generator),                            // 7 → 4
            Sequential([MobileFaceNetDepthWise(inputChannels: 6, outputChannels: 6, expansion: 6, stride: 1, residual: true,
                                               name: "layers.3.layers.0", generator: &generator)]),
            block(6, 8, kernel: 1, stride: 1, groups: 1, activation: true, name: "conv_sep"),
            block(8, 8, kernel: 4, stride: 1, groups: 8, padding: 0, activation: false, name: "features.layers.0"),   // 4 → 1
            Flatten(),
            Linear(inputFeatures: 8, outputFeatures: 5, bias: false, name: "features.layers.2", generator: &generator),
            BatchNorm1D(channels: 5, name: "features.layers.3"),
        ]
        return Sequential(layers)
    }

    @Test("a reduced MobileFaceNet: grouped and depthwise Conv (group), residual Add, bias-free Gemm; interpreter ≤ 1e-4")
    func mobileFaceNetReference() throws {
        let net = Self.reducedMobileFaceNet(seed: 11)
        perturbFamily(net, seed: 12)
        let model = try parse(try ONNXExporter.model(of: net, inputShape: [3, 14, 14]))
        let graph = model.graph
        let groups = graph.node.filter { $0.opType == "Conv" }.map { attribute($0, "group")?.i ?? 0 }
        // layers.0, layers.1 (2 groups), layers.2 (1×1, depthwise 8, 1×1), layers.3 (1×1, depthwise 6, 1×1), conv_sep, features
        #expect(groups == [1, 2, 1, 8, 1, 1, 6, 1, 1, 8])
        let add = try #require(graph.node.first { $0.opType == "Add" })
        #expect(add.name == "layers.3.layers.0.add")
        #expect(add.input == ["layers.3.layers.0.layers.2.layers.1", "layers.2.layers.2.layers.1"])
        #expect(graph.node.filter { $0.opType == "Add" }.count == 1)   // the strided DepthWise has no shortcut
        let gemm = try #require(graph.node.first { $0.opType == "Gemm" })
        #expect(gemm.input.count == 2 && gemm.input[1] == "features.layers.2.weight")
        let gdc = try #require(graph.node.first { $0.name == "features.layers.0.layers.0" })
        #expect(attribute(gdc, "pads")?.ints == [0, 0, 0, 0] && attribute(gdc, "kernel_shape")?.ints == [4, 4])
        try checkAgainstReference(net, inputShape: [3, 14, 14], label: "reduced MobileFaceNet", seed: 13)
    }

    @Test("get_mbf: the whole graph meets the contract; groups 64, depthwise and the 7×7 GDC; names are the state_dict keys")
    func mobileFaceNetContract() throws {
        var generator = SeededGenerator(seed: 14)
        let net = MobileFaceNet(architecture: MobileFaceNetArchitecture(), generator: &generator)
        let model = try parse(try ONNXExporter.model(of: net))
        checkDeploymentContract(model, input: ["param:N", "3", "112", "112"], output: ["param:N", "512"])
        let graph = model.graph
        let conv = Dictionary(graph.node.filter { $0.opType == "Conv" }.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        #expect(conv["layers.1.layers.0"].flatMap { attribute($0, "group")?.i } == 64)
        #expect(conv["layers.2.layers.1.layers.0"].flatMap { attribute($0, "group")?.i } == 128)
        #expect(conv["layers.6.layers.1.layers.0"].flatMap { attribute($0, "group")?.i } == 512)
        let gdc = try #require(conv["features.layers.0.layers.0"])
        #expect(attribute(gdc, "group")?.i == 512 && attribute(gdc, "kernel_shape")?.ints == [7, 7])
        #expect(attribute(gdc, "pads")?.ints == [0, 0, 0, 0])
        #expect(graph.node.filter { $0.opType == "Add" }.count == 4 + 6 + 2)
        #expect(graph.node.filter { $0.opType == "Conv" }.count == 2 + 3 * (1 + 4 + 1 + 6 + 1 + 2) + 2)
        let gemm = try #require(graph.node.first { $0.opType == "Gemm" })
        #expect(gemm.input == ["mobilefacenet.flatten", "features.layers.2.weight"])
        #expect(graph.node.last?.name == "features.layers.3")
        let expectedNames = net.parameters.map(\.name) + net.buffers.map(\.name)
        #expect(graph.initializer.map(\.name).sorted() == expectedNames.sorted())
    }

    @Test("MobileFaceNet blocks (2, 1, 1, 1), scale 1: layers.1 a Residual (expansion 128), 64/128 widths; names are the state_dict keys")
    func mobileFaceNetWidthAndDepthContract() throws {
        var generator = SeededGenerator(seed: 15)
        let net = MobileFaceNet(configuration: .mobileFaceNet(blocks: [2, 1, 1, 1], scale: 1), generator: &generator)
        let model = try parse(try ONNXExporter.model(of: net))
        checkDeploymentContract(model, input: ["param:N", "3", "112", "112"], output: ["param:N", "512"])
        let graph = model.graph
        let conv = Dictionary(graph.node.filter { $0.opType == "Conv" }.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        #expect(conv["layers.1.layers.0"] == nil)   // no grouped ConvBlock
        #expect(conv["layers.1.layers.1.layers.1.layers.0"].flatMap { attribute($0, "group")?.i } == 128)
        let stem = try #require(graph.initializer.first { $0.name == "layers.0.layers.0.weight" })
        #expect(stem.dims == [64, 3, 3, 3])
        #expect(graph.initializer.first { $0.name == "conv_sep.layers.0.weight" }?.dims == [512, 128, 1, 1])
        #expect(graph.node.filter { $0.opType == "Add" }.count == 2 + 1 + 1 + 1)
        #expect(graph.node.filter { $0.opType == "Conv" }.count == 1 + 3 * (2 + 1 + 1 + 1 + 1 + 1 + 1) + 2)
        let expectedNames = net.parameters.map(\.name) + net.buffers.map(\.name)
        #expect(graph.initializer.map(\.name).sorted() == expectedNames.sorted())
    }
}
