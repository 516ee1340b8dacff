import Collectives
import Foundation
import Testing
import _TestSupport

@Suite struct TimedCommunicatorTests {
    @Test("forwards every collective and counts calls and seconds per kind, the waiting for a late rank included")
    func countsCallsAndWaiting() throws {
        let results = runRanks(2) { base -> ([Float], [CollectiveOperation: Int], [CollectiveOperation: Double]) in
            let timed = TimedCommunicator(wrapping: base)
            #expect(timed.rank == base.rank && timed.size == 2)
            if timed.rank == 1 { Thread.sleep(forTimeInterval: 0.2) }   // rank 0 waits in its all-reduce
            var values: [Float] = [Float(timed.rank + 1), 10]
            try timed.allReduce(&values, .sum)
            let gathered = try timed.allGather([Float(timed.rank)])
            _ = try timed.reduceScatter([1, 2, 3, 4] as [Float], counts: [2, 2], .sum)
            var root: [Float] = [Float(timed.rank)]
            try timed.broadcast(&root, root: 1)
            try timed.barrier()
            return (values + gathered + root, timed.calls, timed.seconds)
        }
        let rank0 = try results[0].get(), rank1 = try results[1].get()
        #expect(rank0.0 == [3, 20, 0, 1, 1])
        #expect(rank1.0 == rank0.0)
        for operation in [CollectiveOperation.allReduce, .allGather, .reduceScatter, .broadcast, .barrier] {
            #expect(rank0.1[operation] == 1, "\(operation)")
        }
        #expect((rank0.2[.allReduce] ?? 0) >= 0.15, "rank 0 waited ≈ 0.2 s for rank 1: \(rank0.2)")
        #expect((rank1.2[.allReduce] ?? 1) < 0.15, "rank 1 arrived last: \(rank1.2)")
    }

    @Test("reset sets the counters to zero")
    func reset() throws {
        let timed = TimedCommunicator(wrapping: SingleProcessCommunicator())
        try timed.barrier()
        #expect(timed.calls[.barrier] == 1)
        timed.reset()
        #expect(timed.calls.isEmpty && timed.totalSeconds == 0)
    }
}
