/* ham: y = x @ W.T decoded straight from a canonical Huffman bit stream of codebook indices (format:
 * src/nncompress/formats/ham.py; the stream layout and the code tables: nnc_huffman.h). Every row
 * holds exactly n_in codes and ends on its offset.
 *
 * When the first canonical code (all 0 bits) stands for 0.0, a run of zeros is counted with one clz
 * on the bit buffer; ham's row loops are also compiled for x86-64-v3 (NNC_CLONES: lzcnt). ham also
 * uses a second 2^11-entry table giving up to 4 whole short codes per window (many symbols per
 * lookup). */
#include "nnc_huffman.h"

#define HAM_ARGS                                                                                             \
    int64_t n_out, int64_t n_in, const float *codebook, const uint8_t *code_len, int64_t k,                  \
        const uint32_t *stream, int64_t n_words, const void *row_bits, int64_t n_rbits, int rbits_width,     \
        const float *x, int64_t batch, float *y, int threads

static int ham_prepare(HAM_ARGS, huff **hp) {
    int st = nnc_check_dims(n_out, n_in, x, batch, y, threads);
    if (st) return st;
    if (k < 1 || k > 65536 || !codebook) return NNC_EARG;
    if ((st = rows_check(n_out, stream, n_words, row_bits, n_rbits, rbits_width))) return st;
    huff *h = huff_new(k, 1);
    if (!h) return NNC_ENOMEM;
    if ((st = huff_build(h, code_len, k))) {
        free(h);
        return st;
    }
    *hp = h;
    return NNC_OK;
}

int nnc_ham_dot_naive(HAM_ARGS) {
    huff *h = NULL;
    int st = ham_prepare(n_out, n_in, codebook, code_len, k, stream, n_words, row_bits, n_rbits, rbits_width, x,
                         batch, y, threads, &h);
    if (st) return st;
    const int64_t limit = nnc_stream_bits(n_words);
    for (int64_t b = 0; b < batch && !st; b++)
        for (int64_t r = 0; r < n_out && !st; r++) {
            int64_t p = (int64_t)nnc_uget(row_bits, rbits_width, r), end = (int64_t)nnc_uget(row_bits, rbits_width, r + 1);
            double acc = 0.0;
            for (int64_t c = 0; c < n_in; c++) {
                int64_t s = huff_decode_naive(h, stream, limit, &p);
                if (s < 0 || p > end) {
                    st = NNC_ECODE;
                    break;
                }
                acc += (double)codebook[s] * x[b * n_in + c];
            }
            if (!st && p != end) st = NNC_ECODE;
            y[b * n_out + r] = (float)acc;
        }
    free(h);
    return st;
}

typedef struct {
    const huff *h;
    int64_t n_out, n_in, n_words, batch;
    int zskip; /* the all-zero-bits code stands for 0.0: its runs are counted with clz, not decoded */
    const float *codebook;
    const uint32_t *stream;
    const void *row_bits;
    int rbits_width;
    const float *x;
    float *y;
    const float *xi; /* nnc_interleave_x of x when batched and the lanes apply, else NULL */
} ham_ctx;

/* Decode row r once and accumulate codebook[s] * x[b, c] for NB batch items (NB a compile-time
 * constant, so the sums stay in registers). */
#define HAM_ROW(NAME, NB)                                                                                    \
    NNC_CLONES static int NAME(const ham_ctx *q, int64_t r, int64_t b0, int nbv) {                           \
        const int64_t n_in = q->n_in;                                                                        \
        const int nb = (NB) ? (NB) : nbv;                                                                    \
        const float *xb = q->x + b0 * n_in;                                                                  \
        const float *cb = q->codebook;                                                                       \
        const huff *h = q->h;                                                                                \
        const int lb = h->lut_bits;                                                                          \
        int64_t start = (int64_t)nnc_uget(q->row_bits, q->rbits_width, r);                                   \
        int64_t end = (int64_t)nnc_uget(q->row_bits, q->rbits_width, r + 1);                                 \
        double acc[NNC_BCH] = {0}, a0 = 0.0, a1 = 0.0;                                                       \
        nnc_br br;                                                                                           \
        nnc_br_init(&br, q->stream, q->n_words, start);                                                      \
        int64_t used = 0, c = 0;                                                                             \
        const int zl = h->zlen;                                                                              \
        while (q->zskip && c < n_in) { /* a run of zero codes, then one other code */                        \
            nnc_br_refill(&br); /* >= 33 bits buffered, the bits below them zero */                          \
            int z = br.buf ? __builtin_clzll(br.buf) : 64;                                                   \
            if (z > 32) z = 32;                                                                              \
            int64_t run = zl == 1 ? z : z / zl;                                                              \
            if (run > n_in - c) run = n_in - c;                                                              \
            const int zb = (int)run * zl;                                                                    \
            br.buf <<= zb;                                                                                   \
            br.cnt -= zb;                                                                                    \
            used += zb;                                                                                      \
            c += run;                                                                                        \
            if (z == 32 || c == n_in) continue; /* the run may go on */                                      \
            int len;                                                                                         \
            int64_t s = huff_decode(h, &br, &len);                                                           \
            if (s < 0) return NNC_ECODE;                                                                     \
            used += len;                                                                                     \
            double w = cb[s];                                                                                \
            if ((NB) == 1)                                                                                   \
                a0 += w * xb[c];                                                                             \
            else                                                                                             \
                for (int b = 0; b < nb; b++) acc[b] += w * xb[b * n_in + c];                                 \
            c++;                                                                                             \
        }                                                                                                    \
        while (c < n_in) {                                                                                   \
            nnc_br_refill(&br);                                                                              \
            if (lb) { /* several short codes per table lookup */                                             \
                const uint64_t v = br.buf >> (64 - lb);                                                      \
                const int n = h->multi[v].n;                                                                 \
                if (n && c + n <= n_in) {                                                                    \
                    for (int j = 0; j < n; j++, c++) {                                                       \
                        double w = cb[h->multi[v].sym[j]];                                                   \
                        if ((NB) == 1) {                                                                     \
                            if (j & 1) a1 += w * xb[c];                                                      \
                            else a0 += w * xb[c];                                                            \
                        } else                                                                               \
                            for (int b = 0; b < nb; b++) acc[b] += w * xb[b * n_in + c];                     \
                    }                                                                                        \
                    const int len = h->multi[v].len;                                                         \
                    br.buf <<= len;                                                                          \
                    br.cnt -= len;                                                                           \
                    used += len;                                                                             \
                    continue;                                                                                \
                }                                                                                            \
            }                                                                                                \
            int len;                                                                                         \
            int64_t s = huff_decode(h, &br, &len);                                                           \
            if (s < 0) return NNC_ECODE;                                                                     \
            used += len;                                                                                     \
            double w = cb[s];                                                                                \
            if ((NB) == 1)                                                                                   \
                a0 += w * xb[c];                                                                             \
            else                                                                                             \
                for (int b = 0; b < nb; b++) acc[b] += w * xb[b * n_in + c];                                 \
            c++;                                                                                             \
        }                                                                                                    \
        if (start + used != end) return NNC_ECODE;                                                           \
        if ((NB) == 1) acc[0] = a0 + a1;                                                                     \
        for (int b = 0; b < nb; b++) q->y[(b0 + b) * q->n_out + r] = (float)acc[b];                          \
        return NNC_OK;                                                                                       \
    }
HAM_ROW(ham_row_1, 1)
HAM_ROW(ham_row_8, NNC_BCH)
HAM_ROW(ham_row_n, 0)

static int ham_rows_plain(const ham_ctx *q, int64_t r0, int64_t r1);


/* A long code (past the first-level table) of a lane's row, out of the hot loop: its symbol and
 * length, or a negative symbol for a bit pattern that is no code. */
typedef struct {
    int64_t sym;
    int len;
} code_out;

static __attribute__((noinline)) code_out ham_lane_slow(const ham_ctx *q, int64_t pos) {
    nnc_br br;
    nnc_br_init(&br, q->stream, q->n_words, pos);
    code_out o = {0, 0};
    o.sym = huff_decode(q->h, &br, &o.len);
    return o;
}

/* batch 1 when the 1-bit code 0 stands for 0.0 (any matrix more than half zeros): four rows decoded
 * in step, each lane taking the next row when its own ends. A step counts a run of zero codes with
 * one clz on a 64-bit peek and decodes the nonzero after it from the same peek, so the cost goes
 * with the nonzeros, and the lanes' dependency chains (peek, clz, table lookup) overlap. Any error
 * reruns the rows in order with ham_row_1, so the status is the one the first bad row gives. */
static inline __attribute__((always_inline)) int ham_lanes(const ham_ctx *q, int64_t r0, int64_t r1,
                                                           const int EMIT, const row_emit *em) {
    const uint32_t *w = q->stream;
    const uint32_t *lut = q->h->lut;
    const int lshift = 64 - q->h->lut_bits, lb = q->h->lut_bits;
    const float *x = q->x, *cb = q->codebook;
    const int64_t n_in = q->n_in;
    int64_t pos0 = 0, pos1 = 0, pos2 = 0, pos3 = 0, end0 = 0, end1 = 0, end2 = 0, end3 = 0;
    int64_t col0 = 0, col1 = 0, col2 = 0, col3 = 0; /* lanes start with no row */
    int64_t row0 = -1, row1 = -1, row2 = -1, row3 = -1;
    double acc0 = 0.0, acc1 = 0.0, acc2 = 0.0, acc3 = 0.0;
    int64_t eo0 = 0, eo1 = 0, eo2 = 0, eo3 = 0; /* EMIT: each lane's next slot */
    int finished = 0;                           /* EMIT: lanes with no row left */
    int64_t next = r0;
#define HAM_LANE(j)                                                                                          \
    if (__builtin_expect(pos##j < end##j, 1)) {                                                              \
        /* a run of zero codes by one clz, then the code after it from the same 64-bit peek: its low s    \
         * bits are fill, so the last valid bit is set to 1 and z counts only valid zero bits */             \
        const int64_t s_ = pos##j & 31;                                                                      \
        const uint64_t v_ = peek64(w, pos##j) | ((uint64_t)1 << s_);                                         \
        const int64_t z = __builtin_clzll(v_);                                                               \
        pos##j += z;                                                                                         \
        col##j += z;                                                                                         \
        if (__builtin_expect(pos##j < end##j, 1)) {                                                          \
            if (__builtin_expect(z < 63 - s_, 1)) { /* a nonzero code follows the run */                      \
                uint32_t e;                                                                                  \
                if (__builtin_expect(z + lb <= 63 - s_, 1)) /* the code's window is inside the peek */       \
                    e = lut[(v_ << z) >> lshift];                                                            \
                else                                                                                         \
                    e = lut[peek64(w, pos##j) >> lshift];                                                    \
                int64_t sym = e >> 8;                                                                        \
                int len = (int)(e & 0xff);                                                                   \
                if (__builtin_expect(!len, 0)) {                                                             \
                    const code_out o = ham_lane_slow(q, pos##j);                                             \
                    if (o.sym < 0) goto fail;                                                                \
                    sym = o.sym;                                                                             \
                    len = o.len;                                                                             \
                }                                                                                            \
                if (__builtin_expect(col##j >= n_in, 0)) goto fail;                                          \
                pos##j += len;                                                                               \
                if (EMIT) {                                                                                  \
                    em->col[eo##j] = (int32_t)col##j;                                                        \
                    em->val[eo##j++] = cb[sym];                                                              \
                } else                                                                                       \
                    acc##j += (double)cb[sym] * (double)x[col##j];                                           \
                col##j++;                                                                                    \
            }                                                                                                \
        } else { /* the run reached the row's end: the zero bits past it are the next row's */                \
            col##j -= pos##j - end##j;                                                                       \
            pos##j = end##j;                                                                                 \
        }                                                                                                    \
    } else {                                                                                                 \
        if (row##j >= 0) {                                                                                   \
            if (pos##j != end##j || col##j != n_in) goto fail;                                               \
            if (EMIT)                                                                                        \
                em->count[row##j - r0] = eo##j - em->base[row##j - r0];                                      \
            else                                                                                             \
                q->y[row##j] = (float)acc##j;                                                                \
            row##j = -1;                                                                                     \
        }                                                                                                    \
        if (next >= r1) {                                                                                    \
            if (!EMIT) goto drain;                                                                           \
            if (row##j == -1) { /* batched: this lane idles until the others end their rows */              \
                row##j = -2;                                                                                 \
                if (++finished == 4) return NNC_OK;                                                          \
            }                                                                                                \
        } else {                                                                                             \
            row##j = next++;                                                                                 \
            pos##j = (int64_t)nnc_uget(q->row_bits, q->rbits_width, row##j);                                 \
            end##j = (int64_t)nnc_uget(q->row_bits, q->rbits_width, row##j + 1);                             \
            col##j = 0;                                                                                      \
            acc##j = 0.0;                                                                                    \
            if (EMIT) eo##j = em->base[row##j - r0];                                                         \
        }                                                                                                    \
    }
    if (n_in == 0) return EMIT ? NNC_ECODE : ham_rows_plain(q, r0, r1);
    for (;;) {
        HAM_LANE(0)
        HAM_LANE(1)
        HAM_LANE(2)
        HAM_LANE(3)
    }
#undef HAM_LANE
drain:; /* the rows still in the other lanes, from the start, one at a time */
    const int64_t rows[4] = {row0, row1, row2, row3};
    for (int j = 0; j < 4; j++)
        if (rows[j] >= 0 && ham_row_1(q, rows[j], 0, 1)) goto fail;
    return NNC_OK;
fail: /* batched: the caller decodes the rows again, in order, for the status of the first bad one */
    return EMIT ? NNC_ECODE : ham_rows_plain(q, r0, r1);
}

NNC_CLONES static int ham_rows_lanes(const ham_ctx *q, int64_t r0, int64_t r1) {
    return ham_lanes(q, r0, r1, 0, NULL);
}
NNC_CLONES static int ham_emit(const ham_ctx *q, int64_t r0, int64_t r1, const row_emit *em) {
    return ham_lanes(q, r0, r1, 1, em);
}

static int ham_decode_emit(const void *ctx, int64_t r0, int64_t r1, const row_emit *em) {
    return ham_emit((const ham_ctx *)ctx, r0, r1, em);
}
static int ham_rows_plain_fn(const void *ctx, int64_t r0, int64_t r1) {
    return ham_rows_plain((const ham_ctx *)ctx, r0, r1);
}

/* The zero-run lanes need the 1-bit code 0 to stand for 0.0, and a first-level table. */
static int ham_lanes_apply(const huff *h, int zskip) { return zskip && h->zlen == 1 && h->lut_bits; }

/* the lanes where they apply: accumulating (batch 1) or decoding for rows_emit */
static int ham_rows(const void *vctx, int64_t r0, int64_t r1) {
    const ham_ctx *q = (const ham_ctx *)vctx;
    const int lanes = ham_lanes_apply(q->h, q->zskip);
    if (q->batch == 1 && lanes) return ham_rows_lanes(q, r0, r1);
    if (q->xi && lanes) {
        const emit_job jb = {q->n_out, q->n_in, q->batch, q->xi, q->y, q->row_bits, q->rbits_width};
        return rows_emit(q, &jb, ham_decode_emit, ham_rows_plain_fn, r0, r1);
    }
    return ham_rows_plain(q, r0, r1);
}

static int ham_rows_plain(const ham_ctx *q, int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++)
        for (int64_t b0 = 0; b0 < q->batch; b0 += NNC_BCH) {
            int nb = (int)(q->batch - b0 < NNC_BCH ? q->batch - b0 : NNC_BCH);
            int st = nb == 1 ? ham_row_1(q, r, b0, 1) : nb == NNC_BCH ? ham_row_8(q, r, b0, nb) : ham_row_n(q, r, b0, nb);
            if (st) return st;
        }
    return NNC_OK;
}

int nnc_ham_dot(HAM_ARGS) {
    huff *h = NULL;
    int st = ham_prepare(n_out, n_in, codebook, code_len, k, stream, n_words, row_bits, n_rbits, rbits_width, x,
                         batch, y, threads, &h);
    if (st) return st;
    const int zskip = h->zlen > 0 && codebook[h->zsym] == 0.0f;
    /* NULL (batch 1, or out of memory): the strided row loop, same sums */
    float *xi = ham_lanes_apply(h, zskip) ? nnc_interleave_x(x, batch, n_in) : NULL;
    ham_ctx q = {h, n_out, n_in, n_words, batch, zskip, codebook, stream, row_bits, rbits_width, x, y, xi};
    st = nnc_run_rows(ham_rows, &q, n_out, threads);
    free(xi);
    free(h);
    return st;
}
