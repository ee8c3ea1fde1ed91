/* ham and sham: y = x @ W.T decoded straight from canonical Huffman bit streams.
 *
 * Layout (src/nncompress/formats/ham.py, sham.py, _huffman.py, _bits.py): uint32 words, MSB-first,
 * the last word a zero guard; row r is stream bits row_bits[r]:row_bits[r+1] (row_bits width
 * 1/2/4/8 bytes). Codes are canonical, rebuilt here from the stored uint8 code lengths (<= 24
 * bits; one present symbol has the 1-bit code 0; otherwise Kraft's sum must be exactly 1). The
 * decode tables are derived on every call (O(k + 2^13)) and are not part of the format's bytes.
 * ham: every row holds exactly n_in codes of codebook indices and ends on its offset.
 * sham: a row is [gap][value code] entries until its end bit; gap coder 0 = Huffman with escape
 * symbol E = n_gap_len - 1 followed by escape_bits raw bits; 1 = exp-Golomb of order gap_order.
 *
 * Decoding: a 2^11-entry first-level table gives (symbol, length) for codes of <= 11 bits; longer
 * codes (up to 24) take the canonical per-length comparison on a 24-bit peek.
 * ham: when the first canonical code (all 0 bits) stands for 0.0, a run of zeros is counted with one
 * clz on the bit buffer; ham's row loops are also compiled for x86-64-v3 (NNC_CLONES: lzcnt). ham
 * also uses a second 2^11-entry table giving up to 4 whole short codes per window (many symbols per
 * lookup). sham with Huffman gaps: four rows are decoded in step from a 2^13-entry, 2-byte table
 * that gives a whole [gap][value] entry per lookup (four independent dependency chains); batch 1
 * accumulates as it decodes, a batch first writes a block of rows' entries out, then multiplies them
 * with 8 items at a time. Where that table cannot be built (k > 256) a 2^12-entry pair table serves
 * one row at a time. Both are filled by enumerating code pairs. Bits come from a 64-bit buffer
 * refilled a word at a time; words past the stream read as zero, so a corrupt code can never read
 * outside the array; it is caught by the row end check (NNC_ECODE). Row offsets outside the stream
 * are NNC_EBOUNDS. The *_naive kernels decode bit by bit (the reference). */
#include "nnc_common.h"

#define MAX_LEN 24
#define LUT_BITS 11
#define MULTI 4

typedef struct {
    uint16_t sym[MULTI];
    uint8_t n, len;
} huff_multi; /* up to MULTI whole codes inside one lut_bits-bit window */

typedef struct {
    int max_len, lut_bits, n_present;
    int zlen;      /* length of the all-zero-bits code (the first canonical code); 0: no code */
    uint16_t zsym; /* its symbol */
    int64_t first[MAX_LEN + 2], count[MAX_LEN + 2], offset[MAX_LEN + 2];
    uint32_t lut[1 << LUT_BITS]; /* (symbol << 8) | length; length 0: longer code or no code */
    huff_multi *multi;           /* 2^LUT_BITS windows, in the same allocation; NULL but for ham */
    uint16_t sorted[];           /* the k symbols ranked by (length, symbol) */
} huff;

/* A zeroed huff sized to k symbols, with the many-codes table when multi (ham reads it, sham does
 * not). One allocation of a few KB: a fixed 64 Ki sorted table and the multi table in every huff
 * made each sham call allocate and fault in 340 KB, more time than decoding a small layer. */
static huff *huff_new(int64_t k, int multi) {
    const size_t sorted = ((sizeof(uint16_t) * (size_t)(k > 0 ? k : 1)) + 15) & ~(size_t)15;
    huff *h = (huff *)calloc(1, sizeof(huff) + sorted + (multi ? sizeof(huff_multi) << LUT_BITS : 0));
    if (h && multi) h->multi = (huff_multi *)((char *)h->sorted + sorted);
    return h;
}

/* Also fills the many-codes-per-lookup table when h has one (huff_new(k, 1); ham's general row loop). */
static int huff_build(huff *h, const uint8_t *lens, int64_t k) {
    if (k < 0 || k > 65536 || (k > 0 && !lens)) return NNC_EARG;
    memset(h->count, 0, sizeof h->count);
    h->max_len = 0;
    h->n_present = 0;
    uint64_t kraft = 0;
    for (int64_t s = 0; s < k; s++) {
        int L = lens[s];
        if (L > MAX_LEN) return NNC_ECODE;
        if (!L) continue;
        h->count[L]++;
        h->n_present++;
        kraft += (uint64_t)1 << (MAX_LEN - L);
        if (L > h->max_len) h->max_len = L;
    }
    if (h->n_present == 1 && h->max_len != 1) return NNC_ECODE;
    if (h->n_present > 1 && kraft != (uint64_t)1 << MAX_LEN) return NNC_ECODE;
    h->first[0] = 0;
    h->offset[0] = 0;
    for (int L = 1; L <= MAX_LEN + 1; L++) {
        h->first[L] = (h->first[L - 1] + h->count[L - 1]) << 1;
        h->offset[L] = h->offset[L - 1] + h->count[L - 1];
    }
    int64_t fill[MAX_LEN + 2];
    memcpy(fill, h->offset, sizeof fill);
    for (int64_t s = 0; s < k; s++)
        if (lens[s]) h->sorted[fill[lens[s]]++] = (uint16_t)s;
    h->lut_bits = h->max_len < LUT_BITS ? h->max_len : LUT_BITS;
    h->zlen = 0;
    h->zsym = 0;
    for (int L = 1; L <= MAX_LEN && h->n_present; L++)
        if (h->count[L]) {
            h->zlen = L;
            h->zsym = h->sorted[0];
            break;
        }
    memset(h->lut, 0, sizeof h->lut);
    for (int L = 1; L <= h->lut_bits; L++)
        for (int64_t j = 0; j < h->count[L]; j++) {
            uint64_t code = (uint64_t)(h->first[L] + j), span = (uint64_t)1 << (h->lut_bits - L);
            uint32_t e = ((uint32_t)h->sorted[h->offset[L] + j] << 8) | (uint32_t)L;
            for (uint64_t i = 0; i < span; i++) h->lut[(code << (h->lut_bits - L)) + i] = e;
        }
    /* A code found at bit t of a window is known whole when its length fits in the lut_bits - t known
     * bits (the zero fill below them cannot change a prefix code's match). */
    const uint32_t mask = ((uint32_t)1 << h->lut_bits) - 1;
    for (uint32_t v = 0; v <= mask && h->lut_bits && h->multi; v++) {
        int t = 0, n = 0;
        while (n < MULTI) {
            uint32_t e = h->lut[(v << t) & mask];
            int L = (int)(e & 0xff);
            if (!L || L > h->lut_bits - t) break;
            h->multi[v].sym[n++] = (uint16_t)(e >> 8);
            t += L;
        }
        h->multi[v].n = (uint8_t)n;
        h->multi[v].len = (uint8_t)t;
    }
    return NNC_OK;
}

/* One symbol, or -1 for a bit pattern that is no code; *len gets its length. */
static inline int64_t huff_decode(const huff *h, nnc_br *br, int *len) {
    nnc_br_refill(br);
    if (h->max_len == 0) return -1;
    uint32_t e = h->lut[br->buf >> (64 - h->lut_bits)];
    if (e & 0xff) {
        *len = (int)(e & 0xff);
        br->buf <<= *len;
        br->cnt -= *len;
        return e >> 8;
    }
    uint64_t v = br->buf >> (64 - MAX_LEN);
    for (int L = h->lut_bits + 1; L <= h->max_len; L++) {
        int64_t c = (int64_t)(v >> (MAX_LEN - L)) - h->first[L];
        if (c >= 0 && c < h->count[L]) {
            *len = L;
            br->buf <<= L;
            br->cnt -= L;
            return h->sorted[h->offset[L] + c];
        }
    }
    return -1;
}

/* 64 stream bits from bit p on, the first 33 or more valid: words w[p/32] and w[p/32 + 1] in one
 * unaligned load (the caller keeps p below the stream's
 * end, so p/32 + 1 is at most the guard word). */
static inline uint64_t peek64(const uint32_t *w, int64_t p) {
    uint64_t v;
    memcpy(&v, w + (p >> 5), 8);
    return ((v << 32) | (v >> 32)) << (p & 31);
}

/* Bit-by-bit reference decode at stream bit *p (bits at or past limit read as zero). */
static int64_t huff_decode_naive(const huff *h, const uint32_t *w, int64_t limit, int64_t *p) {
    int64_t code = 0;
    for (int L = 1; L <= h->max_len; L++) {
        int64_t q = (*p)++;
        code = (code << 1) | (q < limit ? (w[q >> 5] >> (31 - (q & 31))) & 1u : 0);
        if (code - h->first[L] >= 0 && code - h->first[L] < h->count[L]) return h->sorted[h->offset[L] + code - h->first[L]];
    }
    return -1;
}

static int64_t raw_naive(const uint32_t *w, int64_t limit, int64_t *p, int n) {
    int64_t v = 0;
    for (int j = 0; j < n; j++, (*p)++) v = (v << 1) | (*p < limit ? (w[*p >> 5] >> (31 - (*p & 31))) & 1u : 0);
    return v;
}

static int rows_check(int64_t n_out, const uint32_t *stream, int64_t n_words, const void *row_bits,
                      int64_t n_rbits, int rbits_width) {
    if (n_words < 1 || !stream || n_rbits != n_out + 1) return NNC_EARG;
    int st = nnc_check_array(row_bits, n_rbits, rbits_width);
    if (st) return st;
    if (nnc_uget(row_bits, rbits_width, 0) != 0) return NNC_EBOUNDS;
    uint64_t prev = 0, limit = (uint64_t)nnc_stream_bits(n_words);
    for (int64_t i = 1; i < n_rbits; i++) {
        uint64_t v = nnc_uget(row_bits, rbits_width, i);
        if (v < prev || v > limit) return NNC_EBOUNDS;
        prev = v;
    }
    return NNC_OK;
}

/* ---- ham ---- */
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

/* Where ham's and sham's lanes write a batch's decoded nonzeros (EMIT): row r0 + i's at base[i]..,
 * count[i] of them, room for min(n_in, its bits) (each takes a column and at least a bit). */
typedef struct {
    int32_t *col;
    float *val;
    const int64_t *base;
    int64_t *count;
} row_emit;

/* y of row r for every batch item from its n decoded nonzeros, NNC_BCH items at a time of the
 * interleaved x (x86-64-v3 copy: AVX2 and FMA) */
NNC_CLONES static void emit_row(float *y, int64_t n_out, int64_t batch, const float *xi, int64_t n_in, int64_t r,
                                const int32_t *rc, const float *rv, int64_t n) {
    for (int64_t b0 = 0; b0 < batch; b0 += NNC_BCH) {
        const int nb = (int)(batch - b0 < NNC_BCH ? batch - b0 : NNC_BCH);
        const float *xc = xi + b0 * n_in;
        double a[NNC_BCH] = {0};
        for (int64_t i = 0; i < n; i++) {
            const double v = rv[i];
            const float *xv = xc + (int64_t)rc[i] * NNC_BCH;
            for (int j = 0; j < NNC_BCH; j++) a[j] += v * xv[j];
        }
        for (int j = 0; j < nb; j++) y[(b0 + j) * n_out + r] = (float)a[j];
    }
}

/* A batch through lanes that decode (EMIT): blocks of rows decoded once each into their nonzeros
 * (the costly part, whatever the batch), then multiplied by emit_row. A failed block is decoded
 * again by fallback, row by row in order, for the status of its first bad row. */
typedef int (*emit_decode)(const void *ctx, int64_t r0, int64_t r1, const row_emit *em);
typedef struct {
    int64_t n_out, n_in, batch;
    const float *xi;
    float *y;
    const void *row_bits;
    int rbits_width;
} emit_job;
#define EMIT_ENTRIES ((int64_t)1 << 20)
static int rows_emit(const void *ctx, const emit_job *jb, emit_decode decode, nnc_rows_fn fallback, int64_t r0,
                     int64_t r1) {
    const int64_t n_in = jb->n_in, room = n_in > EMIT_ENTRIES ? n_in : EMIT_ENTRIES;
    int32_t *ecol = (int32_t *)malloc(sizeof(int32_t) * (size_t)room);
    float *eval = (float *)malloc(sizeof(float) * (size_t)room);
    int64_t *base = (int64_t *)malloc(sizeof(int64_t) * (size_t)(r1 - r0));
    int64_t *count = (int64_t *)malloc(sizeof(int64_t) * (size_t)(r1 - r0));
    int st = ecol && eval && base && count ? NNC_OK : NNC_ENOMEM;
    for (int64_t b = r0; b < r1 && !st;) {
        int64_t used = 0, e = b;
        for (; e < r1; e++) { /* rows while their room fits: min(n_in, bits) nonzeros each */
            const int64_t bits = (int64_t)nnc_uget(jb->row_bits, jb->rbits_width, e + 1) -
                                 (int64_t)nnc_uget(jb->row_bits, jb->rbits_width, e);
            const int64_t need = bits < n_in ? bits : n_in;
            if (used + need > room && e > b) break;
            base[e - r0] = used;
            used += need;
        }
        const row_emit em = {ecol, eval, base + (b - r0), count + (b - r0)};
        if (decode(ctx, b, e, &em))
            st = fallback(ctx, b, e);
        else
            for (int64_t r = b; r < e; r++)
                emit_row(jb->y, jb->n_out, jb->batch, jb->xi, n_in, r, ecol + base[r - r0], eval + base[r - r0],
                         count[r - r0]);
        b = e;
    }
    free(ecol);
    free(eval);
    free(base);
    free(count);
    return st;
}

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

/* ---- sham ---- */
#define SHAM_ARGS                                                                                            \
    int64_t n_out, int64_t n_in, const float *codebook, const uint8_t *value_len, int64_t k, int gap_coder,  \
        const uint8_t *gap_len, int64_t n_gap_len, int escape_bits, int gap_order, const uint32_t *stream,   \
        int64_t n_words, const void *row_bits, int64_t n_rbits, int rbits_width, const float *x,             \
        int64_t batch, float *y, int threads
#define SHAM_PASS                                                                                            \
    n_out, n_in, codebook, value_len, k, gap_coder, gap_len, n_gap_len, escape_bits, gap_order, stream,      \
        n_words, row_bits, n_rbits, rbits_width, x, batch, y, threads

/* hv: value code; hg: gap code (huffman coder only; zeroed otherwise) */
static int sham_prepare(SHAM_ARGS, huff **hv, huff **hg) {
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

/* The batch-1 lane kernel's table: a LANE_BITS window (one bit wider than PAIR_BITS, which halves
 * the entries that miss) packed in 2 bytes, so 16 KB sit beside x in L1: length (4 bits), the value's
 * codebook index (sb bits, k <= 2^sb), the column step gap + 1 (12 - sb bits). 0: decode by the
 * general path (codes too long together, an escape, or a step too wide for its field). */
#define LANE_BITS 13
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

static void lane_build(uint16_t *t, const huff *hg, const huff *hv, int64_t escape, int sb) {
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
