/* sss: y = x @ W.T for a sequentially semiseparable W (src/nncompress/formats/sss.py): a causal stage
 * recursion run forward over the N blocks (al, cl, bl), an anticausal one realized on the
 * block-reversed matrix and run over the reversed order (au, cu, bu), plus the diagonal blocks d.
 * Rows and columns are split like numpy.array_split (the first total % N blocks one larger). Every
 * array length must be exactly what SSS._from_arrays wants of (shape, blocks, state), else NNC_EARG.
 * Cost per batch item: O(N d^2 + d (n_out + n_in) + sum_k n_k m_k). The recursion is sequential
 * along the blocks, so the optimized kernel splits batch items (not rows) over the threads; each
 * thread takes a few small double scratch vectors (NNC_ENOMEM if it cannot). */
#include "nnc_mv.h"

/* array_split geometry of `total` into n blocks, in forward or reversed block order */
typedef struct {
    int64_t q, e, n;
    int rev;
} sss_split;

static sss_split split_of(int64_t total, int64_t n, int rev) { return (sss_split){total / n, total % n, n, rev}; }

static inline int64_t blk_size(const sss_split *g, int64_t k) {
    int64_t kk = g->rev ? g->n - 1 - k : k;
    return g->q + (kk < g->e);
}

static inline int64_t blk_off(const sss_split *g, int64_t k) {
    if (!g->rev) return k * g->q + (k < g->e ? k : g->e);
    int64_t big = k - (g->n - g->e); /* reversed, the larger blocks come last */
    return k * g->q + (big > 0 ? big : 0);
}

typedef struct {
    int64_t n_out, n_in, n, d;
    const float *al, *cl, *bl, *au, *cu, *bu, *dg;
    const float *x;
    float *y;
} sss_ctx;

static int sss_check(const sss_ctx *s, int64_t n_al, int64_t n_cl, int64_t n_bl, int64_t n_au, int64_t n_cu,
                     int64_t n_bu, int64_t n_d, int64_t batch, int threads) {
    int st = nnc_check_dims(s->n_out, s->n_in, s->x, batch, s->y, threads);
    if (st) return st;
    int64_t mn = s->n_out < s->n_in ? s->n_out : s->n_in;
    if (s->n < 1 || s->n > (mn > 1 ? mn : 1) || s->d < 0 || s->d > mn) return NNC_EARG;
    int64_t n = s->n, d = s->d;
    sss_split r = split_of(s->n_out, n, 0), c = split_of(s->n_in, n, 0);
    int64_t r_first = blk_size(&r, 0), r_last = blk_size(&r, n - 1);
    int64_t c_first = blk_size(&c, 0), c_last = blk_size(&c, n - 1);
    int64_t n_a = nnc_mul(nnc_mul(n > 2 ? n - 2 : 0, d), d);
    /* sum_k n_k m_k in closed form: the larger row and column blocks overlap on the first min(e, e') */
    int64_t sum_d = nnc_mul(nnc_mul(n, r.q), c.q);
    int64_t rest = nnc_mul(r.q, c.e), rest2 = nnc_mul(c.q, r.e);
    if (sum_d < 0 || rest < 0 || rest2 < 0) return NNC_EARG;
    sum_d += rest + rest2 + (r.e < c.e ? r.e : c.e);
    if (n_al != n_a || n_au != n_a || n_cl != nnc_mul(s->n_out - r_first, d) ||
        n_cu != nnc_mul(s->n_out - r_last, d) || n_bl != nnc_mul(d, s->n_in - c_last) ||
        n_bu != nnc_mul(d, s->n_in - c_first) || n_d != sum_d)
        return NNC_EARG;
    const float *arrs[7] = {s->al, s->cl, s->bl, s->au, s->cu, s->bu, s->dg};
    int64_t lens[7] = {n_al, n_cl, n_bl, n_au, n_cu, n_bu, n_d};
    for (int i = 0; i < 7; i++)
        if (lens[i] > 0 && !arrs[i]) return NNC_EARG;
    return NNC_OK;
}

/* ---- optimized: the vectors of a chunk of batch items interleaved (nnc_mv.h) ---- */

/* One stage recursion in its own block order: out (zeroed by the caller) += its part of x @ W.T.
 * h and h2 hold d * nb doubles each. */
static void sweep(const sss_ctx *s, const sss_split *rg, const sss_split *cg, const float *a, const float *c,
                  const float *bm, const double *v, double *out, double *h, double *h2, int nb) {
    int64_t n = s->n, d = s->d;
    if (n < 2 || d == 0) return;
    int64_t ldb = s->n_in - blk_size(cg, n - 1), r_first = blk_size(rg, 0);
    memset(h, 0, (size_t)(d * nb) * sizeof(double));
    nnc_mv_add(bm + blk_off(cg, 0), ldb, d, blk_size(cg, 0), v + blk_off(cg, 0) * nb, h, nb);
    for (int64_t k = 1; k < n; k++) {
        nnc_mv_add(c + (blk_off(rg, k) - r_first) * d, d, blk_size(rg, k), d, h, out + blk_off(rg, k) * nb, nb);
        if (k < n - 1) {
            memset(h2, 0, (size_t)(d * nb) * sizeof(double));
            nnc_mv_add(a + (k - 1) * d * d, d, d, d, h, h2, nb);
            nnc_mv_add(bm + blk_off(cg, k), ldb, d, blk_size(cg, k), v + blk_off(cg, k) * nb, h2, nb);
            double *t = h;
            h = h2;
            h2 = t;
        }
    }
}

static int sss_items(const void *vctx, int64_t b0, int64_t b1) {
    const sss_ctx *s = (const sss_ctx *)vctx;
    const int64_t n_in = s->n_in, n_out = s->n_out, d = s->d;
    int64_t cap = b1 - b0 < NNC_BCH ? b1 - b0 : NNC_BCH;
    /* xf, xr: the input forward and reversed; yf, yr: the outputs in each sweep's order; h, h2: states */
    size_t need = (size_t)(cap * (2 * n_in + 2 * n_out + 2 * d));
    double *mem = (double *)malloc((need ? need : 1) * sizeof(double));
    if (!mem) return NNC_ENOMEM;
    double *xf = mem, *xr = xf + cap * n_in, *yf = xr + cap * n_in, *yr = yf + cap * n_out;
    double *h = yr + cap * n_out, *h2 = h + cap * d;
    sss_split rf = split_of(n_out, s->n, 0), cf = split_of(n_in, s->n, 0);
    sss_split rr = split_of(n_out, s->n, 1), cr = split_of(n_in, s->n, 1);
    for (int64_t c0 = b0; c0 < b1; c0 += NNC_BCH) {
        int nb = (int)(b1 - c0 < NNC_BCH ? b1 - c0 : NNC_BCH);
        if (n_in) nnc_interleave(s->x + c0 * n_in, n_in, nb, xf);
        for (int64_t j = 0; j < n_in; j++)
            for (int b = 0; b < nb; b++) xr[(n_in - 1 - j) * nb + b] = xf[j * nb + b];
        memset(yf, 0, (size_t)(nb * n_out) * sizeof(double));
        memset(yr, 0, (size_t)(nb * n_out) * sizeof(double));
        sweep(s, &rf, &cf, s->al, s->cl, s->bl, xf, yf, h, h2, nb);
        sweep(s, &rr, &cr, s->au, s->cu, s->bu, xr, yr, h, h2, nb);
        for (int64_t i = 0; i < n_out; i++)
            for (int b = 0; b < nb; b++) yf[i * nb + b] += yr[(n_out - 1 - i) * nb + b];
        const float *blk = s->dg;
        for (int64_t k = 0; k < s->n; k++) {
            int64_t rk = blk_size(&rf, k), ck = blk_size(&cf, k);
            if (rk == 0 || ck == 0) continue; /* an empty shape: d may be a null pointer */
            nnc_mv_add(blk, ck, rk, ck, xf + blk_off(&cf, k) * nb, yf + blk_off(&rf, k) * nb, nb);
            blk += rk * ck;
        }
        for (int b = 0; b < nb; b++)
            for (int64_t i = 0; i < n_out; i++) s->y[(c0 + b) * n_out + i] = (float)yf[i * nb + b];
    }
    free(mem);
    return NNC_OK;
}

int nnc_sss_dot(int64_t n_out, int64_t n_in, int64_t blocks, int64_t state, const float *al, int64_t n_al,
                const float *cl, int64_t n_cl, const float *bl, int64_t n_bl, const float *au, int64_t n_au,
                const float *cu, int64_t n_cu, const float *bu, int64_t n_bu, const float *d, int64_t n_d,
                const float *x, int64_t batch, float *y, int threads) {
    sss_ctx s = {n_out, n_in, blocks, state, al, cl, bl, au, cu, bu, d, x, y};
    int st = sss_check(&s, n_al, n_cl, n_bl, n_au, n_cu, n_bu, n_d, batch, threads);
    if (st) return st;
    return nnc_run_rows(sss_items, &s, batch, threads);
}

/* ---- naive: one item at a time, block offsets from running sums, and the anticausal part read
 * through index maps (reversed row i' is row n_out - 1 - i') instead of reversed copies ---- */
int nnc_sss_dot_naive(int64_t n_out, int64_t n_in, int64_t blocks, int64_t state, const float *al, int64_t n_al,
                      const float *cl, int64_t n_cl, const float *bl, int64_t n_bl, const float *au,
                      int64_t n_au, const float *cu, int64_t n_cu, const float *bu, int64_t n_bu, const float *d,
                      int64_t n_d, const float *x, int64_t batch, float *y, int threads) {
    sss_ctx s = {n_out, n_in, blocks, state, al, cl, bl, au, cu, bu, d, x, y};
    int st = sss_check(&s, n_al, n_cl, n_bl, n_au, n_cu, n_bu, n_d, batch, threads);
    if (st) return st;
    const int64_t n = blocks, ds = state;
    int64_t *r0 = (int64_t *)malloc((size_t)(n + 1) * sizeof(int64_t));
    int64_t *c0 = (int64_t *)malloc((size_t)(n + 1) * sizeof(int64_t));
    double *acc = (double *)malloc((size_t)(n_out ? n_out : 1) * sizeof(double));
    double *h = (double *)malloc((size_t)(ds ? ds : 1) * sizeof(double));
    double *h2 = (double *)malloc((size_t)(ds ? ds : 1) * sizeof(double));
    if (!r0 || !c0 || !acc || !h || !h2) {
        free(r0), free(c0), free(acc), free(h), free(h2);
        return NNC_ENOMEM;
    }
    r0[0] = c0[0] = 0;
    for (int64_t k = 0; k < n; k++) {
        r0[k + 1] = r0[k] + n_out / n + (k < n_out % n ? 1 : 0);
        c0[k + 1] = c0[k] + n_in / n + (k < n_in % n ? 1 : 0);
    }
    const int64_t ldl = n_in - (c0[n] - c0[n - 1]), ldu = n_in - c0[1]; /* widths of bl and bu */
    const int64_t off_cl = r0[1], off_cu = n_out - r0[n - 1]; /* first output row of cl's / cu's order */
    for (int64_t b = 0; b < batch; b++) {
        const float *xb = x + b * n_in;
        for (int64_t i = 0; i < n_out; i++) acc[i] = 0.0;
        if (n >= 2 && ds > 0) {
            /* causal: h_1 = B_0 x_0; y_k = C_k h_k; h_{k+1} = A_{k-1} h_k + B_k x_k */
            for (int64_t i = 0; i < ds; i++) {
                double t = 0.0;
                for (int64_t j = c0[0]; j < c0[1]; j++) t += (double)bl[i * ldl + j] * xb[j];
                h[i] = t;
            }
            for (int64_t k = 1; k < n; k++) {
                for (int64_t r = r0[k]; r < r0[k + 1]; r++) {
                    double t = 0.0;
                    for (int64_t j = 0; j < ds; j++) t += (double)cl[(r - off_cl) * ds + j] * h[j];
                    acc[r] += t;
                }
                if (k == n - 1) break;
                for (int64_t i = 0; i < ds; i++) {
                    double t = 0.0;
                    for (int64_t j = 0; j < ds; j++) t += (double)al[((k - 1) * ds + i) * ds + j] * h[j];
                    for (int64_t j = c0[k]; j < c0[k + 1]; j++) t += (double)bl[i * ldl + j] * xb[j];
                    h2[i] = t;
                }
                for (int64_t i = 0; i < ds; i++) h[i] = h2[i];
            }
            /* anticausal: reversed block k is block n-1-k; reversed column j' is column n_in-1-j' */
            for (int64_t i = 0; i < ds; i++) {
                double t = 0.0;
                for (int64_t jr = 0; jr < n_in - c0[n - 1]; jr++) t += (double)bu[i * ldu + jr] * xb[n_in - 1 - jr];
                h[i] = t;
            }
            for (int64_t k = 1; k < n; k++) {
                int64_t ob = n - 1 - k; /* the original block */
                for (int64_t r = r0[ob]; r < r0[ob + 1]; r++) {
                    int64_t rr = n_out - 1 - r; /* its position in cu's reversed order */
                    double t = 0.0;
                    for (int64_t j = 0; j < ds; j++) t += (double)cu[(rr - off_cu) * ds + j] * h[j];
                    acc[r] += t;
                }
                if (k == n - 1) break;
                for (int64_t i = 0; i < ds; i++) {
                    double t = 0.0;
                    for (int64_t j = 0; j < ds; j++) t += (double)au[((k - 1) * ds + i) * ds + j] * h[j];
                    for (int64_t jc = c0[ob]; jc < c0[ob + 1]; jc++)
                        t += (double)bu[i * ldu + (n_in - 1 - jc)] * xb[jc];
                    h2[i] = t;
                }
                for (int64_t i = 0; i < ds; i++) h[i] = h2[i];
            }
        }
        int64_t o = 0;
        for (int64_t k = 0; k < n; k++) {
            int64_t ck = c0[k + 1] - c0[k];
            for (int64_t r = r0[k]; r < r0[k + 1]; r++) {
                double t = 0.0;
                for (int64_t j = 0; j < ck; j++) t += (double)d[o + (r - r0[k]) * ck + j] * xb[c0[k] + j];
                acc[r] += t;
            }
            o += (r0[k + 1] - r0[k]) * ck;
        }
        for (int64_t i = 0; i < n_out; i++) y[b * n_out + i] = (float)acc[i];
    }
    free(r0), free(c0), free(acc), free(h), free(h2);
    return NNC_OK;
}
