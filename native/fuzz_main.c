/* Standalone fuzz driver for the kernels (built by sanitize.sh with ASan + UBSan).
 * For every format it builds random valid inputs (random complete canonical codes, random
 * matrices, random index widths), then thousands of mutated copies (flipped stream bits, moved or
 * corrupted offsets, truncated arrays, changed code lengths, out-of-range indices; for the structured
 * kernels random dims and factor counts, lengths one off, blocks/state/rank one off; for the cabac coder
 * round trips, then flipped, truncated and extended streams and wrong level counts). Each array is
 * copied into a buffer of exactly its length so any overread is reported by ASan. It checks that
 * naive and optimized kernels agree: both fail, or both succeed with close results.
 * Usage: fuzz_main [iterations] [seed] */
#include <math.h>
#include <stdio.h>

#include "nnc_common.h"

static uint64_t rs = 88172645463325252ULL;
static uint64_t rnd(void) {
    rs ^= rs << 13;
    rs ^= rs >> 7;
    rs ^= rs << 17;
    return rs;
}
static int64_t rint_(int64_t n) { return n > 0 ? (int64_t)(rnd() % (uint64_t)n) : 0; }
static float rfloat(void) { return (float)((int64_t)rint_(2001) - 1000) / 256.0f; }

static long n_runs, n_ok, n_fail;
static int expect_ok; /* set while an unmutated (valid) input runs */

static void *dup_exact(const void *p, size_t bytes) { /* exact-size heap copy: ASan sees overreads */
    void *q = malloc(bytes ? bytes : 1);
    if (bytes) memcpy(q, p, bytes);
    return q;
}

static void compare(const char *what, int s1, int s2, const float *y1, const float *y2, int64_t n) {
    n_runs++;
    if ((s1 == 0) != (s2 == 0)) {
        fprintf(stderr, "%s: status mismatch optimized %d naive %d\n", what, s1, s2);
        abort();
    }
    if (s1 && expect_ok) {
        fprintf(stderr, "%s: a valid input was rejected with status %d\n", what, s1);
        abort();
    }
    if (s1) {
        n_fail++;
        return;
    }
    n_ok++;
    for (int64_t i = 0; i < n; i++)
        if (!(fabsf(y1[i] - y2[i]) <= 1e-3f * (1.0f + fabsf(y2[i])))) {
            fprintf(stderr, "%s: value mismatch at %lld: %g vs %g\n", what, (long long)i, y1[i], y2[i]);
            abort();
        }
}

/* ---- unsigned arrays of a random width ---- */
typedef struct {
    void *p;
    int64_t n;
    int w;
} uarr;
static uarr uarr_make(const uint64_t *v, int64_t n, uint64_t maxv) {
    int w = maxv < 256 ? 1 : maxv < 65536 ? 2 : 4;
    int widths[4] = {1, 2, 4, 8};
    int r = widths[rint_(4)];
    if (r > w) w = r;
    uarr a = {malloc(n ? (size_t)n * w : 1), n, w};
    for (int64_t i = 0; i < n; i++) switch (w) {
        case 1: ((uint8_t *)a.p)[i] = (uint8_t)v[i]; break;
        case 2: ((uint16_t *)a.p)[i] = (uint16_t)v[i]; break;
        case 4: ((uint32_t *)a.p)[i] = (uint32_t)v[i]; break;
        default: ((uint64_t *)a.p)[i] = v[i];
        }
    return a;
}
static void uarr_set(uarr *a, int64_t i, uint64_t v) {
    switch (a->w) {
    case 1: ((uint8_t *)a->p)[i] = (uint8_t)v; break;
    case 2: ((uint16_t *)a->p)[i] = (uint16_t)v; break;
    case 4: ((uint32_t *)a->p)[i] = (uint32_t)v; break;
    default: ((uint64_t *)a->p)[i] = v;
    }
}
/* a random mutation of one entry (or a shorter length) */
static void uarr_mutate(uarr *a, uint64_t hint) {
    if (!a->n) return;
    switch (rint_(4)) {
    case 0: uarr_set(a, rint_(a->n), rnd()); break;
    case 1: uarr_set(a, rint_(a->n), hint + (uint64_t)rint_(3)); break;
    case 2: uarr_set(a, rint_(a->n), nnc_uget(a->p, a->w, rint_(a->n))); break;
    default: a->n -= 1;
    }
}

/* ---- canonical codes ---- */
#define MAX_LEN_FUZZ 24

static void random_lengths(uint8_t *len, int k) {
    /* split random leaves of a full binary tree until `leaves` leaves; leave some symbols absent */
    int leaves = 1 + (int)rint_(k);
    int depth[65536], n = 1;
    depth[0] = 0;
    while (n < leaves) {
        int i = (int)rint_(n);
        if (depth[i] >= MAX_LEN_FUZZ) continue;
        depth[i]++;
        depth[n++] = depth[i];
    }
    if (leaves == 1) depth[0] = 1;
    memset(len, 0, (size_t)k);
    int placed = 0;
    while (placed < leaves) {
        int s = (int)rint_(k);
        if (!len[s]) len[s] = (uint8_t)depth[placed++];
    }
}
static void canonical(const uint8_t *len, int k, uint32_t *code) {
    int64_t count[26] = {0}, next[26] = {0};
    for (int s = 0; s < k; s++) count[len[s]]++;
    count[0] = 0;
    for (int L = 1; L <= 25; L++) next[L] = (next[L - 1] + count[L - 1]) << 1;
    for (int s = 0; s < k; s++)
        if (len[s]) code[s] = (uint32_t)next[len[s]]++;
}

typedef struct {
    uint32_t *w;
    int64_t cap, nbits;
} bw;
static void bw_put(bw *b, uint64_t v, int n) {
    for (int i = n - 1; i >= 0; i--, b->nbits++)
        if ((v >> i) & 1) b->w[b->nbits >> 5] |= 1u << (31 - (b->nbits & 31));
}

#define MAXD 24
static float X[8 * 64], Y1[8 * 64], Y2[8 * 64];

static void fuzz_ham(void) {
    int64_t n_out = rint_(MAXD), n_in = rint_(MAXD), batch = 1 + rint_(9);
    int k = 1 + (int)rint_(40);
    uint8_t len[64];
    uint32_t code[64];
    random_lengths(len, k);
    canonical(len, k, code);
    int present[64], np_ = 0;
    for (int s = 0; s < k; s++)
        if (len[s]) present[np_++] = s;
    float cb[64];
    for (int s = 0; s < k; s++) cb[s] = rfloat();
    /* half the time the first canonical code stands for 0.0 and comes up often: the zero-run lanes
     * (batch 1) and their decode-then-multiply form (batched) only run then */
    int zsym = present[0], zrun = (int)rint_(2);
    for (int i = 1; i < np_; i++)
        if (len[present[i]] < len[zsym]) zsym = present[i];
    if (zrun) cb[zsym] = 0.0f;
    uint32_t *words = calloc((size_t)(n_out * n_in * 24 / 32 + 2), 4);
    bw b = {words, 0, 0};
    uint64_t rb[MAXD + 1];
    rb[0] = 0;
    for (int64_t r = 0; r < n_out; r++) {
        for (int64_t c = 0; c < n_in; c++) {
            int s = zrun && rint_(2) ? zsym : present[rint_(np_)];
            bw_put(&b, code[s], len[s]);
        }
        rb[r + 1] = (uint64_t)b.nbits;
    }
    int64_t nw = (b.nbits + 31) / 32 + 1;
    for (int i = 0; i < batch * n_in; i++) X[i] = rfloat();
    for (int m = 0; m < 12; m++) {
        expect_ok = m == 0;
        uarr rbits = uarr_make(rb, n_out + 1, rb[n_out]);
        uint32_t *st = dup_exact(words, (size_t)nw * 4);
        uint8_t *l2 = dup_exact(len, (size_t)k);
        int64_t nw2 = nw;
        if (m) switch (rint_(4)) {
            case 0: st[rint_(nw)] ^= 1u << rint_(32); break;
            case 1: uarr_mutate(&rbits, rb[n_out]); break;
            case 2: nw2 = rint_(nw + 1); break;
            default: l2[rint_(k)] = (uint8_t)rint_(26);
            }
        uint32_t *st2 = dup_exact(st, (size_t)nw2 * 4);
        float *cb2 = dup_exact(cb, (size_t)k * 4);
        int s1 = nnc_ham_dot(n_out, n_in, cb2, l2, k, st2, nw2, rbits.p, rbits.n, rbits.w, X, batch, Y1,
                             1 + (int)rint_(3));
        int s2 = nnc_ham_dot_naive(n_out, n_in, cb2, l2, k, st2, nw2, rbits.p, rbits.n, rbits.w, X, batch, Y2, 1);
        compare("ham", s1, s2, Y1, Y2, batch * n_out);
        free(rbits.p), free(st), free(st2), free(l2), free(cb2);
    }
    free(words);
}

static void fuzz_sham(void) {
    int64_t n_out = rint_(MAXD), n_in = 1 + rint_(30), batch = 1 + rint_(9);
    int k = 1 + (int)rint_(30), coder = (int)rint_(2), order = (int)rint_(4), esc = 1 + (int)rint_(8);
    int ebits = 5;
    uint8_t vlen[64], glen[16];
    uint32_t vcode[64], gcode[16];
    random_lengths(vlen, k);
    canonical(vlen, k, vcode);
    /* the gap code must cover every symbol 0..esc: a complete code with all symbols present */
    do random_lengths(glen, esc + 1);
    while (memchr(glen, 0, (size_t)esc + 1));
    canonical(glen, esc + 1, gcode);
    int present[64], np_ = 0;
    for (int s = 0; s < k; s++)
        if (vlen[s]) present[np_++] = s;
    float cb[64];
    for (int s = 0; s < k; s++) cb[s] = rfloat();
    uint32_t *words = calloc((size_t)(n_out * n_in * 64 / 32 + 2), 4);
    bw b = {words, 0, 0};
    uint64_t rb[MAXD + 1];
    rb[0] = 0;
    for (int64_t r = 0; r < n_out; r++) {
        int64_t col = -1;
        for (int64_t c = 0; c < n_in; c++) {
            if (rint_(3)) continue;
            int64_t gap = c - col - 1;
            col = c;
            if (coder == 0) {
                int64_t sym = gap < esc ? gap : esc;
                bw_put(&b, gcode[sym], glen[sym]);
                if (sym == esc) bw_put(&b, (uint64_t)(gap - esc), ebits);
            } else {
                uint64_t v = (uint64_t)gap + (1u << order);
                int nb = 64 - __builtin_clzll(v);
                bw_put(&b, 0, nb - order - 1);
                bw_put(&b, v, nb);
            }
            int s = present[rint_(np_)];
            bw_put(&b, vcode[s], vlen[s]);
        }
        rb[r + 1] = (uint64_t)b.nbits;
    }
    int64_t nw = (b.nbits + 31) / 32 + 1;
    for (int i = 0; i < batch * n_in; i++) X[i] = rfloat();
    for (int m = 0; m < 12; m++) {
        expect_ok = m == 0;
        uarr rbits = uarr_make(rb, n_out + 1, rb[n_out]);
        uint32_t *st = dup_exact(words, (size_t)nw * 4);
        uint8_t *v2 = dup_exact(vlen, (size_t)k), *g2 = dup_exact(glen, (size_t)esc + 1);
        int64_t nw2 = nw;
        if (m) switch (rint_(5)) {
            case 0: st[rint_(nw)] ^= 1u << rint_(32); break;
            case 1: uarr_mutate(&rbits, rb[n_out]); break;
            case 2: nw2 = rint_(nw + 1); break;
            case 3: g2[rint_(esc + 1)] = (uint8_t)rint_(26); break;
            default: v2[rint_(k)] = (uint8_t)rint_(26);
            }
        uint32_t *st2 = dup_exact(st, (size_t)nw2 * 4);
        float *cb2 = dup_exact(cb, (size_t)k * 4);
        int s1 = nnc_sham_dot(n_out, n_in, cb2, v2, k, coder, g2, esc + 1, ebits, order, st2, nw2, rbits.p, rbits.n,
                              rbits.w, X, batch, Y1, 1 + (int)rint_(3));
        int s2 = nnc_sham_dot_naive(n_out, n_in, cb2, v2, k, coder, g2, esc + 1, ebits, order, st2, nw2, rbits.p,
                                    rbits.n, rbits.w, X, batch, Y2, 1);
        compare("sham", s1, s2, Y1, Y2, batch * n_out);
        free(rbits.p), free(st), free(st2), free(v2), free(g2), free(cb2);
    }
    free(words);
}

static void fuzz_im(void) {
    int64_t n_out = rint_(MAXD), n_in = rint_(MAXD), batch = 1 + rint_(9);
    int k = 1 + (int)rint_(40), bits = 0;
    while ((1 << bits) < k) bits++;
    float cb[64];
    for (int s = 0; s < k; s++) cb[s] = rfloat();
    int64_t nw = (n_out * n_in * bits + 31) / 32 + 1;
    uint32_t *words = calloc((size_t)nw, 4);
    bw b = {words, 0, 0};
    for (int64_t i = 0; i < n_out * n_in; i++) bw_put(&b, (uint64_t)rint_(k), bits);
    for (int i = 0; i < batch * n_in; i++) X[i] = rfloat();
    for (int m = 0; m < 8; m++) {
        expect_ok = m == 0;
        int64_t nw2 = m && rint_(2) ? rint_(nw + 1) : nw;
        uint32_t *st = dup_exact(words, (size_t)nw2 * 4);
        if (m && nw2 && rint_(2)) st[rint_(nw2)] ^= 1u << rint_(32);
        float *cb2 = dup_exact(cb, (size_t)k * 4);
        int s1 = nnc_im_dot(n_out, n_in, cb2, k, st, nw2, X, batch, Y1, 1 + (int)rint_(3));
        int s2 = nnc_im_dot_naive(n_out, n_in, cb2, k, st, nw2, X, batch, Y2, 1);
        compare("im", s1, s2, Y1, Y2, batch * n_out);
        free(st), free(cb2);
    }
    free(words);
}

/* csr / csc / coo / cser / dense from one random sparse matrix */
static void fuzz_sparse(void) {
    int64_t n_out = rint_(MAXD), n_in = rint_(MAXD), batch = 1 + rint_(9);
    static float W[MAXD * MAXD], vals[MAXD * MAXD];
    static uint64_t ri[MAXD * MAXD], ci[MAXD * MAXD], rp[MAXD + 1];
    int64_t nnz = 0;
    rp[0] = 0;
    for (int64_t r = 0; r < n_out; r++) {
        for (int64_t c = 0; c < n_in; c++) {
            W[r * n_in + c] = rint_(3) ? 0.0f : (float)(rint_(5) - 2);
            if (W[r * n_in + c] != 0.0f) vals[nnz] = W[r * n_in + c], ri[nnz] = (uint64_t)r, ci[nnz++] = (uint64_t)c;
        }
        rp[r + 1] = (uint64_t)nnz;
    }
    for (int i = 0; i < batch * n_in; i++) X[i] = rfloat();
    for (int m = 0; m < 8; m++) {
        expect_ok = m == 0;
        uarr col = uarr_make(ci, nnz, n_in), row = uarr_make(ri, nnz, n_out), ptr = uarr_make(rp, n_out + 1, nnz);
        if (m) switch (rint_(3)) {
            case 0: uarr_mutate(&col, (uint64_t)n_in); break;
            case 1: uarr_mutate(&row, (uint64_t)n_out); break;
            default: uarr_mutate(&ptr, (uint64_t)nnz);
            }
        float *v2 = dup_exact(vals, (size_t)nnz * 4);
        void *c2 = dup_exact(col.p, (size_t)col.n * col.w), *r2 = dup_exact(row.p, (size_t)row.n * row.w);
        void *p2 = dup_exact(ptr.p, (size_t)ptr.n * ptr.w);
        int t = 1 + (int)rint_(3);
        compare("csr", nnc_csr_dot(n_out, n_in, v2, nnz, c2, col.n, col.w, p2, ptr.n, ptr.w, X, batch, Y1, t),
                nnc_csr_dot_naive(n_out, n_in, v2, nnz, c2, col.n, col.w, p2, ptr.n, ptr.w, X, batch, Y2, 1), Y1, Y2,
                batch * n_out);
        /* the same arrays read as csc of the transpose: W.T has shape (n_in, n_out) */
        compare("csc", nnc_csc_dot(n_in, n_out, v2, nnz, c2, col.n, col.w, p2, ptr.n, ptr.w, X, batch, Y1, t),
                nnc_csc_dot_naive(n_in, n_out, v2, nnz, c2, col.n, col.w, p2, ptr.n, ptr.w, X, batch, Y2, 1), Y1, Y2,
                batch * n_in);
        compare("coo", nnc_coo_dot(n_out, n_in, v2, nnz, r2, row.n, row.w, c2, col.n, col.w, X, batch, Y1, t),
                nnc_coo_dot_naive(n_out, n_in, v2, nnz, r2, row.n, row.w, c2, col.n, col.w, X, batch, Y2, 1), Y1, Y2,
                batch * n_out);
        /* cser with one entry per group: w_idx = value + 3 selects omega[1..5] = {-2, -1, 0.5 (unused), 1, 2} */
        float omega[6] = {0, -2, -1, 0.5f, 1, 2};
        uint64_t wi[MAXD * MAXD], wp[MAXD * MAXD + 1];
        for (int64_t i = 0; i < nnz; i++) wi[i] = (uint64_t)(vals[i] + 2 + 1), wp[i] = (uint64_t)i;
        wp[nnz] = (uint64_t)nnz;
        uarr widx = uarr_make(wi, nnz, 5), wptr = uarr_make(wp, nnz + 1, nnz);
        if (m && rint_(2)) uarr_mutate(rint_(2) ? &widx : &wptr, 6);
        void *wi2 = dup_exact(widx.p, (size_t)widx.n * widx.w), *wp2 = dup_exact(wptr.p, (size_t)wptr.n * wptr.w);
        float *om = dup_exact(omega, sizeof omega);
        compare("cser",
                nnc_cser_dot(n_out, n_in, om, 6, c2, col.n, col.w, wi2, widx.n, widx.w, wp2, wptr.n, wptr.w, p2, ptr.n,
                             ptr.w, X, batch, Y1, t),
                nnc_cser_dot_naive(n_out, n_in, om, 6, c2, col.n, col.w, wi2, widx.n, widx.w, wp2, wptr.n, wptr.w, p2,
                                   ptr.n, ptr.w, X, batch, Y2, 1),
                Y1, Y2, batch * n_out);
        float *w2 = dup_exact(W, (size_t)(n_out * n_in) * 4);
        int64_t nwv = m ? n_out * n_in - rint_(2) : n_out * n_in;
        compare("dense", nnc_dense_dot(n_out, n_in, w2, nwv, X, batch, Y1, t),
                nnc_dense_dot_naive(n_out, n_in, w2, nwv, X, batch, Y2, 1), Y1, Y2, batch * n_out);
        free(col.p), free(row.p), free(ptr.p), free(widx.p), free(wptr.p);
        free(v2), free(c2), free(r2), free(p2), free(wi2), free(wp2), free(om), free(w2);
    }
}

/* ---- structured formats: exact-size x and y buffers too, so ASan also sees overwrites ---- */
static float *rand_floats(int64_t n) {
    float *a = malloc(n > 0 ? (size_t)n * 4 : 1);
    for (int64_t i = 0; i < n; i++) a[i] = rfloat();
    return a;
}

/* a random CSR pattern of (rows, cols) with about 1/3 of the cells kept */
static int64_t random_csr(int64_t rows, int64_t cols, uint64_t *ci, uint64_t *rp) {
    int64_t nnz = 0;
    rp[0] = 0;
    for (int64_t r = 0; r < rows; r++) {
        for (int64_t c = 0; c < cols; c++)
            if (!rint_(3)) ci[nnz++] = (uint64_t)c;
        rp[r + 1] = (uint64_t)nnz;
    }
    return nnz;
}

#define MAXQ 4
static void fuzz_psm(void) {
    int q = 1 + (int)rint_(MAXQ);
    int64_t dims[MAXQ + 1], batch = 1 + rint_(9);
    for (int i = 0; i <= q; i++) dims[i] = rint_(MAXD);
    static uint64_t ci[MAXQ][MAXD * MAXD], rp[MAXQ][MAXD + 1];
    int64_t nnz[MAXQ];
    float *vals[MAXQ];
    for (int i = 0; i < q; i++) {
        nnz[i] = random_csr(dims[i], dims[i + 1], ci[i], rp[i]);
        vals[i] = rand_floats(nnz[i]);
    }
    for (int m = 0; m < 8; m++) {
        expect_ok = m == 0;
        uarr col[MAXQ], ptr[MAXQ];
        const float *v2[MAXQ];
        const void *c2[MAXQ], *p2[MAXQ];
        int64_t nv[MAXQ], nc[MAXQ], np[MAXQ], d2[MAXQ + 1];
        int cw[MAXQ], pw[MAXQ];
        memcpy(d2, dims, sizeof d2);
        int victim = (int)rint_(q), how = m ? (int)rint_(5) : -1;
        for (int i = 0; i < q; i++) {
            col[i] = uarr_make(ci[i], nnz[i], (uint64_t)dims[i + 1]);
            ptr[i] = uarr_make(rp[i], dims[i] + 1, (uint64_t)nnz[i]);
            nv[i] = nnz[i];
            if (i == victim) switch (how) {
                case 0: uarr_mutate(&col[i], (uint64_t)dims[i + 1]); break;
                case 1: uarr_mutate(&ptr[i], (uint64_t)nnz[i]); break;
                case 2: nv[i] -= nv[i] > 0; break;
                case 3: d2[i + rint_(2)] += 1; break;
                default: break;
                }
            v2[i] = dup_exact(vals[i], (size_t)nv[i] * 4);
            c2[i] = dup_exact(col[i].p, (size_t)(col[i].n * col[i].w));
            p2[i] = dup_exact(ptr[i].p, (size_t)(ptr[i].n * ptr[i].w));
            nc[i] = col[i].n, np[i] = ptr[i].n, cw[i] = col[i].w, pw[i] = ptr[i].w;
        }
        int64_t n_out = dims[0], n_in = dims[q];
        float *x = rand_floats(batch * n_in), *y1 = rand_floats(batch * n_out), *y2 = rand_floats(batch * n_out);
        int s1 = nnc_psm_dot(n_out, n_in, q, d2, v2, nv, c2, nc, cw, p2, np, pw, x, batch, y1, 1 + (int)rint_(3));
        int s2 = nnc_psm_dot_naive(n_out, n_in, q, d2, v2, nv, c2, nc, cw, p2, np, pw, x, batch, y2, 1);
        compare("psm", s1, s2, y1, y2, batch * n_out);
        for (int i = 0; i < q; i++) {
            free(col[i].p), free(ptr[i].p);
            free((void *)v2[i]), free((void *)c2[i]), free((void *)p2[i]);
        }
        free(x), free(y1), free(y2);
    }
    for (int i = 0; i < q; i++) free(vals[i]);
}

static void fuzz_sss(void) {
    int64_t n_out = rint_(MAXD), n_in = rint_(MAXD), batch = 1 + rint_(9);
    int64_t mn = n_out < n_in ? n_out : n_in;
    int64_t n = 1 + rint_(mn > 1 ? mn : 1), d = rint_(mn + 1);
    int64_t rs[MAXD + 1], cs[MAXD + 1], sum_d = 0;
    for (int64_t k = 0; k < n; k++) {
        rs[k] = n_out / n + (k < n_out % n);
        cs[k] = n_in / n + (k < n_in % n);
        sum_d += rs[k] * cs[k];
    }
    int64_t want[7] = {(n > 2 ? n - 2 : 0) * d * d, (n_out - rs[0]) * d, d * (n_in - cs[n - 1]),
                       (n > 2 ? n - 2 : 0) * d * d, (n_out - rs[n - 1]) * d, d * (n_in - cs[0]), sum_d};
    for (int m = 0; m < 8; m++) {
        expect_ok = m == 0;
        int64_t len[7], n2 = n, d2 = d;
        memcpy(len, want, sizeof len);
        if (m) switch (rint_(3)) {
            case 0: len[rint_(7)] += rint_(2) ? 1 : -1; break;
            case 1: n2 += rint_(2) ? 1 : -1; break;
            default: d2 += rint_(2) ? 1 : -1;
            }
        float *a[7];
        for (int i = 0; i < 7; i++) a[i] = rand_floats(len[i]); /* a length of -1 gets a 1-byte buffer */
        float *x = rand_floats(batch * n_in), *y1 = rand_floats(batch * n_out), *y2 = rand_floats(batch * n_out);
        int s1 = nnc_sss_dot(n_out, n_in, n2, d2, a[0], len[0], a[1], len[1], a[2], len[2], a[3], len[3], a[4],
                             len[4], a[5], len[5], a[6], len[6], x, batch, y1, 1 + (int)rint_(3));
        int s2 = nnc_sss_dot_naive(n_out, n_in, n2, d2, a[0], len[0], a[1], len[1], a[2], len[2], a[3], len[3],
                                   a[4], len[4], a[5], len[5], a[6], len[6], x, batch, y2, 1);
        compare("sss", s1, s2, y1, y2, batch * n_out);
        for (int i = 0; i < 7; i++) free(a[i]);
        free(x), free(y1), free(y2);
    }
}

static void fuzz_dct(void) {
    /* lengths past MAXD now and then, so Bluestein runs on more than a handful of sizes */
    int64_t lim = rint_(4) ? MAXD : 70;
    int64_t n_out = rint_(lim), n_in = rint_(lim), batch = 1 + rint_(9);
    int kernel = (int)rint_(3);
    int64_t g = kernel == 2 && n_in ? n_in / 2 + 1 : n_in;
    static uint64_t ci[70 * 70], rp[71];
    int64_t nnz = random_csr(n_out, g, ci, rp), per = kernel == 2 ? 2 : 1;
    float *vals = rand_floats(per * nnz);
    for (int m = 0; m < 8; m++) {
        expect_ok = m == 0;
        uarr col = uarr_make(ci, nnz, (uint64_t)g), ptr = uarr_make(rp, n_out + 1, (uint64_t)nnz);
        int64_t nv = per * nnz;
        int k2 = kernel;
        if (m) switch (rint_(4)) {
            case 0: uarr_mutate(&col, (uint64_t)g); break;
            case 1: uarr_mutate(&ptr, (uint64_t)nnz); break;
            case 2: nv -= nv > 0; break;
            default: k2 = (int)rint_(4);
            }
        float *v2 = dup_exact(vals, (size_t)nv * 4);
        void *c2 = dup_exact(col.p, (size_t)(col.n * col.w)), *p2 = dup_exact(ptr.p, (size_t)(ptr.n * ptr.w));
        float *x = rand_floats(batch * n_in), *y1 = rand_floats(batch * n_out), *y2 = rand_floats(batch * n_out);
        int s1 = nnc_dct_dot(n_out, n_in, k2, v2, nv, c2, col.n, col.w, p2, ptr.n, ptr.w, x, batch, y1,
                             1 + (int)rint_(3));
        int s2 = nnc_dct_dot_naive(n_out, n_in, k2, v2, nv, c2, col.n, col.w, p2, ptr.n, ptr.w, x, batch, y2, 1);
        compare("dct", s1, s2, y1, y2, batch * n_out);
        free(col.p), free(ptr.p), free(v2), free(c2), free(p2), free(x), free(y1), free(y2);
    }
    free(vals);
}

static void fuzz_lowrank(void) {
    int64_t n_out = rint_(MAXD), n_in = rint_(MAXD), batch = 1 + rint_(9);
    int64_t mn = n_out < n_in ? n_out : n_in, rank = rint_(mn + 1);
    for (int m = 0; m < 6; m++) {
        expect_ok = m == 0;
        int64_t r2 = rank, na = n_out * rank, nb = rank * n_in;
        if (m) switch (rint_(3)) {
            case 0: r2 += rint_(2) ? 1 : -1; break;
            case 1: na -= na > 0; break;
            default: nb -= nb > 0;
            }
        float *a = rand_floats(na), *b = rand_floats(nb);
        float *x = rand_floats(batch * n_in), *y1 = rand_floats(batch * n_out), *y2 = rand_floats(batch * n_out);
        int s1 = nnc_lowrank_dot(n_out, n_in, r2, a, na, b, nb, x, batch, y1, 1 + (int)rint_(3));
        int s2 = nnc_lowrank_dot_naive(n_out, n_in, r2, a, na, b, nb, x, batch, y2, 1);
        compare("lowrank", s1, s2, y1, y2, batch * n_out);
        free(a), free(b), free(x), free(y1), free(y2);
    }
}

/* cabac: random levels (mostly small, sometimes near the 2^30 limit) must round-trip exactly through
 * a buffer of exactly the encoded length (and a too-small cap must say how much it needs); then
 * flipped, truncated, extended streams and wrong level counts must decode or return a status. */
static void fuzz_cabac(void) {
    int64_t n = rint_(4) ? rint_(200) : rint_(3000);
    int32_t *lv = malloc((size_t)(n ? n : 1) * 4), *got = malloc((size_t)(n + 2) * 4);
    int shape = (int)rint_(4);
    for (int64_t i = 0; i < n; i++) {
        int64_t v = shape == 0 ? 0 : shape == 1 ? rint_(3) - 1 : shape == 2 ? rint_(41) - 20 : rint_(2147483647);
        if (shape == 3 && rint_(2)) v = -v;
        if (v >= (1 << 30) || v <= -(1 << 30)) v = rint_(2) ? (1 << 30) - 1 : -(1 << 30) + 1;
        if (rint_(3) == 0) v = 0;
        lv[i] = (int32_t)v;
    }
    int64_t len = 0, cap = n * 48 + 16;
    uint8_t *buf = malloc((size_t)cap);
    n_runs++;
    if (nnc_cabac_encode(lv, n, buf, cap, &len) || len < 5 || len > cap) {
        fprintf(stderr, "cabac: encode of %lld valid levels failed\n", (long long)n);
        abort();
    }
    int64_t small = rint_(len), need = -1;
    uint8_t *sb = malloc((size_t)(small ? small : 1));
    if (nnc_cabac_encode(lv, n, small ? sb : NULL, small, &need) != NNC_ESPACE || need != len) {
        fprintf(stderr, "cabac: a cap of %lld of %lld bytes was not refused with the length\n", (long long)small,
                (long long)len);
        abort();
    }
    free(sb);
    for (int m = 0; m < 12; m++) {
        expect_ok = m == 0;
        int64_t len2 = len, n2 = n;
        uint8_t *s = dup_exact(buf, (size_t)len);
        if (m) switch (rint_(4)) {
            case 0: s[rint_(len)] ^= (uint8_t)(1u << rint_(8)); break;
            case 1: len2 = rint_(len); break;
            case 2: len2 = len + 1 + rint_(3); break; /* read from a longer copy below */
            default: n2 = n + (rint_(2) ? 1 : n ? -1 : 1);
            }
        uint8_t *s2 = malloc((size_t)(len2 ? len2 : 1));
        memcpy(s2, s, (size_t)(len2 < len ? len2 : len));
        for (int64_t i = len; i < len2; i++) s2[i] = (uint8_t)rnd();
        int32_t *out = dup_exact(got, (size_t)n2 * 4);
        int st = nnc_cabac_decode(len2 ? s2 : NULL, len2, n2 ? out : NULL, n2);
        n_runs++;
        if (st) {
            if (expect_ok) {
                fprintf(stderr, "cabac: a valid stream was rejected with status %d\n", st);
                abort();
            }
            n_fail++;
        } else {
            n_ok++;
            if (expect_ok && memcmp(out, lv, (size_t)n * 4)) {
                fprintf(stderr, "cabac: %lld levels did not round-trip\n", (long long)n);
                abort();
            }
            for (int64_t i = 0; i < n2; i++)
                if (out[i] >= (1 << 30) || out[i] <= -(1 << 30)) {
                    fprintf(stderr, "cabac: decoded a level out of range\n");
                    abort();
                }
        }
        free(s), free(s2), free(out);
    }
    free(lv), free(got), free(buf);
}

int main(int argc, char **argv) {
    long iters = argc > 1 ? atol(argv[1]) : 2000;
    if (argc > 2) rs ^= (uint64_t)atoll(argv[2]) * 0x9E3779B97F4A7C15ULL;
    for (long i = 0; i < iters; i++) {
        fuzz_ham();
        fuzz_sham();
        fuzz_im();
        fuzz_sparse();
        fuzz_psm();
        fuzz_sss();
        fuzz_dct();
        fuzz_lowrank();
        fuzz_cabac();
    }
    printf("fuzz: %ld kernel pairs run, %ld decoded, %ld rejected with a status, no crash\n", n_runs, n_ok, n_fail);
    return 0;
}
