/* The parts of sham.c that benchmarks/sham_floor.c builds on: the kernels' argument list, the
 * argument checks and code tables (sham_prepare) and the lane table (lane_build). Not part of the
 * API (nnc_kernels.h is). */
#ifndef NNC_SHAM_H
#define NNC_SHAM_H

#include "nnc_huffman.h"

#define SHAM_ARGS                                                                                            \
    int64_t n_out, int64_t n_in, const float *codebook, const uint8_t *value_len, int64_t k, int gap_coder,  \
        const uint8_t *gap_len, int64_t n_gap_len, int escape_bits, int gap_order, const uint32_t *stream,   \
        int64_t n_words, const void *row_bits, int64_t n_rbits, int rbits_width, const float *x,             \
        int64_t batch, float *y, int threads
#define SHAM_PASS                                                                                            \
    n_out, n_in, codebook, value_len, k, gap_coder, gap_len, n_gap_len, escape_bits, gap_order, stream,      \
        n_words, row_bits, n_rbits, rbits_width, x, batch, y, threads

/* The lane table's window in stream bits (sham.c, above lane_put, has its layout). */
#define LANE_BITS 13

/* The checks of every argument, then hv (value code) and hg (gap code; Huffman gaps only, zeroed
 * otherwise), both freed by the caller: NNC_OK, or a status with nothing left to free. */
NNC_INTERNAL int sham_prepare(SHAM_ARGS, huff **hv, huff **hg);

/* The 2^LANE_BITS-entry lane table of Huffman gaps hg and values hv (k <= 2^sb). */
NNC_INTERNAL void lane_build(uint16_t *t, const huff *hg, const huff *hv, int64_t escape, int sb);

#endif
