// Checks of every collective of a `Communicator`, from the rank's point of view: each rank
// passes arrays that depend on its rank and checks what it gets back against values computed
// here independently. Shared by the in-process tests and the tests under mpirun.
import Collectives

/// Runs every collective on `communicator` (every rank must call this at once) and returns
/// what came back wrong (empty when everything is right).
public func collectiveIssues(_ communicator: any Communicator) throws -> [String] {
    let (rank, p) = (communicator.rank, communicator.size)
    var issues = [String]()
    func expect(_ condition: Bool, _ message: @autoclosure () -> String) {
        if !condition { issues.append("rank \(rank) of \(p): \(message())") }
    }
    let rankSum = p * (p - 1) / 2   // Σ_r r

    // allReduce: element j of rank r is 10r + j (+ 0.25 as floats).
    for length in [1, 5, 1000] {
        for operation in ReductionOperation.allCases {
            var floats = (0..<length).map { Float(10 * rank + $0) + 0.25 }
            var doubles = (0..<length).map { Double(10 * rank + $0) + 0.25 }
            var ints = (0..<length).map { 10 * rank + $0 - 3 }
            try communicator.allReduce(&floats, operation)
            try communicator.allReduce(&doubles, operation)
            try communicator.allReduce(&ints, operation)
            let expected: [Double] = (0..<length).map { j in
                switch operation {
                case .sum: return Double(10 * rankSum + p * j) + 0.25 * Double(p)
                case .max: return Double(10 * (p - 1) + j) + 0.25
                case .min: return Double(j) + 0.25
                }
            }
            expect(floats.map(Double.init) == expected, "allReduce \(operation) Float [\(length)]: \(floats.prefix(4))…")
            expect(doubles == expected, "allReduce \(operation) Double [\(length)]: \(doubles.prefix(4))…")
            let expectedInts: [Int] = (0..<length).map { j in
                switch operation {
                case .sum: return 10 * rankSum + p * j - 3 * p
                case .max: return 10 * (p - 1) + j - 3
                case .min: return j - 3
                }
            }
            expect(ints == expectedInts, "allReduce \(operation) Int [\(length)]: \(ints.prefix(4))…, expected \(expectedInts.prefix(4))…")
        }
    }
    // An empty all-reduce is a no-op.
    var empty = [Float]()
    try communicator.allReduce(&empty, .sum)
    expect(empty.isEmpty, "allReduce of [] returned \(empty.count) elements")

    // allGather with unequal counts (rank r passes r + 1 copies of 100 + r; rank 1 passes none).
    let counts = (0..<p).map { $0 == 1 ? 0 : $0 + 1 }
    let gathered = try communicator.allGather([Double](repeating: Double(100 + rank), count: counts[rank]), counts: counts)
    let expectedGathered = (0..<p).flatMap { r in [Double](repeating: Double(100 + r), count: counts[r]) }
    expect(gathered == expectedGathered, "allGather: \(gathered), expected \(expectedGathered)")
    let labels = try communicator.allGather([rank, -rank])
    expect(labels == (0..<p).flatMap { [$0, -$0] }, "allGather equal counts: \(labels)")

    // reduceScatter: element t of rank q is q + t; block r (counts r + 2) reduced.
    let blockCounts = (0..<p).map { $0 + 2 }
    let total = blockCounts.reduce(0, +)
    let offset = blockCounts[..<rank].reduce(0, +)
    let scattered = try communicator.reduceScatter((0..<total).map { Float(rank + $0) }, counts: blockCounts, .sum)
    let expectedScattered = (0..<blockCounts[rank]).map { Float(rankSum + p * (offset + $0)) }
    expect(scattered == expectedScattered, "reduceScatter sum: \(scattered), expected \(expectedScattered)")
    let scatteredMax = try communicator.reduceScatter((0..<total).map { Double(rank * $0) }, counts: blockCounts, .max)
    expect(scatteredMax == (0..<blockCounts[rank]).map { Double((p - 1) * (offset + $0)) }, "reduceScatter max: \(scatteredMax)")

    // broadcast from the last rank and from rank 0.
    var broadcast = rank == p - 1 ? [7.5, -1, Double(p)] : [0, 0, 0]
    try communicator.broadcast(&broadcast, root: p - 1)
    expect(broadcast == [7.5, -1, Double(p)], "broadcast from \(p - 1): \(broadcast)")
    var seeds = [rank == 0 ? 42 : -1]
    try communicator.broadcast(&seeds, root: 0)
    expect(seeds == [42], "broadcast from 0: \(seeds)")

    // Many small operations in a row (the exchange is reused every time).
    for step in 0..<200 {
        var value = [Float(rank + step)]
        try communicator.allReduce(&value, .sum)
        if value != [Float(rankSum + p * step)] { issues.append("rank \(rank): step \(step) summed to \(value)"); break }
    }
    try communicator.barrier()
    return issues
}
