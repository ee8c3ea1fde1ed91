/* dense: y = x @ W.T for a row-major float32 W (n_out, n_in) of n_w = n_out * n_in floats.
 * Limits: dims <= 2^31 - 1; double accumulation; the optimized kernel splits rows over threads. */
#include "nnc_common.h"

static int dense_check(int64_t n_out, int64_t n_in, const float *w, int64_t n_w, const float *x,
                       int64_t batch, const float *y, int threads) {
    int st = nnc_check_dims(n_out, n_in, x, batch, y, threads);
    if (st) return st;
    if (n_w != n_out * n_in || (n_w > 0 && !w)) return NNC_EARG;
    return NNC_OK;
}

int nnc_dense_dot_naive(int64_t n_out, int64_t n_in, const float *w, int64_t n_w, const float *x,
                        int64_t batch, float *y, int threads) {
    int st = dense_check(n_out, n_in, w, n_w, x, batch, y, threads);
    if (st) return st;
    for (int64_t b = 0; b < batch; b++)
        for (int64_t r = 0; r < n_out; r++) {
            double acc = 0.0;
            for (int64_t c = 0; c < n_in; c++) acc += (double)w[r * n_in + c] * x[b * n_in + c];
            y[b * n_out + r] = (float)acc;
        }
    return NNC_OK;
}

typedef struct {
    int64_t n_out, n_in, batch;
    const float *w, *x;
    float *y;
} dense_ctx;

static int dense_rows(const void *vctx, int64_t r0, int64_t r1) {
    const dense_ctx *k = (const dense_ctx *)vctx;
    const int64_t n_in = k->n_in;
    for (int64_t r = r0; r < r1; r++) {
        const float *wr = k->w + r * n_in;
        for (int64_t b0 = 0; b0 < k->batch; b0 += NNC_BCH) {
            int nb = (int)(k->batch - b0 < NNC_BCH ? k->batch - b0 : NNC_BCH);
            double acc[NNC_BCH] = {0};
            if (nb == 1) { /* four independent sums keep the FPU busy */
                const float *xb = k->x + b0 * n_in;
                double a0 = 0, a1 = 0, a2 = 0, a3 = 0;
                int64_t c = 0;
                for (; c + 4 <= n_in; c += 4) {
                    a0 += (double)wr[c] * xb[c];
                    a1 += (double)wr[c + 1] * xb[c + 1];
                    a2 += (double)wr[c + 2] * xb[c + 2];
                    a3 += (double)wr[c + 3] * xb[c + 3];
                }
                for (; c < n_in; c++) a0 += (double)wr[c] * xb[c];
                acc[0] = (a0 + a1) + (a2 + a3);
            } else {
                for (int64_t c = 0; c < n_in; c++) {
                    double v = wr[c];
                    for (int b = 0; b < nb; b++) acc[b] += v * k->x[(b0 + b) * n_in + c];
                }
            }
            for (int b = 0; b < nb; b++) k->y[(b0 + b) * k->n_out + r] = (float)acc[b];
        }
    }
    return NNC_OK;
}

int nnc_dense_dot(int64_t n_out, int64_t n_in, const float *w, int64_t n_w, const float *x, int64_t batch,
                  float *y, int threads) {
    int st = dense_check(n_out, n_in, w, n_w, x, batch, y, threads);
    if (st) return st;
    dense_ctx k = {n_out, n_in, batch, w, x, y};
    return nnc_run_rows(dense_rows, &k, n_out, threads);
}
