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
    const float *codebook;
    const uint32_t *stream;
    const float *x;
    float *y;
} im_ctx;

static int im_rows(const void *vctx, int64_t r0, int64_t r1) {
    const im_ctx *q = (const im_ctx *)vctx;
    const int64_t n_in = q->n_in;
    const int bits = q->bits;
    for (int64_t r = r0; r < r1; r++)
        for (int64_t b0 = 0; b0 < q->batch; b0 += NNC_BCH) {
            int nb = (int)(q->batch - b0 < NNC_BCH ? q->batch - b0 : NNC_BCH);
            const float *xb = q->x + b0 * n_in;
            double acc[NNC_BCH] = {0};
            nnc_br br;
            nnc_br_init(&br, q->stream, q->n_words, r * n_in * bits);
            for (int64_t c = 0; c < n_in; c++) {
                nnc_br_refill(&br);
                uint64_t idx = nnc_br_take(&br, bits);
                if (idx >= (uint64_t)q->k) return NNC_ECODE;
                double v = q->codebook[idx];
                if (nb == 1)
                    acc[0] += v * xb[c];
                else
                    for (int b = 0; b < nb; b++) acc[b] += v * xb[b * n_in + c];
            }
            for (int b = 0; b < nb; b++) q->y[(b0 + b) * q->n_out + r] = (float)acc[b];
        }
    return NNC_OK;
}

int nnc_im_dot(int64_t n_out, int64_t n_in, const float *codebook, int64_t k, const uint32_t *stream,
               int64_t n_words, const float *x, int64_t batch, float *y, int threads) {
    int st = im_check(n_out, n_in, codebook, k, stream, n_words, x, batch, y, threads);
    if (st) return st;
    im_ctx q = {n_out, n_in, k, n_words, batch, index_bits(k), codebook, stream, x, y};
    return nnc_run_rows(im_rows, &q, n_out, threads);
}
