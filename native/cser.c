/* cser (compressed shared elements row, src/nncompress/formats/cser.py): row r owns groups
 * row_ptr[r]:row_ptr[r+1]; group g lists columns col_idx[w_ptr[g]:w_ptr[g+1]] sharing value
 * omega[w_idx[g]]; omega[0] fills every unlisted cell, so
 * y[r] = omega[0] * sum(x) + sum_g (omega[w_idx[g]] - omega[0]) * sum(x[cols of g]).
 * Checks: both pointer arrays run 0..len monotonically, col < n_in, 1 <= w_idx < k (else
 * NNC_EBOUNDS). Limits: 1 <= k <= 65536. Index arrays have width 1/2/4/8 bytes. */
#include "nnc_common.h"

#define CSER_ARGS                                                                                            \
    int64_t n_out, int64_t n_in, const float *omega, int64_t k, const void *col_idx, int64_t n_col,          \
        int col_width, const void *w_idx, int64_t n_groups, int widx_width, const void *w_ptr,               \
        int64_t n_wptr, int wptr_width, const void *row_ptr, int64_t n_rptr, int rptr_width, const float *x, \
        int64_t batch, float *y, int threads

static int cser_check(CSER_ARGS) {
    int st = nnc_check_dims(n_out, n_in, x, batch, y, threads);
    if (st) return st;
    if (k < 1 || k > 65536 || !omega || n_wptr != n_groups + 1 || n_rptr != n_out + 1) return NNC_EARG;
    if ((st = nnc_check_array(col_idx, n_col, col_width)) || (st = nnc_check_array(w_idx, n_groups, widx_width)))
        return st;
    if ((st = nnc_check_ptr(w_ptr, n_wptr, wptr_width, (uint64_t)n_col))) return st;
    return nnc_check_ptr(row_ptr, n_rptr, rptr_width, (uint64_t)n_groups);
}

/* sum(x[b]) for every batch item, in double */
static double *row_sums(const float *x, int64_t batch, int64_t n_in) {
    double *s = (double *)calloc(batch > 0 ? (size_t)batch : 1, sizeof(double));
    if (!s) return NULL;
    for (int64_t b = 0; b < batch; b++)
        for (int64_t c = 0; c < n_in; c++) s[b] += x[b * n_in + c];
    return s;
}

int nnc_cser_dot_naive(CSER_ARGS) {
    int st = cser_check(n_out, n_in, omega, k, col_idx, n_col, col_width, w_idx, n_groups, widx_width, w_ptr,
                        n_wptr, wptr_width, row_ptr, n_rptr, rptr_width, x, batch, y, threads);
    if (st) return st;
    double *xs = row_sums(x, batch, n_in);
    if (!xs) return NNC_ENOMEM;
    for (int64_t b = 0; b < batch; b++)
        for (int64_t r = 0; r < n_out; r++) {
            double acc = 0.0;
            for (int64_t g = (int64_t)nnc_uget(row_ptr, rptr_width, r);
                 g < (int64_t)nnc_uget(row_ptr, rptr_width, r + 1); g++) {
                uint64_t wi = nnc_uget(w_idx, widx_width, g);
                if (wi < 1 || wi >= (uint64_t)k) st = NNC_EBOUNDS;
                double s = 0.0;
                for (int64_t i = (int64_t)nnc_uget(w_ptr, wptr_width, g);
                     i < (int64_t)nnc_uget(w_ptr, wptr_width, g + 1); i++) {
                    uint64_t c = nnc_uget(col_idx, col_width, i);
                    if (c >= (uint64_t)n_in) st = NNC_EBOUNDS;
                    if (st) break;
                    s += x[b * n_in + (int64_t)c];
                }
                if (st) {
                    free(xs);
                    return st;
                }
                acc += ((double)omega[wi] - (double)omega[0]) * s;
            }
            y[b * n_out + r] = (float)(acc + (double)omega[0] * xs[b]);
        }
    free(xs);
    return NNC_OK;
}

typedef struct {
    int64_t n_out, n_in, k, batch;
    const float *omega;
    const void *col_idx, *w_idx, *w_ptr, *row_ptr;
    int col_width, widx_width, wptr_width, rptr_width;
    const float *x;
    const double *xs;
    float *y;
    const float *xi; /* nnc_interleave_x of x (batch > 1), or NULL */
} cser_ctx;

#define CSER_ROWS(NAME, T)                                                                                   \
    static int NAME(const cser_ctx *q, int64_t r0, int64_t r1) {                                             \
        const T *ci = (const T *)q->col_idx;                                                                 \
        const uint64_t n_in = (uint64_t)q->n_in;                                                             \
        const double o0 = q->omega[0];                                                                       \
        for (int64_t r = r0; r < r1; r++) {                                                                  \
            int64_t g0 = (int64_t)nnc_uget(q->row_ptr, q->rptr_width, r);                                    \
            int64_t g1 = (int64_t)nnc_uget(q->row_ptr, q->rptr_width, r + 1);                                \
            for (int64_t b0 = 0; b0 < q->batch; b0 += NNC_BCH) {                                             \
                int nb = (int)(q->batch - b0 < NNC_BCH ? q->batch - b0 : NNC_BCH);                           \
                const float *xb = q->x + b0 * q->n_in;                                                       \
                const float *xc = q->xi ? q->xi + b0 * q->n_in : NULL; /* items b0.. interleaved */          \
                double acc[NNC_BCH] = {0};                                                                   \
                for (int64_t g = g0; g < g1; g++) {                                                          \
                    uint64_t wi = nnc_uget(q->w_idx, q->widx_width, g);                                      \
                    if (wi < 1 || wi >= (uint64_t)q->k) return NNC_EBOUNDS;                                  \
                    int64_t i0 = (int64_t)nnc_uget(q->w_ptr, q->wptr_width, g);                              \
                    int64_t i1 = (int64_t)nnc_uget(q->w_ptr, q->wptr_width, g + 1);                          \
                    double s[NNC_BCH] = {0};                                                                 \
                    if (xc)                                                                                  \
                        for (int64_t i = i0; i < i1; i++) {                                                  \
                            uint64_t c = ci[i];                                                              \
                            if (c >= n_in) return NNC_EBOUNDS;                                               \
                            for (int b = 0; b < NNC_BCH; b++) s[b] += xc[c * NNC_BCH + b];                   \
                        }                                                                                    \
                    else                                                                                     \
                        for (int64_t i = i0; i < i1; i++) {                                                  \
                            uint64_t c = ci[i];                                                              \
                            if (c >= n_in) return NNC_EBOUNDS;                                               \
                            for (int b = 0; b < nb; b++) s[b] += xb[b * q->n_in + (int64_t)c];               \
                        }                                                                                    \
                    double d = (double)q->omega[wi] - o0; /* one product per group */                        \
                    for (int b = 0; b < nb; b++) acc[b] += d * s[b];                                         \
                }                                                                                            \
                for (int b = 0; b < nb; b++) q->y[(b0 + b) * q->n_out + r] = (float)(acc[b] + o0 * q->xs[b0 + b]); \
            }                                                                                                \
        }                                                                                                    \
        return NNC_OK;                                                                                       \
    }
CSER_ROWS(cser_rows_u8, uint8_t)
CSER_ROWS(cser_rows_u16, uint16_t)
CSER_ROWS(cser_rows_u32, uint32_t)
CSER_ROWS(cser_rows_u64, uint64_t)

static int cser_rows(const void *vctx, int64_t r0, int64_t r1) {
    const cser_ctx *q = (const cser_ctx *)vctx;
    switch (q->col_width) {
    case 1: return cser_rows_u8(q, r0, r1);
    case 2: return cser_rows_u16(q, r0, r1);
    case 4: return cser_rows_u32(q, r0, r1);
    default: return cser_rows_u64(q, r0, r1);
    }
}

int nnc_cser_dot(CSER_ARGS) {
    int st = cser_check(n_out, n_in, omega, k, col_idx, n_col, col_width, w_idx, n_groups, widx_width, w_ptr,
                        n_wptr, wptr_width, row_ptr, n_rptr, rptr_width, x, batch, y, threads);
    if (st) return st;
    double *xs = row_sums(x, batch, n_in);
    if (!xs) return NNC_ENOMEM;
    float *xi = nnc_interleave_x(x, batch, n_in); /* NULL: x read item by item, same sums */
    cser_ctx q = {n_out, n_in, k, batch, omega, col_idx, w_idx, w_ptr, row_ptr,
                  col_width, widx_width, wptr_width, rptr_width, x, xs, y, xi};
    st = nnc_run_rows(cser_rows, &q, n_out, threads);
    free(xi);
    free(xs);
    return st;
}
