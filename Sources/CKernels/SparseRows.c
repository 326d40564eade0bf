// Sparse-row kernels (see include/CKernels.h): a portable version and, on x86-64, AVX2 + FMA and
// AVX-512F versions, selected at run time by CPUID.
#include "CKernels.h"
#include <stddef.h>
#include <stdlib.h>

#if defined(__x86_64__)
#include <immintrin.h>
#define PFC_HAVE_AVX2_PATH 1
#endif

// MARK: portable

static void gather_row_portable(long count, const int32_t *idx, const float *val, const float *a, long lda,
                                long n, float *y) {
    long m = 0;
    for (; m + 4 <= count; m += 4) {
        const float *p0 = a + (long)idx[m] * lda, *p1 = a + (long)idx[m + 1] * lda;
        const float *p2 = a + (long)idx[m + 2] * lda, *p3 = a + (long)idx[m + 3] * lda;
        const float s0 = val[m], s1 = val[m + 1], s2 = val[m + 2], s3 = val[m + 3];
        for (long j = 0; j < n; j++) y[j] += s0 * p0[j] + s1 * p1[j] + s2 * p2[j] + s3 * p3[j];
    }
    for (; m < count; m++) {
        const float *p = a + (long)idx[m] * lda;
        const float s = val[m];
        for (long j = 0; j < n; j++) y[j] += s * p[j];
    }
}

static void gather_portable(long rows, long capacity, const int32_t *counts, const int32_t *indices,
                            const float *values, const float *a, long lda, long n, float *out, long ldo,
                            long width) {
    for (long c0 = 0; c0 < n; c0 += width) {
        const long w = (n - c0 < width) ? n - c0 : width;
        for (long r = 0; r < rows; r++) {
            const long cnt = counts[r];
            if (cnt > 0) gather_row_portable(cnt, indices + r * capacity, values + r * capacity, a + c0, lda, w, out + r * ldo + c0);
        }
    }
}

static void scatter_portable(long count, const int32_t *idx, const float *val, const float *x, long n, float *c,
                             long ldc) {
    for (long m = 0; m < count; m++) {
        float *p = c + (long)idx[m] * ldc;
        const float s = val[m];
        for (long j = 0; j < n; j++) p[j] += s * x[j];
    }
}

// Transposes the row lists into column lists: for column kk, rows[start[kk] ..< start[kk + 1]] and
// their values. `start` has k + 1 entries.
static void transpose_lists(long rows, long capacity, long k, const int32_t *counts, const int32_t *indices,
                            const float *values, int32_t *start, int32_t *rowOf, float *valueOf) {
    for (long kk = 0; kk <= k; kk++) start[kk] = 0;
    for (long r = 0; r < rows; r++) {
        const int32_t *ri = indices + r * capacity;
        for (long m = 0; m < counts[r]; m++) start[ri[m] + 1]++;
    }
    for (long kk = 0; kk < k; kk++) start[kk + 1] += start[kk];
    // Fill using start as a running cursor, then shift it back.
    for (long r = 0; r < rows; r++) {
        const int32_t *ri = indices + r * capacity;
        const float *rv = values + r * capacity;
        for (long m = 0; m < counts[r]; m++) {
            const int32_t pos = start[ri[m]]++;
            rowOf[pos] = (int32_t)r;
            valueOf[pos] = rv[m];
        }
    }
    for (long kk = k; kk > 0; kk--) start[kk] = start[kk - 1];
    start[0] = 0;
}

/// The column lists of a set of row lists (`transpose_lists`), in buffers of their own.
typedef struct { int32_t *start, *rowOf; float *valueOf; } column_lists;

static void column_lists_free(column_lists *cl) { free(cl->start); free(cl->rowOf); free(cl->valueOf); }

// 1 when made, 0 when no row lists anything (nothing allocated), -1 when out of memory.
static int column_lists_make(long rows, long capacity, long k, const int32_t *counts, const int32_t *indices,
                             const float *values, column_lists *cl) {
    long nnz = 0;
    for (long r = 0; r < rows; r++) nnz += counts[r];
    if (nnz == 0) return 0;
    cl->start = malloc(sizeof(int32_t) * (size_t)(k + 1));
    cl->rowOf = malloc(sizeof(int32_t) * (size_t)nnz);
    cl->valueOf = malloc(sizeof(float) * (size_t)nnz);
    if (!cl->start || !cl->rowOf || !cl->valueOf) { column_lists_free(cl); return -1; }
    transpose_lists(rows, capacity, k, counts, indices, values, cl->start, cl->rowOf, cl->valueOf);
    return 1;
}

// MARK: AVX2 + FMA

#ifdef PFC_HAVE_AVX2_PATH
#define AVX2 __attribute__((target("avx2,fma")))

// Mask for the last n % 8 lanes of a 256-bit load or store.
AVX2 static inline __m256i tail_mask(long rem) {
    const __m256i lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)rem), lanes);
}

// One block of 32 columns of y (four 8-wide vectors, `masked`: only the lanes of k0..k3) stays in
// registers while every listed row streams through it, in two chains so each FMA's latency is
// hidden (one load and one FMA per 8 products). Inlined, so the unmasked blocks compile to plain loads.
#define LOAD8(p, k) (masked ? _mm256_maskload_ps((p), (k)) : _mm256_loadu_ps(p))
AVX2 static inline __attribute__((always_inline)) void gather_block_avx2(
    long count, const int32_t *idx, const float *val, const float *a, long lda, float *y, int masked,
    __m256i k0, __m256i k1, __m256i k2, __m256i k3) {
    __m256 y0 = LOAD8(y, k0), y1 = LOAD8(y + 8, k1), y2 = LOAD8(y + 16, k2), y3 = LOAD8(y + 24, k3);
    __m256 z0 = _mm256_setzero_ps(), z1 = _mm256_setzero_ps(), z2 = _mm256_setzero_ps(), z3 = _mm256_setzero_ps();
    long m = 0;
    for (; m + 2 <= count; m += 2) {
        const float *p = a + (long)idx[m] * lda, *q = a + (long)idx[m + 1] * lda;
        const __m256 s = _mm256_set1_ps(val[m]), t = _mm256_set1_ps(val[m + 1]);
        y0 = _mm256_fmadd_ps(s, LOAD8(p, k0), y0);
        y1 = _mm256_fmadd_ps(s, LOAD8(p + 8, k1), y1);
        y2 = _mm256_fmadd_ps(s, LOAD8(p + 16, k2), y2);
        y3 = _mm256_fmadd_ps(s, LOAD8(p + 24, k3), y3);
        z0 = _mm256_fmadd_ps(t, LOAD8(q, k0), z0);
        z1 = _mm256_fmadd_ps(t, LOAD8(q + 8, k1), z1);
        z2 = _mm256_fmadd_ps(t, LOAD8(q + 16, k2), z2);
        z3 = _mm256_fmadd_ps(t, LOAD8(q + 24, k3), z3);
    }
    if (m < count) {
        const float *p = a + (long)idx[m] * lda;
        const __m256 s = _mm256_set1_ps(val[m]);
        y0 = _mm256_fmadd_ps(s, LOAD8(p, k0), y0);
        y1 = _mm256_fmadd_ps(s, LOAD8(p + 8, k1), y1);
        y2 = _mm256_fmadd_ps(s, LOAD8(p + 16, k2), y2);
        y3 = _mm256_fmadd_ps(s, LOAD8(p + 24, k3), y3);
    }
    y0 = _mm256_add_ps(y0, z0); y1 = _mm256_add_ps(y1, z1); y2 = _mm256_add_ps(y2, z2); y3 = _mm256_add_ps(y3, z3);
    if (masked) {
        _mm256_maskstore_ps(y, k0, y0); _mm256_maskstore_ps(y + 8, k1, y1);
        _mm256_maskstore_ps(y + 16, k2, y2); _mm256_maskstore_ps(y + 24, k3, y3);
    } else {
        _mm256_storeu_ps(y, y0); _mm256_storeu_ps(y + 8, y1); _mm256_storeu_ps(y + 16, y2); _mm256_storeu_ps(y + 24, y3);
    }
}
#undef LOAD8

// y[0..<n] += Σ_m val[m]·a[idx[m]·lda ..< +n]: blocks of 32 columns, the last < 32 as masked vectors.
AVX2 static void gather_row_avx2(long count, const int32_t *idx, const float *val, const float *a, long lda,
                                 long n, float *y) {
    const __m256i all = _mm256_set1_epi32(-1);
    long j = 0;
    for (; j + 32 <= n; j += 32) gather_block_avx2(count, idx, val, a + j, lda, y + j, 0, all, all, all, all);
    if (j < n) {
        const long rem = n - j;
        gather_block_avx2(count, idx, val, a + j, lda, y + j, 1, tail_mask(rem < 8 ? rem : 8), tail_mask(rem <= 8 ? 0 : rem < 16 ? rem - 8 : 8),
                          tail_mask(rem <= 16 ? 0 : rem < 24 ? rem - 16 : 8), tail_mask(rem <= 24 ? 0 : rem - 24));
    }
}

AVX2 static void gather_avx2(long rows, long capacity, const int32_t *counts, const int32_t *indices,
                             const float *values, const float *a, long lda, long n, float *out, long ldo,
                             long width) {
    for (long c0 = 0; c0 < n; c0 += width) {
        const long w = (n - c0 < width) ? n - c0 : width;
        for (long r = 0; r < rows; r++) {
            const long cnt = counts[r];
            if (cnt > 0) gather_row_avx2(cnt, indices + r * capacity, values + r * capacity, a + c0, lda, w, out + r * ldo + c0);
        }
    }
}

// c[idx[m]] += val[m]·x: a block of 32 entries of x stays in registers while the listed rows of C
// go by (one load, one FMA and one store per 8 products).
AVX2 static void scatter_avx2(long count, const int32_t *idx, const float *val, const float *x, long n, float *c,
                              long ldc) {
    long j = 0;
    for (; j + 32 <= n; j += 32) {
        const __m256 x0 = _mm256_loadu_ps(x + j), x1 = _mm256_loadu_ps(x + j + 8);
        const __m256 x2 = _mm256_loadu_ps(x + j + 16), x3 = _mm256_loadu_ps(x + j + 24);
        for (long m = 0; m < count; m++) {
            float *p = c + (long)idx[m] * ldc + j;
            const __m256 s = _mm256_set1_ps(val[m]);
            _mm256_storeu_ps(p, _mm256_fmadd_ps(s, x0, _mm256_loadu_ps(p)));
            _mm256_storeu_ps(p + 8, _mm256_fmadd_ps(s, x1, _mm256_loadu_ps(p + 8)));
            _mm256_storeu_ps(p + 16, _mm256_fmadd_ps(s, x2, _mm256_loadu_ps(p + 16)));
            _mm256_storeu_ps(p + 24, _mm256_fmadd_ps(s, x3, _mm256_loadu_ps(p + 24)));
        }
    }
    for (; j < n; j += 8) {
        const long rem = n - j;
        const __m256i mask = tail_mask(rem < 8 ? rem : 8);
        const __m256 x0 = _mm256_maskload_ps(x + j, mask);
        for (long m = 0; m < count; m++) {
            float *p = c + (long)idx[m] * ldc + j;
            _mm256_maskstore_ps(p, mask, _mm256_fmadd_ps(_mm256_set1_ps(val[m]), x0, _mm256_maskload_ps(p, mask)));
        }
    }
}

static int cpu_has_avx2_fma(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}

// MARK: AVX-512

#define AVX512 __attribute__((target("avx512f")))

// Mask for the first `rem` (< 16 or 16) lanes of a 512-bit load or store.
AVX512 static inline __mmask16 tail_mask16(long rem) { return rem >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << rem) - 1); }

// gather_block_avx2 at twice the width: 64 columns of y in four 16-wide registers, two chains. Masked
// loads cost what plain ones do here, so every block takes masks (all lanes but in the last block).
// On CPUs that split 512-bit operations in two (Zen 4) this still halves the instructions per product.
AVX512 static void gather_row_avx512(long count, const int32_t *idx, const float *val, const float *a, long lda,
                                     long n, float *y) {
    for (long j = 0; j < n; j += 64) {
        const long rem = n - j;
        const __mmask16 k0 = tail_mask16(rem), k1 = rem <= 16 ? 0 : tail_mask16(rem - 16);
        const __mmask16 k2 = rem <= 32 ? 0 : tail_mask16(rem - 32), k3 = rem <= 48 ? 0 : tail_mask16(rem - 48);
        const float *aj = a + j;
        float *yj = y + j;
        __m512 y0 = _mm512_maskz_loadu_ps(k0, yj), y1 = _mm512_maskz_loadu_ps(k1, yj + 16);
        __m512 y2 = _mm512_maskz_loadu_ps(k2, yj + 32), y3 = _mm512_maskz_loadu_ps(k3, yj + 48);
        __m512 z0 = _mm512_setzero_ps(), z1 = _mm512_setzero_ps(), z2 = _mm512_setzero_ps(), z3 = _mm512_setzero_ps();
        long m = 0;
        for (; m + 2 <= count; m += 2) {
            const float *p = aj + (long)idx[m] * lda, *q = aj + (long)idx[m + 1] * lda;
            const __m512 s = _mm512_set1_ps(val[m]), t = _mm512_set1_ps(val[m + 1]);
            y0 = _mm512_fmadd_ps(s, _mm512_maskz_loadu_ps(k0, p), y0);
            y1 = _mm512_fmadd_ps(s, _mm512_maskz_loadu_ps(k1, p + 16), y1);
            y2 = _mm512_fmadd_ps(s, _mm512_maskz_loadu_ps(k2, p + 32), y2);
            y3 = _mm512_fmadd_ps(s, _mm512_maskz_loadu_ps(k3, p + 48), y3);
            z0 = _mm512_fmadd_ps(t, _mm512_maskz_loadu_ps(k0, q), z0);
            z1 = _mm512_fmadd_ps(t, _mm512_maskz_loadu_ps(k1, q + 16), z1);
            z2 = _mm512_fmadd_ps(t, _mm512_maskz_loadu_ps(k2, q + 32), z2);
            z3 = _mm512_fmadd_ps(t, _mm512_maskz_loadu_ps(k3, q + 48), z3);
        }
        if (m < count) {
            const float *p = aj + (long)idx[m] * lda;
            const __m512 s = _mm512_set1_ps(val[m]);
            y0 = _mm512_fmadd_ps(s, _mm512_maskz_loadu_ps(k0, p), y0);
            y1 = _mm512_fmadd_ps(s, _mm512_maskz_loadu_ps(k1, p + 16), y1);
            y2 = _mm512_fmadd_ps(s, _mm512_maskz_loadu_ps(k2, p + 32), y2);
            y3 = _mm512_fmadd_ps(s, _mm512_maskz_loadu_ps(k3, p + 48), y3);
        }
        _mm512_mask_storeu_ps(yj, k0, _mm512_add_ps(y0, z0));
        _mm512_mask_storeu_ps(yj + 16, k1, _mm512_add_ps(y1, z1));
        _mm512_mask_storeu_ps(yj + 32, k2, _mm512_add_ps(y2, z2));
        _mm512_mask_storeu_ps(yj + 48, k3, _mm512_add_ps(y3, z3));
    }
}

AVX512 static void gather_avx512(long rows, long capacity, const int32_t *counts, const int32_t *indices,
                                 const float *values, const float *a, long lda, long n, float *out, long ldo,
                                 long width) {
    for (long c0 = 0; c0 < n; c0 += width) {
        const long w = (n - c0 < width) ? n - c0 : width;
        for (long r = 0; r < rows; r++) {
            const long cnt = counts[r];
            if (cnt > 0) gather_row_avx512(cnt, indices + r * capacity, values + r * capacity, a + c0, lda, w, out + r * ldo + c0);
        }
    }
}

// scatter_avx2 at twice the width: 64 entries of x in four registers while the listed rows of C go by.
AVX512 static void scatter_avx512(long count, const int32_t *idx, const float *val, const float *x, long n, float *c,
                                  long ldc) {
    long j = 0;
    for (; j + 64 <= n; j += 64) {
        const __m512 x0 = _mm512_loadu_ps(x + j), x1 = _mm512_loadu_ps(x + j + 16);
        const __m512 x2 = _mm512_loadu_ps(x + j + 32), x3 = _mm512_loadu_ps(x + j + 48);
        for (long m = 0; m < count; m++) {
            float *p = c + (long)idx[m] * ldc + j;
            const __m512 s = _mm512_set1_ps(val[m]);
            _mm512_storeu_ps(p, _mm512_fmadd_ps(s, x0, _mm512_loadu_ps(p)));
            _mm512_storeu_ps(p + 16, _mm512_fmadd_ps(s, x1, _mm512_loadu_ps(p + 16)));
            _mm512_storeu_ps(p + 32, _mm512_fmadd_ps(s, x2, _mm512_loadu_ps(p + 32)));
            _mm512_storeu_ps(p + 48, _mm512_fmadd_ps(s, x3, _mm512_loadu_ps(p + 48)));
        }
    }
    for (; j < n; j += 16) {
        const __mmask16 mask = tail_mask16(n - j);
        const __m512 x0 = _mm512_maskz_loadu_ps(mask, x + j);
        for (long m = 0; m < count; m++) {
            float *p = c + (long)idx[m] * ldc + j;
            _mm512_mask_storeu_ps(p, mask, _mm512_fmadd_ps(_mm512_set1_ps(val[m]), x0, _mm512_maskz_loadu_ps(mask, p)));
        }
    }
}

static int cpu_has_avx512f(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && cpu_has_avx2_fma();
}
#endif

// MARK: dispatch

static int vector_level = -1;  // -1: not decided yet; set once (a benign race: every writer stores the same value)

// The best level this CPU runs: 2 with AVX-512F (and AVX2 + FMA), 1 with AVX2 + FMA, else 0.
static int best_level(void) {
#ifdef PFC_HAVE_AVX2_PATH
    return cpu_has_avx512f() ? 2 : cpu_has_avx2_fma();
#else
    return 0;
#endif
}

static int level(void) {
    int l = __atomic_load_n(&vector_level, __ATOMIC_RELAXED);
    if (l < 0) {
        l = best_level();
        __atomic_store_n(&vector_level, l, __ATOMIC_RELAXED);
    }
    return l;
}

int pfc_kernels_vector_level(void) { return level(); }

int pfc_kernels_best_vector_level(void) { return best_level(); }

void pfc_kernels_set_vector_level(int requested) {
    const int best = best_level();
    const int l = requested <= 0 ? 0 : (requested < best ? requested : best);
    __atomic_store_n(&vector_level, l, __ATOMIC_RELAXED);
}

void pfc_gather_accumulate(long rows, long capacity, const int32_t *counts, const int32_t *indices,
                           const float *values, const float *a, long lda, long n, float *out, long ldo,
                           long panel_width) {
    const long width = panel_width > 0 ? panel_width : n;
#ifdef PFC_HAVE_AVX2_PATH
    if (level() == 2) { gather_avx512(rows, capacity, counts, indices, values, a, lda, n, out, ldo, width); return; }
    if (level() == 1) { gather_avx2(rows, capacity, counts, indices, values, a, lda, n, out, ldo, width); return; }
#endif
    gather_portable(rows, capacity, counts, indices, values, a, lda, n, out, ldo, width);
}

int pfc_scatter_transposed(long rows, long capacity, long k, const int32_t *counts, const int32_t *indices,
                           const float *values, const float *z, long ldz, long n, float *c, long ldc) {
    column_lists cl;
    const int made = column_lists_make(rows, capacity, k, counts, indices, values, &cl);
    if (made <= 0) return made;
    const int32_t *start = cl.start, *rowOf = cl.rowOf;
    const float *valueOf = cl.valueOf;
    // Column kk of S gathers its rows of Z into row kk of C: the gather kernel with Z as the matrix.
    const long width = n;
    for (long kk = 0; kk < k; kk++) {
        const long cnt = start[kk + 1] - start[kk];
        if (cnt == 0) continue;
        pfc_gather_accumulate(1, cnt, (const int32_t[]){(int32_t)cnt}, rowOf + start[kk], valueOf + start[kk], z, ldz, n,
                              c + kk * ldc, ldc, width);
    }
    column_lists_free(&cl);
    return 0;
}

void pfc_scatter_row(long count, const int32_t *indices, const float *values, const float *x, long n, float *c,
                     long ldc) {
#ifdef PFC_HAVE_AVX2_PATH
    if (level() == 2) { scatter_avx512(count, indices, values, x, n, c, ldc); return; }
    if (level() == 1) { scatter_avx2(count, indices, values, x, n, c, ldc); return; }
#endif
    scatter_portable(count, indices, values, x, n, c, ldc);
}

int pfc_gather_by_columns(long rows, long capacity, long k, const int32_t *counts, const int32_t *indices,
                          const float *values, const float *a, long lda, long n, float *out, long ldo) {
    column_lists cl;
    const int made = column_lists_make(rows, capacity, k, counts, indices, values, &cl);
    if (made <= 0) return made;
    const int32_t *start = cl.start, *rowOf = cl.rowOf;
    const float *valueOf = cl.valueOf;
    // Row kk of A, read once in order, goes into every output row that lists column kk.
    for (long kk = 0; kk < k; kk++) {
        const long cnt = start[kk + 1] - start[kk];
        if (cnt == 0) continue;
        pfc_scatter_row(cnt, rowOf + start[kk], valueOf + start[kk], a + kk * lda, n, out, ldo);
    }
    column_lists_free(&cl);
    return 0;
}
