import TensorCore
import Layers

/// A value flowing through an ONNX graph under construction: its name and its shape after the
/// batch axis (the batch axis itself is the symbolic `N` of the graph input).
///
/// For a feature map `[N, C, H, W]` `shape` is `[C, H, W]`; for features `[N, D]` it is `[D]`.
public struct ONNXValue: Sendable, Equatable, CustomStringConvertible {
    /// The value's name in the graph (a graph input, an initializer or a node output).
    public var name: String
    /// The sizes after the batch axis, in elements.
    public var shape: [Int]

    public init(name: String, shape: [Int]) {
        self.name = name
        self.shape = shape
    }

    public var description: String { "\(name) [N, \(shape.map(String.init).joined(separator: ", "))]" }
}

/// An attribute of an ONNX node.
public enum ONNXAttribute: Sendable, Equatable {
    /// An `INT` attribute, e.g. `axis`, `transB`, `group`.
    case int(String, Int)
    /// An `INTS` attribute, e.g. `kernel_shape`, `strides`, `pads`.
    case ints(String, [Int])
    /// A `FLOAT` attribute, e.g. `epsilon`.
    case float(String, Float)
}

/// A layer that can write its inference-mode forward pass into an ONNX graph.
///
/// The exporter walks a network with `ONNXGraph.export(_:_:scope:)`, which calls this method of
/// every layer; a composite layer (`Sequential`, `ResidualBlock`, `Backbone`) exports its
/// sublayers the same way. Conform a new layer in the `ONNXExport` module (an extension in
/// `Layers+ONNX.swift`): add its parameters with `addInitializer(_:shape:)` (keeping their names)
/// and its nodes with `addNode(_:name:inputs:attributes:outputShape:)`, and return the output.
public protocol ONNXExportable {
    /// Appends the nodes and initializers that compute this layer on `input` in inference mode
    /// (running BatchNorm statistics, no dropout).
    ///
    /// - Parameters:
    ///   - input: the value entering the layer, its shape after the batch axis.
    ///   - graph: the graph under construction.
    /// - Returns: the layer's output value.
    /// - Throws: `ONNXExportError` when the input shape does not fit the layer or the layer's
    ///   configuration has no ONNX form.
    func exportONNX(_ input: ONNXValue, into graph: inout ONNXGraph) throws(ONNXExportError) -> ONNXValue
}

/// An ONNX graph under construction: nodes in topological order, initializers, and the name
/// scope that names nodes of layers without names of their own (e.g. `backbone.stage1.pool`).
///
/// Value names are unique: initializers keep their parameter or buffer names (a repeated name
/// is an error) and node outputs take the node's name, made unique with a suffix `_2`, `_3`, …
public struct ONNXGraph {
    package struct Node: Equatable {
        package var opType: String
        package var name: String
        package var inputs: [String]
        package var output: String
        package var attributes: [ONNXAttribute]
    }

    package struct Initializer: Equatable {
        package var name: String
        package var shape: [Int]
        package var values: [Float]
    }

    package private(set) var nodes: [Node] = []
    package private(set) var initializers: [Initializer] = []
    private var usedNames: Set<String>
    private var scopes: [String] = []

    /// An empty graph whose input is named `inputName`.
    package init(inputName: String) {
        usedNames = [inputName]
    }

    /// The innermost name scope (`""` at the top level).
    public var scope: String { scopes.last ?? "" }

    /// `component` inside the current scope, e.g. `"pool"` → `"backbone.stage1.pool"`.
    public func scopedName(_ component: String) -> String {
        scope.isEmpty ? component : "\(scope).\(component)"
    }

    /// Exports `layer` on `input`, inside the name scope `scope` when given (for layers without
    /// names of their own).
    ///
    /// - Throws: `ONNXExportError.unsupportedLayer` when `layer` does not conform to
    ///   `ONNXExportable`, or the error of the layer's export.
    public mutating func export(_ layer: any Layer, _ input: ONNXValue, scope: String? = nil) throws(ONNXExportError) -> ONNXValue {
        if let scope { scopes.append(scope) }
        defer { if scope != nil { scopes.removeLast() } }
        guard let exportable = layer as? any ONNXExportable else {
            throw .unsupportedLayer(type: String(describing: type(of: layer)), location: self.scope)
        }
        return try exportable.exportONNX(input, into: &self)
    }

    /// Adds an initializer named `name` holding `tensor`'s values, with `shape` (default
    /// `tensor.shape`; another shape must hold the same number of values, e.g. PReLU slopes
    /// `[C]` exported as `[C, 1, 1]`).
    ///
    /// - Returns: `name`, for a node's inputs.
    /// - Throws: `ONNXExportError.duplicateName` or `.initializerShape`.
    @discardableResult
    public mutating func addInitializer(_ name: String, _ tensor: Tensor, shape: [Int]? = nil) throws(ONNXExportError) -> String {
        let shape = shape ?? tensor.shape
        guard shape.reduce(1, *) == tensor.count else {
            throw .initializerShape(name: name, shape: shape, count: tensor.count)
        }
        guard usedNames.insert(name).inserted else { throw .duplicateName(name) }
        initializers.append(Initializer(name: name, shape: shape, values: tensor.storage))
        return name
    }

    /// Adds a parameter as an initializer under its own name (`addInitializer(_:_:shape:)`).
    @discardableResult
    public mutating func addInitializer(_ parameter: Parameter, shape: [Int]? = nil) throws(ONNXExportError) -> String {
        try addInitializer(parameter.name, parameter.value, shape: shape)
    }

    /// Adds a buffer (e.g. a running mean) as an initializer under its own name.
    @discardableResult
    public mutating func addInitializer(_ buffer: Buffer, shape: [Int]? = nil) throws(ONNXExportError) -> String {
        try addInitializer(buffer.name, buffer.value, shape: shape)
    }

    /// Appends a node of the default ONNX domain with one output.
    ///
    /// - Parameters:
    ///   - opType: the operator, e.g. `"Conv"`.
    ///   - name: the node's name (a layer's name, or `scopedName(_:)`); its output value takes
    ///     it too, with a suffix when already used.
    ///   - inputs: the names of its inputs, in the operator's order.
    ///   - attributes: its attributes.
    ///   - outputShape: the output's shape after the batch axis.
    /// - Returns: the output value.
    public mutating func addNode(_ opType: String, name: String, inputs: [String], attributes: [ONNXAttribute] = [],
                                 outputShape: [Int]) -> ONNXValue {
        var unique = name, suffix = 2
        while !usedNames.insert(unique).inserted {
            unique = "\(name)_\(suffix)"
            suffix += 1
        }
        nodes.append(Node(opType: opType, name: unique, inputs: inputs, output: unique, attributes: attributes))
        return ONNXValue(name: unique, shape: outputShape)
    }

    /// Renames the value `old` (a node output) to `new` everywhere, for the graph output's name.
    /// Returns `false` when no node produces `old` or `new` is taken.
    package mutating func renameOutput(_ old: String, to new: String) -> Bool {
        guard let producer = nodes.lastIndex(where: { $0.output == old }), usedNames.insert(new).inserted else { return false }
        nodes[producer].output = new
        for index in nodes.indices { nodes[index].inputs = nodes[index].inputs.map { $0 == old ? new : $0 } }
        return true
    }
}
