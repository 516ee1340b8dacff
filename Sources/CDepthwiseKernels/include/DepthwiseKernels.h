// The depthwise convolution's inner loops (see Sources/Layers/DepthwiseConvolution+Kernels.swift
// for the polyphase layout they run on). C, not Swift, for one reason: Swift has no per-function
// CPU target, so the package's Swift code is baseline x86-64 (SSE, no FMA). Each function here is
// compiled three times from one body, for AVX-512 (F, VL), for AVX2 with FMA, and for the
// baseline; each call names the instruction set to run, and one the CPU lacks (`cpuid`, via
// `__builtin_cpu_supports`) is lowered to the widest it has. No compiler flag is needed, so the
// package stays usable as a dependency.
//
// Every function only reads and writes the ranges its comment gives; pointers may point into
// one buffer (the `src` ranges overlap each other), but `out` never overlaps a source.
#ifndef ARCFACE_DEPTHWISE_KERNELS_H
#define ARCFACE_DEPTHWISE_KERNELS_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/// The instruction sets the kernels are compiled for.
typedef enum {
    ArcFaceDepthwiseISABaseline = 0,  ///< x86-64 baseline (SSE2) or, off x86, the target's own
    ArcFaceDepthwiseISAAVX2 = 1,      ///< AVX2 with FMA (Haswell, Zen)
    ArcFaceDepthwiseISAAVX512 = 2,    ///< AVX-512 F and VL (Skylake-X, Cooperlake, Zen 4)
} ArcFaceDepthwiseISA;

/// The widest instruction set this CPU runs (the default choice).
ArcFaceDepthwiseISA arcface_depthwise_best_isa(void);

/// The process-wide default: `arcface_depthwise_best_isa()` until set.
ArcFaceDepthwiseISA arcface_depthwise_default_isa(void);

/// Sets the process-wide default to `isa`, lowered to `arcface_depthwise_best_isa()`; returns it.
ArcFaceDepthwiseISA arcface_depthwise_set_default_isa(ArcFaceDepthwiseISA isa);

/// Number of partial sums per tap that `arcface_depthwise_weight_gradient` keeps.
#define ARCFACE_DEPTHWISE_LANES 16

/// The most taps (window elements `k²`) one call takes.
#define ARCFACE_DEPTHWISE_MAX_TAPS 225

/// Correlation over rows (`taps ≤ ARCFACE_DEPTHWISE_MAX_TAPS`): for `r < rows`, `x < width`,
/// `out[r·width + x] = shift + Σ_{i<taps} w_i · src[offsets[i] + start + r·pitch + x]`,
/// with `w_i = weights[tap_index[i]]`, or `weights[i]` when `tap_index` is NULL. The taps are
/// summed in order `i = 0, 1, …` from zero, then `shift` is added. Reads `src` only at those
/// indices; a few results near a row's end may be computed twice (the same value).
void arcface_depthwise_correlate_rows(ArcFaceDepthwiseISA isa, const float *src, const ptrdiff_t *offsets, const float *weights,
                                      const int *tap_index, int taps, ptrdiff_t start, ptrdiff_t pitch,
                                      int rows, int width, float shift, float *out);

/// The weight gradient's dot products, accumulated: for `i < taps`, the 16 partial sums
/// `lanes[16·i ..< 16·i + 16]` together gain `Σ_{q < length} dy[q] · src[offsets[i] + q]`. How the
/// sum is split over the lanes (and so its rounding) is fixed for an instruction set, and differs
/// between them.
void arcface_depthwise_weight_gradient(ArcFaceDepthwiseISA isa, const float *dy, const float *src, const ptrdiff_t *offsets, int taps,
                                       ptrdiff_t length, float *lanes);

/// The scattered adjoint: for `i < taps` in order, `q < length`,
/// `out[offsets[i] + q] += weights[i] · dy[q]`.
void arcface_depthwise_scatter_adjoint(ArcFaceDepthwiseISA isa, const float *dy, const ptrdiff_t *offsets, const float *weights, int taps,
                                       ptrdiff_t length, float *out);

#ifdef __cplusplus
}
#endif

#endif
