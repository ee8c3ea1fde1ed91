/* psm: y = x @ (S_0 S_1 ... S_{q-1}).T for q CSR factors (src/nncompress/formats/psm.py), applied
 * right to left as x @ S_{q-1}.T @ ... @ S_0.T so that the product is never formed. Factor i has
 * shape (dims[i], dims[i+1]), dims[0] = n_out, dims[q] = n_in, 1 <= q <= 64; its arrays follow the
 * csr layout of sparse.c. The intermediate products are kept in double, in two scratch buffers of
 * batch * (widest inner dimension) doubles (NNC_ENOMEM if they cannot be had). The optimized kernel
 * splits each factor's rows over the threads. */
#include "nnc_csr.h"

#define PSM_MAX_FACTORS 64

static int psm_check(int64_t n_out, int64_t n_in, int q, const int64_t *dims, const float *const *values,
                     const int64_t *n_values, const void *const *col_idx, const int64_t *n_col,
                     const int *col_width, const void *const *row_ptr, const int64_t *n_ptr, const int *ptr_width,
                     const float *x, int64_t batch, const float *y, int threads, int64_t *widest) {
    int st = nnc_check_dims(n_out, n_in, x, batch, y, threads);
    if (st) return st;
    if (q < 1 || q > PSM_MAX_FACTORS || !dims || !values || !n_values || !col_idx || !n_col || !col_width ||
        !row_ptr || !n_ptr || !ptr_width)
        return NNC_EARG;
    if (dims[0] != n_out || dims[q] != n_in) return NNC_EARG;
    int64_t w = 0;
    for (int i = 1; i < q; i++) {
        if (dims[i] < 0 || dims[i] > NNC_MAX_DIM) return NNC_EARG;
        if (dims[i] > w) w = dims[i];
    }
    /* both scratch buffers must be addressable as bytes */
    if (nnc_mul(nnc_mul(batch, w), 2 * (int64_t)sizeof(double)) < 0) return NNC_EARG;
    for (int i = 0; i < q; i++) {
        st = nnc_csr_check(dims[i], values[i], n_values[i], col_idx[i], n_col[i], col_width[i], row_ptr[i],
                           n_ptr[i], ptr_width[i]);
        if (st) return st;
    }
    *widest = w;
    return NNC_OK;
}

/* The chain's first step reads the float input, its last writes the float output, the rest is double. */
NNC_CSR_ROWS_FN(psm_rows_ff, float, float)
NNC_CSR_ROWS_FN(psm_rows_fd, float, double)
NNC_CSR_ROWS_FN(psm_rows_dd, double, double)
NNC_CSR_ROWS_FN(psm_rows_df, double, float)

int nnc_psm_dot(int64_t n_out, int64_t n_in, int q, const int64_t *dims, const float *const *values,
                const int64_t *n_values, const void *const *col_idx, const int64_t *n_col, const int *col_width,
                const void *const *row_ptr, const int64_t *n_ptr, const int *ptr_width, const float *x,
                int64_t batch, float *y, int threads) {
    int64_t widest = 0;
    int st = psm_check(n_out, n_in, q, dims, values, n_values, col_idx, n_col, col_width, row_ptr, n_ptr,
                       ptr_width, x, batch, y, threads, &widest);
    if (st) return st;
    double *buf[2] = {NULL, NULL};
    if (q > 1) {
        size_t bytes = (size_t)(batch * widest) * sizeof(double);
        buf[0] = (double *)malloc(bytes ? bytes : 1);
        buf[1] = (double *)malloc(bytes ? bytes : 1);
        if (!buf[0] || !buf[1]) {
            free(buf[0]);
            free(buf[1]);
            return NNC_ENOMEM;
        }
    }
    const void *in = x;
    for (int i = q - 1; i >= 0 && st == NNC_OK; i--) {
        int first = i == q - 1, last = i == 0;
        void *out = last ? (void *)y : (void *)buf[i & 1];
        nnc_rows_fn fn = first ? (last ? psm_rows_ff : psm_rows_fd) : (last ? psm_rows_df : psm_rows_dd);
        nnc_csr_job k = {dims[i], dims[i + 1], batch, values[i], col_idx[i], row_ptr[i], col_width[i],
                         ptr_width[i], in, out};
        st = nnc_run_rows(fn, &k, dims[i], threads);
        in = out;
    }
    free(buf[0]);
    free(buf[1]);
    return st;
}

/* One batch item at a time through the whole chain with plain width-generic loads. */
int nnc_psm_dot_naive(int64_t n_out, int64_t n_in, int q, const int64_t *dims, const float *const *values,
                      const int64_t *n_values, const void *const *col_idx, const int64_t *n_col,
                      const int *col_width, const void *const *row_ptr, const int64_t *n_ptr,
                      const int *ptr_width, const float *x, int64_t batch, float *y, int threads) {
    int64_t widest = 0;
    int st = psm_check(n_out, n_in, q, dims, values, n_values, col_idx, n_col, col_width, row_ptr, n_ptr,
                       ptr_width, x, batch, y, threads, &widest);
    if (st) return st;
    int64_t m = widest;
    if (n_in > m) m = n_in;
    if (n_out > m) m = n_out;
    double *cur = (double *)malloc((size_t)(m ? m : 1) * sizeof(double));
    double *nxt = (double *)malloc((size_t)(m ? m : 1) * sizeof(double));
    if (!cur || !nxt) {
        free(cur);
        free(nxt);
        return NNC_ENOMEM;
    }
    for (int64_t b = 0; b < batch && st == NNC_OK; b++) {
        for (int64_t c = 0; c < n_in; c++) cur[c] = x[b * n_in + c];
        for (int i = q - 1; i >= 0 && st == NNC_OK; i--) {
            for (int64_t r = 0; r < dims[i] && st == NNC_OK; r++) {
                double acc = 0.0;
                for (int64_t j = (int64_t)nnc_uget(row_ptr[i], ptr_width[i], r);
                     j < (int64_t)nnc_uget(row_ptr[i], ptr_width[i], r + 1); j++) {
                    uint64_t c = nnc_uget(col_idx[i], col_width[i], j);
                    if (c >= (uint64_t)dims[i + 1]) {
                        st = NNC_EBOUNDS;
                        break;
                    }
                    acc += (double)values[i][j] * cur[c];
                }
                nxt[r] = acc;
            }
            double *t = cur;
            cur = nxt;
            nxt = t;
        }
        for (int64_t r = 0; r < n_out && st == NNC_OK; r++) y[b * n_out + r] = (float)cur[r];
    }
    free(cur);
    free(nxt);
    return st;
}
