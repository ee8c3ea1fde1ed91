/* Shared inline helpers of the kernel sources (not part of the API; nnc_kernels.h is): argument
 * checks, width-generic loads of unsigned index arrays, pointer-array validation, a row-parallel
 * pthread runner and a 64-bit buffered MSB-first bit reader that never reads past its words. */
#ifndef NNC_COMMON_H
#define NNC_COMMON_H

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "nnc_kernels.h"

#define NNC_MAX_DIM 2147483647LL
#define NNC_BCH 8 /* batch items accumulated at once (a row is decoded once per chunk) */
#define NNC_MAX_THREADS 64

/* A hot loop compiled twice, for x86-64-v3 (lzcnt, BMI2, AVX2, FMA) and the baseline, the copy picked
 * when the library loads: the build uses no -march, and bsr in place of lzcnt costs ham a fifth. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(NNC_NO_CLONES)
#define NNC_CLONES __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define NNC_CLONES
#endif

static inline int nnc_check_dims(int64_t n_out, int64_t n_in, const float *x, int64_t batch,
                                 const float *y, int threads) {
    if (n_out < 0 || n_in < 0 || n_out > NNC_MAX_DIM || n_in > NNC_MAX_DIM || batch < 0 || threads < 1)
        return NNC_EARG;
    int64_t m = n_in > n_out ? n_in : n_out;
    if (m > 0 && batch > INT64_MAX / m) return NNC_EARG;
    if (batch > 0 && ((n_in > 0 && !x) || (n_out > 0 && !y))) return NNC_EARG;
    return NNC_OK;
}

/* x (batch, n_in) regrouped NNC_BCH items at a time with the item index fastest: element j of item
 * c * NNC_BCH + b at [(c * n_in + j) * NNC_BCH + b], zero past the batch. A batched sparse kernel then
 * reads the items' values of column j from one 32-byte run instead of NNC_BCH cache lines n_in
 * apart (scipy's CSR takes x transposed for the same reason). The caller frees it; NULL when out of
 * memory or batch < 2. */
static inline float *nnc_interleave_x(const float *x, int64_t batch, int64_t n_in) {
    if (batch < 2 || n_in < 1) return NULL;
    const int64_t chunks = (batch + NNC_BCH - 1) / NNC_BCH;
    if ((uint64_t)chunks > SIZE_MAX / NNC_BCH / sizeof(float) / (uint64_t)n_in) return NULL;
    float *xi = (float *)calloc((size_t)chunks * (size_t)n_in * NNC_BCH, sizeof(float));
    if (!xi) return NULL;
    for (int64_t b = 0; b < batch; b++) {
        float *dst = xi + (b / NNC_BCH) * n_in * NNC_BCH + b % NNC_BCH;
        const float *src = x + b * n_in;
        for (int64_t j = 0; j < n_in; j++) dst[j * NNC_BCH] = src[j];
    }
    return xi;
}

/* a * b for a, b >= 0, or -1 when it overflows or either is negative: array lengths derived from
 * untrusted dimensions then simply fail to match the lengths given. -1 propagates through chains. */
static inline int64_t nnc_mul(int64_t a, int64_t b) {
    if (a < 0 || b < 0 || (a && b > INT64_MAX / a)) return -1;
    return a * b;
}

static inline int nnc_width_ok(int w) { return w == 1 || w == 2 || w == 4 || w == 8; }

static inline uint64_t nnc_uget(const void *a, int w, int64_t i) {
    switch (w) {
    case 1: return ((const uint8_t *)a)[i];
    case 2: return ((const uint16_t *)a)[i];
    case 4: return ((const uint32_t *)a)[i];
    default: return ((const uint64_t *)a)[i];
    }
}

/* An index array: n entries of width w (null allowed only when empty). */
static inline int nnc_check_array(const void *a, int64_t n, int w) {
    if (!nnc_width_ok(w) || n < 0 || (n > 0 && !a)) return NNC_EARG;
    return NNC_OK;
}

/* The largest of n entries of an index array (0 when empty), by a width-specific loop the compiler
 * can vectorize: how kernels that check every index up front do so cheaply. */
#define NNC_UMAX_LOOP(T)                                                                                     \
    {                                                                                                        \
        const T *p = (const T *)a;                                                                           \
        T m = 0;                                                                                             \
        for (int64_t i = 0; i < n; i++) m = p[i] > m ? p[i] : m;                                             \
        return m;                                                                                            \
    }
static inline uint64_t nnc_umax(const void *a, int w, int64_t n) {
    switch (w) {
    case 1: NNC_UMAX_LOOP(uint8_t)
    case 2: NNC_UMAX_LOOP(uint16_t)
    case 4: NNC_UMAX_LOOP(uint32_t)
    default: NNC_UMAX_LOOP(uint64_t)
    }
}
#undef NNC_UMAX_LOOP

/* A pointer array of n entries starts at 0, never decreases and ends at total. */
static inline int nnc_check_ptr(const void *p, int64_t n, int w, uint64_t total) {
    int st = nnc_check_array(p, n, w);
    if (st) return st;
    if (n < 1 || nnc_uget(p, w, 0) != 0 || nnc_uget(p, w, n - 1) != total) return NNC_EBOUNDS;
    uint64_t prev = 0;
    for (int64_t i = 1; i < n; i++) {
        uint64_t v = nnc_uget(p, w, i);
        if (v < prev) return NNC_EBOUNDS;
        prev = v;
    }
    return NNC_OK;
}

/* ---- row-parallel runner: fn(ctx, r0, r1) on disjoint row ranges, first error wins ---- */
typedef int (*nnc_rows_fn)(const void *ctx, int64_t r0, int64_t r1);
typedef struct {
    nnc_rows_fn fn;
    const void *ctx;
    int64_t r0, r1;
    int status;
} nnc_job;

static void *nnc_job_run(void *arg) {
    nnc_job *j = (nnc_job *)arg;
    j->status = j->fn(j->ctx, j->r0, j->r1);
    return NULL;
}

static inline int nnc_run_rows(nnc_rows_fn fn, const void *ctx, int64_t n, int threads) {
    if (threads > NNC_MAX_THREADS) threads = NNC_MAX_THREADS;
    if (threads > n) threads = (int)n;
    if (threads <= 1) return fn(ctx, 0, n);
    nnc_job jobs[NNC_MAX_THREADS];
    pthread_t tid[NNC_MAX_THREADS];
    int started[NNC_MAX_THREADS];
    for (int t = 0; t < threads; t++) {
        jobs[t] = (nnc_job){fn, ctx, n * t / threads, n * (t + 1) / threads, NNC_OK};
        started[t] = t > 0 && pthread_create(&tid[t], NULL, nnc_job_run, &jobs[t]) == 0;
    }
    for (int t = 0; t < threads; t++)
        if (!started[t]) nnc_job_run(&jobs[t]); /* job 0, or a thread that could not start */
    int st = NNC_OK;
    for (int t = 0; t < threads; t++) {
        if (started[t]) pthread_join(tid[t], NULL);
        if (st == NNC_OK) st = jobs[t].status;
    }
    return st;
}

/* ---- bit reader: valid bits sit at the top of buf; words past n_words read as zero ---- */
typedef struct {
    const uint32_t *w;
    int64_t nw, wi;
    uint64_t buf;
    int cnt;
} nnc_br;

/* After a refill at least 33 bits are buffered, so any read of <= 32 bits is safe. */
static inline void nnc_br_refill(nnc_br *r) {
    if (r->cnt <= 32) {
        uint64_t v = (r->wi >= 0 && r->wi < r->nw) ? r->w[r->wi] : 0;
        r->buf |= v << (32 - r->cnt);
        r->cnt += 32;
        r->wi++;
    }
}

static inline void nnc_br_init(nnc_br *r, const uint32_t *w, int64_t nw, int64_t p) {
    r->w = w;
    r->nw = nw;
    r->wi = p >> 5;
    uint64_t v = (r->wi < nw) ? w[r->wi] : 0;
    r->buf = (v << 32) << (p & 31);
    r->cnt = 32 - (int)(p & 31);
    r->wi++;
    nnc_br_refill(r);
}

/* n in 0..32; the caller refilled. */
static inline uint64_t nnc_br_take(nnc_br *r, int n) {
    if (n == 0) return 0;
    uint64_t v = r->buf >> (64 - n);
    r->buf <<= n;
    r->cnt -= n;
    return v;
}

/* The bit length of a stream of n_words words (the last one is the zero guard). */
static inline int64_t nnc_stream_bits(int64_t n_words) { return n_words >= 1 ? (n_words - 1) * 32 : -1; }

#endif
