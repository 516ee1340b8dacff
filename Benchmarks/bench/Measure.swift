// Timing: warm-up, repetitions, median and p90, a black hole for results.
import ArcFace

/// The timings of one benchmark, in seconds.
struct Timing: Codable {
    var samples: [Double]
    var median: Double { quantile(0.5) }
    var p90: Double { quantile(0.9) }
    var minimum: Double { samples.min() ?? .nan }

    /// The `q`-quantile by linear interpolation between order statistics.
    func quantile(_ q: Double) -> Double {
        let sorted = samples.sorted()
        guard !sorted.isEmpty else { return .nan }
        let position = q * Double(sorted.count - 1)
        let lower = Int(position), upper = min(lower + 1, sorted.count - 1)
        return sorted[lower] + (sorted[upper] - sorted[lower]) * (position - Double(lower))
    }

    enum CodingKeys: String, CodingKey { case samples, median, p90 }
    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(samples, forKey: .samples)
        try c.encode(median, forKey: .median)
        try c.encode(p90, forKey: .p90)
    }
    init(samples: [Double]) { self.samples = samples }
    init(from decoder: any Decoder) throws {
        samples = try decoder.container(keyedBy: CodingKeys.self).decode([Double].self, forKey: .samples)
    }
}

/// Keeps the optimizer from discarding results.
nonisolated(unsafe) var blackHoleSink: Double = 0
@inline(never) func blackHole(_ value: Double) { blackHoleSink += value }

func seconds(_ d: Duration) -> Double {
    Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18
}

/// Runs `body` `warmup` times untimed, then `repetitions` times timed.
func measure(warmup: Int, repetitions: Int, _ body: () -> Void) -> Timing {
    for _ in 0..<warmup { body() }
    let clock = ContinuousClock()
    var samples: [Double] = []
    for _ in 0..<max(repetitions, 1) {
        let start = clock.now
        body()
        samples.append(seconds(clock.now - start))
    }
    return Timing(samples: samples)
}

/// Times two workloads alternately (A, B, A, B, …) so that machine noise hits both alike.
func measurePair(warmup: Int, repetitions: Int, _ a: () -> Void, _ b: () -> Void) -> (Timing, Timing) {
    for _ in 0..<warmup { a(); b() }
    let clock = ContinuousClock()
    var sa: [Double] = [], sb: [Double] = []
    for _ in 0..<max(repetitions, 1) {
        var start = clock.now
        a()
        sa.append(seconds(clock.now - start))
        start = clock.now
        b()
        sb.append(seconds(clock.now - start))
    }
    return (Timing(samples: sa), Timing(samples: sb))
}

/// Times several workloads alternately (A, B, C, A, B, C, …) so that machine noise hits all alike.
func measureAlternately(warmup: Int, repetitions: Int, _ bodies: [() -> Void]) -> [Timing] {
    for _ in 0..<warmup { for body in bodies { body() } }
    let clock = ContinuousClock()
    var samples = [[Double]](repeating: [], count: bodies.count)
    for _ in 0..<max(repetitions, 1) {
        for (i, body) in bodies.enumerated() {
            let start = clock.now
            body()
            samples[i].append(seconds(clock.now - start))
        }
    }
    return samples.map { Timing(samples: $0) }
}

/// A random `Float` array (normal, std 1) from a seed.
func randomFloats(_ count: Int, seed: UInt64) -> [Float] {
    var generator = SeededGenerator(seed: seed)
    return (0..<count).map { _ in generator.nextNormal() }
}
