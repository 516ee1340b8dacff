import Synchronization
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// `P` ranks as threads of one process: a group made by `group(size:timeout:)`, one
/// communicator per rank, each used by its own thread. For tests of distributed code (the
/// class-parallel margin head, later the trainer) without MPI: the same collectives, the same
/// time-outs, results that do not depend on thread timing (every reduction adds the ranks'
/// arrays in rank order, so every rank gets the same bits).
///
/// Every collective is one exchange through a shared table: each rank deposits its array, waits
/// (polling, like `MPI_Test`) until all `P` have, reads all of them and computes its result;
/// the table is reused once every rank has read it. A rank that does not arrive within `timeout`
/// makes the waiting ranks throw `CommunicatorError.timedOut` and the group unusable.
public final class InProcessCommunicator: Communicator {
    public let rank: Int
    public var size: Int { exchange.size }
    public var timeout: Duration
    private let exchange: InProcessExchange

    private init(rank: Int, exchange: InProcessExchange, timeout: Duration) {
        self.rank = rank
        self.exchange = exchange
        self.timeout = timeout
    }

    /// The communicators of a new group of `size ≥ 1` ranks, index = rank.
    public static func group(size: Int, timeout: Duration = .seconds(60)) -> [InProcessCommunicator] {
        precondition(size >= 1, "InProcessCommunicator: size must be ≥ 1: \(size)")
        let exchange = InProcessExchange(size: size)
        return (0..<size).map { InProcessCommunicator(rank: $0, exchange: exchange, timeout: timeout) }
    }

    public func allReduce<T: CommunicatorScalar>(_ values: inout [T], _ operation: ReductionOperation) throws(CommunicatorError) {
        let all = try exchange.exchange(values, rank: rank, operation: .allReduce, timeout: timeout)
        let count = values.count
        precondition(all.allSatisfy { $0.count == count }, "allReduce: the ranks pass \(all.map(\.count)) elements")
        values = reduced(all, operation)
    }

    public func allGather<T: CommunicatorScalar>(_ values: [T], counts: [Int]) throws(CommunicatorError) -> [T] {
        let offsets = blockOffsets("allGather", counts: counts, size: size)
        precondition(values.count == counts[rank], "allGather: rank \(rank) passes \(values.count) elements, counts says \(counts[rank])")
        let all = try exchange.exchange(values, rank: rank, operation: .allGather, timeout: timeout)
        precondition(all.map(\.count) == counts, "allGather: the ranks pass \(all.map(\.count)) elements, counts say \(counts)")
        var result = [T]()
        result.reserveCapacity(offsets[size])
        for part in all { result.append(contentsOf: part) }
        return result
    }

    public func reduceScatter<T: CommunicatorScalar>(_ values: [T], counts: [Int],
                                                     _ operation: ReductionOperation) throws(CommunicatorError) -> [T] {
        let offsets = blockOffsets("reduceScatter", counts: counts, size: size)
        precondition(values.count == offsets[size], "reduceScatter: \(values.count) elements, counts say \(offsets[size])")
        let all = try exchange.exchange(values, rank: rank, operation: .reduceScatter, timeout: timeout)
        precondition(all.allSatisfy { $0.count == offsets[size] }, "reduceScatter: the ranks pass \(all.map(\.count)) elements")
        let block = offsets[rank]..<offsets[rank + 1]
        return reduced(all.map { Array($0[block]) }, operation)
    }

    public func broadcast<T: CommunicatorScalar>(_ values: inout [T], root: Int) throws(CommunicatorError) {
        precondition(root >= 0 && root < size, "broadcast: root \(root) outside 0..<\(size)")
        let all = try exchange.exchange(values, rank: rank, operation: .broadcast, timeout: timeout)
        precondition(all[root].count == values.count, "broadcast: rank \(rank) has \(values.count) elements, the root \(all[root].count)")
        values = all[root]
    }

    public func barrier() throws(CommunicatorError) {
        _ = try exchange.exchange([Int](), rank: rank, operation: .barrier, timeout: timeout)
    }

    /// Ends the process (and so every rank of the group).
    public func abort(_ message: String, exitCode: Int32) -> Never {
        endProcess(message, rank: rank, exitCode: exitCode)
    }

    /// The element-wise reduction of equally long arrays, in rank order.
    private func reduced<T: CommunicatorScalar>(_ all: [[T]], _ operation: ReductionOperation) -> [T] {
        var result = all[0]
        for part in all.dropFirst() {
            for j in result.indices { result[j] = operation.combine(result[j], part[j]) }
        }
        return result
    }
}

/// The table the ranks of an `InProcessCommunicator` group exchange their arrays through.
final class InProcessExchange: Sendable {
    let size: Int
    private let state: Mutex<State>

    private struct State: ~Copyable {
        /// One deposit per rank for the round in progress.
        var slots: [(any Sendable)?]
        var operations: [CollectiveOperation?]
        var arrived = 0, departed = 0
        /// Every rank has deposited; the ranks are reading.
        var complete = false
        /// The operation that timed out, after which the group is unusable.
        var broken: CollectiveOperation?
    }

    init(size: Int) {
        self.size = size
        state = Mutex(State(slots: .init(repeating: nil, count: size), operations: .init(repeating: nil, count: size)))
    }

    /// Deposits `values` for `rank`, waits for every rank's deposit of this round and returns
    /// all of them in rank order.
    func exchange<T: Sendable>(_ values: [T], rank: Int, operation: CollectiveOperation,
                               timeout: Duration) throws(CommunicatorError) -> [[T]] {
        let clock = ContinuousClock()
        let deadline = clock.now.advanced(by: timeout)
        var waiter = PollingWaiter()
        // 1. Deposit, once the previous round has been read by every rank.
        while true {
            let deposited: Result<Bool, CommunicatorError> = state.withLock { s in
                if let broken = s.broken { return .failure(.unusable(operation: operation, after: broken)) }
                guard !s.complete else { return .success(false) }
                precondition(s.slots[rank] == nil, "InProcessCommunicator: rank \(rank) deposited twice in one round")
                s.slots[rank] = values
                s.operations[rank] = operation
                s.arrived += 1
                if s.arrived == size {
                    let ops = s.operations.compactMap { $0 }
                    precondition(Set(ops).count == 1, "InProcessCommunicator: the ranks call different collectives: \(ops)")
                    s.complete = true
                }
                return .success(true)
            }
            if try deposited.get() { break }
            try waiter.wait(until: deadline, clock: clock, operation: operation, timeout: timeout, state: state)
        }
        // 2. Wait for the round to complete, read it, and reset it after the last reader.
        while true {
            let read: Result<[[T]]?, CommunicatorError> = state.withLock { s in
                if let broken = s.broken { return .failure(.unusable(operation: operation, after: broken)) }
                guard s.complete else { return .success(nil) }
                let all = s.slots.map { $0 as! [T] }
                s.departed += 1
                if s.departed == size {
                    s.slots = .init(repeating: nil, count: size)
                    s.operations = .init(repeating: nil, count: size)
                    s.arrived = 0
                    s.departed = 0
                    s.complete = false
                }
                return .success(all)
            }
            if let all = try read.get() { return all }
            try waiter.wait(until: deadline, clock: clock, operation: operation, timeout: timeout, state: state)
        }
    }

    /// Polls: yields for the first few rounds, then sleeps 20 µs at a time; past the deadline
    /// marks the group broken and throws `.timedOut`.
    private struct PollingWaiter {
        var rounds = 0

        mutating func wait(until deadline: ContinuousClock.Instant, clock: ContinuousClock,
                           operation: CollectiveOperation, timeout: Duration,
                           state: borrowing Mutex<State>) throws(CommunicatorError) {
            if clock.now >= deadline {
                state.withLock { s in if s.broken == nil { s.broken = operation } }
                throw .timedOut(operation: operation, seconds: timeout.seconds)
            }
            rounds += 1
            if rounds < 64 { sched_yield() } else { usleep(20) }
        }
    }
}
