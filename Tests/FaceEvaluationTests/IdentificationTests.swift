import Testing
import TensorCore
@testable import FaceEvaluation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Unit vectors at the given angles (degrees) in the plane, scaled by `norms` (rank-1 must
/// not depend on the scale).
private func planeEmbeddings(_ degrees: [Double], norms: [Float]? = nil) -> Tensor {
    var storage: [Float] = []
    for (k, angle) in degrees.enumerated() {
        let scale = norms?[k] ?? 1
        storage += [Float(cos(angle * .pi / 180)) * scale, Float(sin(angle * .pi / 180)) * scale]
    }
    return Tensor(shape: [degrees.count, 2], storage: storage)
}

@Test func rank1OnAConstructedSet() {
    // A at 0°, 10°, 90°; B (singleton) at 80°; C (singleton) at 180°. Probes are the three A
    // images (B and C have one image each and are distractors only):
    //   0° → nearest 10° (A) ✓;  10° → nearest 0° (A) ✓;  90° → nearest 80° (B) ✗.  → 2/3.
    let embeddings = planeEmbeddings([0, 10, 90, 80, 180], norms: [1, 3, 0.5, 2, 7])
    let accuracy = rank1Accuracy(embeddings: embeddings, labels: [0, 0, 0, 1, 2])
    #expect(abs(accuracy - 2.0 / 3) < 1e-15)
}

@Test func rank1TiesGoToTheLowestIndex() {
    // Probe 0 at 0° has two neighbours at ±30°: sample 1 (label 1, lower index) and sample 2
    // (label 0). The tie goes to sample 1 → wrong. Probe 2 (−30°) → nearest 0° (A) ✓.
    // Probes: 0 and 2 (label 0); samples 1 and 3 are label 1: 1 (30°) → nearest 0° ✗,
    // 3 (100°) → nearest 30° (label 1) ✓. Total 2/4.
    let embeddings = planeEmbeddings([0, 30, -30, 100])
    #expect(rank1Accuracy(embeddings: embeddings, labels: [0, 1, 0, 1]) == 0.5)
}

@Test func rank1IgnoresANaNDistractor() {
    // The constructed set plus a singleton with a NaN embedding: still 2/3, no trap.
    var embeddings = planeEmbeddings([0, 10, 90, 80, 180, 45])
    embeddings[5, 0] = .nan
    #expect(abs(rank1Accuracy(embeddings: embeddings, labels: [0, 0, 0, 1, 2, 3]) - 2.0 / 3) < 1e-15)
}

@Test func similarityRowsMatchDirectDotProductsAcrossBlocks() {
    // Block size 3 over 7 rows exercises a partial final block.
    var generator = SeededGenerator(seed: 2)
    let normalized = l2NormalizedRows(Tensor.randomNormal([7, 5], standardDeviation: 1, using: &generator)).normalized
    var visited: [Int] = []
    forEachSimilarityRow(normalized, blockRows: 3) { i, row in
        visited.append(i)
        let pairs = (0..<7).map { VerificationPair(first: i, second: $0, isSame: false) }
        let direct = similaritiesOfNormalized(normalized, pairs: pairs)
        #expect(zip(row, direct).allSatisfy { abs($0 - $1) < 1e-6 })
    }
    #expect(visited == Array(0..<7))
}
