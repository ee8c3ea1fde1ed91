/* ham and sham: y = x @ W.T decoded straight from canonical Huffman bit streams.
 *
 * Layout (src/nncompress/formats/ham.py, sham.py, _huffman.py, _bits.py): uint32 words, MSB-first,
 * the last word a zero guard; row r is stream bits row_bits[r]:row_bits[r+1] (row_bits width
 * 1/2/4/8 bytes). Codes are canonical, rebuilt here from the stored uint8 code lengths (<= 24
 * bits; one present symbol has the 1-bit code 0; otherwise Kraft's sum must be exactly 1). The
 * decode tables are derived on every call (O(k + 2^11)) and are not part of the format's bytes.
 * ham: every row holds exactly n_in codes of codebook indices and ends on its offset.
 * sham: a row is [gap][value code] entries until its end bit; gap coder 0 = Huffman with escape
 * symbol E = n_gap_len - 1 followed by escape_bits raw bits; 1 = exp-Golomb of order gap_order.
 *
 * Decoding: a 2^11-entry first-level table gives (symbol, length) for codes of <= 11 bits; longer
 * codes (up to 24) take the canonical per-length comparison on a 24-bit peek. ham also uses a
 * second 2^11-entry table giving up to 4 whole short codes per window (many symbols per lookup). Bits come from a
 * 64-bit buffer refilled a word at a time; words past the stream read as zero, so a corrupt code
 * can never read outside the array; it is caught by the row end check (NNC_ECODE). Row offsets
 * outside the stream are NNC_EBOUNDS. The *_naive kernels decode bit by bit (the reference). */
#include "nnc_common.h"

#define MAX_LEN 24
#define LUT_BITS 11
#define MULTI 4

typedef struct {
    int max_len, lut_bits, n_present;
    int64_t first[MAX_LEN + 2], count[MAX_LEN + 2], offset[MAX_LEN + 2];
    uint32_t lut[1 << LUT_BITS]; /* (symbol << 8) | length; length 0: longer code or no code */
    uint16_t sorted[65536];      /* symbols ranked by (length, symbol) */
    struct {
        uint16_t sym[MULTI];
        uint8_t n, len;
    } multi[1 << LUT_BITS]; /* up to MULTI whole codes inside each lut_bits-bit window (ham) */
} huff;

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
    for (uint32_t v = 0; v <= mask && h->lut_bits; v++) {
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
    huff *h = (huff *)malloc(sizeof(huff));
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
    const float *codebook;
    const uint32_t *stream;
    const void *row_bits;
    int rbits_width;
    const float *x;
    float *y;
} ham_ctx;

/* Decode row r once and accumulate codebook[s] * x[b, c] for NB batch items (NB a compile-time
 * constant, so the sums stay in registers). */
#define HAM_ROW(NAME, NB)                                                                                    \
    static int NAME(const ham_ctx *q, int64_t r, int64_t b0, int nbv) {                                      \
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

static int ham_rows(const void *vctx, int64_t r0, int64_t r1) {
    const ham_ctx *q = (const ham_ctx *)vctx;
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
    ham_ctx q = {h, n_out, n_in, n_words, batch, codebook, stream, row_bits, rbits_width, x, y};
    st = nnc_run_rows(ham_rows, &q, n_out, threads);
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
    *hv = (huff *)malloc(sizeof(huff));
    *hg = (huff *)calloc(1, sizeof(huff));
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

typedef struct {
    const huff *hv, *hg;
    int64_t n_out, n_in, n_words, batch, escape;
    int gap_coder, escape_bits, gap_order;
    const float *codebook;
    const uint32_t *stream;
    const void *row_bits;
    int rbits_width;
    const float *x;
    float *y;
} sham_ctx;

static int sham_rows(const void *vctx, int64_t r0, int64_t r1) {
    const sham_ctx *q = (const sham_ctx *)vctx;
    const int64_t n_in = q->n_in;
    for (int64_t r = r0; r < r1; r++) {
        int64_t start = (int64_t)nnc_uget(q->row_bits, q->rbits_width, r);
        int64_t end = (int64_t)nnc_uget(q->row_bits, q->rbits_width, r + 1);
        for (int64_t b0 = 0; b0 < q->batch; b0 += NNC_BCH) {
            int nb = (int)(q->batch - b0 < NNC_BCH ? q->batch - b0 : NNC_BCH);
            const float *xb = q->x + b0 * n_in;
            double acc[NNC_BCH] = {0};
            int64_t p = start, col = -1;
            nnc_br br;
            if (p < end) nnc_br_init(&br, q->stream, q->n_words, p);
            while (p < end) {
                int64_t gap;
                int len;
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
                double v = q->codebook[s];
                if (nb == 1)
                    acc[0] += v * xb[col];
                else
                    for (int b = 0; b < nb; b++) acc[b] += v * xb[b * n_in + col];
            }
            for (int b = 0; b < nb; b++) q->y[(b0 + b) * q->n_out + r] = (float)acc[b];
        }
    }
    return NNC_OK;
}

int nnc_sham_dot(SHAM_ARGS) {
    huff *hv = NULL, *hg = NULL;
    int st = sham_prepare(SHAM_PASS, &hv, &hg);
    if (st) return st;
    sham_ctx q = {hv, hg, n_out, n_in, n_words, batch, n_gap_len - 1, gap_coder, escape_bits, gap_order,
                  codebook, stream, row_bits, rbits_width, x, y};
    st = nnc_run_rows(sham_rows, &q, n_out, threads);
    free(hv);
    free(hg);
    return st;
}
