/* csr, csc, coo: y = x @ W.T on float32 values and unsigned index arrays of width 1/2/4/8 bytes.
 * Layout (src/nncompress/formats/sparse.py): csr row r = row_ptr[r]:row_ptr[r+1] with
 * col_idx; csc column c = col_ptr[c]:col_ptr[c+1] with row_idx; coo one (row, col) per value.
 * Every pointer array must run 0..nnz monotonically and every index be below its dimension
 * (else NNC_EBOUNDS). Ordering inside a row/column is not required. csc and coo scatter into a
 * double scratch of batch * n_out (NNC_ENOMEM if it cannot be had) and always run on one thread. */
#include "nnc_csr.h"

static int common_check(int64_t n_out, int64_t n_in, const float *values, int64_t n_values, const void *idx,
                        int64_t n_idx, int idx_width, const float *x, int64_t batch, const float *y,
                        int threads) {
    int st = nnc_check_dims(n_out, n_in, x, batch, y, threads);
    if (st) return st;
    if (n_values < 0 || (n_values > 0 && !values) || n_idx != n_values) return NNC_EARG;
    return nnc_check_array(idx, n_idx, idx_width);
}

/* ---- csr ---- */
static int csr_check(int64_t n_out, int64_t n_in, const float *values, int64_t n_values, const void *col_idx,
                     int64_t n_col, int col_width, const void *row_ptr, int64_t n_ptr, int ptr_width,
                     const float *x, int64_t batch, const float *y, int threads) {
    int st = nnc_check_dims(n_out, n_in, x, batch, y, threads);
    if (st) return st;
    return nnc_csr_check(n_out, values, n_values, col_idx, n_col, col_width, row_ptr, n_ptr, ptr_width);
}

int nnc_csr_dot_naive(int64_t n_out, int64_t n_in, const float *values, int64_t n_values, const void *col_idx,
                      int64_t n_col, int col_width, const void *row_ptr, int64_t n_ptr, int ptr_width,
                      const float *x, int64_t batch, float *y, int threads) {
    int st = csr_check(n_out, n_in, values, n_values, col_idx, n_col, col_width, row_ptr, n_ptr, ptr_width, x,
                       batch, y, threads);
    if (st) return st;
    for (int64_t b = 0; b < batch; b++)
        for (int64_t r = 0; r < n_out; r++) {
            double acc = 0.0;
            for (int64_t i = (int64_t)nnc_uget(row_ptr, ptr_width, r);
                 i < (int64_t)nnc_uget(row_ptr, ptr_width, r + 1); i++) {
                uint64_t c = nnc_uget(col_idx, col_width, i);
                if (c >= (uint64_t)n_in) return NNC_EBOUNDS;
                acc += (double)values[i] * x[b * n_in + (int64_t)c];
            }
            y[b * n_out + r] = (float)acc;
        }
    return NNC_OK;
}

NNC_CSR_ROWS_FN(csr_rows, float, float)

int nnc_csr_dot(int64_t n_out, int64_t n_in, const float *values, int64_t n_values, const void *col_idx,
                int64_t n_col, int col_width, const void *row_ptr, int64_t n_ptr, int ptr_width, const float *x,
                int64_t batch, float *y, int threads) {
    int st = csr_check(n_out, n_in, values, n_values, col_idx, n_col, col_width, row_ptr, n_ptr, ptr_width, x,
                       batch, y, threads);
    if (st) return st;
    float *xi = nnc_interleave_x(x, batch, n_in); /* NULL: the strided loop, slower, same sums */
    nnc_csr_job k = {n_out, n_in, batch, values, col_idx, row_ptr, col_width, ptr_width, x, y, xi};
    st = nnc_run_rows(csr_rows, &k, n_out, threads);
    free(xi);
    return st;
}

/* ---- csc / coo: scatter into a double scratch ---- */
static int scatter_finish(double *acc, float *y, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] = (float)acc[i];
    free(acc);
    return NNC_OK;
}

static double *scratch(int64_t n) { return (double *)calloc(n > 0 ? (size_t)n : 1, sizeof(double)); }

static int csc_check(int64_t n_out, int64_t n_in, const float *values, int64_t n_values, const void *row_idx,
                     int64_t n_row, int row_width, const void *col_ptr, int64_t n_ptr, int ptr_width,
                     const float *x, int64_t batch, const float *y, int threads) {
    int st = common_check(n_out, n_in, values, n_values, row_idx, n_row, row_width, x, batch, y, threads);
    if (st) return st;
    if (n_ptr != n_in + 1) return NNC_EARG;
    return nnc_check_ptr(col_ptr, n_ptr, ptr_width, (uint64_t)n_values);
}

int nnc_csc_dot_naive(int64_t n_out, int64_t n_in, const float *values, int64_t n_values, const void *row_idx,
                      int64_t n_row, int row_width, const void *col_ptr, int64_t n_ptr, int ptr_width,
                      const float *x, int64_t batch, float *y, int threads) {
    int st = csc_check(n_out, n_in, values, n_values, row_idx, n_row, row_width, col_ptr, n_ptr, ptr_width, x,
                       batch, y, threads);
    if (st) return st;
    double *acc = scratch(batch * n_out);
    if (!acc) return NNC_ENOMEM;
    for (int64_t b = 0; b < batch; b++)
        for (int64_t c = 0; c < n_in; c++)
            for (int64_t i = (int64_t)nnc_uget(col_ptr, ptr_width, c);
                 i < (int64_t)nnc_uget(col_ptr, ptr_width, c + 1); i++) {
                uint64_t r = nnc_uget(row_idx, row_width, i);
                if (r >= (uint64_t)n_out) {
                    free(acc);
                    return NNC_EBOUNDS;
                }
                acc[b * n_out + (int64_t)r] += (double)values[i] * x[b * n_in + c];
            }
    return scatter_finish(acc, y, batch * n_out);
}

int nnc_csc_dot(int64_t n_out, int64_t n_in, const float *values, int64_t n_values, const void *row_idx,
                int64_t n_row, int row_width, const void *col_ptr, int64_t n_ptr, int ptr_width, const float *x,
                int64_t batch, float *y, int threads) {
    int st = csc_check(n_out, n_in, values, n_values, row_idx, n_row, row_width, col_ptr, n_ptr, ptr_width, x,
                       batch, y, threads);
    if (st) return st;
    for (int64_t i = 0; i < n_row; i++) /* validate once, then the scatter loop runs check-free */
        if (nnc_uget(row_idx, row_width, i) >= (uint64_t)n_out) return NNC_EBOUNDS;
    double *acc = scratch(batch * n_out);
    if (!acc) return NNC_ENOMEM;
    for (int64_t c = 0; c < n_in; c++) {
        int64_t i0 = (int64_t)nnc_uget(col_ptr, ptr_width, c), i1 = (int64_t)nnc_uget(col_ptr, ptr_width, c + 1);
        for (int64_t b = 0; b < batch; b++) {
            double xv = x[b * n_in + c];
            double *ab = acc + b * n_out;
            for (int64_t i = i0; i < i1; i++) ab[nnc_uget(row_idx, row_width, i)] += (double)values[i] * xv;
        }
    }
    return scatter_finish(acc, y, batch * n_out);
}

static int coo_check(int64_t n_out, int64_t n_in, const float *values, int64_t n_values, const void *row_idx,
                     int64_t n_row, int row_width, const void *col_idx, int64_t n_col, int col_width,
                     const float *x, int64_t batch, const float *y, int threads) {
    int st = common_check(n_out, n_in, values, n_values, row_idx, n_row, row_width, x, batch, y, threads);
    if (st) return st;
    if (n_col != n_values) return NNC_EARG;
    return nnc_check_array(col_idx, n_col, col_width);
}

int nnc_coo_dot_naive(int64_t n_out, int64_t n_in, const float *values, int64_t n_values, const void *row_idx,
                      int64_t n_row, int row_width, const void *col_idx, int64_t n_col, int col_width,
                      const float *x, int64_t batch, float *y, int threads) {
    int st = coo_check(n_out, n_in, values, n_values, row_idx, n_row, row_width, col_idx, n_col, col_width, x,
                       batch, y, threads);
    if (st) return st;
    double *acc = scratch(batch * n_out);
    if (!acc) return NNC_ENOMEM;
    for (int64_t b = 0; b < batch; b++)
        for (int64_t i = 0; i < n_values; i++) {
            uint64_t r = nnc_uget(row_idx, row_width, i), c = nnc_uget(col_idx, col_width, i);
            if (r >= (uint64_t)n_out || c >= (uint64_t)n_in) {
                free(acc);
                return NNC_EBOUNDS;
            }
            acc[b * n_out + (int64_t)r] += (double)values[i] * x[b * n_in + (int64_t)c];
        }
    return scatter_finish(acc, y, batch * n_out);
}

int nnc_coo_dot(int64_t n_out, int64_t n_in, const float *values, int64_t n_values, const void *row_idx,
                int64_t n_row, int row_width, const void *col_idx, int64_t n_col, int col_width, const float *x,
                int64_t batch, float *y, int threads) {
    int st = coo_check(n_out, n_in, values, n_values, row_idx, n_row, row_width, col_idx, n_col, col_width, x,
                       batch, y, threads);
    if (st) return st;
    for (int64_t i = 0; i < n_values; i++)
        if (nnc_uget(row_idx, row_width, i) >= (uint64_t)n_out || nnc_uget(col_idx, col_width, i) >= (uint64_t)n_in)
            return NNC_EBOUNDS;
    double *acc = scratch(batch * n_out);
    if (!acc) return NNC_ENOMEM;
    for (int64_t i = 0; i < n_values; i++) {
        int64_t r = (int64_t)nnc_uget(row_idx, row_width, i), c = (int64_t)nnc_uget(col_idx, col_width, i);
        double v = values[i];
        for (int64_t b = 0; b < batch; b++) acc[b * n_out + r] += v * x[b * n_in + c];
    }
    return scatter_finish(acc, y, batch * n_out);
}
