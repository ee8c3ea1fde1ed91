/* The canonical-code tables and the helpers that ham.c and sham.c share (declared, with the stream
 * layout, in nnc_huffman.h). */
#include "nnc_huffman.h"

/* A zeroed huff sized to k symbols, with the many-codes table when multi (ham reads it, sham does
 * not). One allocation of a few KB: a fixed 64 Ki sorted table and the multi table in every huff
 * made each sham call allocate and fault in 340 KB, more time than decoding a small layer. */
huff *huff_new(int64_t k, int multi) {
    const size_t sorted = ((sizeof(uint16_t) * (size_t)(k > 0 ? k : 1)) + 15) & ~(size_t)15;
    huff *h = (huff *)calloc(1, sizeof(huff) + sorted + (multi ? sizeof(huff_multi) << LUT_BITS : 0));
    if (h && multi) h->multi = (huff_multi *)((char *)h->sorted + sorted);
    return h;
}

/* Also fills the many-codes-per-lookup table when h has one (huff_new(k, 1); ham's general row loop). */
int huff_build(huff *h, const uint8_t *lens, int64_t k) {
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

int rows_check(int64_t n_out, const uint32_t *stream, int64_t n_words, const void *row_bits, int64_t n_rbits,
               int rbits_width) {
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
#define EMIT_ENTRIES ((int64_t)1 << 20)
int rows_emit(const void *ctx, const emit_job *jb, emit_decode decode, nnc_rows_fn fallback, int64_t r0,
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
