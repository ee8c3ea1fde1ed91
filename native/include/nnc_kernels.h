/* nncompress native kernels: y (batch, out) = x (batch, in) @ W.T computed on compressed arrays.
 *
 * Every kernel returns NNC_OK (0) or a negative status and never reads outside the arrays whose
 * lengths it is given (x must hold batch * n_in floats and y batch * n_out: those lengths are
 * implied by the dimensions). Integer index/pointer arrays are passed as untyped pointers plus their
 * element width in bytes (the formats store the narrowest unsigned dtype: 1, 2, 4 or 8).
 * Bit streams are uint32 words, MSB-first (see src/nncompress/formats/_bits.py).
 * `threads` >= 1: row-parallel kernels split output rows over that many pthreads; csc, coo and
 * every *_naive kernel run on one thread whatever it says. Accumulation is in double. */
#ifndef NNC_KERNELS_H
#define NNC_KERNELS_H

#include <stdint.h>

#define NNC_OK 0
#define NNC_EARG -1    /* inconsistent argument: array length, width, dims, threads */
#define NNC_EBOUNDS -2 /* an offset, pointer or index outside its range */
#define NNC_ECODE -3   /* a bit stream or code table that does not decode */
#define NNC_ENOMEM -4  /* an allocation failed */

int nnc_dense_dot(int64_t n_out, int64_t n_in, const float *w, int64_t n_w,
                  const float *x, int64_t batch, float *y, int threads);
int nnc_dense_dot_naive(int64_t n_out, int64_t n_in, const float *w, int64_t n_w,
                        const float *x, int64_t batch, float *y, int threads);

int nnc_csr_dot(int64_t n_out, int64_t n_in, const float *values, int64_t n_values,
                const void *col_idx, int64_t n_col, int col_width,
                const void *row_ptr, int64_t n_ptr, int ptr_width,
                const float *x, int64_t batch, float *y, int threads);
int nnc_csr_dot_naive(int64_t n_out, int64_t n_in, const float *values, int64_t n_values,
                      const void *col_idx, int64_t n_col, int col_width,
                      const void *row_ptr, int64_t n_ptr, int ptr_width,
                      const float *x, int64_t batch, float *y, int threads);
int nnc_csc_dot(int64_t n_out, int64_t n_in, const float *values, int64_t n_values,
                const void *row_idx, int64_t n_row, int row_width,
                const void *col_ptr, int64_t n_ptr, int ptr_width,
                const float *x, int64_t batch, float *y, int threads);
int nnc_csc_dot_naive(int64_t n_out, int64_t n_in, const float *values, int64_t n_values,
                      const void *row_idx, int64_t n_row, int row_width,
                      const void *col_ptr, int64_t n_ptr, int ptr_width,
                      const float *x, int64_t batch, float *y, int threads);
int nnc_coo_dot(int64_t n_out, int64_t n_in, const float *values, int64_t n_values,
                const void *row_idx, int64_t n_row, int row_width,
                const void *col_idx, int64_t n_col, int col_width,
                const float *x, int64_t batch, float *y, int threads);
int nnc_coo_dot_naive(int64_t n_out, int64_t n_in, const float *values, int64_t n_values,
                      const void *row_idx, int64_t n_row, int row_width,
                      const void *col_idx, int64_t n_col, int col_width,
                      const float *x, int64_t batch, float *y, int threads);

int nnc_im_dot(int64_t n_out, int64_t n_in, const float *codebook, int64_t k,
               const uint32_t *stream, int64_t n_words,
               const float *x, int64_t batch, float *y, int threads);
int nnc_im_dot_naive(int64_t n_out, int64_t n_in, const float *codebook, int64_t k,
                     const uint32_t *stream, int64_t n_words,
                     const float *x, int64_t batch, float *y, int threads);

int nnc_cser_dot(int64_t n_out, int64_t n_in, const float *omega, int64_t k,
                 const void *col_idx, int64_t n_col, int col_width,
                 const void *w_idx, int64_t n_groups, int widx_width,
                 const void *w_ptr, int64_t n_wptr, int wptr_width,
                 const void *row_ptr, int64_t n_rptr, int rptr_width,
                 const float *x, int64_t batch, float *y, int threads);
int nnc_cser_dot_naive(int64_t n_out, int64_t n_in, const float *omega, int64_t k,
                       const void *col_idx, int64_t n_col, int col_width,
                       const void *w_idx, int64_t n_groups, int widx_width,
                       const void *w_ptr, int64_t n_wptr, int wptr_width,
                       const void *row_ptr, int64_t n_rptr, int rptr_width,
                       const float *x, int64_t batch, float *y, int threads);

int nnc_ham_dot(int64_t n_out, int64_t n_in, const float *codebook, const uint8_t *code_len, int64_t k,
                const uint32_t *stream, int64_t n_words, const void *row_bits, int64_t n_rbits, int rbits_width,
                const float *x, int64_t batch, float *y, int threads);
int nnc_ham_dot_naive(int64_t n_out, int64_t n_in, const float *codebook, const uint8_t *code_len, int64_t k,
                      const uint32_t *stream, int64_t n_words, const void *row_bits, int64_t n_rbits,
                      int rbits_width, const float *x, int64_t batch, float *y, int threads);

/* gap_coder: 0 = huffman (gap_len has gap_escape + 1 entries, escape_bits 0..31), 1 = exp-Golomb
 * of order gap_order (0..30; gap_len unused, n_gap_len 0). */
int nnc_sham_dot(int64_t n_out, int64_t n_in, const float *codebook, const uint8_t *value_len, int64_t k,
                 int gap_coder, const uint8_t *gap_len, int64_t n_gap_len, int escape_bits, int gap_order,
                 const uint32_t *stream, int64_t n_words, const void *row_bits, int64_t n_rbits, int rbits_width,
                 const float *x, int64_t batch, float *y, int threads);
int nnc_sham_dot_naive(int64_t n_out, int64_t n_in, const float *codebook, const uint8_t *value_len, int64_t k,
                       int gap_coder, const uint8_t *gap_len, int64_t n_gap_len, int escape_bits, int gap_order,
                       const uint32_t *stream, int64_t n_words, const void *row_bits, int64_t n_rbits,
                       int rbits_width, const float *x, int64_t batch, float *y, int threads);

#endif
