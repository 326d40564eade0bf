// The element-wise row passes of the FISTA iteration (research/pfc.md §1.2; issue 14), one fused
// pass per row and step instead of several Swift loops (which Swift compiles for baseline SSE2):
// the clamp with its active count and row maximum, the scale-and-momentum step with the active-set
// compaction of S_{t+1}, and the backward pass's adjoint step with the compaction of Ū_t.
//
// Both the dense and the active-set engine run these, and every value must be bit for bit what the
// Swift loops computed before (the floor entries of Z_{t+1} are compared for equality with the
// constant c_{t+1}), so no multiply-add is contracted into an FMA here: each operation is one
// IEEE single-precision mul, add, sub or max, in the same order as the scalar code.
#pragma STDC FP_CONTRACT OFF
#include "CKernels.h"
#include <stddef.h>

#if defined(__x86_64__)
#include <immintrin.h>
#define PFC_HAVE_AVX2_PATH 1
#endif

// MARK: portable

// Each pass over j0 ..< k, carrying its running count (and maximum) in and out: the whole row for the
// portable level, the remainder after the 8-wide loop for AVX2.

static long clamp_range(long j0, long k, const float *u, float floor, float *hc, float *row_max, long alive) {
    float mx = *row_max;
    for (long j = j0; j < k; j++) {
        const float uv = u[j];
        alive += uv >= floor ? 1 : 0;
        const float v = floor >= uv ? floor : uv;  // Swift.max(uv, floor): a NaN stays NaN
        hc[j] = v;
        mx = v >= mx ? v : mx;  // Swift.max(mx, v)
    }
    *row_max = mx;
    return alive;
}

static long momentum_range(long j0, long k, float *hc, const float *hp, float s, float beta, float cst, float neg_eta,
                           float *z_next, int32_t *idx, float *val, long cnt) {
    for (long j = j0; j < k; j++) {
        const float h = hc[j] * s;
        hc[j] = h;
        const float d = h - hp[j];
        const float bd = beta * d;
        const float zv = h + bd;
        z_next[j] = zv;
        if (idx) {
            idx[cnt] = (int32_t)j;
            val[cnt] = neg_eta * (zv - cst);
            cnt += zv != cst ? 1 : 0;
        }
    }
    return cnt;
}

static long adjoint_range(long j0, long k, const float *zb1, float *zb2, const float *g, float c1, float c2, float *ub,
                          float floor, float s, float *bb, float neg_eta, int32_t *idx, float *val, long cnt) {
    for (long j = j0; j < k; j++) {
        const float a = c1 * zb1[j];
        const float b = c2 * zb2[j];
        float hbar = a + b;
        if (g) hbar = hbar + g[j];
        const int alive = ub[j] >= floor;
        const float ubar = alive ? hbar * s : 0.0f;
        ub[j] = ubar;
        bb[j] = bb[j] + ubar;
        zb2[j] = ubar;
        if (idx) {
            idx[cnt] = (int32_t)j;
            val[cnt] = neg_eta * ubar;
            cnt += alive;
        }
    }
    return cnt;
}

static void affine_range(long j0, long k, const float *z, const float *e, float cr, const float *colsum, float *u) {
    for (long j = j0; j < k; j++) {
        const float a = z[j] + e[j];
        const float b = cr * colsum[j];
        u[j] = a + b;
    }
}

// MARK: AVX2

#ifdef PFC_HAVE_AVX2_PATH
#define AVX2 __attribute__((target("avx2,fma")))

// compress[m]: the lanes set in the 8-bit mask m, packed to the front (a permutation for vpermd).
static int32_t compress[256][8];

__attribute__((constructor)) static void build_compress(void) {
    for (int m = 0; m < 256; m++) {
        int n = 0;
        for (int l = 0; l < 8; l++) if (m & (1 << l)) compress[m][n++] = l;
        for (; n < 8; n++) compress[m][n] = 0;
    }
}

// Appends the lanes of (j, v) selected by mask to idx/val at cnt (writes 8 lanes; the caller
// guarantees cnt + 8 ≤ the row's capacity, true whenever cnt ≤ j and j + 8 ≤ k).
AVX2 static inline long append(int mask, __m256i j, __m256 v, int32_t *idx, float *val, long cnt) {
    const __m256i perm = _mm256_loadu_si256((const __m256i *)compress[mask]);
    _mm256_storeu_si256((__m256i *)(idx + cnt), _mm256_permutevar8x32_epi32(j, perm));
    _mm256_storeu_ps(val + cnt, _mm256_permutevar8x32_ps(v, perm));
    return cnt + __builtin_popcount((unsigned)mask);
}

AVX2 static long clamp_avx2(long k, const float *u, float floor, float *hc, float *row_max) {
    const __m256 f = _mm256_set1_ps(floor);
    __m256 mx = _mm256_set1_ps(-__builtin_inff());
    long alive = 0, j = 0;
    for (; j + 8 <= k; j += 8) {
        const __m256 uv = _mm256_loadu_ps(u + j);
        alive += __builtin_popcount((unsigned)_mm256_movemask_ps(_mm256_cmp_ps(uv, f, _CMP_GE_OQ)));
        // max(u, floor) as Swift.max(u, floor) = `floor >= u ? floor : u`: vmaxps(a, b) is
        // `a > b ? a : b`, so with the floor first a NaN entry stays NaN (the loss then reports the
        // divergence; clamping it to the floor would hide an overflow), and equal values are equal.
        const __m256 v = _mm256_max_ps(f, uv);
        _mm256_storeu_ps(hc + j, v);
        // The row maximum as Swift.max(mx, v) = `v >= mx ? v : mx`: a NaN entry does not enter it.
        mx = _mm256_max_ps(v, mx);
    }
    float lanes[8], m = -__builtin_inff();
    _mm256_storeu_ps(lanes, mx);
    for (int l = 0; l < 8; l++) m = m > lanes[l] ? m : lanes[l];
    *row_max = m;
    return clamp_range(j, k, u, floor, hc, row_max, alive);
}

AVX2 static long momentum_avx2(long k, float *hc, const float *hp, float s, float beta, float cst, float neg_eta,
                               float *z_next, int32_t *idx, float *val) {
    const __m256 vs = _mm256_set1_ps(s), vb = _mm256_set1_ps(beta), vc = _mm256_set1_ps(cst), ve = _mm256_set1_ps(neg_eta);
    const __m256i step = _mm256_set1_epi32(8);
    __m256i jv = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    long cnt = 0, j = 0;
    for (; j + 8 <= k; j += 8, jv = _mm256_add_epi32(jv, step)) {
        const __m256 h = _mm256_mul_ps(_mm256_loadu_ps(hc + j), vs);
        _mm256_storeu_ps(hc + j, h);
        const __m256 zv = _mm256_add_ps(h, _mm256_mul_ps(vb, _mm256_sub_ps(h, _mm256_loadu_ps(hp + j))));
        _mm256_storeu_ps(z_next + j, zv);
        if (idx) {
            const int mask = _mm256_movemask_ps(_mm256_cmp_ps(zv, vc, _CMP_NEQ_UQ));
            if (mask) cnt = append(mask, jv, _mm256_mul_ps(ve, _mm256_sub_ps(zv, vc)), idx, val, cnt);
        }
    }
    return momentum_range(j, k, hc, hp, s, beta, cst, neg_eta, z_next, idx, val, cnt);
}

AVX2 static long adjoint_avx2(long k, const float *zb1, float *zb2, const float *g, float c1, float c2, float *ub,
                              float floor, float s, float *bb, float neg_eta, int32_t *idx, float *val) {
    const __m256 v1 = _mm256_set1_ps(c1), v2 = _mm256_set1_ps(c2), vf = _mm256_set1_ps(floor), vs = _mm256_set1_ps(s);
    const __m256 ve = _mm256_set1_ps(neg_eta);
    const __m256i step = _mm256_set1_epi32(8);
    __m256i jv = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    long cnt = 0, j = 0;
    for (; j + 8 <= k; j += 8, jv = _mm256_add_epi32(jv, step)) {
        __m256 hbar = _mm256_add_ps(_mm256_mul_ps(v1, _mm256_loadu_ps(zb1 + j)), _mm256_mul_ps(v2, _mm256_loadu_ps(zb2 + j)));
        if (g) hbar = _mm256_add_ps(hbar, _mm256_loadu_ps(g + j));
        const __m256 alive = _mm256_cmp_ps(_mm256_loadu_ps(ub + j), vf, _CMP_GE_OQ);
        const __m256 ubar = _mm256_and_ps(alive, _mm256_mul_ps(hbar, vs));
        _mm256_storeu_ps(ub + j, ubar);
        _mm256_storeu_ps(bb + j, _mm256_add_ps(_mm256_loadu_ps(bb + j), ubar));
        _mm256_storeu_ps(zb2 + j, ubar);
        if (idx) {
            const int mask = _mm256_movemask_ps(alive);
            if (mask) cnt = append(mask, jv, _mm256_mul_ps(ve, ubar), idx, val, cnt);
        }
    }
    return adjoint_range(j, k, zb1, zb2, g, c1, c2, ub, floor, s, bb, neg_eta, idx, val, cnt);
}

AVX2 static void affine_avx2(long k, const float *z, const float *e, float cr, const float *colsum, float *u) {
    const __m256 vc = _mm256_set1_ps(cr);
    long j = 0;
    for (; j + 8 <= k; j += 8)
        _mm256_storeu_ps(u + j, _mm256_add_ps(_mm256_add_ps(_mm256_loadu_ps(z + j), _mm256_loadu_ps(e + j)),
                                              _mm256_mul_ps(vc, _mm256_loadu_ps(colsum + j))));
    affine_range(j, k, z, e, cr, colsum, u);
}
#endif

// MARK: dispatch

long pfc_fista_clamp_row(long k, const float *u, float floor, float *hc, float *row_max) {
#ifdef PFC_HAVE_AVX2_PATH
    if (pfc_kernels_vector_level() >= 1) return clamp_avx2(k, u, floor, hc, row_max);
#endif
    *row_max = -__builtin_inff();
    return clamp_range(0, k, u, floor, hc, row_max, 0);
}

long pfc_fista_momentum_row(long k, float *hc, const float *hp, float s, float beta, float cst, float neg_eta,
                            float *z_next, int32_t *indices, float *values) {
#ifdef PFC_HAVE_AVX2_PATH
    if (pfc_kernels_vector_level() >= 1) return momentum_avx2(k, hc, hp, s, beta, cst, neg_eta, z_next, indices, values);
#endif
    return momentum_range(0, k, hc, hp, s, beta, cst, neg_eta, z_next, indices, values, 0);
}

long pfc_fista_adjoint_row(long k, const float *zb1, float *zb2, const float *g, float c1, float c2, float *ub,
                           float floor, float s, float *bb, float neg_eta, int32_t *indices, float *values) {
#ifdef PFC_HAVE_AVX2_PATH
    if (pfc_kernels_vector_level() >= 1) return adjoint_avx2(k, zb1, zb2, g, c1, c2, ub, floor, s, bb, neg_eta, indices, values);
#endif
    return adjoint_range(0, k, zb1, zb2, g, c1, c2, ub, floor, s, bb, neg_eta, indices, values, 0);
}

void pfc_fista_affine_row(long k, const float *z, const float *e, float cr, const float *colsum, float *u) {
#ifdef PFC_HAVE_AVX2_PATH
    if (pfc_kernels_vector_level() >= 1) { affine_avx2(k, z, e, cr, colsum, u); return; }
#endif
    affine_range(0, k, z, e, cr, colsum, u);
}
