/// How `K` classes split over `P` ranks for the class-parallel head: rank `r` holds the
/// consecutive classes `classes(ofRank: r)`, the first `K mod P` ranks one class more than the
/// others, as arcface_torch's `PartialFC_V2` splits them:
/// ```
/// count(r) = ⌊K/P⌋ + (r < K mod P ? 1 : 0)
/// start(r) = ⌊K/P⌋·r + min(r, K mod P)
/// ```
/// Ranks in order hold ascending classes (rank 0 the lowest), so the lowest class index among
/// ranks is the lowest rank's. With `K < P` the last `P − K` ranks hold no class.
public struct ClassPartition: Sendable, Equatable, CustomStringConvertible {
    /// `K ≥ 1`.
    public let classCount: Int
    /// `P ≥ 1`.
    public let worldSize: Int

    public init(classCount: Int, worldSize: Int) {
        precondition(classCount >= 1 && worldSize >= 1,
                     "ClassPartition: classCount \(classCount) and worldSize \(worldSize) must be ≥ 1")
        self.classCount = classCount
        self.worldSize = worldSize
    }

    /// The classes of rank `rank` in `0..<P`.
    public func classes(ofRank rank: Int) -> Range<Int> {
        precondition(rank >= 0 && rank < worldSize, "ClassPartition: rank \(rank) outside 0..<\(worldSize)")
        let (base, extra) = classCount.quotientAndRemainder(dividingBy: worldSize)
        let start = base * rank + min(rank, extra)
        return start..<(start + base + (rank < extra ? 1 : 0))
    }

    /// The rank holding class `c` in `0..<K`.
    public func owner(ofClass c: Int) -> Int {
        precondition(c >= 0 && c < classCount, "ClassPartition: class \(c) outside 0..<\(classCount)")
        let (base, extra) = classCount.quotientAndRemainder(dividingBy: worldSize)
        let boundary = extra * (base + 1)   // the classes of the ranks holding one more
        return c < boundary ? c / (base + 1) : extra + (c - boundary) / base
    }

    /// `⌈K/P⌉`, the classes of the largest slice (rank 0's).
    public var largestSliceCount: Int { (classCount + worldSize - 1) / worldSize }

    public var description: String {
        "\(classCount) classes over \(worldSize) ranks (\(largestSliceCount) on rank 0)"
    }
}
