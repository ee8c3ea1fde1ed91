/* im (index map): y = x @ W.T where W[r, c] = codebook[idx], idx the `bits`-bit field at stream bit
 * (r * n_in + c) * bits, MSB-first in uint32 words (src/nncompress/formats/im.py); bits =
 * ceil(log2 k) (0 for k == 1: every entry is codebook[0]). Limits: 1 <= k <= 65536; the stream must
 * hold n_out * n_in * bits bits plus its guard word (else NNC_EBOUNDS); an index >= k is NNC_ECODE. */
#include "nnc_common.h"

static int index_bits(int64_t k) {
    int b = 0;
    while (b < 17 && ((int64_t)1 << b) < k) b++;
    return b;
}

static int im_check(int64_t n_out, int64_t n_in, const float *codebook, int64_t k, const uint32_t *stream,
                    int64_t n_words, const float *x, int64_t batch, const float *y, int threads) {
    int st = nnc_check_dims(n_out, n_in, x, batch, y, threads);
    if (st) return st;
    if (k < 1 || k > 65536 || !codebook || n_words < 1 || !stream) return NNC_EARG;
    /* compared by division: n_out * n_in * bits could overflow 64 bits */
    int bits = index_bits(k);
    if (bits && n_out * n_in > nnc_stream_bits(n_words) / bits) return NNC_EBOUNDS;
    return NNC_OK;
}

int nnc_im_dot_naive(int64_t n_out, int64_t n_in, const float *codebook, int64_t k, const uint32_t *stream,
                     int64_t n_words, const float *x, int64_t batch, float *y, int threads) {
    int st = im_check(n_out, n_in, codebook, k, stream, n_words, x, batch, y, threads);
    if (st) return st;
    const int bits = index_bits(k);
    for (int64_t b = 0; b < batch; b++)
        for (int64_t r = 0; r < n_out; r++) {
            double acc = 0.0;
            for (int64_t c = 0; c < n_in; c++) {
                int64_t p = (r * n_in + c) * bits, idx = 0;
                for (int j = 0; j < bits; j++, p++) /* bit by bit: the reference reading */
                    idx = (idx << 1) | ((stream[p >> 5] >> (31 - (p & 31))) & 1u);
                if (idx >= k) return NNC_ECODE;
                acc += (double)codebook[idx] * x[b * n_in + c];
            }
            y[b * n_out + r] = (float)acc;
        }
    return NNC_OK;
}

typedef struct {
    int64_t n_out, n_in, k, n_words, batch;
    int bits;
    const float *codebook, *cbp; /* cbp: the codebook padded with zeros to 2^bits entries */
    const uint32_t *stream;
    const float *x;
    float *y;
} im_ctx;

/* sum of a[c] * b[c] in double; four independent sums the compiler pairs into SIMD (an AVX2 clone
 * where the CPU has it, picked at load time) */
NNC_CLONES static double dot_f32(const float *a, const float *b, int64_t n) {
    double s[4] = {0.0, 0.0, 0.0, 0.0};
    int64_t c = 0;
    for (; c + 4 <= n; c += 4)
        for (int j = 0; j < 4; j++) s[j] += (double)a[c + j] * (double)b[c + j];
    for (; c < n; c++) s[0] += (double)a[c] * (double)b[c];
    return (s[0] + s[1]) + (s[2] + s[3]);
}

/* Row decoders, one per field width B so that shifts and the fields per refill are constants. cb is
 * the codebook padded with zeros to 2^B entries; the return value is nonzero when an index >= k was
 * read (a flag or-ed per field: no compare chain through a running maximum). */
#define IM_DECODE(B)                                                                                         \
    static uint64_t im_decode_##B(nnc_br *br, const float *cb, uint64_t k, float *row, int64_t n_in) {       \
        enum { PER = 32 / (B) };                                                                             \
        uint64_t bad = 0;                                                                                    \
        int64_t c = 0;                                                                                       \
        for (; c + PER <= n_in; c += PER) {                                                                  \
            nnc_br_refill(br); /* >= 33 bits: PER whole fields */                                            \
            uint64_t buf = br->buf;                                                                          \
            for (int j = 0; j < PER; j++) {                                                                  \
                const uint64_t idx = buf >> (64 - (B));                                                      \
                buf <<= (B);                                                                                 \
                bad |= idx >= k;                                                                             \
                row[c + j] = cb[idx];                                                                        \
            }                                                                                                \
            br->buf = buf;                                                                                   \
            br->cnt -= PER * (B);                                                                            \
        }                                                                                                    \
        for (; c < n_in; c++) {                                                                              \
            nnc_br_refill(br);                                                                               \
            const uint64_t idx = nnc_br_take(br, (B));                                                       \
            bad |= idx >= k;                                                                                 \
            row[c] = cb[idx];                                                                                \
        }                                                                                                    \
        return bad;                                                                                          \
    }
IM_DECODE(1)
IM_DECODE(2)
IM_DECODE(3)
IM_DECODE(4)
IM_DECODE(5)
IM_DECODE(6)
IM_DECODE(7)
IM_DECODE(8)
IM_DECODE(9)
IM_DECODE(10)
IM_DECODE(11)
IM_DECODE(12)
IM_DECODE(13)
IM_DECODE(14)
IM_DECODE(15)
IM_DECODE(16)
#undef IM_DECODE

typedef uint64_t (*im_decoder)(nnc_br *, const float *, uint64_t, float *, int64_t);
static const im_decoder IM_DECODERS[17] = {NULL,          im_decode_1,  im_decode_2,  im_decode_3,  im_decode_4,
                                           im_decode_5,  im_decode_6,  im_decode_7,  im_decode_8,  im_decode_9,
                                           im_decode_10, im_decode_11, im_decode_12, im_decode_13, im_decode_14,
                                           im_decode_15, im_decode_16};

/* Each row is decoded once into a float buffer, then dotted with every batch item. */
static int im_rows(const void *vctx, int64_t r0, int64_t r1) {
    const im_ctx *q = (const im_ctx *)vctx;
    const int64_t n_in = q->n_in;
    const int bits = q->bits;
    float *row = (float *)malloc(sizeof(float) * (size_t)(n_in ? n_in : 1));
    if (!row) return NNC_ENOMEM;
    for (int64_t r = r0; r < r1; r++) {
        if (!bits) {
            for (int64_t c = 0; c < n_in; c++) row[c] = q->codebook[0];
        } else {
            nnc_br br;
            nnc_br_init(&br, q->stream, q->n_words, r * n_in * bits);
            if (IM_DECODERS[bits](&br, q->cbp, (uint64_t)q->k, row, n_in)) {
                free(row);
                return NNC_ECODE;
            }
        }
        for (int64_t b = 0; b < q->batch; b++) q->y[b * q->n_out + r] = (float)dot_f32(row, q->x + b * n_in, n_in);
    }
    free(row);
    return NNC_OK;
}

int nnc_im_dot(int64_t n_out, int64_t n_in, const float *codebook, int64_t k, const uint32_t *stream,
               int64_t n_words, const float *x, int64_t batch, float *y, int threads) {
    int st = im_check(n_out, n_in, codebook, k, stream, n_words, x, batch, y, threads);
    if (st) return st;
    const int bits = index_bits(k);
    float *cbp = (float *)calloc((size_t)1 << bits, sizeof(float));
    if (!cbp) return NNC_ENOMEM;
    memcpy(cbp, codebook, sizeof(float) * (size_t)k);
    im_ctx q = {n_out, n_in, k, n_words, batch, bits, codebook, cbp, stream, x, y};
    st = nnc_run_rows(im_rows, &q, n_out, threads);
    free(cbp);
    return st;
}
