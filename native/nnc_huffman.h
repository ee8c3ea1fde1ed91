/* Canonical Huffman codes shared by the ham (ham.c) and sham (sham.c) kernels: the decode tables
 * (built in huffman_codes.c), the inline decoders and bit peeks of their hot loops, the row-offset
 * check, and the batched path that turns decoded rows into products. Not part of the API
 * (nnc_kernels.h is).
 *
 * Layout (src/nncompress/formats/ham.py, sham.py, _huffman.py, _bits.py): uint32 words, MSB-first,
 * the last word a zero guard; row r is stream bits row_bits[r]:row_bits[r+1] (row_bits width
 * 1/2/4/8 bytes). Codes are canonical, rebuilt here from the stored uint8 code lengths (<= 24
 * bits; one present symbol has the 1-bit code 0; otherwise Kraft's sum must be exactly 1). The
 * decode tables are derived on every call (O(k + 2^13)) and are not part of the format's bytes.
 *
 * Decoding: a 2^11-entry first-level table gives (symbol, length) for codes of <= 11 bits; longer
 * codes (up to 24) take the canonical per-length comparison on a 24-bit peek. Bits come from a
 * 64-bit buffer refilled a word at a time; words past the stream read as zero, so a corrupt code can
 * never read outside the array; it is caught by the row end check (NNC_ECODE). Row offsets outside
 * the stream are NNC_EBOUNDS. The *_naive kernels decode bit by bit (the reference). */
#ifndef NNC_HUFFMAN_H
#define NNC_HUFFMAN_H

#include "nnc_common.h"

/* Defined in one kernel source and called from another, but hidden: the library's exported symbols
 * stay those of nnc_kernels.h. */
#if defined(__GNUC__)
#define NNC_INTERNAL __attribute__((visibility("hidden")))
#else
#define NNC_INTERNAL
#endif

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

/* A zeroed huff sized to k symbols, with the many-codes table when multi (ham); NULL when out of memory. */
NNC_INTERNAL huff *huff_new(int64_t k, int multi);

/* The decode tables of the canonical code with these k code lengths: NNC_OK, or NNC_EARG / NNC_ECODE
 * for lengths that are no complete prefix code. */
NNC_INTERNAL int huff_build(huff *h, const uint8_t *lens, int64_t k);

/* The hot-loop helpers stay inline here: a call per decoded code would cost more than the decode. */

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
static inline int64_t huff_decode_naive(const huff *h, const uint32_t *w, int64_t limit, int64_t *p) {
    int64_t code = 0;
    for (int L = 1; L <= h->max_len; L++) {
        int64_t q = (*p)++;
        code = (code << 1) | (q < limit ? (w[q >> 5] >> (31 - (q & 31))) & 1u : 0);
        if (code - h->first[L] >= 0 && code - h->first[L] < h->count[L]) return h->sorted[h->offset[L] + code - h->first[L]];
    }
    return -1;
}

/* n raw bits at stream bit *p, bit by bit (bits at or past limit read as zero). */
static inline int64_t raw_naive(const uint32_t *w, int64_t limit, int64_t *p, int n) {
    int64_t v = 0;
    for (int j = 0; j < n; j++, (*p)++) v = (v << 1) | (*p < limit ? (w[*p >> 5] >> (31 - (*p & 31))) & 1u : 0);
    return v;
}

/* row_bits (n_out + 1 offsets) runs from 0, never decreases and stays inside the stream's bits:
 * NNC_OK, NNC_EARG or NNC_EBOUNDS. */
NNC_INTERNAL int rows_check(int64_t n_out, const uint32_t *stream, int64_t n_words, const void *row_bits,
                            int64_t n_rbits, int rbits_width);

/* Where ham's and sham's lanes write a batch's decoded nonzeros (EMIT): row r0 + i's at base[i]..,
 * count[i] of them, room for min(n_in, its bits) (each takes a column and at least a bit). */
typedef struct {
    int32_t *col;
    float *val;
    const int64_t *base;
    int64_t *count;
} row_emit;

/* A batch through lanes that decode (EMIT): blocks of rows decoded once each into their nonzeros
 * (the costly part, whatever the batch), then multiplied by every batch item. A failed block is
 * decoded again by fallback, row by row in order, for the status of its first bad row. */
typedef int (*emit_decode)(const void *ctx, int64_t r0, int64_t r1, const row_emit *em);
typedef struct {
    int64_t n_out, n_in, batch;
    const float *xi;
    float *y;
    const void *row_bits;
    int rbits_width;
} emit_job;
NNC_INTERNAL int rows_emit(const void *ctx, const emit_job *jb, emit_decode decode, nnc_rows_fn fallback,
                           int64_t r0, int64_t r1);

#endif
