/// A communicator that forwards every operation to `base` and adds up the wall-clock seconds
/// each kind of operation took on this rank (waiting for the other ranks included): what the
/// trainer reports as the head's share of `communicationSeconds`, and what `bench` reports as the
/// share of a step spent in collectives.
///
/// Use it from the one thread that uses `base` (as every communicator); the counters are not
/// synchronized.
public final class TimedCommunicator: Communicator {
    /// The communicator that does the work.
    public let base: any Communicator
    /// Seconds spent in each kind of operation since creation or the last `reset()`.
    public private(set) var seconds: [CollectiveOperation: Double] = [:]
    /// Calls of each kind of operation since creation or the last `reset()`.
    public private(set) var calls: [CollectiveOperation: Int] = [:]

    /// Wraps `base` (rank, size and timeout are `base`'s).
    public init(wrapping base: any Communicator) {
        self.base = base
    }

    public var rank: Int { base.rank }
    public var size: Int { base.size }
    public var timeout: Duration {
        get { base.timeout }
        set { base.timeout = newValue }
    }

    /// Seconds spent in all operations since creation or the last `reset()`.
    public var totalSeconds: Double { seconds.values.reduce(0, +) }

    /// Sets every counter to zero.
    public func reset() {
        seconds = [:]
        calls = [:]
    }

    public func allReduce<T: CommunicatorScalar>(_ values: inout [T], _ operation: ReductionOperation) throws(CommunicatorError) {
        let start = ContinuousClock.now
        defer { record(.allReduce, since: start) }
        try base.allReduce(&values, operation)
    }

    public func allGather<T: CommunicatorScalar>(_ values: [T], counts: [Int]) throws(CommunicatorError) -> [T] {
        let start = ContinuousClock.now
        defer { record(.allGather, since: start) }
        return try base.allGather(values, counts: counts)
    }

    public func reduceScatter<T: CommunicatorScalar>(_ values: [T], counts: [Int],
                                                     _ operation: ReductionOperation) throws(CommunicatorError) -> [T] {
        let start = ContinuousClock.now
        defer { record(.reduceScatter, since: start) }
        return try base.reduceScatter(values, counts: counts, operation)
    }

    public func broadcast<T: CommunicatorScalar>(_ values: inout [T], root: Int) throws(CommunicatorError) {
        let start = ContinuousClock.now
        defer { record(.broadcast, since: start) }
        try base.broadcast(&values, root: root)
    }

    public func barrier() throws(CommunicatorError) {
        let start = ContinuousClock.now
        defer { record(.barrier, since: start) }
        try base.barrier()
    }

    public func abort(_ message: String, exitCode: Int32) -> Never {
        base.abort(message, exitCode: exitCode)
    }

    private func record(_ operation: CollectiveOperation, since start: ContinuousClock.Instant) {
        seconds[operation, default: 0] += (ContinuousClock.now - start).seconds
        calls[operation, default: 0] += 1
    }
}
