/// Why a network could not be exported to ONNX, or its file not written.
public enum ONNXExportError: Error, CustomStringConvertible, Equatable, Sendable {
    /// The network contains a layer with no ONNX form (`type`, e.g. `"MyLayer"`) at `location`
    /// (the enclosing name scope, e.g. `"backbone.stage2"`). Conform it to `ONNXExportable`.
    case unsupportedLayer(type: String, location: String)
    /// A layer's configuration has no ONNX form in this exporter, e.g. a convolution whose weight
    /// shape does not match its channel counts and group count.
    case unsupportedConfiguration(layer: String, reason: String)
    /// The value entering `layer` has shape `found` (after the batch axis) where it expects `expected`.
    case shapeMismatch(layer: String, expected: String, found: [Int])
    /// Two initializers (parameters or buffers) share `name`; names must be unique in a model.
    case duplicateName(String)
    /// An initializer's stored values do not fill the shape it is exported with.
    case initializerShape(name: String, shape: [Int], count: Int)
    /// The ONNX file could not be written at `path`; any previous file there is unchanged.
    case writeFailed(path: String, reason: String)

    public var description: String {
        switch self {
        case let .unsupportedLayer(type, location):
            "cannot export \(type) at \(location.isEmpty ? "the top level" : location) to ONNX: the layer does not conform to ONNXExportable"
        case let .unsupportedConfiguration(layer, reason): "cannot export \(layer) to ONNX: \(reason)"
        case let .shapeMismatch(layer, expected, found):
            "cannot export \(layer) to ONNX: its input is [N, \(found.map(String.init).joined(separator: ", "))], expected \(expected)"
        case let .duplicateName(name): "cannot export to ONNX: two initializers are named \(name)"
        case let .initializerShape(name, shape, count):
            "cannot export initializer \(name) with shape \(shape): it holds \(count) values"
        case let .writeFailed(path, reason): "cannot write \(path): \(reason) (any previous file there is unchanged)"
        }
    }
}
