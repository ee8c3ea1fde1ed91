/* sham: y = x @ W.T decoded straight from a bit stream of [gap][value code] entries (format:
 * src/nncompress/formats/sham.py; the stream layout and the code tables: nnc_huffman.h). A row is
 * entries until its end bit; gap coder 0 = Huffman with escape symbol E = n_gap_len - 1 followed by
 * escape_bits raw bits; 1 = exp-Golomb of order gap_order. Values are a canonical Huffman code of
 * codebook indices.
 *
 * With Huffman gaps four rows are decoded in step from a 2^13-entry, 2-byte table that gives a whole
 * [gap][value] entry per lookup (four independent dependency chains); batch 1 accumulates as it
 * decodes, a batch first writes a block of rows' entries out, then multiplies them with 8 items at a
 * time. Where that table cannot be built (k > 256) a 2^12-entry pair table serves one row at a time.
 * Both are filled by enumerating code pairs. */
#include "nnc_sham.h"

/* hv: value code; hg: gap code (huffman coder only; zeroed otherwise) */
int sham_prepare(SHAM_ARGS, huff **hv, huff **hg) {
    int st = nnc_check_dims(n_out, n_in, x, batch, y, threads);
    if (st) return st;
    if (k < 0 || k > 65536 || (k > 0 && !codebook)) return NNC_EARG;
    if (gap_coder == 0) {
        if (n_gap_len < 2 || n_gap_len > 65536 || escape_bits < 0 || escape_bits > 31) return NNC_EARG;
    } else if (gap_coder == 1) {
        if (gap_order < 0 || gap_order > 30) return NNC_EARG;
    } else
        return NNC_EARG;
    if ((st = rows_check(n_out, stream, n_words, row_bits, n_rbits, rbits_width))) return st;
    *hv = huff_new(k, 0);
    *hg = huff_new(gap_coder == 0 ? n_gap_len : 0, 0);
    if (!*hv || !*hg) st = NNC_ENOMEM;
    if (!st) st = huff_build(*hv, value_len, k);
    if (!st && gap_coder == 0) st = huff_build(*hg, gap_len, n_gap_len);
    if (st) {
        free(*hv);
        free(*hg);
    }
    return st;
}

int nnc_sham_dot_naive(SHAM_ARGS) {
    huff *hv = NULL, *hg = NULL;
    int st = sham_prepare(SHAM_PASS, &hv, &hg);
    if (st) return st;
    const int64_t limit = nnc_stream_bits(n_words);
    for (int64_t b = 0; b < batch && !st; b++)
        for (int64_t r = 0; r < n_out && !st; r++) {
            int64_t p = (int64_t)nnc_uget(row_bits, rbits_width, r), end = (int64_t)nnc_uget(row_bits, rbits_width, r + 1);
            int64_t col = -1;
            double acc = 0.0;
            while (p < end) {
                int64_t gap;
                if (gap_coder == 0) {
                    gap = huff_decode_naive(hg, stream, limit, &p);
                    if (gap < 0) {
                        st = NNC_ECODE;
                        break;
                    }
                    if (gap == n_gap_len - 1) gap += raw_naive(stream, limit, &p, escape_bits);
                } else {
                    int zeros = 0;
                    while (zeros <= 32 && raw_naive(stream, limit, &p, 1) == 0) zeros++;
                    if (zeros + gap_order + 1 > 32) {
                        st = NNC_ECODE;
                        break;
                    }
                    /* the leading 1 was consumed: read the other zeros + m bits */
                    gap = (((int64_t)1 << (zeros + gap_order)) | raw_naive(stream, limit, &p, zeros + gap_order)) -
                          ((int64_t)1 << gap_order);
                }
                col += 1 + gap;
                if (col >= n_in) {
                    st = NNC_EBOUNDS;
                    break;
                }
                int64_t s = huff_decode_naive(hv, stream, limit, &p);
                if (s < 0 || p > end) {
                    st = NNC_ECODE;
                    break;
                }
                acc += (double)codebook[s] * x[b * n_in + col];
            }
            if (!st && p != end) st = NNC_ECODE;
            y[b * n_out + r] = (float)acc;
        }
    free(hv);
    free(hg);
    return st;
}

/* Huffman gaps: one lookup on PAIR_BITS stream bits gives a whole [gap][value code] entry when both
 * codes fit in the window and the gap is no escape (len 0: decode the two codes one by one). */
#define PAIR_BITS 12
typedef struct {
    uint16_t gap, sym;
    uint8_t len;
} pair_entry;

/* Calls put(t, i, span, gap, sym, len) for every [gap][value code] entry that a bits-wide window can
 * decode at its top: both codes in the first-level tables (lut_bits), the gap no escape, the two
 * together at most bits long. Windows i .. i + span - 1 start with it; the others start with no such
 * entry and are left as the caller cleared them. Enumerating code pairs costs the pairs plus a store
 * per window, where decoding every window by the first-level tables made the tables the larger part
 * of a call on a small layer. */
typedef void pair_put(void *t, uint32_t i, uint32_t span, uint32_t gap, uint32_t sym, int len);
static inline __attribute__((always_inline)) void pair_fill(void *t, int bits, const huff *hg, const huff *hv,
                                                           int64_t escape, pair_put *put) {
    for (int lg = 1; lg <= hg->lut_bits && lg < bits; lg++)
        for (int64_t jg = 0; jg < hg->count[lg]; jg++) {
            const uint32_t gap = hg->sorted[hg->offset[lg] + jg];
            if ((int64_t)gap == escape) continue;
            const uint32_t cg = (uint32_t)(hg->first[lg] + jg);
            for (int lv = 1; lv <= hv->lut_bits && lg + lv <= bits; lv++)
                for (int64_t jv = 0; jv < hv->count[lv]; jv++) {
                    const uint32_t cv = (uint32_t)(hv->first[lv] + jv);
                    const int free_bits = bits - lg - lv;
                    put(t, ((cg << lv) | cv) << free_bits, (uint32_t)1 << free_bits, gap,
                        hv->sorted[hv->offset[lv] + jv], lg + lv);
                }
        }
}

static void pair_put_entry(void *t, uint32_t i, uint32_t span, uint32_t gap, uint32_t sym, int len) {
    const pair_entry e = {(uint16_t)gap, (uint16_t)sym, (uint8_t)len};
    for (uint32_t j = 0; j < span; j++) ((pair_entry *)t)[i + j] = e;
}

static void pair_build(pair_entry *t, const huff *hg, const huff *hv, int64_t escape) {
    memset(t, 0, sizeof(pair_entry) << PAIR_BITS);
    pair_fill(t, PAIR_BITS, hg, hv, escape, pair_put_entry);
}

/* The batch-1 lane kernel's table: a LANE_BITS (13, nnc_sham.h) window (one bit wider than
 * PAIR_BITS, which halves the entries that miss) packed in 2 bytes, so 16 KB sit beside x in L1:
 * length (4 bits), the value's codebook index (sb bits, k <= 2^sb), the column step gap + 1 (12 - sb
 * bits). 0: decode by the general path (codes too long together, an escape, or a step too wide for
 * its field). */
typedef struct {
    uint16_t *t;
    int sb;
} lane_dest;

static void lane_put(void *d, uint32_t i, uint32_t span, uint32_t gap, uint32_t sym, int len) {
    const lane_dest *l = (const lane_dest *)d;
    if (gap + 1 > ((uint32_t)1 << (12 - l->sb)) - 1) return; /* step too wide: stays 0 */
    const uint16_t e = (uint16_t)((uint32_t)len | (sym << 4) | ((gap + 1) << (4 + l->sb)));
    for (uint32_t j = 0; j < span; j++) l->t[i + j] = e;
}

void lane_build(uint16_t *t, const huff *hg, const huff *hv, int64_t escape, int sb) {
    memset(t, 0, sizeof(uint16_t) << LANE_BITS);
    lane_dest d = {t, sb};
    pair_fill(&d, LANE_BITS, hg, hv, escape, lane_put);
}

typedef struct {
    const huff *hv, *hg;
    const pair_entry *pair; /* NULL for exp-Golomb gaps and when lane is set */
    const uint16_t *lane;   /* lane_build's table: NULL unless Huffman gaps and k <= 256 */
    int lane_sb;            /* its codebook index bits */
    const double *cbd;      /* the codebook in double (with lane) */
    int64_t n_out, n_in, n_words, batch, escape;
    int gap_coder, escape_bits, gap_order;
    const float *codebook;
    const uint32_t *stream;
    const void *row_bits;
    int rbits_width;
    const float *x;
    float *y;
    const float *xi; /* nnc_interleave_x of x (batch > 1), or NULL */
} sham_ctx;

/* Decode row r once and accumulate for the nbv batch items at b0 (NB a compile-time constant when
 * nonzero, so the sums stay in registers). xc: the items' chunk of nnc_interleave_x (NB is then
 * NNC_BCH, the items past nbv zeros), or NULL to read x item by item. */
static inline __attribute__((always_inline)) int sham_row(const sham_ctx *q, int64_t r, int64_t b0, const int NB,
                                                          int nbv, const float *xc) {
    const int64_t n_in = q->n_in;
    const int nb = NB ? NB : nbv;
    const int64_t start = (int64_t)nnc_uget(q->row_bits, q->rbits_width, r);
    const int64_t end = (int64_t)nnc_uget(q->row_bits, q->rbits_width, r + 1);
    const float *xb = q->x + b0 * n_in;
    const float *cb = q->codebook;
    const pair_entry *pair = q->pair;
    double acc[NNC_BCH] = {0}, a0 = 0.0;
    int64_t p = start, col = -1;
    nnc_br br;
    if (p < end) nnc_br_init(&br, q->stream, q->n_words, p);
#define SHAM_ACC(V)                                                                                          \
    do {                                                                                                     \
        const double v_ = (V);                                                                               \
        if (NB == 1)                                                                                         \
            a0 += v_ * xb[col];                                                                              \
        else if (NB == NNC_BCH && xc)                                                                        \
            for (int b = 0; b < NNC_BCH; b++) acc[b] += v_ * xc[col * NNC_BCH + b];                          \
        else                                                                                                 \
            for (int b = 0; b < nb; b++) acc[b] += v_ * xb[b * n_in + col];                                  \
    } while (0)
    while (p < end) {
        int64_t gap;
        int len;
        if (pair) {
            nnc_br_refill(&br);
            const pair_entry e = pair[br.buf >> (64 - PAIR_BITS)];
            if (e.len) {
                br.buf <<= e.len;
                br.cnt -= e.len;
                p += e.len;
                col += 1 + (int64_t)e.gap;
                if (col >= n_in) return NNC_EBOUNDS;
                if (p > end) return NNC_ECODE;
                SHAM_ACC(cb[e.sym]);
                continue;
            }
        }
        if (q->gap_coder == 0) {
            gap = huff_decode(q->hg, &br, &len);
            if (gap < 0) return NNC_ECODE;
            p += len;
            if (gap == q->escape) {
                nnc_br_refill(&br);
                gap += (int64_t)nnc_br_take(&br, q->escape_bits);
                p += q->escape_bits;
            }
        } else {
            nnc_br_refill(&br);
            uint32_t top = (uint32_t)(br.buf >> 32);
            if (top == 0) return NNC_ECODE;
            int zeros = __builtin_clz(top), nbits = zeros + q->gap_order + 1;
            if (nbits > 32) return NNC_ECODE;
            nnc_br_take(&br, zeros);
            nnc_br_refill(&br);
            gap = (int64_t)nnc_br_take(&br, nbits) - ((int64_t)1 << q->gap_order);
            p += zeros + nbits;
        }
        col += 1 + gap;
        if (col >= n_in) return NNC_EBOUNDS;
        int64_t s = huff_decode(q->hv, &br, &len);
        if (s < 0) return NNC_ECODE;
        p += len;
        if (p > end) return NNC_ECODE;
        SHAM_ACC(cb[s]);
    }
#undef SHAM_ACC
    if (NB == 1) acc[0] = a0;
    for (int b = 0; b < nbv; b++) q->y[(b0 + b) * q->n_out + r] = (float)acc[b];
    return NNC_OK;
}

/* One row's decoding state, for the batch-1 kernel that decodes two rows in step (two independent
 * dependency chains through the bit buffers keep more of the core busy). */
typedef struct {
    nnc_br br;
    int64_t p, end, col;
    double a;
} sham_state;

static inline __attribute__((always_inline)) void sham_begin(const sham_ctx *q, sham_state *t, int64_t r) {
    t->p = (int64_t)nnc_uget(q->row_bits, q->rbits_width, r);
    t->end = (int64_t)nnc_uget(q->row_bits, q->rbits_width, r + 1);
    t->col = -1;
    t->a = 0.0;
    if (t->p < t->end)
        nnc_br_init(&t->br, q->stream, q->n_words, t->p);
    else /* never read (the row has no entries); set so that the compiler can see it is defined */
        t->br = (nnc_br){q->stream, q->n_words, 0, 0, 0};
}

/* Decode the next [gap][value] entry of a row (the caller checked p < end): t->col steps to its
 * column, *w gets its value. */
static inline __attribute__((always_inline)) int sham_next(const sham_ctx *q, sham_state *t, double *w) {
    int64_t gap;
    int len;
    nnc_br_refill(&t->br);
    if (q->pair) {
        const pair_entry e = q->pair[t->br.buf >> (64 - PAIR_BITS)];
        if (e.len) {
            t->br.buf <<= e.len;
            t->br.cnt -= e.len;
            t->p += e.len;
            t->col += 1 + (int64_t)e.gap;
            if (t->col >= q->n_in) return NNC_EBOUNDS;
            if (t->p > t->end) return NNC_ECODE;
            *w = q->codebook[e.sym];
            return NNC_OK;
        }
    }
    if (q->gap_coder == 0) {
        gap = huff_decode(q->hg, &t->br, &len);
        if (gap < 0) return NNC_ECODE;
        t->p += len;
        if (gap == q->escape) {
            nnc_br_refill(&t->br);
            gap += (int64_t)nnc_br_take(&t->br, q->escape_bits);
            t->p += q->escape_bits;
        }
    } else {
        uint32_t top = (uint32_t)(t->br.buf >> 32);
        if (top == 0) return NNC_ECODE;
        int zeros = __builtin_clz(top), nbits = zeros + q->gap_order + 1;
        if (nbits > 32) return NNC_ECODE;
        nnc_br_take(&t->br, zeros);
        nnc_br_refill(&t->br);
        gap = (int64_t)nnc_br_take(&t->br, nbits) - ((int64_t)1 << q->gap_order);
        t->p += zeros + nbits;
    }
    t->col += 1 + gap;
    if (t->col >= q->n_in) return NNC_EBOUNDS;
    int64_t s = huff_decode(q->hv, &t->br, &len);
    if (s < 0) return NNC_ECODE;
    t->p += len;
    if (t->p > t->end) return NNC_ECODE;
    *w = q->codebook[s];
    return NNC_OK;
}

/* One entry of a batch-1 row, accumulated. */
static inline __attribute__((always_inline)) int sham_step(const sham_ctx *q, sham_state *t) {
    double w = 0.0;
    const int st = sham_next(q, t, &w);
    if (!st) t->a += w * q->x[t->col];
    return st;
}

/* batch 1: rows r and r + 1 decoded in step, then whichever is longer finished alone */
static int sham_rows_1(const sham_ctx *q, int64_t r0, int64_t r1) {
    int64_t r = r0;
    for (; r + 1 < r1; r += 2) {
        sham_state u, v;
        sham_begin(q, &u, r);
        sham_begin(q, &v, r + 1);
        int st, sv = NNC_OK; /* an error of row r + 1 counts only once row r decoded */
        while (u.p < u.end && v.p < v.end) {
            if ((st = sham_step(q, &u))) return st;
            if ((sv = sham_step(q, &v))) break;
        }
        while (u.p < u.end)
            if ((st = sham_step(q, &u))) return st;
        if (sv) return sv;
        while (v.p < v.end)
            if ((st = sham_step(q, &v))) return st;
        q->y[r] = (float)u.a;
        q->y[r + 1] = (float)v.a;
    }
    for (; r < r1; r++) {
        sham_state u;
        sham_begin(q, &u, r);
        int st;
        while (u.p < u.end)
            if ((st = sham_step(q, &u))) return st;
        q->y[r] = (float)u.a;
    }
    return NNC_OK;
}

/* The general path for one entry of a lane's row (escapes, long codes), out of the hot loop. */
typedef struct {
    int64_t pos, col;
    double acc, w; /* acc: the sum with this entry (batch 1); w: its value (batched, EMIT) */
    int st;
} lane_out;

static __attribute__((noinline)) lane_out sham_lane_slow(const sham_ctx *q, int64_t pos, int64_t end, int64_t col,
                                                         double acc) {
    sham_state t = {.p = pos, .end = end, .col = col, .a = acc};
    nnc_br_init(&t.br, q->stream, q->n_words, pos);
    double w = 0.0;
    const int st = sham_next(q, &t, &w);
    if (!st) t.a += w * q->x[t.col]; /* x of item 0 when batched: read, not used */
    return (lane_out){t.p, t.col, t.a, w, st};
}



/* batch 1 with the lane table: SHAM_LANES rows decoded in step, each lane taking the next row when
 * its own ends, so that the decoders' dependency chains (peek, table lookup, shift) of different
 * rows overlap. Any error reruns the rows in order with sham_rows_1, so the status is the one the
 * first bad row gives. */
#define SHAM_LANES 4
static inline __attribute__((always_inline)) int sham_lanes(const sham_ctx *q, int64_t r0, int64_t r1,
                                                            const int sb, const int EMIT, const row_emit *em) {
    const uint16_t *T = q->lane;
    const int step_shift = 4 + sb;
    const uint32_t smask = ((uint32_t)1 << sb) - 1;
    const uint32_t *w = q->stream;
    const double *cbd = q->cbd;
    const float *x = q->x;
    const int64_t n_in = q->n_in, escape = q->escape;
    const uint32_t *glut = q->hg->lut, *vlut = q->hv->lut; /* both lut_bits >= 1: lane was built */
    const int gshift = 64 - q->hg->lut_bits, vshift = 64 - q->hv->lut_bits;
    /* lane state in plain scalars (not arrays) so that it stays in registers */
    int64_t pos0 = 0, pos1 = 0, pos2 = 0, pos3 = 0, end0 = 0, end1 = 0, end2 = 0, end3 = 0;
    int64_t col0 = -1, col1 = -1, col2 = -1, col3 = -1, row0 = -1, row1 = -1, row2 = -1, row3 = -1;
    double acc0 = 0.0, acc1 = 0.0, acc2 = 0.0, acc3 = 0.0;
    int64_t eo0 = 0, eo1 = 0, eo2 = 0, eo3 = 0; /* EMIT: each lane's next slot */
    int64_t next = r0;
#define LANE_ACC(j, V)                                                                                       \
    do {                                                                                                     \
        if (EMIT) {                                                                                          \
            em->col[eo##j] = (int32_t)col##j;                                                                \
            em->val[eo##j++] = (float)(V);                                                                   \
        } else                                                                                               \
            acc##j += (V) * (double)x[col##j];                                                               \
    } while (0)
#define LANE_STEP(j)                                                                                         \
    if (__builtin_expect(pos##j < end##j, 1)) {                                                              \
        const uint32_t e = T[peek64(w, pos##j) >> (64 - LANE_BITS)];                                         \
        if (__builtin_expect((e & 15) != 0, 1)) {                                                            \
            pos##j += e & 15;                                                                                \
            col##j += e >> step_shift;                                                                       \
            if (__builtin_expect(col##j >= n_in, 0)) goto fail;                                              \
            LANE_ACC(j, cbd[(e >> 4) & smask]);                                                              \
        } else { /* the two codes one by one, by the first-level tables, when neither is long */           \
            const uint64_t v = peek64(w, pos##j);                                                            \
            const uint32_t eg = glut[v >> gshift];                                                           \
            const int lg = (int)(eg & 0xff);                                                                 \
            const uint32_t ev = vlut[(v << lg) >> vshift];                                                   \
            const int lv = (int)(ev & 0xff);                                                                 \
            if (lg && lv && (int64_t)(eg >> 8) != escape) {                                                  \
                pos##j += lg + lv;                                                                           \
                col##j += (int64_t)(eg >> 8) + 1;                                                            \
                if (__builtin_expect(col##j >= n_in, 0)) goto fail;                                          \
                LANE_ACC(j, (double)q->codebook[ev >> 8]);                                                   \
            } else {                                                                                         \
                const lane_out o = sham_lane_slow(q, pos##j, end##j, col##j, acc##j);                        \
                if (o.st) goto fail;                                                                         \
                pos##j = o.pos;                                                                              \
                col##j = o.col;                                                                              \
                if (EMIT)                                                                                    \
                    LANE_ACC(j, o.w);                                                                        \
                else                                                                                         \
                    acc##j = o.acc;                                                                          \
            }                                                                                                \
        }                                                                                                    \
    } else {                                                                                                 \
        if (row##j >= 0) {                                                                                   \
            if (pos##j != end##j) goto fail;                                                                 \
            if (EMIT)                                                                                        \
                em->count[row##j - r0] = eo##j - em->base[row##j - r0];                                      \
            else                                                                                             \
                q->y[row##j] = (float)acc##j;                                                                \
            row##j = -1;                                                                                     \
        }                                                                                                    \
        if (next >= r1) goto drain;                                                                          \
        row##j = next++;                                                                                     \
        pos##j = (int64_t)nnc_uget(q->row_bits, q->rbits_width, row##j);                                     \
        end##j = (int64_t)nnc_uget(q->row_bits, q->rbits_width, row##j + 1);                                 \
        col##j = -1;                                                                                         \
        acc##j = 0.0;                                                                                        \
        if (EMIT) eo##j = em->base[row##j - r0];                                                             \
    }
    for (;;) {
        LANE_STEP(0)
        LANE_STEP(1)
        LANE_STEP(2)
        LANE_STEP(3)
    }
#undef LANE_STEP
#undef LANE_ACC
drain:; /* the rows still in the other lanes, one at a time */
    const int64_t rows[SHAM_LANES] = {row0, row1, row2, row3}, poss[SHAM_LANES] = {pos0, pos1, pos2, pos3};
    const int64_t ends[SHAM_LANES] = {end0, end1, end2, end3}, cols[SHAM_LANES] = {col0, col1, col2, col3};
    const double accs[SHAM_LANES] = {acc0, acc1, acc2, acc3};
    int64_t eos[SHAM_LANES] = {eo0, eo1, eo2, eo3};
    for (int j = 0; j < SHAM_LANES; j++) {
        if (rows[j] < 0) continue;
        sham_state t = {.p = poss[j], .end = ends[j], .col = cols[j], .a = accs[j]};
        if (t.p < t.end) nnc_br_init(&t.br, q->stream, q->n_words, t.p);
        while (t.p < t.end) {
            double v = 0.0;
            if (sham_next(q, &t, &v)) goto fail;
            if (EMIT) {
                em->col[eos[j]] = (int32_t)t.col;
                em->val[eos[j]++] = (float)v;
            } else
                t.a += v * q->x[t.col];
        }
        if (t.p != t.end) goto fail;
        if (EMIT)
            em->count[rows[j] - r0] = eos[j] - em->base[rows[j] - r0];
        else
            q->y[rows[j]] = (float)t.a;
    }
    return NNC_OK;
fail: /* batched: the caller decodes the rows again, in order, for the status of the first bad one */
    return EMIT ? NNC_ECODE : sham_rows_1(q, r0, r1);
}

/* The lane table's field widths as constants for k <= 32 (shifts by immediates, 6 % faster), else
 * read from the context. */
static int sham_rows_lanes_k32(const sham_ctx *q, int64_t r0, int64_t r1) {
    return sham_lanes(q, r0, r1, 5, 0, NULL);
}
static int sham_rows_lanes_k256(const sham_ctx *q, int64_t r0, int64_t r1) {
    return sham_lanes(q, r0, r1, q->lane_sb, 0, NULL);
}
static int sham_emit_k32(const sham_ctx *q, int64_t r0, int64_t r1, const row_emit *em) {
    return sham_lanes(q, r0, r1, 5, 1, em);
}
static int sham_emit_k256(const sham_ctx *q, int64_t r0, int64_t r1, const row_emit *em) {
    return sham_lanes(q, r0, r1, q->lane_sb, 1, em);
}

/* batch > 1 on interleaved x: each row decoded once per NNC_BCH items, their values of a column
 * read as one run (an x86-64-v3 copy of this loop measured no faster) */
static int sham_rows_xi(const sham_ctx *q, int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++)
        for (int64_t b0 = 0; b0 < q->batch; b0 += NNC_BCH) {
            const int nb = (int)(q->batch - b0 < NNC_BCH ? q->batch - b0 : NNC_BCH);
            const int st = sham_row(q, r, b0, NNC_BCH, nb, q->xi + b0 * q->n_in);
            if (st) return st;
        }
    return NNC_OK;
}

/* batched with the lane table (rows_emit): the four lanes decode a block of rows into their
 * entries; sham_rows_xi is the fallback. */
static int sham_decode_emit(const void *ctx, int64_t r0, int64_t r1, const row_emit *em) {
    const sham_ctx *q = (const sham_ctx *)ctx;
    return q->lane_sb == 5 ? sham_emit_k32(q, r0, r1, em) : sham_emit_k256(q, r0, r1, em);
}
static int sham_rows_xi_fn(const void *ctx, int64_t r0, int64_t r1) {
    return sham_rows_xi((const sham_ctx *)ctx, r0, r1);
}

static int sham_rows(const void *vctx, int64_t r0, int64_t r1) {
    const sham_ctx *q = (const sham_ctx *)vctx;
    if (q->batch == 1 && q->lane)
        return q->lane_sb == 5 ? sham_rows_lanes_k32(q, r0, r1) : sham_rows_lanes_k256(q, r0, r1);
    if (q->batch == 1) return sham_rows_1(q, r0, r1);
    if (q->xi && q->lane) {
        const emit_job jb = {q->n_out, q->n_in, q->batch, q->xi, q->y, q->row_bits, q->rbits_width};
        return rows_emit(q, &jb, sham_decode_emit, sham_rows_xi_fn, r0, r1);
    }
    if (q->xi) return sham_rows_xi(q, r0, r1);
    for (int64_t r = r0; r < r1; r++)
        for (int64_t b0 = 0; b0 < q->batch; b0 += NNC_BCH) {
            int nb = (int)(q->batch - b0 < NNC_BCH ? q->batch - b0 : NNC_BCH);
            int st = nb == 1 ? sham_row(q, r, b0, 1, 1, NULL)
                             : nb == NNC_BCH ? sham_row(q, r, b0, NNC_BCH, nb, NULL) : sham_row(q, r, b0, 0, nb, NULL);
            if (st) return st;
        }
    return NNC_OK;
}

int nnc_sham_dot(SHAM_ARGS) {
    huff *hv = NULL, *hg = NULL;
    int st = sham_prepare(SHAM_PASS, &hv, &hg);
    if (st) return st;
    uint16_t *lane = NULL;
    double *cbd = NULL;
    int sb = 5; /* the codebook index field: 5 bits up to k = 32, then as wide as k needs */
    while (((int64_t)1 << sb) < k) sb++;
    if (gap_coder == 0 && k <= 256 && hg->lut_bits && hv->lut_bits) {
        lane = (uint16_t *)malloc(sizeof(uint16_t) << LANE_BITS);
        cbd = (double *)malloc(sizeof(double) * (size_t)(k ? k : 1));
        if (lane && cbd) {
            lane_build(lane, hg, hv, n_gap_len - 1, sb);
            for (int64_t s = 0; s < k; s++) cbd[s] = codebook[s];
        } else {
            free(lane);
            free(cbd);
            lane = NULL;
            cbd = NULL;
        }
    }
    /* The lane kernel has no use for the pair table: what its own table misses it decodes by the
     * first-level tables, and what those miss (a long code, an escape) the pair table misses too. */
    pair_entry *pair = NULL;
    if (gap_coder == 0 && !lane) {
        pair = (pair_entry *)malloc(sizeof(pair_entry) << PAIR_BITS);
        if (!pair) {
            free(hv);
            free(hg);
            return NNC_ENOMEM;
        }
        pair_build(pair, hg, hv, n_gap_len - 1);
    }
    float *xi = nnc_interleave_x(x, batch, n_in); /* NULL: x read item by item, same sums */
    sham_ctx q = {hv, hg, pair, lane, sb, cbd, n_out, n_in, n_words, batch, n_gap_len - 1, gap_coder, escape_bits,
                  gap_order, codebook, stream, row_bits, rbits_width, x, y, xi};
    st = nnc_run_rows(sham_rows, &q, n_out, threads);
    free(xi);
    free(lane);
    free(cbd);
    free(pair);
    free(hv);
    free(hg);
    return st;
}
