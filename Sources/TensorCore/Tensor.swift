/// A dense, row-major `Float` tensor: a shape and contiguous storage.
///
/// `Tensor` is a value type; copies share storage until one is mutated (copy-on-write
/// comes from `Array`). Image batches are `[N, C, H, W]`, embeddings `[N, D]`, class
/// centers `[K, D]`.
public struct Tensor: Sendable, Equatable, CustomStringConvertible {
    /// The extent of each dimension, outermost first.
    public private(set) var shape: [Int]
    private var elements: [Float]

    /// The elements in row-major order; `storage.count == shape.reduce(1, *)`.
    ///
    /// In-place mutation (`t.storage[i] = x`, `fill(&t.storage, …)`) does not copy: the
    /// accessor yields the buffer itself (a `didSet` observer would force a copy per mutation).
    public var storage: [Float] {
        get { elements }
        _modify {
            yield &elements
            precondition(elements.count == Tensor.elementCount(shape),
                         "Tensor storage count \(elements.count) does not match shape \(shape)")
        }
        set {
            precondition(newValue.count == Tensor.elementCount(shape),
                         "Tensor storage count \(newValue.count) does not match shape \(shape)")
            elements = newValue
        }
    }

    /// A tensor of the given shape with every element equal to `value`.
    public init(shape: [Int], repeating value: Float = 0) {
        precondition(shape.allSatisfy { $0 >= 0 }, "Tensor shape must be non-negative: \(shape)")
        self.shape = shape
        self.elements = [Float](repeating: value, count: Tensor.elementCount(shape))
    }

    /// A tensor of the given shape over `storage` (row-major).
    ///
    /// - Precondition: `storage.count` equals the product of `shape`.
    public init(shape: [Int], storage: [Float]) {
        precondition(shape.allSatisfy { $0 >= 0 }, "Tensor shape must be non-negative: \(shape)")
        precondition(storage.count == Tensor.elementCount(shape),
                     "Tensor storage count \(storage.count) does not match shape \(shape)")
        self.shape = shape
        self.elements = storage
    }

    /// The number of elements.
    public var count: Int { storage.count }

    /// The number of dimensions.
    public var rank: Int { shape.count }

    /// The same elements under a new shape with the same element count.
    public func reshaped(_ newShape: [Int]) -> Tensor {
        precondition(Tensor.elementCount(newShape) == count,
                     "cannot reshape \(shape) (\(count) elements) to \(newShape)")
        return Tensor(shape: newShape, storage: storage)
    }

    /// Reshapes in place; the element count must not change.
    public mutating func reshape(_ newShape: [Int]) {
        precondition(Tensor.elementCount(newShape) == count,
                     "cannot reshape \(shape) (\(count) elements) to \(newShape)")
        shape = newShape
    }

    /// The element at a multi-dimensional index (bounds-checked).
    public subscript(_ index: Int...) -> Float {
        get { storage[flatIndex(index)] }
        set { storage[flatIndex(index)] = newValue }
    }

    /// Whether every element is finite (no NaN, no ±Inf).
    public var isFinite: Bool { storage.allSatisfy { $0.isFinite } }

    /// The index of the first non-finite element, if any.
    public var firstNonFiniteIndex: Int? { storage.firstIndex { !$0.isFinite } }

    public var description: String {
        let head = storage.prefix(8).map { "\($0)" }.joined(separator: ", ")
        return "Tensor(shape: \(shape), [\(head)\(count > 8 ? ", …" : "")])"
    }

    private func flatIndex(_ index: [Int]) -> Int {
        precondition(index.count == shape.count, "index \(index) does not match rank of shape \(shape)")
        var flat = 0
        for (i, extent) in zip(index, shape) {
            precondition(i >= 0 && i < extent, "index \(index) out of range for shape \(shape)")
            flat = flat * extent + i
        }
        return flat
    }

    static func elementCount(_ shape: [Int]) -> Int { shape.reduce(1, *) }
}

extension Tensor {
    /// A tensor of zeros.
    public static func zeros(_ shape: [Int]) -> Tensor { Tensor(shape: shape) }

    /// Elementwise sum; shapes must match.
    public static func + (lhs: Tensor, rhs: Tensor) -> Tensor {
        precondition(lhs.shape == rhs.shape, "add: \(lhs.shape) + \(rhs.shape)")
        return Tensor(shape: lhs.shape, storage: zip(lhs.storage, rhs.storage).map { $0 + $1 })
    }

    /// Adds `rhs` elementwise in place; shapes must match.
    public static func += (lhs: inout Tensor, rhs: Tensor) {
        precondition(lhs.shape == rhs.shape, "add: \(lhs.shape) += \(rhs.shape)")
        addInPlace(&lhs.storage, rhs.storage)
    }
}
