/// A group of `size` processes ("ranks") that exchange arrays in collective operations: every
/// rank calls the same operations in the same order with matching sizes.
///
/// What each operation does, for ranks `0..<P` (`P = size`), with `x_r` the array rank `r` passes:
///
/// | operation | in (rank r) | out (every rank) |
/// |---|---|---|
/// | `allReduce(_:_:)` | `x_r` `[n]` | `op_r x_r` `[n]`, in place |
/// | `allGather(_:counts:)` | `x_r` `[counts[r]]` | `x_0 ‖ x_1 ‖ … ‖ x_{P−1}` `[Σ counts]` |
/// | `reduceScatter(_:counts:_:)` | `x_r` `[Σ counts]` | block `r` of `op_q x_q`, `[counts[r]]` |
/// | `broadcast(_:root:)` | `x_root` | `x_root`, in place |
/// | `barrier()` | – | returns once every rank has called it |
///
/// Every operation waits at most `timeout` for the other ranks and then throws
/// `CommunicatorError.timedOut(operation:seconds:)`: a rank that died or hangs never hangs the
/// job. After a timed-out or failed operation the communicator is unusable (the other ranks may
/// be anywhere); end the job with `abort(_:exitCode:)`, which on MPI ends every rank.
///
/// Sizes that disagree between ranks (a `counts` array that differs, `x_r.count ≠ counts[r]`)
/// are programmer errors and trap where they can be seen; MPI cannot detect all of them.
/// Conformers: `SingleProcessCommunicator` (the default, `P = 1`), `InProcessCommunicator`
/// (`P` ranks as threads of one process, for tests) and, with the package trait `MPI`,
/// `MPICommunicator` in the module `MPICollectives`.
public protocol Communicator: AnyObject {
    /// This process's rank in `0..<size`.
    var rank: Int { get }
    /// `P ≥ 1`, the number of ranks.
    var size: Int { get }
    /// How long one operation may wait for the other ranks.
    var timeout: Duration { get set }

    /// Replaces `values` (`[n]`, the same `n` on every rank) by their element-wise reduction over
    /// the ranks.
    ///
    /// - Throws: `CommunicatorError`.
    func allReduce<T: CommunicatorScalar>(_ values: inout [T], _ operation: ReductionOperation) throws(CommunicatorError)

    /// The concatenation in rank order of every rank's `values`.
    ///
    /// - Parameters:
    ///   - values: `[counts[rank]]`.
    ///   - counts: `[P]`, the element count of each rank, identical on every rank.
    /// - Returns: `[Σ counts]`.
    /// - Throws: `CommunicatorError`.
    func allGather<T: CommunicatorScalar>(_ values: [T], counts: [Int]) throws(CommunicatorError) -> [T]

    /// Block `rank` of the element-wise reduction over the ranks of `values`.
    ///
    /// - Parameters:
    ///   - values: `[Σ counts]`, blocks in rank order.
    ///   - counts: `[P]`, the block sizes, identical on every rank.
    /// - Returns: `[counts[rank]]`.
    /// - Throws: `CommunicatorError`.
    func reduceScatter<T: CommunicatorScalar>(_ values: [T], counts: [Int],
                                              _ operation: ReductionOperation) throws(CommunicatorError) -> [T]

    /// Replaces `values` on every rank by rank `root`'s (same count on every rank).
    ///
    /// - Throws: `CommunicatorError`.
    func broadcast<T: CommunicatorScalar>(_ values: inout [T], root: Int) throws(CommunicatorError)

    /// Returns once every rank has called it.
    ///
    /// - Throws: `CommunicatorError`.
    func barrier() throws(CommunicatorError)

    /// Ends the job: prints `message` to standard error prefixed with the rank, then ends every
    /// rank of the group (`MPI_Abort` for MPI; the process for the others) with `exitCode`.
    func abort(_ message: String, exitCode: Int32) -> Never
}

extension Communicator {
    /// `allGather(_:counts:)` with the same count on every rank: `values` `[n]` → `[P·n]`.
    public func allGather<T: CommunicatorScalar>(_ values: [T]) throws(CommunicatorError) -> [T] {
        try allGather(values, counts: [Int](repeating: values.count, count: size))
    }
}

/// The element-wise reduction of `Communicator.allReduce` and `reduceScatter`.
public enum ReductionOperation: String, Sendable, CaseIterable {
    case sum, max, min

    /// `a ∘ b` for this operation.
    @inlinable
    public func combine<T: CommunicatorScalar>(_ a: T, _ b: T) -> T {
        switch self {
        case .sum: return a + b
        case .max: return Swift.max(a, b)
        case .min: return Swift.min(a, b)
        }
    }
}

/// The element types a communicator exchanges: `Float`, `Double` and `Int` (64-bit).
public protocol CommunicatorScalar: BitwiseCopyable, Sendable, Comparable, AdditiveArithmetic {
    /// The wire type.
    static var scalarKind: CommunicatorScalarKind { get }
}

/// The wire types of `CommunicatorScalar` (what MPI calls a datatype).
public enum CommunicatorScalarKind: Sendable {
    case float32, float64, int64
}

extension Float: CommunicatorScalar { public static var scalarKind: CommunicatorScalarKind { .float32 } }
extension Double: CommunicatorScalar { public static var scalarKind: CommunicatorScalarKind { .float64 } }
extension Int: CommunicatorScalar {
    public static var scalarKind: CommunicatorScalarKind {
        precondition(MemoryLayout<Int>.size == 8, "Collectives: Int must be 64-bit")
        return .int64
    }
}

/// A collective operation, as named in errors.
public enum CollectiveOperation: String, Sendable, CustomStringConvertible {
    case initialize, allReduce, allGather, reduceScatter, broadcast, barrier, duplicate

    public var description: String { rawValue }
}

/// A collective that did not complete. After any of these the communicator is unusable: end
/// the job (`Communicator.abort(_:exitCode:)`).
public enum CommunicatorError: Error, Equatable, CustomStringConvertible {
    /// `operation` did not complete within `seconds`: another rank died, hangs, or calls a
    /// different operation.
    case timedOut(operation: CollectiveOperation, seconds: Double)
    /// The transport reported error `code` (an MPI error class) with its `message`.
    case failed(operation: CollectiveOperation, code: Int32, message: String)
    /// An operation was attempted after an earlier one (`after`) timed out or failed.
    case unusable(operation: CollectiveOperation, after: CollectiveOperation)
    /// The transport cannot be used at all (e.g. MPI cannot be initialized, or lacks the thread
    /// support needed).
    case unavailable(reason: String)

    public var description: String {
        switch self {
        case let .timedOut(operation, seconds):
            return "\(operation) did not complete within \(seconds) s; HINT: another rank died, hangs or runs a "
                + "different collective (a rank that stopped early, a batch size that differs between ranks); "
                + "raise the timeout only if a rank is legitimately slower (evaluation on one rank)"
        case let .failed(operation, code, message):
            return "\(operation) failed with MPI error \(code): \(message)"
        case let .unusable(operation, after):
            return "\(operation) cannot run: the communicator is unusable since a \(after) timed out or failed"
        case let .unavailable(reason):
            return "the communicator is unavailable: \(reason)"
        }
    }
}

/// The default `Communicator.timeout`: 30 minutes, PyTorch's default process-group timeout,
/// long enough for one rank to evaluate or checkpoint while the others wait.
public let defaultCommunicatorTimeout: Duration = .seconds(1800)

extension Duration {
    /// The duration in seconds, for messages.
    package var seconds: Double {
        let (s, attoseconds) = components
        return Double(s) + Double(attoseconds) / 1e18
    }
}

/// The start of each rank's block for `counts` (`[P + 1]`, the last entry `Σ counts`), after
/// checking that `counts` has `size` non-negative entries.
package func blockOffsets(_ label: String, counts: [Int], size: Int) -> [Int] {
    precondition(counts.count == size, "\(label): counts has \(counts.count) entries for \(size) ranks")
    precondition(counts.allSatisfy { $0 >= 0 }, "\(label): negative count in \(counts)")
    var offsets = [0]
    offsets.reserveCapacity(size + 1)
    for c in counts { offsets.append(offsets.last! + c) }
    return offsets
}
