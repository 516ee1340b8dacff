// The ONNX form of every layer of `Layers`, in inference mode. Each layer writes its own nodes;
// the composites (`Sequential`, `ResidualBlock`, `BatchNormPReLUMaxPool2D`, `Backbone`) export
// their sublayers through `ONNXGraph.export`, so a new backbone built from these layers needs
// only its own short extension here.
import TensorCore
import Layers

/// Checks that `input` is `[N, channels, H, W]` and returns `(H, W)`.
private func featureMap(_ input: ONNXValue, channels: Int, layer: String) throws(ONNXExportError) -> (height: Int, width: Int) {
    guard input.shape.count == 3, input.shape[0] == channels else {
        throw .shapeMismatch(layer: layer, expected: "[N, \(channels), H, W]", found: input.shape)
    }
    return (input.shape[1], input.shape[2])
}

/// `prefix.component`, or `component` when `prefix` is empty.
private func qualifiedName(_ prefix: String, _ component: String) -> String {
    prefix.isEmpty ? component : "\(prefix).\(component)"
}

/// The output side of a window `kernel` moved by `stride` over `size + 2·padding` (floor).
private func windowCount(_ size: Int, kernel: Int, stride: Int, padding: Int) -> Int {
    (size + 2 * padding - kernel) / stride + 1
}

extension Conv2D: ONNXExportable {
    /// The channel groups of the convolution, ONNX's `group` (`Conv2D.groups`: 1 dense, `Cin`
    /// depthwise). The weight shape `[Cout, Cin/group, k, k]` is checked against it in `exportONNX`.
    var onnxGroupCount: Int { groups }

    /// `Conv` with `kernel_shape [k, k]`, `strides [s, s]`, `pads [p, p, p, p]`, `dilations [1, 1]`
    /// and `group`; inputs `X`, `<name>.weight` `[Cout, Cin/group, k, k]` (and `<name>.bias` `[Cout]`).
    public func exportONNX(_ input: ONNXValue, into graph: inout ONNXGraph) throws(ONNXExportError) -> ONNXValue {
        let (h, w) = try featureMap(input, channels: inputChannels, layer: name)
        let group = onnxGroupCount
        let expectedWeight = [outputChannels, group > 0 ? inputChannels / group : 0, kernelSize, kernelSize]
        guard group > 0, inputChannels % group == 0, outputChannels % group == 0, weight.value.shape == expectedWeight else {
            throw .unsupportedConfiguration(
                layer: name, reason: "weight \(weight.value.shape) does not match \(inputChannels) → \(outputChannels) channels in \(group) group(s), expected \(expectedWeight)")
        }
        let ho = windowCount(h, kernel: kernelSize, stride: stride, padding: padding)
        let wo = windowCount(w, kernel: kernelSize, stride: stride, padding: padding)
        guard ho > 0, wo > 0 else {
            throw .shapeMismatch(layer: name, expected: "H, W ≥ \(kernelSize - 2 * padding)", found: input.shape)
        }
        var inputs = [input.name, try graph.addInitializer(weight)]
        if let bias { inputs.append(try graph.addInitializer(bias)) }
        return graph.addNode("Conv", name: name, inputs: inputs, attributes: [
            .ints("kernel_shape", [kernelSize, kernelSize]), .ints("strides", [stride, stride]),
            .ints("pads", [padding, padding, padding, padding]), .ints("dilations", [1, 1]), .int("group", group),
        ], outputShape: [outputChannels, ho, wo])
    }
}

/// `BatchNormalization` in inference form: inputs `X`, `scale` (γ), `B` (β), `input_mean`,
/// `input_var` (the running statistics), attribute `epsilon`; one output.
private func batchNormalization(_ input: ONNXValue, name: String, weight: Parameter, bias: Parameter,
                                runningMean: Buffer, runningVariance: Buffer, epsilon: Double,
                                into graph: inout ONNXGraph) throws(ONNXExportError) -> ONNXValue {
    let inputs = [input.name, try graph.addInitializer(weight), try graph.addInitializer(bias),
                  try graph.addInitializer(runningMean), try graph.addInitializer(runningVariance)]
    return graph.addNode("BatchNormalization", name: name, inputs: inputs,
                         attributes: [.float("epsilon", Float(epsilon))], outputShape: input.shape)
}

extension BatchNorm2D: ONNXExportable {
    /// `BatchNormalization` over `[N, C, H, W]` with the running statistics.
    public func exportONNX(_ input: ONNXValue, into graph: inout ONNXGraph) throws(ONNXExportError) -> ONNXValue {
        _ = try featureMap(input, channels: weight.value.count, layer: name)
        return try batchNormalization(input, name: name, weight: weight, bias: bias, runningMean: runningMean,
                                      runningVariance: runningVariance, epsilon: epsilon, into: &graph)
    }
}

extension BatchNorm1D: ONNXExportable {
    /// `BatchNormalization` over `[N, C]` with the running statistics; `scale` is the fixed
    /// weight buffer when γ is fixed (`fixedWeight`, IResNet's `features.weight`).
    public func exportONNX(_ input: ONNXValue, into graph: inout ONNXGraph) throws(ONNXExportError) -> ONNXValue {
        guard input.shape == [weight.value.count] else {
            throw .shapeMismatch(layer: name, expected: "[N, \(weight.value.count)]", found: input.shape)
        }
        // A fixed γ (IResNet's `features.weight`) is the buffer that checkpoints load, not the unused parameter.
        let scale: String
        if let fixedWeight { scale = try graph.addInitializer(fixedWeight) } else { scale = try graph.addInitializer(weight) }
        let inputs = [input.name, scale, try graph.addInitializer(bias), try graph.addInitializer(runningMean),
                      try graph.addInitializer(runningVariance)]
        return graph.addNode("BatchNormalization", name: name, inputs: inputs,
                             attributes: [.float("epsilon", Float(epsilon))], outputShape: input.shape)
    }
}

extension PReLU: ONNXExportable {
    /// `PRelu` with the slopes `<name>.weight` shaped `[C, 1, 1]` for `[N, C, H, W]` (`[C]` for
    /// `[N, C]`), so that they broadcast over the channel axis.
    public func exportONNX(_ input: ONNXValue, into graph: inout ONNXGraph) throws(ONNXExportError) -> ONNXValue {
        guard input.shape.first == channels else {
            throw .shapeMismatch(layer: name, expected: "[N, \(channels), …]", found: input.shape)
        }
        let slopeShape = [channels] + [Int](repeating: 1, count: input.shape.count - 1)
        let slope = try graph.addInitializer(weight, shape: slopeShape)
        return graph.addNode("PRelu", name: name, inputs: [input.name, slope], outputShape: input.shape)
    }
}

extension ReLU: ONNXExportable {
    /// `Relu`, named `<scope>.relu`.
    public func exportONNX(_ input: ONNXValue, into graph: inout ONNXGraph) throws(ONNXExportError) -> ONNXValue {
        graph.addNode("Relu", name: graph.scopedName("relu"), inputs: [input.name], outputShape: input.shape)
    }
}

extension MaxPool2D: ONNXExportable {
    /// `MaxPool` with `kernel_shape [k, k]`, `strides [s, s]`, no padding, floor mode
    /// (`ceil_mode` 0), named `<scope>.pool`.
    public func exportONNX(_ input: ONNXValue, into graph: inout ONNXGraph) throws(ONNXExportError) -> ONNXValue {
        let name = graph.scopedName("pool")
        guard input.shape.count == 3, input.shape[1] >= kernelSize, input.shape[2] >= kernelSize else {
            throw .shapeMismatch(layer: name, expected: "[N, C, H ≥ \(kernelSize), W ≥ \(kernelSize)]", found: input.shape)
        }
        let ho = windowCount(input.shape[1], kernel: kernelSize, stride: stride, padding: 0)
        let wo = windowCount(input.shape[2], kernel: kernelSize, stride: stride, padding: 0)
        return graph.addNode("MaxPool", name: name, inputs: [input.name], attributes: [
            .ints("kernel_shape", [kernelSize, kernelSize]), .ints("strides", [stride, stride]),
            .ints("pads", [0, 0, 0, 0]), .int("ceil_mode", 0),
        ], outputShape: [input.shape[0], ho, wo])
    }
}

extension BatchNormPReLUMaxPool2D: ONNXExportable {
    /// The three layers it fuses, unfused: `BatchNormalization` → `PRelu` → `MaxPool`.
    public func exportONNX(_ input: ONNXValue, into graph: inout ONNXGraph) throws(ONNXExportError) -> ONNXValue {
        let normalized = try graph.export(batchNorm, input)
        let activated = try graph.export(prelu, normalized)
        return try graph.export(pool, activated)
    }
}

extension Flatten: ONNXExportable {
    /// `Flatten` with `axis = 1`: `[N, d1, d2, …]` → `[N, d1·d2·…]` for any batch size (never a
    /// `Reshape` to a fixed shape), named `<scope>.flatten`.
    public func exportONNX(_ input: ONNXValue, into graph: inout ONNXGraph) throws(ONNXExportError) -> ONNXValue {
        graph.addNode("Flatten", name: graph.scopedName("flatten"), inputs: [input.name], attributes: [.int("axis", 1)],
                      outputShape: [input.shape.reduce(1, *)])
    }
}

extension Dropout: ONNXExportable {
    /// Nothing: dropout is the identity in inference.
    public func exportONNX(_ input: ONNXValue, into graph: inout ONNXGraph) throws(ONNXExportError) -> ONNXValue {
        input
    }
}

extension Linear: ONNXExportable {
    /// `Gemm` with `transB = 1` (`Y = X·Wᵀ + b`, the weight in its stored `[out, in]`
    /// orientation); inputs `X` `[N, in]`, `<name>.weight`, `<name>.bias`.
    public func exportONNX(_ input: ONNXValue, into graph: inout ONNXGraph) throws(ONNXExportError) -> ONNXValue {
        guard input.shape == [inputFeatures] else {
            throw .shapeMismatch(layer: name, expected: "[N, \(inputFeatures)]", found: input.shape)
        }
        var inputs = [input.name, try graph.addInitializer(weight)]
        if let bias { inputs.append(try graph.addInitializer(bias)) }
        return graph.addNode("Gemm", name: name, inputs: inputs,
                             attributes: [.float("alpha", 1), .float("beta", 1), .int("transA", 0), .int("transB", 1)],
                             outputShape: [outputFeatures])
    }
}

extension Sequential: ONNXExportable {
    /// Its layers' nodes, one after another.
    public func exportONNX(_ input: ONNXValue, into graph: inout ONNXGraph) throws(ONNXExportError) -> ONNXValue {
        var value = input
        for layer in layers { value = try graph.export(layer, value) }
        return value
    }
}

extension ResidualBlock: ONNXExportable {
    /// The main branch's nodes, the projection shortcut's (if any), and `Add` (`<name>.add`).
    public func exportONNX(_ input: ONNXValue, into graph: inout ONNXGraph) throws(ONNXExportError) -> ONNXValue {
        let main = try graph.export(self.main, input, scope: name)
        let shortcut = try self.shortcut.map { (s) throws(ONNXExportError) in try graph.export(s, input, scope: name) } ?? input
        guard main.shape == shortcut.shape else {
            throw .shapeMismatch(layer: name, expected: "a shortcut of the main branch's shape [N, \(main.shape.map(String.init).joined(separator: ", "))]",
                                 found: shortcut.shape)
        }
        return graph.addNode("Add", name: qualifiedName(name, "add"), inputs: [main.name, shortcut.name], outputShape: main.shape)
    }
}

extension Backbone: ONNXExportable {
    /// Its stages (scopes `<name>.stage<k>`), `Flatten` (`<name>.flatten`), the embedding `Gemm`
    /// (`<name>.fc`) and the feature `BatchNormalization` (`<name>.features`); dropout is omitted.
    public func exportONNX(_ input: ONNXValue, into graph: inout ONNXGraph) throws(ONNXExportError) -> ONNXValue {
        let c = configuration
        guard input.shape == [c.inputChannels, c.inputHeight, c.inputWidth] else {
            throw .shapeMismatch(layer: name, expected: "[N, \(c.inputChannels), \(c.inputHeight), \(c.inputWidth)]", found: input.shape)
        }
        var value = input
        for (index, stage) in stages.enumerated() {
            value = try graph.export(stage, value, scope: qualifiedName(name, "stage\(index + 1)"))
        }
        value = try graph.export(Flatten(), value, scope: name)
        value = try graph.export(dropout, value, scope: name)
        value = try graph.export(embedding, value, scope: name)
        return try graph.export(features, value, scope: name)
    }
}

extension IResNetBlock: ONNXExportable {
    /// The main branch (`bn1`, `conv1`, `bn2`, `prelu`, `conv2`, `bn3`), the downsample
    /// (`downsample.0` Conv, `downsample.1` BatchNormalization) or the input itself, and `Add`
    /// (`<name>.add`); no activation after the sum.
    public func exportONNX(_ input: ONNXValue, into graph: inout ONNXGraph) throws(ONNXExportError) -> ONNXValue {
        let main = try graph.export(self.main, input, scope: name)
        let shortcut = try downsample.map { (d) throws(ONNXExportError) in try graph.export(d, input, scope: name) } ?? input
        guard main.shape == shortcut.shape else {
            throw .shapeMismatch(layer: name, expected: "a shortcut of the main branch's shape [N, \(main.shape.map(String.init).joined(separator: ", "))]",
                                 found: shortcut.shape)
        }
        return graph.addNode("Add", name: qualifiedName(name, "add"), inputs: [main.name, shortcut.name], outputShape: main.shape)
    }
}

extension MobileFaceNetDepthWise: ONNXExportable {
    /// The three blocks (1×1 Conv → BatchNormalization → PRelu, 3×3 depthwise Conv with
    /// `group` = its channels → BatchNormalization → PRelu, 1×1 Conv → BatchNormalization), and
    /// `Add` of the input (`<name>.add`) when residual.
    public func exportONNX(_ input: ONNXValue, into graph: inout ONNXGraph) throws(ONNXExportError) -> ONNXValue {
        let output = try graph.export(body, input, scope: name)
        guard residual else { return output }
        guard output.shape == input.shape else {
            throw .shapeMismatch(layer: name, expected: "a residual block's output shape [N, \(output.shape.map(String.init).joined(separator: ", "))]",
                                 found: input.shape)
        }
        return graph.addNode("Add", name: qualifiedName(name, "add"), inputs: [output.name, input.name], outputShape: output.shape)
    }
}

/// Exports the top-level layers of a family backbone after checking the input `[C, H, W]`.
private func exportFamily(_ backbone: some EmbeddingBackbone, _ input: ONNXValue, scope: String,
                          into graph: inout ONNXGraph) throws(ONNXExportError) -> ONNXValue {
    let c = backbone.configuration
    guard input.shape == [c.inputChannels, c.inputHeight, c.inputWidth] else {
        throw .shapeMismatch(layer: scope, expected: "[N, \(c.inputChannels), \(c.inputHeight), \(c.inputWidth)]", found: input.shape)
    }
    var value = input
    for layer in backbone.layers { value = try graph.export(layer, value, scope: scope) }
    return value
}

extension IResNet: ONNXExportable {
    /// arcface_torch's `iresnet` graph: `conv1` → `bn1` → `prelu`, the blocks of `layer1` …
    /// `layer4`, `bn2`, `Flatten` (`axis = 1`, `iresnet.flatten`; dropout omitted), `fc` (`Gemm`
    /// `transB = 1` with bias) and `features` (`BatchNormalization` with the fixed γ buffer).
    public func exportONNX(_ input: ONNXValue, into graph: inout ONNXGraph) throws(ONNXExportError) -> ONNXValue {
        try exportFamily(self, input, scope: "iresnet", into: &graph)
    }
}

extension MobileFaceNet: ONNXExportable {
    /// arcface_torch's `MobileFaceNet` graph: `layers.0` … `layers.7` (grouped and depthwise
    /// `Conv` with `group`), `conv_sep`, the 7×7 depthwise `features.layers.0`, `Flatten`
    /// (`axis = 1`, `mobilefacenet.flatten`), `features.layers.2` (`Gemm` `transB = 1`, no bias)
    /// and `features.layers.3` (`BatchNormalization`).
    public func exportONNX(_ input: ONNXValue, into graph: inout ONNXGraph) throws(ONNXExportError) -> ONNXValue {
        try exportFamily(self, input, scope: "mobilefacenet", into: &graph)
    }
}
