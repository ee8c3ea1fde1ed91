/* nncompress native kernels: y (batch, out) = x (batch, in) @ W.T computed on compressed arrays.
 *
 * Every kernel returns NNC_OK (0) or a negative status and never reads outside the arrays whose
 * lengths it is given (x must hold batch * n_in floats and y batch * n_out: those lengths are
 * implied by the dimensions). Integer index/pointer arrays are passed as untyped pointers plus their
 * element width in bytes (the formats store the narrowest unsigned dtype: 1, 2, 4 or 8).
 * Bit streams are uint32 words, MSB-first (see src/nncompress/formats/_bits.py).
 * `threads` >= 1: row-parallel kernels split output rows over that many pthreads (sss and dct split
 * batch items instead); csc, coo and every *_naive kernel run on one thread whatever it says.
 * Accumulation is in double, and so are the intermediates of the structured kernels. */
#ifndef NNC_KERNELS_H
#define NNC_KERNELS_H

#include <stdint.h>

#define NNC_OK 0
#define NNC_EARG -1    /* inconsistent argument: array length, width, dims, threads */
#define NNC_EBOUNDS -2 /* an offset, pointer or index outside its range */
#define NNC_ECODE -3   /* a bit stream or code table that does not decode */
#define NNC_ENOMEM -4  /* an allocation failed */
#define NNC_ESPACE -5  /* an output buffer is too small (the call says how large it must be) */

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

/* ---- structured formats (src/nncompress/formats/{lowrank,psm,sss,dct}.py) ---- */

/* lowrank: a (n_out, rank) and b (rank, n_in) row-major, 0 <= rank <= min(n_out, n_in);
 * n_a = n_out * rank, n_b = rank * n_in. y = (x @ b.T) @ a.T. */
int nnc_lowrank_dot(int64_t n_out, int64_t n_in, int64_t rank, const float *a, int64_t n_a,
                    const float *b, int64_t n_b, const float *x, int64_t batch, float *y, int threads);
int nnc_lowrank_dot_naive(int64_t n_out, int64_t n_in, int64_t rank, const float *a, int64_t n_a,
                          const float *b, int64_t n_b, const float *x, int64_t batch, float *y, int threads);

/* psm: q (1..64) CSR factors, W = S_0 S_1 ... S_{q-1}; factor i has shape (dims[i], dims[i+1]),
 * dims has q + 1 entries with dims[0] = n_out and dims[q] = n_in. Every other argument is an array
 * of q entries, one per factor, laid out as nnc_csr_dot's: values[i] (n_values[i] floats),
 * col_idx[i] (n_col[i] = n_values[i] entries of col_width[i] bytes), row_ptr[i] (n_ptr[i] =
 * dims[i] + 1 entries of ptr_width[i] bytes). */
int nnc_psm_dot(int64_t n_out, int64_t n_in, int q, const int64_t *dims,
                const float *const *values, const int64_t *n_values,
                const void *const *col_idx, const int64_t *n_col, const int *col_width,
                const void *const *row_ptr, const int64_t *n_ptr, const int *ptr_width,
                const float *x, int64_t batch, float *y, int threads);
int nnc_psm_dot_naive(int64_t n_out, int64_t n_in, int q, const int64_t *dims,
                      const float *const *values, const int64_t *n_values,
                      const void *const *col_idx, const int64_t *n_col, const int *col_width,
                      const void *const *row_ptr, const int64_t *n_ptr, const int *ptr_width,
                      const float *x, int64_t batch, float *y, int threads);

/* sss: N = blocks in 1..max(1, min(n_out, n_in)), d = state in 0..min(n_out, n_in); rows and columns
 * split as numpy.array_split into n_k, m_k. All float32, row-major, lengths exactly:
 * al, au (N-2, d, d) [max(N-2, 0) d^2]; cl (n_out - n_1, d); cu (n_out - n_N, d);
 * bl (d, n_in - m_N); bu (d, n_in - m_1); d: the blocks D_k (n_k, m_k) concatenated. */
int nnc_sss_dot(int64_t n_out, int64_t n_in, int64_t blocks, int64_t state,
                const float *al, int64_t n_al, const float *cl, int64_t n_cl, const float *bl, int64_t n_bl,
                const float *au, int64_t n_au, const float *cu, int64_t n_cu, const float *bu, int64_t n_bu,
                const float *d, int64_t n_d, const float *x, int64_t batch, float *y, int threads);
int nnc_sss_dot_naive(int64_t n_out, int64_t n_in, int64_t blocks, int64_t state,
                      const float *al, int64_t n_al, const float *cl, int64_t n_cl, const float *bl,
                      int64_t n_bl, const float *au, int64_t n_au, const float *cu, int64_t n_cu,
                      const float *bu, int64_t n_bu, const float *d, int64_t n_d,
                      const float *x, int64_t batch, float *y, int threads);

/* dct: kernel 0 = dct, 1 = dst, 2 = dft. CSR over the coefficient grid, (n_out, n_in) for dct/dst and
 * (n_out, n_in / 2 + 1) for dft when n_in > 0: col_idx (n_col entries), row_ptr (n_out + 1 entries);
 * values n_col floats (dct/dst) or n_col (re, im) pairs, n_values = 2 * n_col (dft).
 * y = T_out^T (S (T_in x)) with O(n log n) transforms (FFT, Bluestein for other lengths). */
int nnc_dct_dot(int64_t n_out, int64_t n_in, int kernel, const float *values, int64_t n_values,
                const void *col_idx, int64_t n_col, int col_width,
                const void *row_ptr, int64_t n_ptr, int ptr_width,
                const float *x, int64_t batch, float *y, int threads);
int nnc_dct_dot_naive(int64_t n_out, int64_t n_in, int kernel, const float *values, int64_t n_values,
                      const void *col_idx, int64_t n_col, int col_width,
                      const void *row_ptr, int64_t n_ptr, int ptr_width,
                      const float *x, int64_t batch, float *y, int threads);

/* ---- entropy coders (no product: the format decodes, then multiplies) ---- */

/* cabac (native/cabac.c, spec in src/nncompress/formats/_cabac_ref.py): n int32 levels, |level| < 2^30,
 * in scan order, to one range-coded byte stream. encode: NNC_EBOUNDS for a level out of range,
 * NNC_ESPACE when the stream needs more than cap bytes (*out_len is then the length it needs; out is
 * partly written). decode: exactly n levels from exactly len bytes, NNC_ECODE for a stream that does
 * not decode to them. */
int nnc_cabac_encode(const int32_t *levels, int64_t n, uint8_t *out, int64_t cap, int64_t *out_len);
int nnc_cabac_decode(const uint8_t *stream, int64_t len, int32_t *levels, int64_t n);

/* rdoq (native/rdoq.c): the rate-distortion optimized level of each of n float32 weights, the same
 * levels as passes/rdoq.py's numpy reference; wts: per-weight distortion weights, or NULL; table:
 * the signed bits (half entries of x >= 0, then half of x < 0). NNC_EBOUNDS when a magnitude
 * reaches past the table (levels partly written). */
int nnc_rdoq_levels(const float *c, int64_t n, double abs_step, double rms, int magnitude, const double *wts,
                    double lam, const double *table, int64_t half, int64_t *levels);

/* watchdog (native/watchdog.c): arm: after seconds, unless disarmed (or armed again) first, write the
 * len bytes of message (at most 2048) to fd 2 and _exit(code) (0..255), from a thread that needs no
 * GIL; NNC_EARG for bad arguments, NNC_ENOMEM when the thread cannot start. disarm: cancel. */
int nnc_watchdog_arm(const char *message, int64_t len, double seconds, int code);
int nnc_watchdog_disarm(void);

#endif
