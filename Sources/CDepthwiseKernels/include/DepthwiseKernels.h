// The depthwise convolution's per-plane work (see Sources/Layers/DepthwiseConvolution+Kernels.swift
// for the polyphase layout and the in-place masked path): one call runs a task's run of planes,
// copies, correlations, weight-gradient sums and adjoint included. C, not Swift, for one reason:
// Swift has no per-function CPU target, so the package's Swift code is baseline x86-64 (SSE, no
// FMA). Each pass here is compiled three times from one body, for AVX-512 (F, VL), for AVX2 with
// FMA, and for the baseline; each call names the instruction set to run, and one the CPU lacks
// (`cpuid`, via `__builtin_cpu_supports`) is lowered to the widest it has. No compiler flag is
// needed, so the package stays usable as a dependency.
//
// Every function only reads and writes the ranges its comment gives; `x`/`dy` are only read and
// never overlap `y`, `dx`, `scratch` or `partial`.
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

/// Number of partial sums per tap the weight gradient keeps before summing them.
#define ARCFACE_DEPTHWISE_LANES 16

/// The most taps (window elements `k²`) a plan takes.
#define ARCFACE_DEPTHWISE_MAX_TAPS 225

/// The narrowest output rows the forward pass computes in place (and the narrowest input rows
/// the stride-1 adjoint writes in place); narrower planes go through a flat vector of pitch
/// `phase_width` whose rows are then copied out. Measured on 28- and 56-wide rows.
#define ARCFACE_DEPTHWISE_MIN_DIRECT_WIDTH 32

/// The polyphase layout of one depthwise geometry (square window `kernel`, `stride`, `padding`;
/// see Sources/Layers/DepthwiseConvolution+Kernels.swift, which fills it in).
typedef struct {
    int height, width, output_height, output_width;
    int kernel, stride, padding;
    /// Phase plane width `⌈(W + 2p)/s⌉`.
    int phase_width;
    /// Floats per phase plane; floats of the `s²` phase planes; computed output length
    /// `⌈Ho·phase_width⌉₈`; computed phase length `⌈phase_rows·phase_width⌉₈`; the largest tap
    /// shift; floats of the backward pass's zero-padded `∂Y` vector (`max_shift` zeros first).
    ptrdiff_t phase_stride, phase_block, output_length, phase_length, max_shift, gradient_length;
    /// Per tap `t = i·k + j` (`k²`): `phase·phase_stride + d(i, j)`.
    const ptrdiff_t *tap_offsets;
    /// The taps of phase 0, then of phase 1, … (`k²`): their negated shifts `−d(i, j)` and indices `t`.
    const ptrdiff_t *adjoint_offsets;
    const int *adjoint_taps;
    /// `s² + 1` entries: phase `a`'s taps are `phase_tap_begin[a] ..< phase_tap_begin[a + 1]`.
    const int *phase_tap_begin;
    /// The masks of small planes read in place (`arcface_depthwise_mask_count` ints, filled in by
    /// `arcface_depthwise_fill_masks`), or NULL: every plane then goes through the polyphase copy.
    const int *masks;
} ArcFaceDepthwisePlan;

/// Ints of the in-place masks this geometry uses: `k²·⌈H·W⌉₁₆` for a stride-1 "same" window
/// (`2p = k − 1`, `k² ≤ 9`) on planes of at most 256 pixels, except a 3 × 3 window on rows of 8 or
/// more (those run four rows at a time from the padded copy), otherwise 0 (no masks).
ptrdiff_t arcface_depthwise_mask_count(const ArcFaceDepthwisePlan *plan);

/// Writes the in-place masks (`arcface_depthwise_mask_count(plan)` ints): per tap `t = (i, j)`,
/// `masks[t·⌈H·W⌉₁₆ + q]` is all ones when output `q = y·W + x < H·W` reads a pixel of the plane
/// (`(y + i − p, x + j − p)` inside it), zero otherwise.
void arcface_depthwise_fill_masks(const ArcFaceDepthwisePlan *plan, int *masks);

/// Floats of one worker's scratch for `arcface_depthwise_forward`.
ptrdiff_t arcface_depthwise_forward_scratch(const ArcFaceDepthwisePlan *plan);

/// Floats of one worker's scratch for `arcface_depthwise_backward` with `channel_count` channels.
ptrdiff_t arcface_depthwise_backward_scratch(const ArcFaceDepthwisePlan *plan, int computes_input_gradient, int channel_count);

/// The forward pass over planes `first_plane ..< first_plane + plane_count` of `x`
/// (`[total_planes, H, W]`, plane `n·C + c`; all of `x` may be read): `y[plane] = bias[c] + w[c] ⋆ x[plane]` (zero padding), `y`
/// `[planes, Ho, Wo]`; `weights` `[C, k²]`, `bias` `[C]` or NULL. `scratch`
/// (`arcface_depthwise_forward_scratch` floats) must be zero before a worker's first call: the
/// padding of its phase planes is never written, so later calls find it still zero.
void arcface_depthwise_forward(ArcFaceDepthwiseISA isa, const ArcFaceDepthwisePlan *plan, const float *x, const float *weights,
                               const float *bias, int channels, ptrdiff_t total_planes, ptrdiff_t first_plane,
                               ptrdiff_t plane_count, float *y, float *scratch);

/// The backward pass over images `first_image ..< + image_count` × channels
/// `first_channel ..< + channel_count` (image by image, channels in order; `total_planes = N·C`,
/// all of `x` and `dy` may be read): `partial`
/// (`[channel_count, k²]`) is overwritten with these planes' `∂w` (each tap's sum over 16 lanes of
/// partial sums, the lanes summed in order), and, when `dx` is not NULL, their planes of `dx`
/// (`[N·C, H, W]`) with `∂x`. `scratch` (`arcface_depthwise_backward_scratch` floats) must be
/// zero before a worker's first call (as for the forward pass; the lanes are zeroed here).
void arcface_depthwise_backward(ArcFaceDepthwiseISA isa, const ArcFaceDepthwisePlan *plan, const float *dy, const float *x,
                                const float *weights, int channels, ptrdiff_t total_planes, ptrdiff_t first_image,
                                ptrdiff_t image_count, int first_channel, int channel_count, float *dx, float *scratch,
                                float *partial);

#ifdef __cplusplus
}
#endif

#endif
