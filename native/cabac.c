/* cabac: context-adaptive binary arithmetic coding of signed integer levels (format:
 * src/nncompress/formats/cabac.py; plain Python reference, bit-exact: formats/_cabac_ref.py, which is
 * also the written spec). Layout: levels is a flat int32 array in scan order (the format's row-major
 * matrix), |level| < 2^30; the stream is bytes, MSB-first, of one LZMA-style range coder.
 *
 * Binarization of level l with p1, p2 the two levels before it in scan order (0 at the start):
 *   sig  = l != 0                  context min(|p1|, 2) * 2 + (p2 != 0)        (6 contexts)
 *   sign = l < 0                   context 0 if p1 == 0, 1 if p1 > 0, 2 if p1 < 0 (3)
 *   gt_k = |l| > k, k = 1..4       context (k - 1) * 2 + (|p1| > k), stop at the first 0 (8)
 *   |l| > 4: r = |l| - 5 as Exp-Golomb order 0: u = floor(log2(r + 1)) ones then a zero, bit i of
 *   that prefix in context min(i, 15) (16), then the u low bits of r + 1, MSB first, as bypass bins.
 * Each context holds two 15-bit estimates of P(bit == 1) (update shifts 4 and 7, both starting at
 * 1/2); their mean, clamped to [2^5, 2^15 - 2^5], splits the range: bound = (range >> 15) * p, a 1
 * takes [0, bound). A bypass bin halves the range, a 1 takes the upper half (LZMA's direct bits).
 * Integer arithmetic only: the same bytes on every platform.
 *
 * Limits and checks: the encoder rejects |level| >= 2^30 (NNC_EBOUNDS) and, when the stream does not
 * fit in cap bytes, returns NNC_ESPACE with *out_len set to the length it needs. The decoder reads
 * exactly the 5 + (number of renormalization shifts) bytes the encoder wrote: a first byte that is
 * not 0, a read past len, bytes left over after n levels, an Exp-Golomb prefix of 30 ones or a
 * magnitude >= 2^30 is NNC_ECODE. It never reads outside stream[0, len) or writes outside
 * levels[0, n). */
#include <stdint.h>
#include <string.h>

#include "nnc_kernels.h"

#define PROB_BITS 15
#define PROB_ONE (1u << PROB_BITS)
#define PROB_MIN (1u << 5)
#define PROB_MAX (PROB_ONE - (1u << 5))
#define TOP (1u << 24)
#define MAX_MAG (1 << 30) /* |level| < MAX_MAG */
#define K_GT 4
#define N_EG 16
#define MAX_PREFIX 30

typedef struct {
    uint16_t fast, slow;
} ctx_t;

typedef struct {
    ctx_t sig[6], sign[3], gt[2 * K_GT], eg[N_EG];
} model_t;

static void model_init(model_t *m) {
    ctx_t *c = (ctx_t *)m;
    for (size_t i = 0; i < sizeof(model_t) / sizeof(ctx_t); i++) c[i].fast = c[i].slow = (uint16_t)(PROB_ONE >> 1);
}

/* The spec clamps the mean to [PROB_MIN, PROB_MAX]; no reachable state needs it. From 1/2, the updates
 * below keep fast in [15, 32753] and slow in [127, 32641] (every reachable value is enumerated in
 * tests/test_formats_cabac.py), so the mean lies in [71, 32697]. Dropping the two compares took ~10 %
 * off the decoder's time per bin; the stream is unchanged. The same bounds give bound >= 2^15 and
 * range - bound >= 2^15 after a bin from range >= 2^24: at most two renormalization shifts. */
static inline uint32_t prob(const ctx_t *c) { return ((uint32_t)c->fast + c->slow) >> 1; }

/* Written as two exact branches, not as p += (target - p) >> s: an arithmetic shift of a negative
 * difference rounds the other way and would change the stream. Compilers turn both into cmovs. */
static inline void update(ctx_t *c, uint32_t bit) {
    uint32_t f = c->fast, s = c->slow;
    c->fast = (uint16_t)(bit ? f + ((PROB_ONE - f) >> 4) : f - (f >> 4));
    c->slow = (uint16_t)(bit ? s + ((PROB_ONE - s) >> 7) : s - (s >> 7));
}

/* ---- encoder ---- */

typedef struct {
    uint64_t low;
    uint32_t range;
    uint8_t cache;
    int64_t pending; /* the cache byte plus the 0xFF bytes waiting for a possible carry */
    uint8_t *out;
    int64_t pos, cap; /* pos keeps counting past cap, so a failed call says how much it needs */
} enc_t;

static inline void put_byte(enc_t *e, uint8_t b) {
    if (e->pos < e->cap) e->out[e->pos] = b;
    e->pos++;
}

static inline void shift_low(enc_t *e) {
    if ((uint32_t)e->low < 0xFF000000u || (e->low >> 32)) {
        const uint8_t carry = (uint8_t)(e->low >> 32);
        uint8_t t = e->cache;
        do {
            put_byte(e, (uint8_t)(t + carry));
            t = 0xFF;
        } while (--e->pending);
        e->cache = (uint8_t)(e->low >> 24);
    }
    e->pending++;
    e->low = (e->low & 0x00FFFFFFu) << 8;
}

static inline void enc_bin(enc_t *e, ctx_t *c, uint32_t bit) {
    const uint32_t bound = (e->range >> PROB_BITS) * prob(c);
    e->low += bit ? 0 : bound;
    e->range = bit ? bound : e->range - bound;
    update(c, bit);
    while (e->range < TOP) {
        e->range <<= 8;
        shift_low(e);
    }
}

static inline void enc_bypass(enc_t *e, uint32_t bit) {
    e->range >>= 1;
    e->low += bit ? e->range : 0;
    if (e->range < TOP) {
        e->range <<= 8;
        shift_low(e);
    }
}

static inline uint32_t mag(int32_t v) { return v < 0 ? 0u - (uint32_t)v : (uint32_t)v; }

int nnc_cabac_encode(const int32_t *levels, int64_t n, uint8_t *out, int64_t cap, int64_t *out_len) {
    if (n < 0 || cap < 0 || !out_len || (n > 0 && !levels) || (cap > 0 && !out)) return NNC_EARG;
    *out_len = 0;
    for (int64_t i = 0; i < n; i++) /* checked first: a rejected call writes nothing */
        if (levels[i] <= -MAX_MAG || levels[i] >= MAX_MAG) return NNC_EBOUNDS;
    model_t m;
    model_init(&m);
    enc_t e = {0, 0xFFFFFFFFu, 0, 1, out, 0, cap};
    int32_t p1 = 0, p2 = 0;
    for (int64_t i = 0; i < n; i++) {
        const int32_t l = levels[i];
        const uint32_t a = mag(l), a1 = mag(p1);
        enc_bin(&e, &m.sig[(a1 < 2 ? a1 : 2) * 2 + (p2 != 0)], a != 0);
        if (a) {
            enc_bin(&e, &m.sign[p1 == 0 ? 0 : p1 > 0 ? 1 : 2], l < 0);
            uint32_t k = 1;
            for (; k <= K_GT; k++) {
                enc_bin(&e, &m.gt[(k - 1) * 2 + (a1 > k)], a > k);
                if (a <= k) break;
            }
            if (a > K_GT) {
                const uint32_t v = a - K_GT; /* r + 1, r = a - K_GT - 1 */
                const int u = 31 - __builtin_clz(v);
                for (int j = 0; j < u; j++) enc_bin(&e, &m.eg[j < N_EG ? j : N_EG - 1], 1);
                enc_bin(&e, &m.eg[u < N_EG ? u : N_EG - 1], 0);
                for (int j = u - 1; j >= 0; j--) enc_bypass(&e, (v >> j) & 1u);
            }
        }
        p2 = p1;
        p1 = l;
    }
    for (int i = 0; i < 5; i++) shift_low(&e); /* LZMA's flush: the 4 bytes of low and the cache */
    *out_len = e.pos;
    return e.pos > cap ? NNC_ESPACE : NNC_OK;
}

/* ---- decoder ---- */

typedef struct {
    uint32_t range, code;
    const uint8_t *p, *end;
    int over; /* a byte past the end was asked for (read as 0; the call fails) */
} dec_t;

static inline uint32_t next_byte(dec_t *d) {
    if (d->p < d->end) return *d->p++;
    d->over = 1;
    return 0;
}

static inline uint32_t dec_bin(dec_t *d, ctx_t *c) {
    const uint32_t bound = (d->range >> PROB_BITS) * prob(c);
    const uint32_t bit = d->code < bound;
    d->code -= bit ? 0 : bound;
    d->range = bit ? bound : d->range - bound;
    update(c, bit);
    if (d->range < TOP) { /* two ifs, not a loop: measured ~5 % faster per decoded bin */
        d->range <<= 8;
        d->code = (d->code << 8) | next_byte(d);
        if (d->range < TOP) {
            d->range <<= 8;
            d->code = (d->code << 8) | next_byte(d);
        }
    }
    return bit;
}

static inline uint32_t dec_bypass(dec_t *d) {
    d->range >>= 1;
    const uint32_t bit = d->code >= d->range;
    d->code -= bit ? d->range : 0;
    if (d->range < TOP) {
        d->range <<= 8;
        d->code = (d->code << 8) | next_byte(d);
    }
    return bit;
}

int nnc_cabac_decode(const uint8_t *stream, int64_t len, int32_t *levels, int64_t n) {
    if (len < 0 || n < 0 || (len > 0 && !stream) || (n > 0 && !levels)) return NNC_EARG;
    if (len < 5 || stream[0] != 0) return NNC_ECODE; /* the encoder's first byte is its initial cache, 0 */
    dec_t d = {0xFFFFFFFFu, 0, stream + 1, stream + len, 0};
    for (int i = 0; i < 4; i++) d.code = (d.code << 8) | next_byte(&d);
    model_t m;
    model_init(&m);
    int32_t p1 = 0, p2 = 0;
    for (int64_t i = 0; i < n; i++) {
        const uint32_t a1 = mag(p1);
        int32_t l = 0;
        if (dec_bin(&d, &m.sig[(a1 < 2 ? a1 : 2) * 2 + (p2 != 0)])) {
            const uint32_t neg = dec_bin(&d, &m.sign[p1 == 0 ? 0 : p1 > 0 ? 1 : 2]);
            uint32_t a = 1;
            ctx_t *g = m.gt + (a1 > 1);
            while (a <= K_GT && dec_bin(&d, g)) {
                a++;
                g = m.gt + (a - 1) * 2 + (a1 > a);
            }
            if (a > K_GT) {
                int u = 0;
                while (dec_bin(&d, &m.eg[u < N_EG ? u : N_EG - 1]))
                    if (++u >= MAX_PREFIX) return NNC_ECODE;
                uint32_t v = 1;
                for (int j = 0; j < u; j++) v = (v << 1) | dec_bypass(&d);
                if (v >= (uint32_t)MAX_MAG - K_GT) return NNC_ECODE;
                a = K_GT + v;
            }
            l = neg ? -(int32_t)a : (int32_t)a;
        }
        if (d.over) return NNC_ECODE;
        levels[i] = l;
        p2 = p1;
        p1 = l;
    }
    return d.p == d.end ? NNC_OK : NNC_ECODE; /* every byte the encoder wrote, and no more */
}
