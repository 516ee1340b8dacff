// A naive ONNX interpreter in Double for the operators the exporter writes, run on a parsed
// model: an independent check that the graph computes what the backbone computes, without Python.
// Each operator follows its definition in the ONNX operator documentation (opset 13), not the
// layer code.
import Foundation
import ONNXExport

struct ReferenceError: Error, CustomStringConvertible {
    let description: String
}

/// A dense tensor of `Double`, row-major.
struct ReferenceTensor {
    var shape: [Int]
    var values: [Double]
}

/// Evaluates `model`'s graph on `input` (bound to the graph's single input) and returns its single output.
func evaluateReference(_ model: Onnx_ModelProto, input: ReferenceTensor) throws -> ReferenceTensor {
    let graph = model.graph
    var values: [String: ReferenceTensor] = [:]
    for t in graph.initializer {
        guard t.dataType == Int32(Onnx_TensorProto.DataType.float.rawValue) else {
            throw ReferenceError(description: "initializer \(t.name) is not float")
        }
        let shape = t.dims.map(Int.init)
        let floats = t.floatData.map(Double.init)
        guard floats.count == shape.reduce(1, *) else { throw ReferenceError(description: "initializer \(t.name): \(floats.count) values for \(shape)") }
        values[t.name] = ReferenceTensor(shape: shape, values: floats)
    }
    guard graph.input.count == 1, graph.output.count == 1 else { throw ReferenceError(description: "expected one input and one output") }
    values[graph.input[0].name] = input
    for node in graph.node {
        let inputs = try node.input.map { name -> ReferenceTensor in
            guard let v = values[name] else { throw ReferenceError(description: "\(node.name): input \(name) is not computed yet") }
            return v
        }
        let attributes = Dictionary(node.attribute.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        func ints(_ name: String, _ fallback: [Int]) -> [Int] { attributes[name].map { $0.ints.map(Int.init) } ?? fallback }
        func int(_ name: String, _ fallback: Int) -> Int { attributes[name].map { Int($0.i) } ?? fallback }
        func float(_ name: String, _ fallback: Double) -> Double { attributes[name].map { Double($0.f) } ?? fallback }
        let output: ReferenceTensor
        switch node.opType {
        case "Conv": output = try conv(inputs, kernel: ints("kernel_shape", []), strides: ints("strides", [1, 1]),
                                       pads: ints("pads", [0, 0, 0, 0]), dilations: ints("dilations", [1, 1]), group: int("group", 1))
        case "BatchNormalization": output = batchNormalization(inputs, epsilon: float("epsilon", 1e-5))
        case "PRelu": output = broadcast(inputs[0], inputs[1]) { x, a in x < 0 ? a * x : x }
        case "Relu": output = ReferenceTensor(shape: inputs[0].shape, values: inputs[0].values.map { max($0, 0) })
        case "Add": output = broadcast(inputs[0], inputs[1], +)
        case "MaxPool": output = try maxPool(inputs[0], kernel: ints("kernel_shape", []), strides: ints("strides", [1, 1]),
                                             pads: ints("pads", [0, 0, 0, 0]), ceilMode: int("ceil_mode", 0))
        case "Flatten":
            let axis = int("axis", 1), shape = inputs[0].shape
            output = ReferenceTensor(shape: [shape[..<axis].reduce(1, *), shape[axis...].reduce(1, *)], values: inputs[0].values)
        case "Gemm": output = try gemm(inputs, alpha: float("alpha", 1), beta: float("beta", 1),
                                       transA: int("transA", 0), transB: int("transB", 0))
        case "Identity": output = inputs[0]
        default: throw ReferenceError(description: "operator \(node.opType) (\(node.name)) is not in the reference evaluator")
        }
        guard node.output.count == 1 else { throw ReferenceError(description: "\(node.name): \(node.output.count) outputs") }
        values[node.output[0]] = output
    }
    guard let result = values[graph.output[0].name] else { throw ReferenceError(description: "the graph output is not computed") }
    return result
}

/// `Conv` (2-D, NCHW): `Y[n, o, i, j] = B[o] + Σ_{c in o's group, p, q} W[o, c, p, q]·X[n, g·Cg + c, i·s − pad + p·d, j·s − pad + q·d]`.
private func conv(_ inputs: [ReferenceTensor], kernel: [Int], strides: [Int], pads: [Int], dilations: [Int], group: Int) throws -> ReferenceTensor {
    let x = inputs[0], w = inputs[1]
    let (n, c, h, wd) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
    let (m, cg, kh, kw) = (w.shape[0], w.shape[1], w.shape[2], w.shape[3])
    guard kernel.isEmpty || kernel == [kh, kw], cg * group == c, m % group == 0 else {
        throw ReferenceError(description: "Conv: kernel \(kernel), weight \(w.shape), input \(x.shape), group \(group)")
    }
    let ho = (h + pads[0] + pads[2] - dilations[0] * (kh - 1) - 1) / strides[0] + 1
    let wo = (wd + pads[1] + pads[3] - dilations[1] * (kw - 1) - 1) / strides[1] + 1
    let outputsPerGroup = m / group
    var y = [Double](repeating: 0, count: n * m * ho * wo)
    for b in 0..<n {
        for o in 0..<m {
            let g = o / outputsPerGroup
            for i in 0..<ho {
                for j in 0..<wo {
                    var sum = inputs.count > 2 ? inputs[2].values[o] : 0
                    for ci in 0..<cg {
                        let channel = g * cg + ci
                        for p in 0..<kh {
                            let row = i * strides[0] - pads[0] + p * dilations[0]
                            guard row >= 0 && row < h else { continue }
                            for q in 0..<kw {
                                let column = j * strides[1] - pads[1] + q * dilations[1]
                                guard column >= 0 && column < wd else { continue }
                                sum += w.values[((o * cg + ci) * kh + p) * kw + q] * x.values[((b * c + channel) * h + row) * wd + column]
                            }
                        }
                    }
                    y[((b * m + o) * ho + i) * wo + j] = sum
                }
            }
        }
    }
    return ReferenceTensor(shape: [n, m, ho, wo], values: y)
}

/// `BatchNormalization` in inference mode: `Y = scale·(X − mean)/√(var + ε) + B` per channel (axis 1).
private func batchNormalization(_ inputs: [ReferenceTensor], epsilon: Double) -> ReferenceTensor {
    let x = inputs[0], scale = inputs[1].values, bias = inputs[2].values, mean = inputs[3].values, variance = inputs[4].values
    let channels = x.shape[1], inner = x.shape.dropFirst(2).reduce(1, *)
    var y = x.values
    for index in y.indices {
        let c = (index / inner) % channels
        y[index] = scale[c] * (x.values[index] - mean[c]) / (variance[c] + epsilon).squareRoot() + bias[c]
    }
    return ReferenceTensor(shape: x.shape, values: y)
}

/// Elementwise `f(a, b)` with `b` broadcast to `a`'s shape (numpy rules, right-aligned; the
/// unidirectional broadcast of `PRelu` and the same-shape case of `Add`).
private func broadcast(_ a: ReferenceTensor, _ b: ReferenceTensor, _ f: (Double, Double) -> Double) -> ReferenceTensor {
    let rank = a.shape.count
    let bShape = [Int](repeating: 1, count: rank - b.shape.count) + b.shape
    precondition(zip(a.shape, bShape).allSatisfy { $1 == $0 || $1 == 1 }, "broadcast \(b.shape) to \(a.shape)")
    var y = a.values
    for index in y.indices {
        var rest = index, bIndex = 0, bStride = 1
        for axis in stride(from: rank - 1, through: 0, by: -1) {
            let coordinate = rest % a.shape[axis]
            rest /= a.shape[axis]
            if bShape[axis] != 1 { bIndex += coordinate * bStride }
            bStride *= bShape[axis]
        }
        y[index] = f(a.values[index], b.values[bIndex])
    }
    return ReferenceTensor(shape: a.shape, values: y)
}

/// `MaxPool` (2-D, NCHW, floor mode): the maximum over each window; padding never wins.
private func maxPool(_ x: ReferenceTensor, kernel: [Int], strides: [Int], pads: [Int], ceilMode: Int) throws -> ReferenceTensor {
    guard ceilMode == 0, kernel.count == 2 else { throw ReferenceError(description: "MaxPool: ceil_mode \(ceilMode), kernel \(kernel)") }
    let (n, c, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
    let ho = (h + pads[0] + pads[2] - kernel[0]) / strides[0] + 1
    let wo = (w + pads[1] + pads[3] - kernel[1]) / strides[1] + 1
    var y = [Double](repeating: -.infinity, count: n * c * ho * wo)
    for plane in 0..<(n * c) {
        for i in 0..<ho {
            for j in 0..<wo {
                for p in 0..<kernel[0] {
                    let row = i * strides[0] - pads[0] + p
                    guard row >= 0 && row < h else { continue }
                    for q in 0..<kernel[1] {
                        let column = j * strides[1] - pads[1] + q
                        guard column >= 0 && column < w else { continue }
                        y[(plane * ho + i) * wo + j] = max(y[(plane * ho + i) * wo + j], x.values[(plane * h + row) * w + column])
                    }
                }
            }
        }
    }
    return ReferenceTensor(shape: [n, c, ho, wo], values: y)
}

/// `Gemm`: `Y = alpha·A'·B' + beta·C` with `A' = transA ? Aᵀ : A`, `B' = transB ? Bᵀ : B`, `C` broadcast.
private func gemm(_ inputs: [ReferenceTensor], alpha: Double, beta: Double, transA: Int, transB: Int) throws -> ReferenceTensor {
    let a = inputs[0], b = inputs[1]
    let m = transA == 0 ? a.shape[0] : a.shape[1], k = transA == 0 ? a.shape[1] : a.shape[0]
    let n = transB == 0 ? b.shape[1] : b.shape[0], kb = transB == 0 ? b.shape[0] : b.shape[1]
    guard k == kb else { throw ReferenceError(description: "Gemm: A \(a.shape) (transA \(transA)), B \(b.shape) (transB \(transB))") }
    var y = [Double](repeating: 0, count: m * n)
    for i in 0..<m {
        for j in 0..<n {
            var sum = 0.0
            for l in 0..<k {
                let av = transA == 0 ? a.values[i * a.shape[1] + l] : a.values[l * a.shape[1] + i]
                let bv = transB == 0 ? b.values[l * b.shape[1] + j] : b.values[j * b.shape[1] + l]
                sum += av * bv
            }
            y[i * n + j] = alpha * sum
        }
    }
    var result = ReferenceTensor(shape: [m, n], values: y)
    if inputs.count > 2 {
        result = broadcast(result, inputs[2]) { $0 + beta * $1 }
    }
    return result
}
