/* lowrank: y = (x @ b.T) @ a.T for the truncated-SVD factors a (n_out, rank) and b (rank, n_in), both
 * row-major float32 (src/nncompress/formats/lowrank.py); rank <= min(n_out, n_in) as the format
 * demands. The input and the (batch, rank) intermediate are held as interleaved double chunks
 * (nnc_mv.h) in scratch buffers (NNC_ENOMEM if they cannot be had), so batched products run over
 * contiguous items; the optimized kernel splits the rows of each factor over the threads. */
#include "nnc_mv.h"

static int lowrank_check(int64_t n_out, int64_t n_in, int64_t rank, const float *a, int64_t n_a, const float *b,
                         int64_t n_b, const float *x, int64_t batch, const float *y, int threads) {
    int st = nnc_check_dims(n_out, n_in, x, batch, y, threads);
    if (st) return st;
    if (rank < 0 || rank > (n_out < n_in ? n_out : n_in)) return NNC_EARG;
    if (n_a != n_out * rank || n_b != rank * n_in || (n_a > 0 && !a) || (n_b > 0 && !b)) return NNC_EARG;
    return NNC_OK;
}

/* One factor (n_rows, n_cols) on chunked interleaved input v (chunk c at v + c * NNC_BCH * n_cols):
 * into chunked interleaved doubles out, or, for the last factor, into the float rows y. */
typedef struct {
    int64_t n_rows, n_cols, batch;
    const float *m;
    const double *v;
    double *out;
    float *y;
} lr_job;

static int lr_rows(const void *vctx, int64_t r0, int64_t r1) {
    const lr_job *k = (const lr_job *)vctx;
    for (int64_t r = r0; r < r1; r++) /* a row stays in cache across the chunks */
        for (int64_t b0 = 0; b0 < k->batch; b0 += NNC_BCH) {
            int nb = (int)(k->batch - b0 < NNC_BCH ? k->batch - b0 : NNC_BCH);
            double acc[NNC_BCH] = {0};
            nnc_mv_add(k->m + r * k->n_cols, k->n_cols, 1, k->n_cols, k->v + b0 * k->n_cols, acc, nb);
            if (k->y)
                for (int b = 0; b < nb; b++) k->y[(b0 + b) * k->n_rows + r] = (float)acc[b];
            else
                for (int b = 0; b < nb; b++) k->out[b0 * k->n_rows + r * nb + b] = acc[b];
        }
    return NNC_OK;
}

int nnc_lowrank_dot(int64_t n_out, int64_t n_in, int64_t rank, const float *a, int64_t n_a, const float *b,
                    int64_t n_b, const float *x, int64_t batch, float *y, int threads) {
    int st = lowrank_check(n_out, n_in, rank, a, n_a, b, n_b, x, batch, y, threads);
    if (st) return st;
    int64_t nx = nnc_mul(batch, n_in), nt = nnc_mul(batch, rank);
    if (nnc_mul(nx + nt, (int64_t)sizeof(double)) < 0) return NNC_ENOMEM;
    double *xi = (double *)malloc((size_t)(nx > 0 ? nx : 1) * sizeof(double));
    double *ti = (double *)malloc((size_t)(nt > 0 ? nt : 1) * sizeof(double));
    if (!xi || !ti) {
        free(xi), free(ti);
        return NNC_ENOMEM;
    }
    for (int64_t b0 = 0; b0 < batch && n_in; b0 += NNC_BCH)
        nnc_interleave(x + b0 * n_in, n_in, (int)(batch - b0 < NNC_BCH ? batch - b0 : NNC_BCH), xi + b0 * n_in);
    lr_job kb = {rank, n_in, batch, b, xi, ti, NULL};
    st = nnc_run_rows(lr_rows, &kb, rank, threads);
    if (st == NNC_OK) {
        lr_job ka = {n_out, rank, batch, a, ti, NULL, y};
        st = nnc_run_rows(lr_rows, &ka, n_out, threads);
    }
    free(xi), free(ti);
    return st;
}

int nnc_lowrank_dot_naive(int64_t n_out, int64_t n_in, int64_t rank, const float *a, int64_t n_a,
                          const float *b, int64_t n_b, const float *x, int64_t batch, float *y, int threads) {
    int st = lowrank_check(n_out, n_in, rank, a, n_a, b, n_b, x, batch, y, threads);
    if (st) return st;
    double *t = (double *)malloc((size_t)(rank > 0 ? rank : 1) * sizeof(double));
    if (!t) return NNC_ENOMEM;
    for (int64_t i = 0; i < batch; i++) {
        for (int64_t r = 0; r < rank; r++) {
            double acc = 0.0;
            for (int64_t c = 0; c < n_in; c++) acc += (double)b[r * n_in + c] * x[i * n_in + c];
            t[r] = acc;
        }
        for (int64_t o = 0; o < n_out; o++) {
            double acc = 0.0;
            for (int64_t r = 0; r < rank; r++) acc += (double)a[o * rank + r] * t[r];
            y[i * n_out + o] = (float)acc;
        }
    }
    free(t);
    return NNC_OK;
}
