// The depthwise convolution's inner loops, one body per function compiled for three instruction
// sets (see include/DepthwiseKernels.h). The bodies use clang's vector extensions (`vf16` is 16
// floats: one AVX-512 register, two AVX2 or four SSE registers), loaded and stored through
// float-aligned vector types (unaligned accesses); `a * b + c` on them becomes one FMA where the
// target has it (`FP_CONTRACT ON`), a multiply and an add otherwise.
#include "DepthwiseKernels.h"

#include <stdatomic.h>
#include <string.h>

#pragma STDC FP_CONTRACT ON
// The vector helpers below are always inlined into functions of one target each: no vector
// crosses a call, so the ABI difference clang warns about cannot arise.
#pragma clang diagnostic ignored "-Wpsabi"

typedef float vf16 __attribute__((vector_size(64)));
typedef float vf8 __attribute__((vector_size(32)));
typedef float vf4 __attribute__((vector_size(16)));
// The same vectors at float alignment: loads and stores through them are unaligned float
// accesses (they may alias floats only, so the compiler keeps offsets and weights in registers).
typedef float vf16u __attribute__((vector_size(64), aligned(4)));
typedef float vf8u __attribute__((vector_size(32), aligned(4)));
typedef float vf4u __attribute__((vector_size(16), aligned(4)));

typedef int vi16 __attribute__((vector_size(64)));
typedef int vi8 __attribute__((vector_size(32)));
typedef int vi4 __attribute__((vector_size(16)));
typedef int vi16u __attribute__((vector_size(64), aligned(4)));
typedef int vi8u __attribute__((vector_size(32), aligned(4)));
typedef int vi4u __attribute__((vector_size(16), aligned(4)));

#define ALWAYS_INLINE static inline __attribute__((always_inline))

ALWAYS_INLINE vf16 load16(const float *p) { return *(const vf16u *)p; }
ALWAYS_INLINE vf8 load8(const float *p) { return *(const vf8u *)p; }
ALWAYS_INLINE vf4 load4(const float *p) { return *(const vf4u *)p; }
ALWAYS_INLINE void store16(float *p, vf16 v) { *(vf16u *)p = v; }
ALWAYS_INLINE void store8(float *p, vf8 v) { *(vf8u *)p = v; }
ALWAYS_INLINE void store4(float *p, vf4 v) { *(vf4u *)p = v; }
ALWAYS_INLINE vi16 loadi16(const int *p) { return *(const vi16u *)p; }
ALWAYS_INLINE vi8 loadi8(const int *p) { return *(const vi8u *)p; }
ALWAYS_INLINE vi4 loadi4(const int *p) { return *(const vi4u *)p; }

#define MAX_TAPS ARCFACE_DEPTHWISE_MAX_TAPS

// MARK: - Correlation over rows

ALWAYS_INLINE void correlate_rows_body(const float *src, const ptrdiff_t *tap_offsets, const float *weights,
                                       const int *tap_index, int taps, ptrdiff_t start, ptrdiff_t pitch,
                                       int rows, int width, float shift, float *out) {
    float w[MAX_TAPS];
    ptrdiff_t offsets[MAX_TAPS];
    for (int i = 0; i < taps; i++) {
        w[i] = weights[tap_index ? tap_index[i] : i];
        offsets[i] = tap_offsets[i];
    }
    for (int r = 0; r < rows; r++) {
        const float *row = src + start + r * pitch;
        float *o = out + (ptrdiff_t)r * width;
        if (width < 4) {
            for (int x = 0; x < width; x++) {
                float a = 0;
                for (int i = 0; i < taps; i++) a = w[i] * row[offsets[i] + x] + a;
                o[x] = a + shift;
            }
            continue;
        }
        int x = 0;
        for (; x + 32 <= width; x += 32) {
            vf16 a0 = {0}, a1 = {0};
            for (int i = 0; i < taps; i++) {
                const float *p = row + offsets[i] + x;
                a0 = w[i] * load16(p) + a0;
                a1 = w[i] * load16(p + 16) + a1;
            }
            store16(o + x, a0 + shift);
            store16(o + x + 16, a1 + shift);
        }
        if (x + 16 <= width) {
            vf16 a = {0};
            for (int i = 0; i < taps; i++) a = w[i] * load16(row + offsets[i] + x) + a;
            store16(o + x, a + shift);
            x += 16;
        }
        if (x + 8 <= width) {
            vf8 a = {0};
            for (int i = 0; i < taps; i++) a = w[i] * load8(row + offsets[i] + x) + a;
            store8(o + x, a + shift);
            x += 8;
        }
        if (x + 4 <= width) {
            vf4 a = {0};
            for (int i = 0; i < taps; i++) a = w[i] * load4(row + offsets[i] + x) + a;
            store4(o + x, a + shift);
            x += 4;
        }
        if (x < width) {
            // The last 4 results, moved back to end at the row's end (some recomputed, the same values).
            vf4 a = {0};
            for (int i = 0; i < taps; i++) a = w[i] * load4(row + offsets[i] + width - 4) + a;
            store4(o + width - 4, a + shift);
        }
    }
}

// MARK: - Weight gradient

// Nine taps (a 3 × 3 window) at once: one pass over `dy`, nine accumulators of the target's own
// vector width (nine registers of 16, 8 or 4 lanes), folded into the 16 lanes at the end.
#define DEFINE_WEIGHT_GRADIENT(NAME, VT, LOAD, W)                                                       \
    ALWAYS_INLINE void NAME(const float *dy, const float *src, const ptrdiff_t *offsets, int taps,      \
                            ptrdiff_t length, float *lanes) {                                           \
        int i0 = 0;                                                                                     \
        for (; i0 + 9 <= taps; i0 += 9) {                                                               \
            VT acc[9];                                                                                  \
            const float *s[9];                                                                          \
            for (int j = 0; j < 9; j++) { acc[j] = (VT){0}; s[j] = src + offsets[i0 + j]; }             \
            ptrdiff_t q = 0;                                                                            \
            for (; q + W <= length; q += W) {                                                           \
                VT d = LOAD(dy + q);                                                                    \
                for (int j = 0; j < 9; j++) acc[j] = d * LOAD(s[j] + q) + acc[j];                       \
            }                                                                                           \
            for (int j = 0; j < 9; j++) {                                                               \
                float *l = lanes + 16 * (i0 + j);                                                       \
                for (int k = 0; k < W; k++) l[k] += acc[j][k];                                          \
                for (ptrdiff_t t = q; t < length; t++) l[t - q] += dy[t] * s[j][t];                     \
            }                                                                                           \
        }                                                                                               \
        for (; i0 < taps; i0++) {                                                                       \
            const float *s0 = src + offsets[i0];                                                        \
            VT a0 = {0}, a1 = {0};                                                                      \
            ptrdiff_t q = 0;                                                                            \
            for (; q + 2 * W <= length; q += 2 * W) {                                                   \
                a0 = LOAD(dy + q) * LOAD(s0 + q) + a0;                                                  \
                a1 = LOAD(dy + q + W) * LOAD(s0 + q + W) + a1;                                          \
            }                                                                                           \
            VT a = a0 + a1;                                                                             \
            float *l = lanes + 16 * i0;                                                                 \
            for (int k = 0; k < W; k++) l[k] += a[k];                                                   \
            for (ptrdiff_t t = q; t < length; t++) l[(t - q) % 16] += dy[t] * s0[t];                    \
        }                                                                                               \
    }

DEFINE_WEIGHT_GRADIENT(weight_gradient16, vf16, load16, 16)
DEFINE_WEIGHT_GRADIENT(weight_gradient8, vf8, load8, 8)
DEFINE_WEIGHT_GRADIENT(weight_gradient4, vf4, load4, 4)

// MARK: - Scattered adjoint

ALWAYS_INLINE void scatter_adjoint_body(const float *dy, const ptrdiff_t *offsets, const float *weights, int taps,
                                        ptrdiff_t length, float *out) {
    for (int i = 0; i < taps; i++) {
        float *o = out + offsets[i];
        const float w = weights[i];
        ptrdiff_t q = 0;
        for (; q + 16 <= length; q += 16) store16(o + q, w * load16(dy + q) + load16(o + q));
        for (; q < length; q++) o[q] = w * dy[q] + o[q];
    }
}

// MARK: - Copies between planes and the polyphase layout

/// `dst[0 ..< n] = src[0 ..< n] + shift` (`src`, `dst` disjoint): chunks of 16 and 4, the last one
/// moved back to end at `n` (rows of 7 or 14 floats, where a `memmove` call costs more than the copy).
ALWAYS_INLINE void copy_row(const float *src, float *dst, int n, float shift) {
    if (n < 4) {
        for (int i = 0; i < n; i++) dst[i] = src[i] + shift;
        return;
    }
    int i = 0;
    for (; i + 16 <= n; i += 16) store16(dst + i, load16(src + i) + shift);
    for (; i + 4 <= n; i += 4) store4(dst + i, load4(src + i) + shift);
    if (i < n) store4(dst + n - 4, load4(src + n - 4) + shift);
}

/// The first element of padded row `rp`'s phase `(rp mod s, 0)` row.
ALWAYS_INLINE float *phase_row(const ArcFaceDepthwisePlan *P, float *phases, int rp) {
    const int s = P->stride;
    return phases + (ptrdiff_t)(rp % s) * s * P->phase_stride + (ptrdiff_t)(rp / s) * P->phase_width;
}

/// Writes the pixels of `plane` (`[H, W]`) to their places in the polyphase `phases`; the padding
/// is not written.
ALWAYS_INLINE void scatter_plane(const ArcFaceDepthwisePlan *P, const float *plane, float *phases) {
    const int s = P->stride, p = P->padding, W = P->width, H = P->height;
    for (int iy = 0; iy < H; iy++) {
        float *row = phase_row(P, phases, iy + p);
        const float *src = plane + (ptrdiff_t)iy * W;
        if (s == 1) {
            copy_row(src, row + p, W, 0);
        } else if (s == 2) {
            // Column ix goes to phase (ix + p) mod 2, element ⌊(ix + p)/2⌋.
            float *even = row + (p % 2) * P->phase_stride + p / 2;            // ix even, at ix/2
            float *odd = row + (1 - p % 2) * P->phase_stride + (p + 1) / 2;   // ix odd, at ⌊ix/2⌋
            int ix = 0;
            for (; ix + 16 <= W; ix += 16) {
                const vf16 v = load16(src + ix);
                store8(even + ix / 2, __builtin_shufflevector(v, v, 0, 2, 4, 6, 8, 10, 12, 14));
                store8(odd + ix / 2, __builtin_shufflevector(v, v, 1, 3, 5, 7, 9, 11, 13, 15));
            }
            for (; ix + 8 <= W; ix += 8) {
                const vf8 v = load8(src + ix);
                store4(even + ix / 2, __builtin_shufflevector(v, v, 0, 2, 4, 6));
                store4(odd + ix / 2, __builtin_shufflevector(v, v, 1, 3, 5, 7));
            }
            if (ix < W && W >= 8) {
                // The last 8 columns from an even one (rewriting some: the same values), then at most one.
                ix = (W - 8) & ~1;
                const vf8 v = load8(src + ix);
                store4(even + ix / 2, __builtin_shufflevector(v, v, 0, 2, 4, 6));
                store4(odd + ix / 2, __builtin_shufflevector(v, v, 1, 3, 5, 7));
                ix += 8;
            }
            for (; ix < W; ix++) (ix % 2 == 0 ? even : odd)[ix / 2] = src[ix];
        } else {
            for (int ix = 0; ix < W; ix++) {
                const int cp = ix + p;
                row[(ptrdiff_t)(cp % s) * P->phase_stride + cp / s] = src[ix];
            }
        }
    }
}

/// The inverse of `scatter_plane`: the pixel positions of `phases` to a `[H, W]` plane.
ALWAYS_INLINE void gather_plane(const ArcFaceDepthwisePlan *P, float *phases, float *plane) {
    const int s = P->stride, p = P->padding, W = P->width, H = P->height;
    for (int iy = 0; iy < H; iy++) {
        const float *row = phase_row(P, phases, iy + p);
        float *dst = plane + (ptrdiff_t)iy * W;
        if (s == 1) {
            copy_row(row + p, dst, W, 0);
        } else if (s == 2) {
            const float *even = row + (p % 2) * P->phase_stride + p / 2;
            const float *odd = row + (1 - p % 2) * P->phase_stride + (p + 1) / 2;
            int ix = 0;
            for (; ix + 16 <= W; ix += 16) {
                const vf8 e = load8(even + ix / 2), o = load8(odd + ix / 2);
                store16(dst + ix, __builtin_shufflevector(e, o, 0, 8, 1, 9, 2, 10, 3, 11, 4, 12, 5, 13, 6, 14, 7, 15));
            }
            for (; ix + 8 <= W; ix += 8) {
                const vf4 e = load4(even + ix / 2), o = load4(odd + ix / 2);
                store8(dst + ix, __builtin_shufflevector(e, o, 0, 4, 1, 5, 2, 6, 3, 7));
            }
            if (ix < W && W >= 8) {
                ix = (W - 8) & ~1;
                const vf4 e = load4(even + ix / 2), o = load4(odd + ix / 2);
                store8(dst + ix, __builtin_shufflevector(e, o, 0, 4, 1, 5, 2, 6, 3, 7));
                ix += 8;
            }
            for (; ix < W; ix++) dst[ix] = (ix % 2 == 0 ? even : odd)[ix / 2];
        } else {
            for (int ix = 0; ix < W; ix++) {
                const int cp = ix + p;
                dst[ix] = row[(ptrdiff_t)(cp % s) * P->phase_stride + cp / s];
            }
        }
    }
}

/// `correlate_rows_body`, with the 3 × 3 window's 9 taps a constant (its loop over taps unrolled).
ALWAYS_INLINE void correlate(const float *src, const ptrdiff_t *offsets, const float *weights, const int *tap_index,
                             int taps, ptrdiff_t start, ptrdiff_t pitch, int rows, int width, float shift, float *out) {
    if (taps == 9) correlate_rows_body(src, offsets, weights, tap_index, 9, start, pitch, rows, width, shift, out);
    else correlate_rows_body(src, offsets, weights, tap_index, taps, start, pitch, rows, width, shift, out);
}

// MARK: - Stride-1 3 × 3 rows, four at a time

// Output rows `r ..< r + 4` of a stride-1 3 × 3 window read input rows `r ..< r + 6`: each input
// vector (row `r + i`, column shift `j`) is loaded once and multiplied into every output row it
// belongs to (18 loads for 36 multiply-adds instead of 36). Each output's taps are still summed in
// the order `t = i·3 + j`, so the results are those of `correlate_rows_body`, bit for bit.
// `out[r·out_pitch + x] = shift + Σ_{i,j<3} w[i·3 + j] · src[(r + i)·pitch + x + j]` for `r < rows`,
// `x < width` (`width ≥` the vector's lanes; the last chunk of a row moved back to end at `width`).
#define DEFINE_CORRELATE3(NAME, VT, LOAD, STORE, W)                                                    \
    ALWAYS_INLINE void NAME##_block(const float *src, ptrdiff_t pitch, const float *w, const int R,   \
                                    int width, float shift, float *out, ptrdiff_t out_pitch) {        \
        for (int x0 = 0; x0 < width; x0 += W) {                                                       \
            const int x = x0 + W <= width ? x0 : width - W;                                           \
            VT a[4] = {{0}, {0}, {0}, {0}};                                                           \
            for (int i = 0; i < R + 2; i++)                                                           \
                for (int j = 0; j < 3; j++) {                                                         \
                    const VT v = LOAD(src + i * pitch + x + j);                                       \
                    for (int o = 0; o < R; o++)                                                       \
                        if (i - o >= 0 && i - o < 3) a[o] = w[(i - o) * 3 + j] * v + a[o];            \
                }                                                                                     \
            for (int o = 0; o < R; o++) STORE(out + o * out_pitch + x, a[o] + shift);                 \
        }                                                                                             \
    }                                                                                                 \
    ALWAYS_INLINE void NAME(const float *src, ptrdiff_t pitch, const float *weights, int rows, int width, \
                            float shift, float *out, ptrdiff_t out_pitch) {                           \
        float w[9];                                                                                   \
        for (int t = 0; t < 9; t++) w[t] = weights[t];                                                \
        int r = 0;                                                                                    \
        for (; r + 4 <= rows; r += 4) NAME##_block(src + r * pitch, pitch, w, 4, width, shift, out + r * out_pitch, out_pitch); \
        switch (rows - r) {                                                                           \
        case 3: NAME##_block(src + r * pitch, pitch, w, 3, width, shift, out + r * out_pitch, out_pitch); break; \
        case 2: NAME##_block(src + r * pitch, pitch, w, 2, width, shift, out + r * out_pitch, out_pitch); break; \
        case 1: NAME##_block(src + r * pitch, pitch, w, 1, width, shift, out + r * out_pitch, out_pitch); break; \
        default: break;                                                                               \
        }                                                                                             \
    }

DEFINE_CORRELATE3(correlate3_16, vf16, load16, store16, 16)
DEFINE_CORRELATE3(correlate3_8, vf8, load8, store8, 8)
DEFINE_CORRELATE3(correlate3_4, vf4, load4, store4, 4)

/// `correlate3_16/8/4` at the target's vector width.
ALWAYS_INLINE void correlate3(const float *src, ptrdiff_t pitch, const float *weights, int rows, int width, float shift,
                              float *out, ptrdiff_t out_pitch, const int vector_width) {
    if (vector_width == 16 && width >= 16) correlate3_16(src, pitch, weights, rows, width, shift, out, out_pitch);
    else if (vector_width >= 8) correlate3_8(src, pitch, weights, rows, width, shift, out, out_pitch);
    else correlate3_4(src, pitch, weights, rows, width, shift, out, out_pitch);
}

// The weight gradient of the same window, rows four at a time: `lanes[16·t ..< 16·t + W]` gain
// `Σ_{r<rows, x<width} dy[r·pitch + x] · src[(r + i)·pitch + x + j]` (`t = i·3 + j`), each `src`
// vector loaded once for the (up to) three rows of `dy` it meets. A row's last chunk is masked to
// `x < width`: past the row's end the lanes would be the next row's.
#define DEFINE_WEIGHT_GRADIENT3(NAME, VT, VIT, LOAD, W)                                                \
    ALWAYS_INLINE void NAME##_block(const float *dy, const float *src, ptrdiff_t pitch, const int R, int chunks, \
                                    VIT tail, VT *acc) {                                              \
        for (int c = 0; c < chunks; c++) {                                                            \
            const int x = c * W;                                                                      \
            VT d[4];                                                                                  \
            for (int o = 0; o < R; o++) {                                                             \
                d[o] = LOAD(dy + o * pitch + x);                                                      \
                if (c == chunks - 1) d[o] = (VT)((VIT)d[o] & tail);                                   \
            }                                                                                         \
            for (int i = 0; i < R + 2; i++)                                                           \
                for (int j = 0; j < 3; j++) {                                                         \
                    const VT v = LOAD(src + i * pitch + x + j);                                       \
                    for (int o = 0; o < R; o++)                                                       \
                        if (i - o >= 0 && i - o < 3) acc[(i - o) * 3 + j] = d[o] * v + acc[(i - o) * 3 + j]; \
                }                                                                                     \
        }                                                                                             \
    }                                                                                                 \
    ALWAYS_INLINE void NAME(const float *dy, const float *src, ptrdiff_t pitch, int rows, int width, float *lanes) { \
        VT acc[9];                                                                                    \
        for (int t = 0; t < 9; t++) acc[t] = (VT){0};                                                 \
        const int chunks = (width + W - 1) / W;                                                       \
        VIT tail;                                                                                     \
        for (int e = 0; e < W; e++) tail[e] = (chunks - 1) * W + e < width ? -1 : 0;                  \
        int r = 0;                                                                                    \
        for (; r + 4 <= rows; r += 4) NAME##_block(dy + r * pitch, src + r * pitch, pitch, 4, chunks, tail, acc); \
        switch (rows - r) {                                                                           \
        case 3: NAME##_block(dy + r * pitch, src + r * pitch, pitch, 3, chunks, tail, acc); break;    \
        case 2: NAME##_block(dy + r * pitch, src + r * pitch, pitch, 2, chunks, tail, acc); break;    \
        case 1: NAME##_block(dy + r * pitch, src + r * pitch, pitch, 1, chunks, tail, acc); break;    \
        default: break;                                                                               \
        }                                                                                             \
        for (int t = 0; t < 9; t++)                                                                   \
            for (int e = 0; e < W; e++) lanes[16 * t + e] += acc[t][e];                               \
    }

DEFINE_WEIGHT_GRADIENT3(weight_gradient3_16, vf16, vi16, load16, 16)
DEFINE_WEIGHT_GRADIENT3(weight_gradient3_8, vf8, vi8, load8, 8)
DEFINE_WEIGHT_GRADIENT3(weight_gradient3_4, vf4, vi4, load4, 4)

/// `weight_gradient3_16/8/4` at the target's vector width.
ALWAYS_INLINE void weight_gradient3(const float *dy, const float *src, ptrdiff_t pitch, int rows, int width, float *lanes,
                                    const int vector_width) {
    if (vector_width == 16 && width >= 16) weight_gradient3_16(dy, src, pitch, rows, width, lanes);
    else if (vector_width >= 8) weight_gradient3_8(dy, src, pitch, rows, width, lanes);
    else weight_gradient3_4(dy, src, pitch, rows, width, lanes);
}

/// The narrowest rows `correlate3` and `weight_gradient3` run on (chunks of at most 8 then).
#define CORRELATE3_MIN_WIDTH 8

/// Stride-1 3 × 3 rows of at least `CORRELATE3_MIN_WIDTH` run `correlate3` and `weight_gradient3` (the
/// forward pass, the backward's `∂w` and its adjoint).
ALWAYS_INLINE int blocks_rows(const ArcFaceDepthwisePlan *P, int width) {
    return P->stride == 1 && P->kernel == 3 && P->padding <= 2 && width >= CORRELATE3_MIN_WIDTH;
}

// MARK: - Small "same" planes, read in place

// A stride-1 window with `2p = k − 1` keeps the plane's shape, so output `q = y·W + x` and its
// tap `t = (i, j)` input `q + d_t`, `d_t = (i − p)·W + (j − p)`, are one flat shift apart: the
// whole output plane is `k²` shifted vector loads of the input plane itself, each ANDed with the
// tap's mask (all ones where `(y + i − p, x + j − p)` lies in the plane and `q < H·W`, zero
// elsewhere: the zero padding, a row's wrap into its neighbour, the chunk's tail). No copy in, no
// copy out. The loads run up to `p·W + p` floats before the plane and `p·W + p + 15` after it, so
// planes that close to the tensor's ends take the padded path instead. The adjoint of the same
// window is the same window with the taps reversed (`d_{k²−1−t} = −d_t`, and the masks agree:
// tap t' of the reversed window is valid at `r` exactly when tap `t` reads `r` from a valid output
// `r − d_t`), so `∂x` is this correlation of `∂Y` with the reversed weights.

/// Planes up to this many pixels are read in place, unless their rows take `correlate3` (3 × 3 on
/// rows of 8 or more: 1.3–1.45× faster on 14 × 14, measured): MobileFaceNet's 7 × 7 planes.
#define MASKED_MAX_PLANE 256
#define MASKED_MAX_TAPS 9

typedef struct {
    /// `⌈H·W⌉₁₆`: the computed outputs of one plane.
    int length;
    ptrdiff_t shifts[MASKED_MAX_TAPS];
    /// Per tap `t`, `masks[t·length + q]` (the plan's, filled in by `arcface_depthwise_fill_masks`).
    const int *masks;
} MaskedLayout;

ALWAYS_INLINE int fits_in_place(const ArcFaceDepthwisePlan *P) {
    return P->stride == 1 && P->kernel % 2 == 1 && 2 * P->padding == P->kernel - 1 &&
           P->kernel * P->kernel <= MASKED_MAX_TAPS && P->height * P->width <= MASKED_MAX_PLANE &&
           !blocks_rows(P, P->width);
}

ALWAYS_INLINE int reads_in_place(const ArcFaceDepthwisePlan *P) { return P->masks != NULL && fits_in_place(P); }

/// Whether `plane`'s shifted loads stay inside the tensor of `total_planes` planes.
ALWAYS_INLINE int inside(const ArcFaceDepthwisePlan *P, const MaskedLayout *M, ptrdiff_t plane, ptrdiff_t total_planes) {
    const ptrdiff_t n = (ptrdiff_t)P->height * P->width, reach = (ptrdiff_t)P->padding * P->width + P->padding;
    return plane * n >= reach && plane * n + M->length - 1 + reach < total_planes * n;
}

ALWAYS_INLINE void masked_layout(const ArcFaceDepthwisePlan *P, MaskedLayout *M) {
    const int k = P->kernel, p = P->padding, W = P->width;
    M->length = (P->height * W + 15) / 16 * 16;
    for (int i = 0; i < k; i++)
        for (int j = 0; j < k; j++) M->shifts[i * k + j] = (ptrdiff_t)(i - p) * W + (j - p);
    M->masks = P->masks;
}

/// `out[q] = shift + Σ_t w_t · (src[q + d_t] & mask_t[q])` for `q < H·W` (taps summed in order).
ALWAYS_INLINE void masked_correlate_body(const MaskedLayout *M, const float *src, const float *weights, int taps, int n,
                                    float shift, float *out) {
    float w[MASKED_MAX_TAPS];
    ptrdiff_t d[MASKED_MAX_TAPS];
    for (int t = 0; t < taps; t++) { w[t] = weights[t]; d[t] = M->shifts[t]; }
    const int length = M->length;
    for (int q = 0; q < length; q += 16) {
        vf16 a = {0};
        for (int t = 0; t < taps; t++) {
            const vi16 v = (vi16)load16(src + q + d[t]) & loadi16(M->masks + t * length + q);
            a = w[t] * (vf16)v + a;
        }
        a = a + shift;
        if (q + 16 <= n) store16(out + q, a);
        else for (int e = 0; q + e < n; e++) out[q + e] = a[e];
    }
}

/// `masked_correlate_body` with 9 taps (3 × 3) a constant.
ALWAYS_INLINE void masked_correlate(const MaskedLayout *M, const float *src, const float *weights, int taps, int n,
                                    float shift, float *out) {
    if (taps == 9) masked_correlate_body(M, src, weights, 9, n, shift, out);
    else masked_correlate_body(M, src, weights, taps, n, shift, out);
}

// `lanes[16·t ..< 16·t + W]` gain `Σ_q (dy[q] & valid(q)) · (x[q + d_t] & mask_t[q])` (the centre
// tap's mask is `q < H·W`: ∂Y past the plane is another plane's, never multiplied in).
#define DEFINE_MASKED_WEIGHT_GRADIENT(NAME, VT, VIT, LOAD, LOADI, W)                                   \
    ALWAYS_INLINE void NAME##_body(const MaskedLayout *M, const float *dy, const float *x, int taps, float *lanes) { \
        VT acc[MASKED_MAX_TAPS];                                                                        \
        ptrdiff_t d[MASKED_MAX_TAPS];                                                                   \
        for (int t = 0; t < taps; t++) { acc[t] = (VT){0}; d[t] = M->shifts[t]; }                       \
        const int length = M->length;                                                                   \
        const int *valid = M->masks + (taps / 2) * length;                                              \
        for (int q = 0; q < length; q += W) {                                                           \
            const VT g = (VT)((VIT)LOAD(dy + q) & LOADI(valid + q));                                    \
            for (int t = 0; t < taps; t++)                                                              \
                acc[t] = g * (VT)((VIT)LOAD(x + q + d[t]) & LOADI(M->masks + t * length + q)) + acc[t]; \
        }                                                                                               \
        for (int t = 0; t < taps; t++)                                                                  \
            for (int e = 0; e < W; e++) lanes[16 * t + e] += acc[t][e];                                 \
    }                                                                                                   \
    ALWAYS_INLINE void NAME(const MaskedLayout *M, const float *dy, const float *x, int taps, float *lanes) { \
        if (taps == 9) NAME##_body(M, dy, x, 9, lanes);                                                 \
        else NAME##_body(M, dy, x, taps, lanes);                                                        \
    }

// Both at once: `masked_weight_gradient` and `∂x = masked_correlate(∂Y, reversed w)` in one pass,
// each tap's mask loaded once for both (the same sums in the same order as the two passes).
#define DEFINE_MASKED_BACKWARD(NAME, VT, VIT, LOAD, LOADI, STORE, W)                                   \
    ALWAYS_INLINE void NAME##_body(const MaskedLayout *M, const float *dy, const float *x, const float *weights, \
                                   int taps, int n, float *lanes, float *dx) {                         \
        VT acc[MASKED_MAX_TAPS];                                                                        \
        float w[MASKED_MAX_TAPS];                                                                       \
        ptrdiff_t d[MASKED_MAX_TAPS];                                                                   \
        for (int t = 0; t < taps; t++) { acc[t] = (VT){0}; d[t] = M->shifts[t]; w[t] = weights[taps - 1 - t]; } \
        const int length = M->length;                                                                   \
        const int *valid = M->masks + (taps / 2) * length;                                              \
        for (int q = 0; q < length; q += W) {                                                           \
            const VT g = (VT)((VIT)LOAD(dy + q) & LOADI(valid + q));                                    \
            VT a = {0};                                                                                 \
            for (int t = 0; t < taps; t++) {                                                            \
                const VIT m = LOADI(M->masks + t * length + q);                                         \
                acc[t] = g * (VT)((VIT)LOAD(x + q + d[t]) & m) + acc[t];                                \
                a = w[t] * (VT)((VIT)LOAD(dy + q + d[t]) & m) + a;                                      \
            }                                                                                           \
            if (q + W <= n) STORE(dx + q, a);                                                           \
            else for (int e = 0; q + e < n; e++) dx[q + e] = a[e];                                      \
        }                                                                                               \
        for (int t = 0; t < taps; t++)                                                                  \
            for (int e = 0; e < W; e++) lanes[16 * t + e] += acc[t][e];                                 \
    }                                                                                                   \
    ALWAYS_INLINE void NAME(const MaskedLayout *M, const float *dy, const float *x, const float *weights, int taps, \
                            int n, float *lanes, float *dx) {                                           \
        if (taps == 9) NAME##_body(M, dy, x, weights, 9, n, lanes, dx);                                 \
        else NAME##_body(M, dy, x, weights, taps, n, lanes, dx);                                        \
    }

DEFINE_MASKED_BACKWARD(masked_backward16, vf16, vi16, load16, loadi16, store16, 16)
DEFINE_MASKED_BACKWARD(masked_backward8, vf8, vi8, load8, loadi8, store8, 8)
DEFINE_MASKED_BACKWARD(masked_backward4, vf4, vi4, load4, loadi4, store4, 4)

DEFINE_MASKED_WEIGHT_GRADIENT(masked_weight_gradient16, vf16, vi16, load16, loadi16, 16)
DEFINE_MASKED_WEIGHT_GRADIENT(masked_weight_gradient8, vf8, vi8, load8, loadi8, 8)
DEFINE_MASKED_WEIGHT_GRADIENT(masked_weight_gradient4, vf4, vi4, load4, loadi4, 4)

// MARK: - Whole passes over runs of planes

ALWAYS_INLINE int rows_direct(const ArcFaceDepthwisePlan *P) {
    return P->output_width >= ARCFACE_DEPTHWISE_MIN_DIRECT_WIDTH || blocks_rows(P, P->output_width);
}
ALWAYS_INLINE int scatters_adjoint(const ArcFaceDepthwisePlan *P) { return 2 * P->output_length < P->phase_length; }
ALWAYS_INLINE int direct_adjoint(const ArcFaceDepthwisePlan *P) {
    return P->stride == 1 && !scatters_adjoint(P) &&
           (P->width >= ARCFACE_DEPTHWISE_MIN_DIRECT_WIDTH || blocks_rows(P, P->width));
}

/// One plane of the forward pass through the polyphase copy in `phases` (`flat`: the narrow rows' output).
ALWAYS_INLINE void forward_padded(const ArcFaceDepthwisePlan *P, const float *plane, const float *wc, float shift,
                                  float *out, float *phases, float *flat, const int vector_width) {
    const int taps = P->kernel * P->kernel, ho = P->output_height, wo = P->output_width, wh = P->phase_width;
    scatter_plane(P, plane, phases);
    if (blocks_rows(P, wo)) {
        correlate3(phases, wh, wc, ho, wo, shift, out, wo, vector_width);
    } else if (rows_direct(P)) {
        correlate(phases, P->tap_offsets, wc, NULL, taps, 0, wh, ho, wo, shift, out);
    } else {
        correlate(phases, P->tap_offsets, wc, NULL, taps, 0, 0, 1, (int)P->output_length, 0, flat);
        for (int oy = 0; oy < ho; oy++) copy_row(flat + (ptrdiff_t)oy * wh, out + (ptrdiff_t)oy * wo, wo, shift);
    }
}

ALWAYS_INLINE void forward_body(const ArcFaceDepthwisePlan *P, const float *x, const float *weights, const float *bias,
                                int channels, ptrdiff_t total_planes, ptrdiff_t first, ptrdiff_t count, float *y,
                                float *scratch, const int vector_width) {
    const int taps = P->kernel * P->kernel;
    const ptrdiff_t plane_size = (ptrdiff_t)P->height * P->width, spatial = (ptrdiff_t)P->output_height * P->output_width;
    float *phases = scratch, *flat = scratch + P->phase_block;
    const int in_place = reads_in_place(P);
    MaskedLayout M;
    if (in_place) masked_layout(P, &M);
    for (ptrdiff_t plane = first; plane < first + count; plane++) {
        const int c = (int)(plane % channels);
        const float shift = bias ? bias[c] : 0.0f, *wc = weights + (ptrdiff_t)c * taps;
        if (in_place && inside(P, &M, plane, total_planes))
            masked_correlate(&M, x + plane * plane_size, wc, taps, (int)plane_size, shift, y + plane * spatial);
        else
            forward_padded(P, x + plane * plane_size, wc, shift, y + plane * spatial, phases, flat, vector_width);
    }
}

ALWAYS_INLINE void backward_body(const ArcFaceDepthwisePlan *P, const float *dy, const float *x, const float *weights,
                                 int channels, ptrdiff_t total_planes, ptrdiff_t first_image, ptrdiff_t image_count,
                                 int first_channel, int channel_count, float *dx, float *scratch, float *partial,
                                 const int vector_width) {
    const int taps = P->kernel * P->kernel, ho = P->output_height, wo = P->output_width, wh = P->phase_width;
    const int s = P->stride;
    const ptrdiff_t plane_size = (ptrdiff_t)P->height * P->width, spatial = (ptrdiff_t)ho * wo;
    const int direct = direct_adjoint(P), scatters = scatters_adjoint(P);
    float *phases = scratch;
    float *gradient_vector = phases + P->phase_block;   // max_shift zeros, then ∂Y flat, then zeros
    float *flat = gradient_vector + P->max_shift;
    float *phase_gradient = gradient_vector + P->gradient_length;
    float *lanes = phase_gradient + (dx && !direct ? P->phase_block : 0);   // [channel_count, taps, 16]
    memset(lanes, 0, sizeof(float) * (size_t)channel_count * (size_t)taps * ARCFACE_DEPTHWISE_LANES);
    ptrdiff_t negated[MAX_TAPS];
    for (int t = 0; t < taps; t++) negated[t] = -P->tap_offsets[t];
    const ptrdiff_t interior_start = (ptrdiff_t)P->padding * wh + P->padding;
    const int in_place = reads_in_place(P);
    MaskedLayout M;
    if (in_place) masked_layout(P, &M);
    for (ptrdiff_t n = first_image; n < first_image + image_count; n++) {
        for (int c = first_channel; c < first_channel + channel_count; c++) {
            const ptrdiff_t plane = n * channels + c;
            const float *wc = weights + (ptrdiff_t)c * taps, *source = dy + plane * spatial;
            float *lc = lanes + (ptrdiff_t)(c - first_channel) * taps * ARCFACE_DEPTHWISE_LANES;
            if (in_place && inside(P, &M, plane, total_planes)) {
                const float *xp = x + plane * plane_size;
                if (dx) {
                    float *target = dx + plane * plane_size;
                    if (vector_width == 16) masked_backward16(&M, source, xp, wc, taps, (int)plane_size, lc, target);
                    else if (vector_width == 8) masked_backward8(&M, source, xp, wc, taps, (int)plane_size, lc, target);
                    else masked_backward4(&M, source, xp, wc, taps, (int)plane_size, lc, target);
                    continue;
                }
                if (vector_width == 16) masked_weight_gradient16(&M, source, xp, taps, lc);
                else if (vector_width == 8) masked_weight_gradient8(&M, source, xp, taps, lc);
                else masked_weight_gradient4(&M, source, xp, taps, lc);
                continue;
            }
            for (int oy = 0; oy < ho; oy++) copy_row(source + (ptrdiff_t)oy * wo, flat + (ptrdiff_t)oy * wh, wo, 0);
            scatter_plane(P, x + plane * plane_size, phases);
            if (blocks_rows(P, wo)) weight_gradient3(flat, phases, wh, ho, wo, lc, vector_width);
            else if (vector_width == 16) weight_gradient16(flat, phases, P->tap_offsets, taps, P->output_length, lc);
            else if (vector_width == 8) weight_gradient8(flat, phases, P->tap_offsets, taps, P->output_length, lc);
            else weight_gradient4(flat, phases, P->tap_offsets, taps, P->output_length, lc);
            if (!dx) continue;
            float *target = dx + plane * plane_size;
            if (direct && blocks_rows(P, P->width)) {
                // Stride 1, 3 × 3: the adjoint is the window reversed over ∂Y, whose rows and columns
                // start 2 − p before the plane's (the zeros before ∂Y and its zero columns).
                float reversed[9];
                for (int t = 0; t < 9; t++) reversed[t] = wc[8 - t];
                const ptrdiff_t back = (ptrdiff_t)(2 - P->padding) * (wh + 1);
                correlate3(flat - back, wh, reversed, P->height, P->width, 0, target, P->width, vector_width);
                continue;
            }
            if (direct) {
                // Stride 1: the adjoint's taps are the forward's, negated, read from the zero-padded ∂Y.
                correlate(flat, negated, wc, NULL, taps, interior_start, wh, P->height, P->width, 0, target);
                continue;
            }
            if (scatters) {
                memset(phase_gradient, 0, sizeof(float) * (size_t)P->phase_block);
                scatter_adjoint_body(flat, P->tap_offsets, wc, taps, P->output_length, phase_gradient);
            } else {
                for (int a = 0; a < s * s; a++) {
                    float *out = phase_gradient + a * P->phase_stride;
                    const int begin = P->phase_tap_begin[a], end = P->phase_tap_begin[a + 1];
                    if (begin == end) memset(out, 0, sizeof(float) * (size_t)P->phase_length);
                    else correlate(flat, P->adjoint_offsets + begin, wc, P->adjoint_taps + begin, end - begin, 0, 0, 1,
                                   (int)P->phase_length, 0, out);
                }
            }
            gather_plane(P, phase_gradient, target);
        }
    }
    for (int c = 0; c < channel_count; c++) {
        for (int t = 0; t < taps; t++) {
            const float *l = lanes + ((ptrdiff_t)c * taps + t) * ARCFACE_DEPTHWISE_LANES;
            float sum = 0;
            for (int k = 0; k < ARCFACE_DEPTHWISE_LANES; k++) sum += l[k];
            partial[(ptrdiff_t)c * taps + t] = sum;
        }
    }
}

// MARK: - One copy per instruction set

#define DEFINE_VARIANT(SUFFIX, TARGET, WIDTH)                                                          \
    TARGET static void forward_##SUFFIX(const ArcFaceDepthwisePlan *P, const float *x, const float *weights,  \
                                        const float *bias, int channels, ptrdiff_t total_planes,              \
                                        ptrdiff_t first, ptrdiff_t count, float *y, float *scratch) {         \
        forward_body(P, x, weights, bias, channels, total_planes, first, count, y, scratch, WIDTH);         \
    }                                                                                                      \
    TARGET static void backward_##SUFFIX(const ArcFaceDepthwisePlan *P, const float *dy, const float *x,     \
                                         const float *weights, int channels, ptrdiff_t total_planes,        \
                                         ptrdiff_t first_image, ptrdiff_t image_count, int first_channel,   \
                                         int channel_count, float *dx, float *scratch, float *partial) {    \
        backward_body(P, dy, x, weights, channels, total_planes, first_image, image_count, first_channel,  \
                      channel_count, dx, scratch, partial, WIDTH);                                          \
    }

DEFINE_VARIANT(baseline, , 4)
#if defined(__x86_64__)
DEFINE_VARIANT(avx2, __attribute__((target("avx2,fma"))), 8)
DEFINE_VARIANT(avx512, __attribute__((target("avx512f,avx512vl,avx2,fma"))), 16)
#endif

// MARK: - Dispatch

static ArcFaceDepthwiseISA detect_isa(void) {
#if defined(__x86_64__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl")) return ArcFaceDepthwiseISAAVX512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return ArcFaceDepthwiseISAAVX2;
#endif
    return ArcFaceDepthwiseISABaseline;
}

/// The CPU's widest instruction set and the default; −1 until first read.
static _Atomic int best_isa = -1, default_isa = -1;

ArcFaceDepthwiseISA arcface_depthwise_best_isa(void) {
    int isa = atomic_load_explicit(&best_isa, memory_order_relaxed);
    if (isa < 0) {
        isa = (int)detect_isa();
        atomic_store_explicit(&best_isa, isa, memory_order_relaxed);
    }
    return (ArcFaceDepthwiseISA)isa;
}

/// `isa` lowered to what the CPU runs.
static ArcFaceDepthwiseISA usable(ArcFaceDepthwiseISA isa) {
    ArcFaceDepthwiseISA best = arcface_depthwise_best_isa();
    return isa < ArcFaceDepthwiseISABaseline ? ArcFaceDepthwiseISABaseline : (isa > best ? best : isa);
}

ArcFaceDepthwiseISA arcface_depthwise_default_isa(void) {
    int isa = atomic_load_explicit(&default_isa, memory_order_relaxed);
    return isa < 0 ? arcface_depthwise_best_isa() : (ArcFaceDepthwiseISA)isa;
}

ArcFaceDepthwiseISA arcface_depthwise_set_default_isa(ArcFaceDepthwiseISA isa) {
    ArcFaceDepthwiseISA used = usable(isa);
    atomic_store_explicit(&default_isa, (int)used, memory_order_relaxed);
    return used;
}

#if defined(__x86_64__)
#define DISPATCH(NAME, ...)                                                                            \
    switch (usable(isa)) {                                                                             \
    case ArcFaceDepthwiseISAAVX512: NAME##_avx512(__VA_ARGS__); return;                                \
    case ArcFaceDepthwiseISAAVX2: NAME##_avx2(__VA_ARGS__); return;                                    \
    default: NAME##_baseline(__VA_ARGS__); return;                                                     \
    }
#else
#define DISPATCH(NAME, ...) (void)isa; NAME##_baseline(__VA_ARGS__);
#endif

ptrdiff_t arcface_depthwise_mask_count(const ArcFaceDepthwisePlan *plan) {
    return fits_in_place(plan) ? (ptrdiff_t)plan->kernel * plan->kernel * ((plan->height * plan->width + 15) / 16 * 16) : 0;
}

void arcface_depthwise_fill_masks(const ArcFaceDepthwisePlan *plan, int *masks) {
    const int k = plan->kernel, p = plan->padding, H = plan->height, W = plan->width, n = H * W;
    const int length = (n + 15) / 16 * 16;
    for (int i = 0; i < k; i++) {
        for (int j = 0; j < k; j++) {
            int *mask = masks + (i * k + j) * length;
            for (int q = 0; q < length; q++) {
                const int y = q / W + i - p, x = q % W + j - p;
                mask[q] = (q < n && y >= 0 && y < H && x >= 0 && x < W) ? -1 : 0;
            }
        }
    }
}

ptrdiff_t arcface_depthwise_forward_scratch(const ArcFaceDepthwisePlan *plan) {
    return plan->phase_block + (rows_direct(plan) ? 0 : plan->output_length);
}

ptrdiff_t arcface_depthwise_backward_scratch(const ArcFaceDepthwisePlan *plan, int computes_input_gradient, int channel_count) {
    return plan->phase_block + plan->gradient_length + (computes_input_gradient && !direct_adjoint(plan) ? plan->phase_block : 0)
         + (ptrdiff_t)channel_count * plan->kernel * plan->kernel * ARCFACE_DEPTHWISE_LANES;
}

void arcface_depthwise_forward(ArcFaceDepthwiseISA isa, const ArcFaceDepthwisePlan *plan, const float *x, const float *weights,
                               const float *bias, int channels, ptrdiff_t total_planes, ptrdiff_t first_plane,
                               ptrdiff_t plane_count, float *y, float *scratch) {
    DISPATCH(forward, plan, x, weights, bias, channels, total_planes, first_plane, plane_count, y, scratch)
}

void arcface_depthwise_backward(ArcFaceDepthwiseISA isa, const ArcFaceDepthwisePlan *plan, const float *dy, const float *x,
                                const float *weights, int channels, ptrdiff_t total_planes, ptrdiff_t first_image,
                                ptrdiff_t image_count, int first_channel, int channel_count, float *dx, float *scratch,
                                float *partial) {
    DISPATCH(backward, plan, dy, x, weights, channels, total_planes, first_image, image_count, first_channel, channel_count,
             dx, scratch, partial)
}
