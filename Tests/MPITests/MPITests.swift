// Tests that run under `mpirun -np P` (make test-mpi): the test bundle runs on every rank, and
// every rank must run the same tests in the same order (hence one serialized suite). They need
// the package trait MPI and ARCFACE_MPI_TEST_WORLD_SIZE = P (the world size the launcher must
// give: a launcher of another MPI starts P separate one-rank worlds, which must not pass);
// without the variable every test is skipped.
#if MPI
import Collectives
import MarginLosses
import MPICollectives
import Testing
import _TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// The world size the launcher was asked for, or nil outside `make test-mpi`.
let expectedWorldSize: Int? = getenv("ARCFACE_MPI_TEST_WORLD_SIZE").flatMap { Int(String(cString: $0)) }

@Suite(.serialized, .enabled(if: expectedWorldSize != nil, "set ARCFACE_MPI_TEST_WORLD_SIZE and run under mpirun"))
struct MPICommunicatorTests {
    static func world() throws -> MPICommunicator {
        let world = try MPICommunicator.world(timeout: .seconds(60))
        #expect(world.size == expectedWorldSize, "mpirun started a world of \(world.size), expected \(expectedWorldSize ?? 0)")
        return world
    }

    @Test("the world has the expected size and every rank its own rank")
    func worldSize() throws {
        let world = try Self.world()
        let ranks = try world.allGather([world.rank])
        #expect(ranks == Array(0..<world.size))
        #expect(world.size >= 2, "a world of one rank does not test MPI")
    }

    @Test("every collective over MPI: Float, Double, Int; sum, max, min; unequal counts")
    func collectives() throws {
        let world = try Self.world()
        #expect(try collectiveIssues(world) == [])
        let duplicate = try world.duplicate()
        #expect(try collectiveIssues(duplicate) == [])
    }

    @Test("the class-parallel head over MPI equals the single-process head on the global batch")
    func classParallelHead() throws {
        let world = try Self.world()
        let rowCounts = (0..<world.size).map { [3, 4, 0, 2][$0 % 4] }
        for c in classParallelCases(rowCounts: rowCounts) {
            let reference = try referenceRun(c)
            let run = try rankRun(c, communicator: world)
            let issues = equivalenceIssues(c, rank: world.rank, result: run, reference: reference)
            #expect(issues.isEmpty, "\(issues.joined(separator: "\n"))")
            var loss = [run.loss]
            var minimum = loss
            try world.allReduce(&loss, .max)
            try world.allReduce(&minimum, .min)
            #expect(loss == minimum, "\(c): the ranks' losses differ")
        }
    }

    @Test("a rank that is late beyond the time-out: the others throw .timedOut and the communicator is unusable")
    func timeout() throws {
        let world = try Self.world()
        let late = try world.duplicate()   // the time-out breaks this one, not the world
        late.timeout = .milliseconds(300)
        if world.rank == world.size - 1 {
            usleep(1_500_000)
            var values: [Float] = [1]
            try late.allReduce(&values, .sum)   // the others have given up; the operation still completes
            #expect(values == [Float(world.size)])
        } else {
            var values: [Float] = [1]
            #expect(throws: CommunicatorError.timedOut(operation: .allReduce, seconds: 0.3)) {
                try late.allReduce(&values, .sum)
            }
            #expect(throws: CommunicatorError.unusable(operation: .barrier, after: .allReduce)) { try late.barrier() }
        }
        try world.barrier()
        #expect(MPICommunicator.waitForAbandonedOperations(seconds: 10))
    }
}
/// Run on its own by `make test-mpi` (ARCFACE_MPI_TEST_ABORT=1), which checks that mpirun fails
/// with the message: the last rank aborts while the others wait in a barrier it never reaches.
@Suite(.enabled(if: getenv("ARCFACE_MPI_TEST_ABORT") != nil, "make test-mpi runs it on its own"))
struct MPIAbortTests {
    @Test("abort ends every rank with the message, including ranks blocked in a collective")
    func abort() throws {
        let world = try MPICommunicator.world(timeout: .seconds(60))
        if world.rank == world.size - 1 {
            world.abort("MPIAbortTests: the job ends here", exitCode: 3)
        }
        try world.barrier()
        Issue.record("the barrier returned although the last rank aborted")
    }
}
#endif
