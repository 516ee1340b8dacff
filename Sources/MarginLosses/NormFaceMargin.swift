/// No margin: the target logit is the plain cosine, so the head is a scaled cosine softmax.
///
/// Concretely:
/// ```
/// ψ(c) = c,  dψ/dc = 1
/// ```
/// NormFace (Wang et al., "NormFace: L2 Hypersphere Embedding for Face Verification",
/// ACM MM 2017, arXiv:1704.06369): normalized features and weights with a scale `s`.
public struct NormFaceMargin: Margin, Equatable, Codable {
    public init() {}

    public func target(cosine: Double) -> (value: Double, derivative: Double) {
        precondition(!cosine.isNaN, "NormFaceMargin: cosine is NaN")
        return (clampedCosine(cosine), 1)
    }
}
