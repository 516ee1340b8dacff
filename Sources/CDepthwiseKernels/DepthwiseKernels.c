// The depthwise convolution's inner loops, one body per function compiled for three instruction
// sets (see include/DepthwiseKernels.h). The bodies use clang's vector extensions (`vf16` is 16
// floats: one AVX-512 register, two AVX2 or four SSE registers), loaded and stored through
// `memcpy` (unaligned, no aliasing assumption); `a * b + c` on them becomes one FMA where the
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

#define ALWAYS_INLINE static inline __attribute__((always_inline))

ALWAYS_INLINE vf16 load16(const float *p) { vf16 v; memcpy(&v, p, sizeof v); return v; }
ALWAYS_INLINE vf8 load8(const float *p) { vf8 v; memcpy(&v, p, sizeof v); return v; }
ALWAYS_INLINE vf4 load4(const float *p) { vf4 v; memcpy(&v, p, sizeof v); return v; }
ALWAYS_INLINE void store16(float *p, vf16 v) { memcpy(p, &v, sizeof v); }
ALWAYS_INLINE void store8(float *p, vf8 v) { memcpy(p, &v, sizeof v); }
ALWAYS_INLINE void store4(float *p, vf4 v) { memcpy(p, &v, sizeof v); }

#define MAX_TAPS ARCFACE_DEPTHWISE_MAX_TAPS

// MARK: - Correlation over rows

ALWAYS_INLINE void correlate_rows_body(const float *src, const ptrdiff_t *offsets, const float *weights,
                                       const int *tap_index, int taps, ptrdiff_t start, ptrdiff_t pitch,
                                       int rows, int width, float shift, float *out) {
    float w[MAX_TAPS];
    for (int i = 0; i < taps; i++) w[i] = weights[tap_index ? tap_index[i] : i];
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

// MARK: - One copy per instruction set

#define DEFINE_VARIANT(SUFFIX, TARGET, WEIGHT_GRADIENT)                                                 \
    TARGET static void correlate_rows_##SUFFIX(const float *src, const ptrdiff_t *offsets,             \
                                               const float *weights, const int *tap_index, int taps,  \
                                               ptrdiff_t start, ptrdiff_t pitch, int rows, int width, \
                                               float shift, float *out) {                             \
        correlate_rows_body(src, offsets, weights, tap_index, taps, start, pitch, rows, width, shift, out); \
    }                                                                                                  \
    TARGET static void weight_gradient_##SUFFIX(const float *dy, const float *src,                     \
                                                const ptrdiff_t *offsets, int taps, ptrdiff_t length, \
                                                float *lanes) {                                        \
        WEIGHT_GRADIENT(dy, src, offsets, taps, length, lanes);                                        \
    }                                                                                                  \
    TARGET static void scatter_adjoint_##SUFFIX(const float *dy, const ptrdiff_t *offsets,             \
                                                const float *weights, int taps, ptrdiff_t length,     \
                                                float *out) {                                          \
        scatter_adjoint_body(dy, offsets, weights, taps, length, out);                                 \
    }

DEFINE_VARIANT(baseline, , weight_gradient4)
#if defined(__x86_64__)
DEFINE_VARIANT(avx2, __attribute__((target("avx2,fma"))), weight_gradient8)
DEFINE_VARIANT(avx512, __attribute__((target("avx512f,avx512vl,avx2,fma"))), weight_gradient16)
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

void arcface_depthwise_correlate_rows(ArcFaceDepthwiseISA isa, const float *src, const ptrdiff_t *offsets, const float *weights,
                                      const int *tap_index, int taps, ptrdiff_t start, ptrdiff_t pitch,
                                      int rows, int width, float shift, float *out) {
    DISPATCH(correlate_rows, src, offsets, weights, tap_index, taps, start, pitch, rows, width, shift, out)
}

void arcface_depthwise_weight_gradient(ArcFaceDepthwiseISA isa, const float *dy, const float *src, const ptrdiff_t *offsets,
                                       int taps, ptrdiff_t length, float *lanes) {
    DISPATCH(weight_gradient, dy, src, offsets, taps, length, lanes)
}

void arcface_depthwise_scatter_adjoint(ArcFaceDepthwiseISA isa, const float *dy, const ptrdiff_t *offsets, const float *weights,
                                       int taps, ptrdiff_t length, float *out) {
    DISPATCH(scatter_adjoint, dy, offsets, weights, taps, length, out)
}
