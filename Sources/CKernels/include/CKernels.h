// CKernels: the sparse-row kernels of the active-set FISTA (issue 14) in C, so that one binary
// built for baseline x86-64 can still run them with AVX2 and FMA where the CPU has them (chosen
// once at run time). Swift compiles for the baseline (SSE2, no FMA); OpenBLAS picks its own kernels
// at run time the same way, so without this the sparse path competes with an AVX2 dense product
// using SSE code.
#ifndef PFC_CKERNELS_H
#define PFC_CKERNELS_H
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// out[r, 0..<n] += Σ_m values[r·capacity + m] · a[indices[r·capacity + m]·lda ..< +n] for every
/// r < rows and m < counts[r]. Columns go in panels of `panel_width` so a panel of A stays in cache.
void pfc_gather_accumulate(long rows, long capacity, const int32_t *counts, const int32_t *indices,
                           const float *values, const float *a, long lda, long n,
                           float *out, long ldo, long panel_width);

/// c[indices[m]·ldc ..< +n] += values[m] · x[0..<n] for m < count.
void pfc_scatter_row(long count, const int32_t *indices, const float *values, const float *x, long n,
                     float *c, long ldc);

/// c[k, 0..<n] += Σ_r S[r, k] · z[r·ldz ..< +n] (C += Sᵀ·Z) for S given as `rows` sparse rows
/// (fixed-capacity slots: counts, indices, values as in `pfc_gather_accumulate`), K = `k` columns.
/// The lists are transposed first (per column of S, the rows that list it), so each listed row of C
/// is read and written once while rows of Z (small, in cache) are gathered into it. Returns 0, or -1
/// when the scratch memory could not be allocated (nothing is written then).
int pfc_scatter_transposed(long rows, long capacity, long k, const int32_t *counts, const int32_t *indices,
                           const float *values, const float *z, long ldz, long n, float *c, long ldc);

/// The same product as `pfc_gather_accumulate` (out[r] += Σ_m values·a[indices]) computed column by
/// column of S: the lists are transposed, then each listed row of A is read once, in order, and
/// added into every output row that lists it (`pfc_scatter_row`). For an A far larger than the cache
/// (K = 2000: 16 MB) this streams A once instead of gathering its rows once per output row. Returns
/// 0, or -1 when the scratch memory could not be allocated (nothing is written then).
int pfc_gather_by_columns(long rows, long capacity, long k, const int32_t *counts, const int32_t *indices,
                          const float *values, const float *a, long lda, long n, float *out, long ldo);

/// Which implementation runs: 2 = AVX-512F (the gathers and scatters; the FISTA row passes stay
/// AVX2), 1 = AVX2 + FMA, 0 = portable C (compiled for the baseline).
int pfc_kernels_vector_level(void);

/// The best level this CPU runs (what `pfc_kernels_vector_level` starts at).
int pfc_kernels_best_vector_level(void);

/// Runs level `level` or, when the CPU lacks it, the best below it (0 = portable); for tests and
/// benchmarks.
void pfc_kernels_set_vector_level(int level);

/// FISTA row passes (FISTARows.c), bit for bit the scalar loops (no FMA contraction), AVX2 where
/// the CPU has it (the same switch as the sparse-row kernels).
///
/// The clamp of one row: hc[j] = max(u[j], floor); *row_max = max_j hc[j]; returns #{j : u[j] ≥ floor}.
long pfc_fista_clamp_row(long k, const float *u, float floor, float *hc, float *row_max);

/// Scale and momentum of one row: h = hc[j]·s (stored in hc), z_next[j] = h + β·(h − hp[j]). When
/// `indices` is not NULL, lists every j with z_next[j] ≠ cst (value neg_eta·(z_next[j] − cst)) and
/// returns how many (the row's slots need k entries); else returns 0.
long pfc_fista_momentum_row(long k, float *hc, const float *hp, float s, float beta, float cst, float neg_eta,
                            float *z_next, int32_t *indices, float *values);

/// The backward pass's adjoint step of one row: H̄ = c1·zb1 + c2·zb2 (+ g when not NULL),
/// Ū = [ub ≥ floor]·H̄·s written to ub and zb2 and added to bb. When `indices` is not NULL, lists
/// the j with ub[j] ≥ floor (value neg_eta·Ū[j]) and returns how many; else returns 0.
long pfc_fista_adjoint_row(long k, const float *zb1, float *zb2, const float *g, float c1, float c2, float *ub,
                           float floor, float s, float *bb, float neg_eta, int32_t *indices, float *values);

/// u[j] = (z[j] + e[j]) + cr·colsum[j] for one row.
void pfc_fista_affine_row(long k, const float *z, const float *e, float cr, const float *colsum, float *u);

#ifdef __cplusplus
}
#endif
#endif
