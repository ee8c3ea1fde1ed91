/* Internal: the CSR row kernel shared by csr (sparse.c) and the factor chain of psm (psm.c), generic
 * over the index width and over the element types of x and y, so that psm can keep its intermediate
 * products in double while csr reads and writes float. Not part of the API. */
#ifndef NNC_CSR_H
#define NNC_CSR_H

#include "nnc_common.h"

/* y (batch, n_out) of YT = x (batch, n_in) of XT @ S.T, S given by values / col_idx / row_ptr. */
typedef struct {
    int64_t n_out, n_in, batch;
    const float *values;
    const void *col_idx, *row_ptr;
    int col_width, ptr_width;
    const void *x;
    void *y;
    const float *xi; /* nnc_interleave_x of x when XT is float and batch > 1, else NULL */
} nnc_csr_job;

/* The arrays of one CSR matrix (n_out, n_in): lengths, widths and a row_ptr running 0..n_values
 * monotonically. Column indices are not read here: the row kernel checks each one as it uses it. */
static inline int nnc_csr_check(int64_t n_out, const float *values, int64_t n_values, const void *col_idx,
                                int64_t n_col, int col_width, const void *row_ptr, int64_t n_ptr,
                                int ptr_width) {
    if (n_values < 0 || (n_values > 0 && !values) || n_col != n_values) return NNC_EARG;
    int st = nnc_check_array(col_idx, n_col, col_width);
    if (st) return st;
    if (n_ptr != n_out + 1) return NNC_EARG;
    return nnc_check_ptr(row_ptr, n_ptr, ptr_width, (uint64_t)n_values);
}

/* One row range for a fixed index type T: the hot loop has no width switch. Batch items are taken
 * NNC_BCH at a time so a row's indices are read once per chunk; a lone item gets two independent
 * sums instead. */
#define NNC_CSR_ROWS(NAME, T, XT, YT)                                                                        \
    static int NAME(const nnc_csr_job *k, int64_t r0, int64_t r1) {                                          \
        const T *ci = (const T *)k->col_idx;                                                                 \
        const XT *x = (const XT *)k->x;                                                                      \
        YT *y = (YT *)k->y;                                                                                  \
        const uint64_t n_in = (uint64_t)k->n_in;                                                             \
        for (int64_t r = r0; r < r1; r++) {                                                                  \
            int64_t i0 = (int64_t)nnc_uget(k->row_ptr, k->ptr_width, r);                                     \
            int64_t i1 = (int64_t)nnc_uget(k->row_ptr, k->ptr_width, r + 1);                                 \
            for (int64_t b0 = 0; b0 < k->batch; b0 += NNC_BCH) {                                             \
                int nb = (int)(k->batch - b0 < NNC_BCH ? k->batch - b0 : NNC_BCH);                           \
                const XT *xb = x + b0 * k->n_in;                                                             \
                double acc[NNC_BCH] = {0};                                                                   \
                if (nb == 1) {                                                                               \
                    double a0 = 0, a1 = 0;                                                                   \
                    int64_t i = i0;                                                                          \
                    for (; i + 2 <= i1; i += 2) {                                                            \
                        uint64_t c0 = ci[i], c1 = ci[i + 1];                                                 \
                        if (c0 >= n_in || c1 >= n_in) return NNC_EBOUNDS;                                    \
                        a0 += (double)k->values[i] * xb[c0];                                                 \
                        a1 += (double)k->values[i + 1] * xb[c1];                                             \
                    }                                                                                        \
                    if (i < i1) {                                                                            \
                        if ((uint64_t)ci[i] >= n_in) return NNC_EBOUNDS;                                     \
                        a0 += (double)k->values[i] * xb[ci[i]];                                              \
                    }                                                                                        \
                    acc[0] = a0 + a1;                                                                        \
                } else if (k->xi) {                                                                          \
                    const float *xc = k->xi + (b0 / NNC_BCH) * k->n_in * NNC_BCH;                            \
                    for (int64_t i = i0; i < i1; i++) {                                                      \
                        uint64_t c = ci[i];                                                                  \
                        if (c >= n_in) return NNC_EBOUNDS;                                                   \
                        const double v = k->values[i];                                                       \
                        const float *xv = xc + c * NNC_BCH;                                                  \
                        for (int b = 0; b < NNC_BCH; b++) acc[b] += v * xv[b];                               \
                    }                                                                                        \
                } else {                                                                                     \
                    for (int64_t i = i0; i < i1; i++) {                                                      \
                        uint64_t c = ci[i];                                                                  \
                        if (c >= n_in) return NNC_EBOUNDS;                                                   \
                        double v = k->values[i];                                                             \
                        for (int b = 0; b < nb; b++) acc[b] += v * xb[b * k->n_in + (int64_t)c];             \
                    }                                                                                        \
                }                                                                                            \
                for (int b = 0; b < nb; b++) y[(b0 + b) * k->n_out + r] = (YT)acc[b];                        \
            }                                                                                                \
        }                                                                                                    \
        return NNC_OK;                                                                                       \
    }

/* NAME(ctx, r0, r1), an nnc_rows_fn over an nnc_csr_job, with its four index-width instances. */
#define NNC_CSR_ROWS_FN(NAME, XT, YT)                                                                        \
    NNC_CSR_ROWS(NAME##_u8, uint8_t, XT, YT)                                                                 \
    NNC_CSR_ROWS(NAME##_u16, uint16_t, XT, YT)                                                               \
    NNC_CSR_ROWS(NAME##_u32, uint32_t, XT, YT)                                                               \
    NNC_CSR_ROWS(NAME##_u64, uint64_t, XT, YT)                                                               \
    static int NAME(const void *vctx, int64_t r0, int64_t r1) {                                              \
        const nnc_csr_job *k = (const nnc_csr_job *)vctx;                                                    \
        switch (k->col_width) {                                                                              \
        case 1: return NAME##_u8(k, r0, r1);                                                                 \
        case 2: return NAME##_u16(k, r0, r1);                                                                \
        case 4: return NAME##_u32(k, r0, r1);                                                                \
        default: return NAME##_u64(k, r0, r1);                                                               \
        }                                                                                                    \
    }

#endif
