/// The communicator of a job of one process (`rank` 0, `size` 1): every collective returns
/// its input (a reduction over one rank), immediately. The default wherever a communicator is
/// optional, so that single-process code runs the same code path at no cost.
public final class SingleProcessCommunicator: Communicator {
    public var rank: Int { 0 }
    public var size: Int { 1 }
    /// Unused: nothing ever waits.
    public var timeout: Duration = defaultCommunicatorTimeout

    public init() {}

    public func allReduce<T: CommunicatorScalar>(_ values: inout [T], _ operation: ReductionOperation) throws(CommunicatorError) {}

    public func allGather<T: CommunicatorScalar>(_ values: [T], counts: [Int]) throws(CommunicatorError) -> [T] {
        let offsets = blockOffsets("allGather", counts: counts, size: 1)
        precondition(values.count == offsets[1], "allGather: rank 0 passes \(values.count) elements, counts says \(offsets[1])")
        return values
    }

    public func reduceScatter<T: CommunicatorScalar>(_ values: [T], counts: [Int],
                                                     _ operation: ReductionOperation) throws(CommunicatorError) -> [T] {
        let offsets = blockOffsets("reduceScatter", counts: counts, size: 1)
        precondition(values.count == offsets[1], "reduceScatter: \(values.count) elements, counts say \(offsets[1])")
        return values
    }

    public func broadcast<T: CommunicatorScalar>(_ values: inout [T], root: Int) throws(CommunicatorError) {
        precondition(root == 0, "broadcast: root \(root) outside 0..<1")
    }

    public func barrier() throws(CommunicatorError) {}

    public func abort(_ message: String, exitCode: Int32) -> Never {
        endProcess(message, rank: 0, exitCode: exitCode)
    }
}
