import TensorCore

extension SeededGenerator {
    /// A uniform integer in `0..<bound` (Lemire's multiply-and-reject method, "Fast Random Integer
    /// Generation in an Interval", ACM TOMACS 2019). Written out here rather than using
    /// `Int.random(in:using:)` so that the stream is fixed by this package, not by the standard
    /// library's implementation.
    mutating func nextIndex(below bound: Int) -> Int {
        precondition(bound > 0, "nextIndex(below:): bound must be positive, got \(bound)")
        let range = UInt64(bound)
        var product = next().multipliedFullWidth(by: range)
        if product.low < range {
            let threshold = (0 &- range) % range
            while product.low < threshold { product = next().multipliedFullWidth(by: range) }
        }
        return Int(product.high)
    }

    /// A uniform integer in `range` (see `nextIndex(below:)`).
    mutating func nextInteger(in range: ClosedRange<Int>) -> Int {
        range.lowerBound + nextIndex(below: range.upperBound - range.lowerBound + 1)
    }

    /// Shuffles `elements` in place (Fisher–Yates, drawing `nextIndex(below: i + 1)` for
    /// i = n−1 down to 1).
    mutating func shuffle<T>(_ elements: inout [T]) {
        guard elements.count > 1 else { return }
        for i in stride(from: elements.count - 1, to: 0, by: -1) {
            elements.swapAt(i, nextIndex(below: i + 1))
        }
    }
}

/// The SplitMix64 output function (Steele, Lea, Flood 2014): a bijective 64-bit mixer used to
/// derive independent seeds from (seed, stream, epoch).
func splitMix64(_ value: UInt64) -> UInt64 {
    var z = value &+ 0x9E37_79B9_7F4A_7C15
    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
    return z ^ (z >> 31)
}
