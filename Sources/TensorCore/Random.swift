#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A seeded, reproducible random number generator (xoshiro256**, seeded through SplitMix64).
///
/// Every random stream in the package (initialization, shuffling, augmentation, dropout,
/// pair sampling) takes one of these, so a run is reproducible from its seed. The state is
/// `Codable` so that a stream can be saved and resumed exactly.
public struct SeededGenerator: RandomNumberGenerator, Sendable, Codable, Equatable {
    public private(set) var state: [UInt64]

    /// A generator whose whole stream is determined by `seed`.
    public init(seed: UInt64) {
        var x = seed
        var s = [UInt64](repeating: 0, count: 4)
        for i in 0..<4 {
            // SplitMix64 (Steele, Lea, Flood 2014).
            x &+= 0x9E37_79B9_7F4A_7C15
            var z = x
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            s[i] = z ^ (z >> 31)
        }
        state = s
    }

    /// The next 64 random bits (xoshiro256**, Blackman & Vigna 2018).
    public mutating func next() -> UInt64 {
        let result = rotl(state[1] &* 5, 7) &* 9
        let t = state[1] << 17
        state[2] ^= state[0]
        state[3] ^= state[1]
        state[1] ^= state[2]
        state[0] ^= state[3]
        state[2] ^= t
        state[3] = rotl(state[3], 45)
        return result
    }

    /// A uniform `Float` in [0, 1) with 24 random bits.
    public mutating func nextUniform() -> Float {
        Float(next() >> 40) * (1.0 / 16_777_216.0)
    }

    /// A standard normal sample (Box–Muller), mean 0, variance 1.
    public mutating func nextNormal() -> Float {
        let u1 = max(Double(next() >> 11) * (1.0 / 9_007_199_254_740_992.0), Double.leastNormalMagnitude)
        let u2 = Double(next() >> 11) * (1.0 / 9_007_199_254_740_992.0)
        return Float((-2 * log(u1)).squareRoot() * cos(2 * Double.pi * u2))
    }

    /// An independent generator derived from this one's stream (for a sub-task such as
    /// augmentation or dropout), advancing this generator by one step.
    public mutating func split() -> SeededGenerator {
        SeededGenerator(seed: next())
    }

    private func rotl(_ x: UInt64, _ k: UInt64) -> UInt64 { (x << k) | (x >> (64 - k)) }
}

extension Tensor {
    /// A tensor of independent normal samples with the given standard deviation.
    public static func randomNormal(_ shape: [Int], standardDeviation: Float,
                                    using generator: inout SeededGenerator) -> Tensor {
        var t = Tensor(shape: shape)
        for i in 0..<t.count { t.storage[i] = generator.nextNormal() * standardDeviation }
        return t
    }

    /// A tensor of independent uniform samples in [low, high).
    public static func randomUniform(_ shape: [Int], in range: ClosedRange<Float>,
                                     using generator: inout SeededGenerator) -> Tensor {
        var t = Tensor(shape: shape)
        let width = range.upperBound - range.lowerBound
        for i in 0..<t.count { t.storage[i] = range.lowerBound + generator.nextUniform() * width }
        return t
    }
}
