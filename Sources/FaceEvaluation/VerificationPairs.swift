// Pair lists for face verification (all pairs, or an LFW-style balanced list) and their
// cosine similarities.
//
// Legend: N samples (images), D embedding dimension; embeddings are `[N, D]` row-major.
import TensorCore

/// Two samples (row indices into an `[N, D]` embedding matrix, `first < second` for lists built
/// here) and whether they show the same identity (a genuine pair) or not (an impostor pair).
public struct VerificationPair: Sendable, Equatable, Hashable, Codable {
    /// The index of the first sample.
    public var first: Int
    /// The index of the second sample.
    public var second: Int
    /// `true` for a genuine pair (same identity), `false` for an impostor pair.
    public var isSame: Bool

    public init(first: Int, second: Int, isSame: Bool) {
        self.first = first
        self.second = second
        self.isSame = isSame
    }
}

/// Every unordered pair `i < j` of samples, in lexicographic order of `(i, j)`.
///
/// With `n_k` images of identity `k`, there are `Σ_k n_k(n_k−1)/2` genuine and
/// `N(N−1)/2 − Σ_k n_k(n_k−1)/2` impostor pairs (10 identities × 10 images: 450 genuine and
/// 4,500 impostor pairs).
/// - Parameter labels: the identity of each sample, `[N]` (any integers).
/// - Returns: `N(N−1)/2` pairs.
public func allPairs(labels: [Int]) -> [VerificationPair] {
    var pairs: [VerificationPair] = []
    pairs.reserveCapacity(labels.count * max(labels.count - 1, 0) / 2)
    for i in labels.indices {
        for j in (i + 1)..<labels.count {
            pairs.append(VerificationPair(first: i, second: j, isSame: labels[i] == labels[j]))
        }
    }
    return pairs
}

/// An LFW-style balanced pair list: every genuine pair plus as many impostor pairs, drawn
/// uniformly without replacement with a generator seeded by `seed`.
///
/// If there are fewer impostor pairs than genuine pairs, every impostor pair is used. The
/// result is sorted lexicographically by `(first, second)`; the same `labels` and `seed` always
/// give the same list (independent of the Swift standard library's random algorithms).
/// LFW's View 2 (Huang et al. 2007) uses 3,000 genuine and 3,000 impostor pairs in the same way.
/// - Parameters:
///   - labels: the identity of each sample, `[N]`.
///   - seed: the seed of the impostor sampling.
/// - Returns: `G + min(G, I)` pairs, `G` genuine and `I` impostor pairs available.
public func balancedPairs(labels: [Int], seed: UInt64) -> [VerificationPair] {
    let n = labels.count
    var counts: [Int: Int] = [:]
    for label in labels { counts[label, default: 0] += 1 }
    let genuineCount = counts.values.reduce(0) { $0 + $1 * ($1 - 1) / 2 }
    let impostorCount = n * max(n - 1, 0) / 2 - genuineCount
    let needed = min(genuineCount, impostorCount)

    var genuine: [VerificationPair] = []
    genuine.reserveCapacity(genuineCount)
    var byLabel: [Int: [Int]] = [:]
    for (index, label) in labels.enumerated() { byLabel[label, default: []].append(index) }
    for members in byLabel.values {
        for a in members.indices {
            for b in (a + 1)..<members.count {
                genuine.append(VerificationPair(first: members[a], second: members[b], isSame: true))
            }
        }
    }

    var generator = SeededGenerator(seed: seed)
    var impostors: [VerificationPair] = []
    impostors.reserveCapacity(needed)
    if needed == impostorCount || impostorCount <= 4 * needed || impostorCount <= 1 << 20 {
        // Enumerate every impostor pair, then a partial Fisher–Yates shuffle picks `needed`.
        var candidates: [VerificationPair] = []
        candidates.reserveCapacity(impostorCount)
        for i in 0..<n {
            for j in (i + 1)..<n where labels[i] != labels[j] {
                candidates.append(VerificationPair(first: i, second: j, isSame: false))
            }
        }
        if needed < impostorCount {
            for k in 0..<needed {
                let pick = k + uniformIndex(below: candidates.count - k, using: &generator)
                candidates.swapAt(k, pick)
            }
        }
        impostors = Array(candidates.prefix(needed))
    } else {
        // Impostors are plentiful (> 4 per needed one): rejection sampling of uniform
        // unordered pairs accepts with probability ≥ 3/4 and never enumerates all N²/2 pairs.
        var chosen = Set<Int>()
        while impostors.count < needed {
            let a = uniformIndex(below: n, using: &generator)
            let b = uniformIndex(below: n, using: &generator)
            if a == b || labels[a] == labels[b] { continue }
            let (i, j) = (min(a, b), max(a, b))
            if chosen.insert(i * n + j).inserted {
                impostors.append(VerificationPair(first: i, second: j, isSame: false))
            }
        }
    }
    return (genuine + impostors).sorted { ($0.first, $0.second) < ($1.first, $1.second) }
}

/// The cosine similarity of each pair of rows of `embeddings`, after L2-normalizing every row.
///
/// Concretely: `s = ê_i · ê_j` with `ê = e / max(‖e‖₂, 1e-12)` (so a zero row has similarity 0
/// with everything), accumulated in `Double`, in [−1, 1] up to rounding. A row containing NaN
/// or ±∞ gives NaN similarities; the metrics in this module rank a NaN score below every other
/// score (see `rocCurve(scores:isSame:)`).
/// - Parameters:
///   - embeddings: `[N, D]` row-major; need not be normalized.
///   - pairs: pairs of row indices in `0..<N`.
/// - Returns: one similarity per pair, `[pairs.count]`.
/// - Precondition: `embeddings` has rank 2 and every index is in range.
public func cosineSimilarities(embeddings: Tensor, pairs: [VerificationPair]) -> [Float] {
    precondition(embeddings.rank == 2, "cosineSimilarities: embeddings must be [N, D], got \(embeddings.shape)")
    let normalized = l2NormalizedRows(embeddings).normalized
    return similaritiesOfNormalized(normalized, pairs: pairs)
}

/// `cosineSimilarities` for rows that are already unit-norm (`[N, D]`).
func similaritiesOfNormalized(_ normalized: Tensor, pairs: [VerificationPair]) -> [Float] {
    let rows = normalized.shape[0], dimension = normalized.shape[1]
    let values = normalized.storage.span
    return pairs.map { pair in
        precondition(pair.first >= 0 && pair.first < rows && pair.second >= 0 && pair.second < rows,
                     "cosineSimilarities: pair (\(pair.first), \(pair.second)) out of range for \(rows) embeddings")
        let a = pair.first * dimension, b = pair.second * dimension
        var total = 0.0
        for d in 0..<dimension { total += Double(values[a + d]) * Double(values[b + d]) }
        return Float(total)
    }
}

/// A uniform integer in `0..<bound` from 64 random bits, by Lemire's nearly divisionless
/// method ("Fast Random Integer Generation in an Interval", ACM TOMACS 2019), unbiased.
/// Written out here so that seeded results do not depend on the standard library's algorithm.
func uniformIndex(below bound: Int, using generator: inout SeededGenerator) -> Int {
    precondition(bound > 0, "uniformIndex: bound must be > 0: \(bound)")
    let range = UInt64(bound)
    var product = generator.next().multipliedFullWidth(by: range)
    if product.low < range {
        let threshold = (0 &- range) % range
        while product.low < threshold {
            product = generator.next().multipliedFullWidth(by: range)
        }
    }
    return Int(product.high)
}

/// Ranks a score for the metrics: NaN becomes −∞ (the lowest similarity), everything else
/// is unchanged.
@inline(__always)
func rankingScore(_ score: Float) -> Float { score.isNaN ? -Float.infinity : score }
