/// The instruction set of the depthwise convolution's kernels (`Conv2D` with `groups ==
/// inputChannels == outputChannels`).
///
/// Swift compiles this package for baseline x86-64 (SSE, no FMA), so the kernels' inner loops are
/// C, compiled once per instruction set from one body and chosen at run time from what the CPU
/// reports (`cpuid`). The choice changes speed and rounding (an FMA rounds once), not the
/// mathematics: results agree to float rounding across instruction sets, and are bit-identical
/// run to run for one instruction set and any thread count.
public enum DepthwiseInstructionSet: Int, CaseIterable, Comparable, Sendable, CustomStringConvertible {
    /// x86-64 baseline (SSE2; 4 lanes, separate multiply and add), or the target's own on other CPUs.
    case baseline = 0
    /// AVX2 with FMA (Haswell, Zen and later): 8 lanes, fused multiply-add.
    case avx2 = 1
    /// AVX-512 F and VL (Skylake-X, Cooperlake, Ice Lake, Zen 4 and later): 16 lanes, fused multiply-add.
    case avx512 = 2

    /// The widest instruction set this CPU runs.
    public static var best: DepthwiseInstructionSet { depthwiseKernelsBestInstructionSet() }

    /// The instruction sets this CPU runs, narrowest first.
    public static var available: [DepthwiseInstructionSet] { allCases.filter { $0 <= best } }

    /// The instruction set every depthwise convolution uses: `best` unless set. Setting one the CPU
    /// lacks selects `best` instead. Set it before training starts (a benchmark's A/B, a
    /// reproduction on another machine's rounding), not while layers run.
    public static var processDefault: DepthwiseInstructionSet {
        get { depthwiseKernelsDefaultInstructionSet() }
        set { setDepthwiseKernelsDefaultInstructionSet(newValue) }
    }

    /// `baseline`, `avx2` or `avx512`.
    public var description: String {
        switch self {
        case .baseline: "baseline"
        case .avx2: "avx2"
        case .avx512: "avx512"
        }
    }

    /// The instruction set named `baseline`, `avx2` or `avx512`, or `nil`.
    public init?(name: String) {
        guard let match = Self.allCases.first(where: { $0.description == name }) else { return nil }
        self = match
    }

    public static func < (a: Self, b: Self) -> Bool { a.rawValue < b.rawValue }
}
