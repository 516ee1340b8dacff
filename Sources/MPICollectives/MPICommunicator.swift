#if MPI
import Collectives
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// A `Communicator` over MPI (Open MPI 4.1 or MPICH): the ranks of `mpirun -np P`.
///
/// Every collective is nonblocking MPI (`MPI_Iallreduce`, `MPI_Iallgatherv`,
/// `MPI_Ireduce_scatter`, `MPI_Ibcast`, `MPI_Ibarrier`) polled with `MPI_Test` until it completes
/// or `timeout` passes; then it throws `CommunicatorError.timedOut`, and the communicator refuses
/// every later operation (`.unusable`): MPI cannot cancel a collective, and the ranks are no
/// longer in step. End the job with `abort(_:exitCode:)` (`MPI_Abort`: every rank ends, with
/// the message on standard error). An abandoned operation's memory is kept until MPI completes
/// it, so MPI never writes into freed memory; while one is incomplete the process exits without
/// `MPI_Finalize` (which would wait for the missing rank).
///
/// Use it from one thread at a time (MPI is initialized with `MPI_THREAD_SERIALIZED`).
/// Available with the package trait `MPI` only: `swift build --traits MPI`.
public final class MPICommunicator: Communicator {
    public let rank: Int
    public let size: Int
    public var timeout: Duration
    private let handle: MPICommunicatorHandle
    private let ownsHandle: Bool
    /// The operation that timed out or failed, after which every operation throws `.unusable`.
    private var failure: CollectiveOperation?

    private init(handle: MPICommunicatorHandle, ownsHandle: Bool, timeout: Duration) {
        self.handle = handle
        self.ownsHandle = ownsHandle
        self.timeout = timeout
        rank = MPIRuntime.rank(of: handle)
        size = MPIRuntime.size(of: handle)
    }

    deinit {
        if ownsHandle && failure == nil { MPIRuntime.free(handle) }
    }

    /// The communicator of every rank of the job (`MPI_COMM_WORLD`), initializing MPI on the
    /// first call in the process. Each call returns a new object over the same MPI communicator.
    ///
    /// - Throws: `CommunicatorError.unavailable` when MPI cannot be initialized or lacks
    ///   `MPI_THREAD_SERIALIZED`.
    public static func world(timeout: Duration = defaultCommunicatorTimeout) throws(CommunicatorError) -> MPICommunicator {
        MPICommunicator(handle: try MPIRuntime.initialize(), ownsHandle: false, timeout: timeout)
    }

    /// A communicator over the same ranks with its own message space (`MPI_Comm_dup`), so that
    /// a library's collectives never match another's. Collective: every rank must call it.
    public func duplicate() throws(CommunicatorError) -> MPICommunicator {
        if let failure { throw .unusable(operation: .duplicate, after: failure) }
        switch MPIRuntime.duplicate(handle) {
        case let .success(copy): return MPICommunicator(handle: copy, ownsHandle: true, timeout: timeout)
        case let .failure(error):
            throw .failed(operation: .duplicate, code: error.code, message: MPIRuntime.message(ofError: error.code))
        }
    }

    /// Calls `MPI_Finalize` now (it is also called at exit). After it no MPI call may be made.
    /// Skipped while a collective that timed out or failed is incomplete: finalizing would wait
    /// for the other ranks.
    public static func finalize() {
        MPIRuntime.finalize()
    }

    public func allReduce<T: CommunicatorScalar>(_ values: inout [T], _ operation: ReductionOperation) throws(CommunicatorError) {
        let count = values.count
        let pending = try complete(.allReduce) { MPICollectiveStart.allReduce(values, operation, on: handle) }
        values = pending.result(as: T.self, count: count)
    }

    public func allGather<T: CommunicatorScalar>(_ values: [T], counts: [Int]) throws(CommunicatorError) -> [T] {
        let offsets = blockOffsets("allGather", counts: counts, size: size)
        precondition(values.count == counts[rank], "allGather: rank \(rank) passes \(values.count) elements, counts says \(counts[rank])")
        let pending = try complete(.allGather) { MPICollectiveStart.allGather(values, counts: counts, offsets: offsets, on: handle) }
        return pending.result(as: T.self, count: offsets[size])
    }

    public func reduceScatter<T: CommunicatorScalar>(_ values: [T], counts: [Int],
                                                     _ operation: ReductionOperation) throws(CommunicatorError) -> [T] {
        let offsets = blockOffsets("reduceScatter", counts: counts, size: size)
        precondition(values.count == offsets[size], "reduceScatter: \(values.count) elements, counts say \(offsets[size])")
        let pending = try complete(.reduceScatter) {
            MPICollectiveStart.reduceScatter(values, counts: counts, rank: rank, operation, on: handle)
        }
        return pending.result(as: T.self, count: counts[rank])
    }

    public func broadcast<T: CommunicatorScalar>(_ values: inout [T], root: Int) throws(CommunicatorError) {
        precondition(root >= 0 && root < size, "broadcast: root \(root) outside 0..<\(size)")
        let count = values.count
        let pending = try complete(.broadcast) { MPICollectiveStart.broadcast(values, root: root, on: handle) }
        values = pending.result(as: T.self, count: count)
    }

    public func barrier() throws(CommunicatorError) {
        _ = try complete(.barrier) { MPICollectiveStart.barrier(on: handle) }
    }

    /// `MPI_Abort`: prints `rank <r>: <message>` to standard error and ends every rank.
    public func abort(_ message: String, exitCode: Int32) -> Never {
        writeToStandardError("rank \(rank): \(message)\n")
        MPIRuntime.abort(handle, exitCode: exitCode)
    }

    /// Waits up to `seconds` for the operations abandoned at a time-out to complete (when the
    /// late rank arrives after all); whether all have. For tests of the time-out.
    package static func waitForAbandonedOperations(seconds: Double) -> Bool {
        let deadline = ContinuousClock.now.advanced(by: .milliseconds(Int(seconds * 1000)))
        while ContinuousClock.now < deadline {
            if MPIRuntime.pollAbandoned() == 0 { return true }
            usleep(1000)
        }
        return false
    }

    // MARK: Polling

    /// Starts a collective and polls it with `MPI_Test` until it completes or the deadline
    /// passes: spinning for the first polls (MPI makes progress inside `MPI_Test`), then
    /// yielding, then sleeping 50 µs between polls.
    private func complete(_ operation: CollectiveOperation,
                          _ start: () -> Result<PendingCollective, MPIErrorCode>) throws(CommunicatorError) -> PendingCollective {
        if let failure { throw .unusable(operation: operation, after: failure) }
        let pending: PendingCollective
        switch start() {
        case let .success(started): pending = started
        case let .failure(error): throw fail(operation, error.code)
        }
        let clock = ContinuousClock()
        let deadline = clock.now.advanced(by: timeout)
        var polls = 0
        while true {
            switch pending.test() {
            case .success(true):
                return pending
            case .success(false):
                if clock.now >= deadline {
                    failure = operation
                    MPIRuntime.abandon(pending)
                    throw .timedOut(operation: operation, seconds: timeout.seconds)
                }
                polls += 1
                if polls > 1024 { usleep(50) } else if polls > 256 { sched_yield() }
            case let .failure(error):
                MPIRuntime.abandon(pending)
                throw fail(operation, error.code)
            }
        }
    }

    private func fail(_ operation: CollectiveOperation, _ code: Int32) -> CommunicatorError {
        failure = operation
        return .failed(operation: operation, code: code, message: MPIRuntime.message(ofError: code))
    }
}
#endif
