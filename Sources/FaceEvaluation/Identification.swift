// Closed-set identification by nearest neighbour (rank-1 accuracy), and the blocked
// similarity-matrix pass it shares with the all-pairs verification metrics.
import TensorCore

/// Leave-one-out rank-1 identification accuracy by cosine similarity.
///
/// Every sample whose identity has at least two images is a probe; the gallery is every other
/// sample (identities with a single image stay in the gallery as distractors but are not
/// probes, since no correct match exists for them). A probe is correct when its most similar
/// gallery sample has the same label. Ties go to the lowest sample index; a NaN similarity
/// counts as −∞.
/// - Parameters:
///   - embeddings: `[N, D]` row-major; L2-normalized inside.
///   - labels: identity of each sample, `[N]`.
/// - Returns: the fraction of probes identified correctly, in [0, 1].
/// - Precondition: `labels.count == N` and at least one identity has two or more images.
public func rank1Accuracy(embeddings: Tensor, labels: [Int]) -> Double {
    precondition(embeddings.rank == 2 && embeddings.shape[0] == labels.count,
                 "rank1Accuracy: embeddings \(embeddings.shape) for \(labels.count) labels")
    return rank1Accuracy(normalized: l2NormalizedRows(embeddings).normalized, labels: labels)
}

/// `rank1Accuracy` on rows that are already unit-norm.
func rank1Accuracy(normalized: Tensor, labels: [Int]) -> Double {
    var counts: [Int: Int] = [:]
    for label in labels { counts[label, default: 0] += 1 }
    let probeCount = labels.count { counts[$0, default: 0] >= 2 }
    precondition(probeCount > 0, "rank1Accuracy: no identity has two or more images")
    var correct = 0
    forEachSimilarityRow(normalized) { i, row in
        guard counts[labels[i], default: 0] >= 2 else { return }
        var best = -1
        var bestScore = -Float.infinity
        for j in row.indices where j != i {
            let score = rankingScore(row[j])
            if best < 0 || score > bestScore {
                best = j
                bestScore = score
            }
        }
        if labels[best] == labels[i] { correct += 1 }
    }
    return Double(correct) / Double(probeCount)
}

/// Calls `body(i, row)` for each sample `i` in order, where `row[j] = ê_i · ê_j` for all `j`
/// (`[N]`, indexed from 0). The `[N, N]` similarity matrix is computed in blocks of
/// `blockRows` rows (one GEMM each, `[b, D] · [N, D]ᵀ`), so memory stays `O(blockRows · N)`.
func forEachSimilarityRow(_ normalized: Tensor, blockRows: Int = 256, _ body: (Int, [Float]) -> Void) {
    precondition(normalized.rank == 2, "similarity rows: embeddings must be [N, D], got \(normalized.shape)")
    let n = normalized.shape[0], dimension = normalized.shape[1]
    var block = [Float](repeating: 0, count: min(blockRows, n) * n)
    for start in stride(from: 0, to: n, by: blockRows) {
        let rows = min(blockRows, n - start)
        gemm(transposeB: true, m: rows, n: n, k: dimension,
             a: normalized.storage, aOffset: start * dimension, lda: dimension,
             b: normalized.storage, ldb: dimension, c: &block, ldc: n)
        for r in 0..<rows {
            body(start + r, Array(block[(r * n)..<((r + 1) * n)]))
        }
    }
}
