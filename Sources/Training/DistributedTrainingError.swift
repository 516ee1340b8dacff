import Collectives

/// Why a run over `P > 1` ranks (`Trainer.communicator`) cannot start or continue.
public enum DistributedTrainingError: Error, CustomStringConvertible, Equatable {
    /// The global batch (`batchSize`) does not split into `worldSize` equal parts.
    case batchSizeNotDivisible(batchSize: Int, worldSize: Int)
    /// The configuration key `key` has no distributed form yet (`reason` says why).
    case unsupported(key: String, reason: String, worldSize: Int)
    /// `Trainer.microBatches` must divide `batchSize` and be 1 when `P > 1`.
    case invalidMicroBatches(microBatches: Int, batchSize: Int, worldSize: Int)
    /// A collective did not complete (a rank died or hangs) during `what` at step `step`.
    case communication(CommunicatorError, step: Int, what: String)
    /// The replicas of the backbone are no longer bit-identical across ranks at step `step`
    /// (a checksum of every backbone parameter and buffer, reduced MIN and MAX, differs).
    case replicasDiverged(step: Int, minimum: Int, maximum: Int)
    /// Another rank (`rank`) failed at step `step` while doing `what` (its own message is on its
    /// standard error).
    case rankFailed(rank: Int, step: Int, what: String)
    /// The process runs under a launcher with `worldSize` ranks, but this binary has no MPI
    /// (built without the package trait `MPI`): it would run `worldSize` independent copies.
    case launchedWithoutMPI(worldSize: Int)

    public var description: String {
        switch self {
        case let .batchSizeNotDivisible(batchSize, worldSize):
            "batchSize \(batchSize) (the global batch) is not divisible by the \(worldSize) ranks; "
                + "HINT: use a multiple of \(worldSize) (each rank reads batchSize / \(worldSize) rows)"
        case let .unsupported(key, reason, worldSize):
            "\(key) is not supported with \(worldSize) ranks: \(reason)"
        case let .invalidMicroBatches(microBatches, batchSize, worldSize):
            "microBatches \(microBatches) must be ≥ 1, divide batchSize \(batchSize) and be 1 on \(worldSize) ranks"
        case let .communication(error, step, what):
            "step \(step), \(what): \(error)"
        case let .replicasDiverged(step, minimum, maximum):
            "step \(step): the ranks' backbone replicas differ (checksums from \(minimum) to \(maximum)); "
                + "HINT: every rank must run the same binary, configuration and data"
        case let .rankFailed(rank, step, what):
            "step \(step): rank \(rank) failed while \(what) (see its message above)"
        case let .launchedWithoutMPI(worldSize):
            "launched on \(worldSize) ranks (mpirun), but this arcface was built without MPI: it would train "
                + "\(worldSize) independent copies; HINT: build with `swift build -c release --traits MPI --scratch-path .build/mpi` "
                + "and run .build/mpi/release/arcface (or `make train-mpi NP=\(worldSize)`)"
        }
    }
}
