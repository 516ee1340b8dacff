import Testing
import TensorCore
import _TestSupport
@testable import FaceEvaluation

/// 10 identities × 10 images (the AT&T held-out split).
private let tenByTen = (0..<100).map { $0 / 10 }

@Test func allPairsOnATinyList() {
    #expect(allPairs(labels: [7, 7, 3]) == [
        VerificationPair(first: 0, second: 1, isSame: true),
        VerificationPair(first: 0, second: 2, isSame: false),
        VerificationPair(first: 1, second: 2, isSame: false),
    ])
    #expect(allPairs(labels: [5]).isEmpty)
    #expect(allPairs(labels: []).isEmpty)
}

@Test func allPairsCountsForTenIdentitiesOfTenImages() {
    // Genuine: 10·C(10,2) = 450. All: C(100,2) = 4,950, so 4,500 impostor pairs.
    let pairs = allPairs(labels: tenByTen)
    #expect(pairs.count == 4950)
    #expect(pairs.count { $0.isSame } == 450)
    #expect(pairs.count { !$0.isSame } == 4500)
}

@Test func balancedPairsAreBalancedValidAndReproducible() {
    let pairs = balancedPairs(labels: tenByTen, seed: 42)
    #expect(pairs.count == 900)
    let genuine = pairs.filter(\.isSame), impostors = pairs.filter { !$0.isSame }
    #expect(genuine.count == 450 && impostors.count == 450)
    #expect(Set(genuine) == Set(allPairs(labels: tenByTen).filter(\.isSame)))
    #expect(Set(impostors).count == 450)                           // without replacement
    #expect(impostors.allSatisfy { $0.first < $0.second && tenByTen[$0.first] != tenByTen[$0.second] })
    #expect(pairs == pairs.sorted { ($0.first, $0.second) < ($1.first, $1.second) })
    #expect(balancedPairs(labels: tenByTen, seed: 42) == pairs)    // reproducible
    #expect(balancedPairs(labels: tenByTen, seed: 43) != pairs)    // the seed matters
}

@Test func balancedPairsUseEveryImpostorWhenTheyAreScarce() {
    // Four images of identity 0 and one of identity 1: 6 genuine, only 4 impostor pairs.
    let labels = [0, 0, 0, 0, 1]
    #expect(balancedPairs(labels: labels, seed: 1) == allPairs(labels: labels))
}

@Test func balancedPairsBySamplingWhenImpostorsArePlentiful() {
    // 1,000 identities × 2 images: 1,000 genuine of C(2000,2) = 1,999,000 pairs, so the
    // rejection-sampling path runs.
    let labels = (0..<2000).map { $0 / 2 }
    let pairs = balancedPairs(labels: labels, seed: 9)
    let impostors = pairs.filter { !$0.isSame }
    #expect(pairs.count == 2000 && impostors.count == 1000)
    #expect(Set(impostors).count == 1000)
    #expect(impostors.allSatisfy { $0.first < $0.second && labels[$0.first] != labels[$0.second] })
    #expect(balancedPairs(labels: labels, seed: 9) == pairs)
}

@Test func cosineSimilaritiesOfHandPickedVectors() {
    // Rows (3,4), (4,3), (0,0), (−3,−4): cos = (12+12)/25 = 0.96; a zero row gives 0;
    // opposite rows give −1. Scale does not matter: (6,8) equals (3,4).
    let embeddings = Tensor(shape: [5, 2], storage: [3, 4, 4, 3, 0, 0, -3, -4, 6, 8])
    let pairs = [VerificationPair(first: 0, second: 1, isSame: true),
                 VerificationPair(first: 0, second: 2, isSame: false),
                 VerificationPair(first: 0, second: 3, isSame: false),
                 VerificationPair(first: 3, second: 4, isSame: false),
                 VerificationPair(first: 0, second: 4, isSame: true)]
    let check = compare(cosineSimilarities(embeddings: embeddings, pairs: pairs), [0.96, 0, -1, -1, 1],
                        atol: 1e-6, rtol: 0, label: "cosine")
    #expect(check.passed, "\(check)")
}

@Test func uniformIndexStaysInRangeAndIsReproducible() {
    var a = SeededGenerator(seed: 5), b = SeededGenerator(seed: 5)
    var seen = Set<Int>()
    for _ in 0..<200 {
        let x = uniformIndex(below: 7, using: &a)
        #expect(x == uniformIndex(below: 7, using: &b))
        #expect((0..<7).contains(x))
        seen.insert(x)
    }
    #expect(seen.count == 7)
}
