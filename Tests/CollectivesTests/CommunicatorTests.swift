import Collectives
import Testing
import _TestSupport

@Suite struct SingleProcessCommunicatorTests {
    @Test("one process: rank 0 of 1, every collective returns its input")
    func identity() throws {
        let communicator = SingleProcessCommunicator()
        #expect(communicator.rank == 0 && communicator.size == 1)
        #expect(try collectiveIssues(communicator) == [])
    }
}

@Suite struct InProcessCommunicatorTests {
    @Test("P ranks as threads: every collective, unequal counts, 200 operations in a row", arguments: [1, 2, 3, 4])
    func collectives(size: Int) throws {
        let results = runRanks(size) { communicator in try collectiveIssues(communicator) }
        for (rank, result) in results.enumerated() {
            #expect(try result.get() == [], "rank \(rank)")
        }
    }

    @Test("a rank that never arrives: the others time out with the operation and the seconds, then the group is unusable")
    func timeout() throws {
        let results = runRanks(2, timeout: .milliseconds(200)) { communicator -> CommunicatorError? in
            guard communicator.rank == 0 else { return nil }   // rank 1 never calls
            var values: [Float] = [1, 2]
            do {
                try communicator.allReduce(&values, .sum)
                return nil
            } catch let error as CommunicatorError {
                #expect(throws: CommunicatorError.unusable(operation: .barrier, after: .allReduce)) {
                    try communicator.barrier()
                }
                return error
            }
        }
        #expect(try results[0].get() == CommunicatorError.timedOut(operation: .allReduce, seconds: 0.2))
        #expect(try results[1].get() == nil)
        let message = CommunicatorError.timedOut(operation: .allReduce, seconds: 0.2).description
        #expect(message.contains("allReduce did not complete within 0.2 s") && message.contains("HINT"))
    }

    @Test("a rank that arrives late, within the time-out, is waited for")
    func lateRank() throws {
        let results = runRanks(3, timeout: .seconds(20)) { communicator -> [Int] in
            if communicator.rank == 2 {
                let start = ContinuousClock.now
                while ContinuousClock.now - start < .milliseconds(300) {}
            }
            return try communicator.allGather([communicator.rank])
        }
        for result in results { #expect(try result.get() == [0, 1, 2]) }
    }
}
