// The ranks of `arcface train`: MPI's world when the binary has the package trait MPI and runs
// under a launcher (mpirun / mpiexec / srun), else one process. A binary without MPI started by
// a launcher of more than one rank fails at once instead of training P independent copies.
import ArgumentParser
import ArcFace
import Foundation
#if MPI
import MPICollectives
#endif

/// The world size a launcher announces in the environment (Open MPI, PMI/MPICH/Slurm, PMIx), or
/// nil when the process was not started by one.
func launcherWorldSize(_ environment: [String: String] = ProcessInfo.processInfo.environment) -> Int? {
    for key in ["OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE", "MPI_LOCALNRANKS"] {
        if let value = environment[key].flatMap(Int.init), value >= 1 { return value }
    }
    return nil
}

/// The communicator of this process (see the file's comment).
///
/// - Parameter timeout: how long one collective may wait for the other ranks.
/// - Throws: `TrainingError.distributed(.launchedWithoutMPI)` for a binary without MPI under a
///   launcher of more than one rank, `.distributed(.communication)` when MPI cannot start.
func makeWorldCommunicator(timeout: Duration) throws(TrainingError) -> any Communicator {
    guard let size = launcherWorldSize() else { return SingleProcessCommunicator() }
    #if MPI
    do { return try MPICommunicator.world(timeout: timeout) }
    catch { throw .distributed(.communication(error, step: 0, what: "starting MPI")) }
    #else
    guard size == 1 else { throw .distributed(.launchedWithoutMPI(worldSize: size)) }
    return SingleProcessCommunicator()
    #endif
}

/// `arcface train`'s options for runs on several ranks.
struct DistributedOptions: ParsableArguments {
    @Option(help: "Seconds a collective waits for the other ranks before the job ends with an error (runs under mpirun; default 1800, as PyTorch).")
    var collectiveTimeout: Double = 1800

    func validate() throws {
        guard collectiveTimeout.isFinite, collectiveTimeout > 0 else {
            throw ValidationError("--collective-timeout must be a positive number of seconds, got \(collectiveTimeout)")
        }
    }

    /// The world communicator; on ranks other than 0 standard output is silenced (only rank 0
    /// prints; errors still go to standard error).
    func makeCommunicator() throws(TrainingError) -> any Communicator {
        let communicator = try makeWorldCommunicator(timeout: .milliseconds(Int64(collectiveTimeout * 1000)))
        if communicator.rank != 0 {
            let null = open("/dev/null", O_WRONLY)
            if null >= 0 { dup2(null, STDOUT_FILENO); close(null) }
        }
        return communicator
    }
}
