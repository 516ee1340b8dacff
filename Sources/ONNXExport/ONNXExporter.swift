import Foundation
import SwiftProtobuf
import TensorCore
import Layers
import Checkpointing

/// Exports a backbone as an ONNX model for deployment (InsightFace's model zoo layout).
///
/// The model has one input `data` `[N, C, H, W]` with a symbolic batch axis `N`, taking images
/// already normalized to `(pixel − 127.5)/127.5` (the normalization is not part of the graph), and
/// one output `embedding` `[N, D]`, not L2-normalized: the backbone's inference-mode forward pass
/// (running BatchNorm statistics, no dropout). Operators are from the default domain at opset 13
/// (IR version 7): `Conv`, `BatchNormalization`, `PRelu`, `Relu`, `MaxPool`, `Add`, `Flatten`
/// (`axis = 1`), `Gemm` (`transB = 1`). Initializers carry the parameter and buffer names of the
/// checkpoint (PReLU slopes reshaped to `[C, 1, 1]`).
public enum ONNXExporter {
    /// The operator set version of the default domain.
    public static let opsetVersion = 13
    /// The IR version that goes with `opsetVersion` (ONNX 1.8).
    public static let irVersion = 7
    /// The name of the graph input.
    public static let inputName = "data"
    /// The name of the graph output (the embeddings).
    public static let outputName = "embedding"
    /// The symbolic name of the batch axis of the input and output.
    public static let batchDimension = "N"
    /// What a caller must do to an image before it enters `data` (stored as the model's
    /// `doc_string` and `preprocessing` metadata).
    public static let preprocessing =
        "input: float32 [N, C, H, W], planar, rows top to bottom; C = 1: grey (0.299 R + 0.587 G + 0.114 B), "
        + "C = 3: R, G, B in that order; each 8-bit sample v becomes (v - 127.5) / 127.5 (= v/255*2 - 1, in [-1, 1]); "
        + "the image is scaled bilinearly (aspect ratio kept) to cover H x W, then centre-cropped. "
        + "output: [N, D] embeddings, not normalized (L2-normalize before cosine similarity; arcface's evaluation "
        + "also adds the embedding of the mirrored image before normalizing)."

    /// The serialized ONNX model (`ModelProto`) of `backbone`.
    ///
    /// - Throws: `ONNXExportError` when a layer has no ONNX form.
    public static func model(of backbone: any EmbeddingBackbone) throws(ONNXExportError) -> Data {
        let c = backbone.configuration
        return try model(of: backbone, inputShape: [c.inputChannels, c.inputHeight, c.inputWidth])
    }

    /// The serialized ONNX model of any network of exportable layers.
    ///
    /// - Parameters:
    ///   - network: the network; every layer in it conforms to `ONNXExportable`.
    ///   - inputShape: the input's shape after the batch axis, e.g. `[C, H, W]`.
    ///   - graphName: the graph's name.
    /// - Throws: `ONNXExportError` when a layer has no ONNX form or a shape does not fit.
    public static func model(of network: any Layer, inputShape: [Int], graphName: String = "swift-arcface") throws(ONNXExportError) -> Data {
        let proto = try modelProto(of: network, inputShape: inputShape, graphName: graphName)
        do { return try proto.serializedBytes() }
        catch { throw .unsupportedConfiguration(layer: graphName, reason: "the model cannot be serialized: \(error)") }
    }

    /// Writes `model` (from `model(of:)`) to `path` durably: a temporary file beside it, flushed,
    /// then renamed over `path`.
    ///
    /// - Throws: `ONNXExportError.writeFailed` naming the path; any previous file there is unchanged.
    public static func write(_ model: Data, to path: String) throws(ONNXExportError) {
        do { try DurableFileWriter().writeFile(model, to: path) }
        catch { throw .writeFailed(path: error.path, reason: error.reason) }
    }

    /// The model as a message, for the exporter's tests.
    package static func modelProto(of network: any Layer, inputShape: [Int], graphName: String) throws(ONNXExportError) -> Onnx_ModelProto {
        var graph = ONNXGraph(inputName: inputName)
        let output = try graph.export(network, ONNXValue(name: inputName, shape: inputShape))
        var outputName = output.name
        if outputName == inputName || !graph.renameOutput(outputName, to: Self.outputName) {
            // The network computes nothing (an identity) or its output is not a node's: name it with Identity.
            outputName = graph.addNode("Identity", name: Self.outputName, inputs: [output.name], outputShape: output.shape).name
        } else {
            outputName = Self.outputName
        }

        var g = Onnx_GraphProto()
        g.name = graphName
        g.input = [valueInfo(inputName, shape: inputShape)]
        g.output = [valueInfo(outputName, shape: output.shape)]
        g.initializer = graph.initializers.map { initializer in
            var t = Onnx_TensorProto()
            t.name = initializer.name
            t.dims = initializer.shape.map(Int64.init)
            t.dataType = Int32(Onnx_TensorProto.DataType.float.rawValue)
            t.floatData = initializer.values
            return t
        }
        g.node = graph.nodes.map { node in
            var n = Onnx_NodeProto()
            n.opType = node.opType
            n.name = node.name
            n.input = node.inputs
            n.output = [node.output]
            n.attribute = node.attributes.map(attributeProto)
            return n
        }

        var m = Onnx_ModelProto()
        m.irVersion = Int64(irVersion)
        var opset = Onnx_OperatorSetIdProto()
        opset.domain = ""
        opset.version = Int64(opsetVersion)
        m.opsetImport = [opset]
        m.producerName = "swift-arcface"
        m.producerVersion = "1"
        m.modelVersion = 1
        m.docString = preprocessing
        var entry = Onnx_StringStringEntryProto()
        entry.key = "preprocessing"
        entry.value = preprocessing
        m.metadataProps = [entry]
        m.graph = g
        return m
    }

    /// A float tensor value `[N, shape…]` with the symbolic batch axis.
    private static func valueInfo(_ name: String, shape: [Int]) -> Onnx_ValueInfoProto {
        var tensor = Onnx_TypeProto.Tensor()
        tensor.elemType = Int32(Onnx_TensorProto.DataType.float.rawValue)
        var batch = Onnx_TensorShapeProto.Dimension()
        batch.dimParam = batchDimension
        tensor.shape.dim = [batch] + shape.map { size in
            var d = Onnx_TensorShapeProto.Dimension()
            d.dimValue = Int64(size)
            return d
        }
        var type = Onnx_TypeProto()
        type.tensorType = tensor
        var info = Onnx_ValueInfoProto()
        info.name = name
        info.type = type
        return info
    }

    private static func attributeProto(_ attribute: ONNXAttribute) -> Onnx_AttributeProto {
        var a = Onnx_AttributeProto()
        switch attribute {
        case let .int(name, value):
            a.name = name
            a.type = .int
            a.i = Int64(value)
        case let .ints(name, values):
            a.name = name
            a.type = .ints
            a.ints = values.map(Int64.init)
        case let .float(name, value):
            a.name = name
            a.type = .float
            a.f = value
        }
        return a
    }
}
