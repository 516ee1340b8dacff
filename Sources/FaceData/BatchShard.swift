/// Which rows of every batch one rank of a data-parallel run reads: rank `index` of `count`
/// takes rows `⌊n·index/count⌋ ..< ⌊n·(index + 1)/count⌋` of each batch of `n` rows of the
/// shared seeded plan (the same shuffle, flips and shifts on every rank), so the ranks' parts
/// are disjoint and, in rank order, make up the global batch.
///
/// With `batchSize` divisible by `count` (which the trainer requires) every rank reads
/// `batchSize / count` rows of every batch.
public struct BatchShard: Sendable, Equatable, CustomStringConvertible {
    /// This rank, in `0..<count`.
    public let index: Int
    /// The number of ranks, `≥ 1`.
    public let count: Int

    /// The whole batch (one process).
    public static let whole = BatchShard(index: 0, count: 1)

    /// - Precondition: `count ≥ 1`, `0 ≤ index < count` (a rank and world size, not user input).
    public init(index: Int, count: Int) {
        precondition(count >= 1 && index >= 0 && index < count, "BatchShard: index \(index) outside 0..<\(count)")
        self.index = index
        self.count = count
    }

    /// This shard's positions within `batch` (a range of a plan's positions).
    public func rows(of batch: Range<Int>) -> Range<Int> {
        let n = batch.count
        return (batch.lowerBound + n * index / count)..<(batch.lowerBound + n * (index + 1) / count)
    }

    public var description: String { "rank \(index) of \(count)" }
}
