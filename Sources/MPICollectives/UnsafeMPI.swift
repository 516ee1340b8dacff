// The only file that imports CMPI: every MPI call of the package, behind Swift types. Built
// with the package trait `MPI` only (`swift build --traits MPI`); without it this module is
// empty and nothing needs MPI.
//
// Nonblocking collectives (MPI_Iallreduce, …) read and write their buffers until MPI_Test
// reports completion, possibly long after a time-out returned to the caller. So every
// collective works on memory it owns (`PendingCollective`: the inputs copied in, the counts and
// displacements MPI keeps pointers to), freed only once MPI has completed the operation; a
// timed-out operation's memory is never freed (the communicator keeps it, see
// `MPICommunicator`).
#if MPI
internal import CMPI
import Collectives
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// An MPI error code (`MPI_SUCCESS` never).
struct MPIErrorCode: Error {
    var code: Int32
}

/// An `MPI_Comm`.
struct MPICommunicatorHandle: @unchecked Sendable {
    fileprivate var comm: MPI_Comm
}

/// Process-wide MPI state: initialization, finalization, the world communicator.
enum MPIRuntime {
    private struct State {
        var initialized = false
        /// Collectives abandoned at a time-out or error, kept (with their memory) until MPI
        /// completes them. While one is incomplete, finalizing would wait for ranks that may
        /// never arrive, so `finalize()` skips `MPI_Finalize` then.
        var abandoned: [PendingCollective] = []
    }
    private static let state = Mutex(State())

    /// Initializes MPI once per process (`MPI_Init_thread` asking for `MPI_THREAD_SERIALIZED`:
    /// calls from any thread, one at a time), sets `MPI_ERRORS_RETURN` on the world
    /// communicator (errors come back as codes instead of ending the job) and registers an exit
    /// handler that calls `MPI_Finalize` (without it `mpirun` reports the job as failed).
    static func initialize() throws(CommunicatorError) -> MPICommunicatorHandle {
        let result: Result<Void, CommunicatorError> = state.withLock { s in
            if s.initialized { return .success(()) }
            var already: Int32 = 0
            MPI_Initialized(&already)
            if already == 0 {
                var provided: Int32 = 0
                let code = MPI_Init_thread(nil, nil, Int32(MPI_THREAD_SERIALIZED), &provided)
                guard code == MPI_SUCCESS else {
                    return .failure(.unavailable(reason: "MPI_Init_thread failed with error \(code)"))
                }
                guard provided >= Int32(MPI_THREAD_SERIALIZED) else {
                    return .failure(.unavailable(reason: "MPI provides thread level \(provided), "
                                                 + "MPI_THREAD_SERIALIZED (\(MPI_THREAD_SERIALIZED)) is needed"))
                }
                atexit { MPIRuntime.finalizeAtExit() }
            }
            MPI_Comm_set_errhandler(cmpi_comm_world(), cmpi_errors_return())
            s.initialized = true
            return .success(())
        }
        try result.get()
        return MPICommunicatorHandle(comm: cmpi_comm_world())
    }

    /// Keeps a collective that timed out or failed (and its memory) until MPI completes it.
    static func abandon(_ pending: PendingCollective) {
        state.withLock { $0.abandoned.append(pending) }
    }

    /// Tests the abandoned collectives once, releasing the completed ones; how many remain.
    @discardableResult
    static func pollAbandoned() -> Int {
        state.withLock { s in
            s.abandoned.removeAll { (try? $0.test().get()) == true }
            return s.abandoned.count
        }
    }

    /// `MPI_Finalize`, unless MPI is not initialized, already finalized, or an abandoned
    /// collective is still incomplete (then `MPI_Finalize` could wait forever for the rank that
    /// never came; `mpirun` reports the job as failed instead).
    static func finalize() {
        var finalized: Int32 = 0
        MPI_Finalized(&finalized)
        var initialized: Int32 = 0
        MPI_Initialized(&initialized)
        guard initialized != 0 && finalized == 0 else { return }
        if pollAbandoned() == 0 { MPI_Finalize() }
    }

    private static func finalizeAtExit() { finalize() }

    static func rank(of handle: MPICommunicatorHandle) -> Int {
        var rank: Int32 = 0
        MPI_Comm_rank(handle.comm, &rank)
        return Int(rank)
    }

    static func size(of handle: MPICommunicatorHandle) -> Int {
        var size: Int32 = 0
        MPI_Comm_size(handle.comm, &size)
        return Int(size)
    }

    /// `MPI_Comm_dup` (collective, blocking: every rank must call it).
    static func duplicate(_ handle: MPICommunicatorHandle) -> Result<MPICommunicatorHandle, MPIErrorCode> {
        var copy: MPI_Comm? = cmpi_comm_null()
        let code = MPI_Comm_dup(handle.comm, &copy)
        guard code == MPI_SUCCESS, let copy else { return .failure(MPIErrorCode(code: code)) }
        MPI_Comm_set_errhandler(copy, cmpi_errors_return())
        return .success(MPICommunicatorHandle(comm: copy))
    }

    static func free(_ handle: MPICommunicatorHandle) {
        var comm: MPI_Comm? = handle.comm
        MPI_Comm_free(&comm)
    }

    /// `MPI_Abort` on `handle`: ends every rank of the job.
    static func abort(_ handle: MPICommunicatorHandle, exitCode: Int32) -> Never {
        MPI_Abort(handle.comm, exitCode)
        exit(exitCode)   // MPI_Abort does not return; for the compiler
    }

    /// MPI's message for an error code.
    static func message(ofError code: Int32) -> String {
        var buffer = [CChar](repeating: 0, count: Int(MPI_MAX_ERROR_STRING) + 1)
        var length: Int32 = 0
        MPI_Error_string(code, &buffer, &length)
        return String(decoding: buffer.prefix(Int(length)).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

/// A started nonblocking collective with the memory MPI uses until it completes.
final class PendingCollective: @unchecked Sendable {   // used under MPIRuntime's lock or by one thread
    fileprivate var request: MPI_Request? = cmpi_request_null()
    /// Owned memory: inputs, outputs, counts, displacements. Freed when this object is
    /// released, which the communicator lets happen only after completion.
    private var blocks: [UnsafeMutableRawPointer] = []
    /// Where the result is read from, and its size in bytes.
    fileprivate var output: UnsafeMutableRawPointer?
    fileprivate var outputBytes = 0
    private(set) var isComplete = false

    fileprivate init() {}

    deinit {
        precondition(isComplete || blocks.isEmpty, "PendingCollective released before MPI completed it")
        for block in blocks { block.deallocate() }
    }

    fileprivate func allocate(bytes: Int) -> UnsafeMutableRawPointer {
        let block = UnsafeMutableRawPointer.allocate(byteCount: max(bytes, 1), alignment: 16)
        blocks.append(block)
        return block
    }

    fileprivate func copy<T: BitwiseCopyable>(_ values: [T]) -> UnsafeMutableRawPointer {
        let bytes = values.count * MemoryLayout<T>.stride
        let block = allocate(bytes: bytes)
        values.withUnsafeBytes { source in
            if let base = source.baseAddress { block.copyMemory(from: base, byteCount: bytes) }
        }
        return block
    }

    fileprivate func int32Array(_ values: [Int], _ label: String) -> UnsafeMutablePointer<Int32> {
        let block = allocate(bytes: values.count * 4).bindMemory(to: Int32.self, capacity: values.count)
        for (i, v) in values.enumerated() { block[i] = checkedCount(v, label) }
        return block
    }

    /// `MPI_Test`: whether the operation has completed (then the output can be read).
    func test() -> Result<Bool, MPIErrorCode> {
        if isComplete { return .success(true) }
        var flag: Int32 = 0
        let code = MPI_Test(&request, &flag, cmpi_status_ignore())
        guard code == MPI_SUCCESS else { return .failure(MPIErrorCode(code: code)) }
        if flag != 0 { isComplete = true }
        return .success(flag != 0)
    }

    /// The result, `[count]` elements of `T` (after completion).
    func result<T: BitwiseCopyable>(as type: T.Type, count: Int) -> [T] {
        precondition(isComplete, "PendingCollective: result read before completion")
        precondition(count * MemoryLayout<T>.stride <= outputBytes, "PendingCollective: result larger than its buffer")
        guard let output, count > 0 else { return [] }
        return [T](unsafeUninitializedCapacity: count) { buffer, initialized in
            UnsafeMutableRawPointer(buffer.baseAddress!).copyMemory(from: output, byteCount: count * MemoryLayout<T>.stride)
            initialized = count
        }
    }
}

private func checkedCount(_ value: Int, _ label: String) -> Int32 {
    guard let narrow = Int32(exactly: value) else {
        preconditionFailure("\(label): \(value) elements exceed MPI's 32-bit counts; split the operation")
    }
    return narrow
}

private func datatype(_ kind: CommunicatorScalarKind) -> MPI_Datatype {
    switch kind {
    case .float32: return cmpi_float()
    case .float64: return cmpi_double()
    case .int64: return cmpi_int64()
    }
}

private func reductionOperation(_ operation: ReductionOperation) -> MPI_Op {
    switch operation {
    case .sum: return cmpi_sum()
    case .max: return cmpi_max()
    case .min: return cmpi_min()
    }
}

/// The nonblocking collectives, started on memory they own.
enum MPICollectiveStart {
    /// `MPI_Iallreduce` in place.
    static func allReduce<T: CommunicatorScalar>(_ values: [T], _ operation: ReductionOperation,
                                                 on handle: MPICommunicatorHandle) -> Result<PendingCollective, MPIErrorCode> {
        let pending = PendingCollective()
        let buffer = pending.copy(values)
        pending.output = buffer
        pending.outputBytes = values.count * MemoryLayout<T>.stride
        let code = MPI_Iallreduce(cmpi_in_place(), buffer, checkedCount(values.count, "allReduce"),
                                  datatype(T.scalarKind), reductionOperation(operation), handle.comm, &pending.request)
        return finish(pending, code)
    }

    /// `MPI_Iallgatherv`: `values` is this rank's block; `counts` every rank's.
    static func allGather<T: CommunicatorScalar>(_ values: [T], counts: [Int], offsets: [Int],
                                                 on handle: MPICommunicatorHandle) -> Result<PendingCollective, MPIErrorCode> {
        let pending = PendingCollective()
        let send = pending.copy(values)
        let total = offsets.last ?? 0
        let receive = pending.allocate(bytes: total * MemoryLayout<T>.stride)
        pending.output = receive
        pending.outputBytes = total * MemoryLayout<T>.stride
        let countsC = pending.int32Array(counts, "allGather")
        let displacementsC = pending.int32Array(Array(offsets.dropLast()), "allGather")
        let type = datatype(T.scalarKind)
        let code = MPI_Iallgatherv(send, checkedCount(values.count, "allGather"), type, receive, countsC,
                                   displacementsC, type, handle.comm, &pending.request)
        return finish(pending, code)
    }

    /// `MPI_Ireduce_scatter`: `values` holds every block; this rank receives its own, reduced.
    static func reduceScatter<T: CommunicatorScalar>(_ values: [T], counts: [Int], rank: Int,
                                                     _ operation: ReductionOperation,
                                                     on handle: MPICommunicatorHandle) -> Result<PendingCollective, MPIErrorCode> {
        let pending = PendingCollective()
        let send = pending.copy(values)
        let receive = pending.allocate(bytes: counts[rank] * MemoryLayout<T>.stride)
        pending.output = receive
        pending.outputBytes = counts[rank] * MemoryLayout<T>.stride
        let countsC = pending.int32Array(counts, "reduceScatter")
        let code = MPI_Ireduce_scatter(send, receive, countsC, datatype(T.scalarKind), reductionOperation(operation),
                                       handle.comm, &pending.request)
        return finish(pending, code)
    }

    /// `MPI_Ibcast` from `root`.
    static func broadcast<T: CommunicatorScalar>(_ values: [T], root: Int,
                                                 on handle: MPICommunicatorHandle) -> Result<PendingCollective, MPIErrorCode> {
        let pending = PendingCollective()
        let buffer = pending.copy(values)
        pending.output = buffer
        pending.outputBytes = values.count * MemoryLayout<T>.stride
        let code = MPI_Ibcast(buffer, checkedCount(values.count, "broadcast"), datatype(T.scalarKind),
                              Int32(root), handle.comm, &pending.request)
        return finish(pending, code)
    }

    /// `MPI_Ibarrier`.
    static func barrier(on handle: MPICommunicatorHandle) -> Result<PendingCollective, MPIErrorCode> {
        let pending = PendingCollective()
        let code = MPI_Ibarrier(handle.comm, &pending.request)
        return finish(pending, code)
    }

    private static func finish(_ pending: PendingCollective, _ code: Int32) -> Result<PendingCollective, MPIErrorCode> {
        guard code == MPI_SUCCESS else {
            pending.markNotStarted()
            return .failure(MPIErrorCode(code: code))
        }
        return .success(pending)
    }
}

extension PendingCollective {
    /// An operation MPI refused to start holds no MPI reference to its memory.
    fileprivate func markNotStarted() { isComplete = true }
}
#endif
