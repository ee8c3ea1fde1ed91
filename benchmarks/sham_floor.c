/* The floor under any batch-1 sham kernel built like native/sham.c's lane kernel: only the part
 * that cannot be removed, the decode's dependency chain (peek at the row's bit position, one lookup
 * in the 13-bit lane table, step the position and the column), with no product, no bounds check on
 * the column and no fallback for the entries the table misses (they are stepped over as if 13 bits
 * long, so the sum is meaningless; it is returned only so that the compiler keeps the loop). Compiled
 * by benchmarks/bench_sham_floor.py; not part of the package. */
#include "nnc_sham.h" /* sham_prepare, lane_build: linked from native/sham.c */

#define FLOOR_STEP(j)                                                                                        \
    if (__builtin_expect(pos##j < end##j, 1)) {                                                              \
        const uint32_t e = T[peek64(w, pos##j) >> (64 - LANE_BITS)];                                         \
        const uint32_t len = e & 15;                                                                         \
        pos##j += len ? len : LANE_BITS;                                                                     \
        col##j += e >> (4 + sb);                                                                             \
        sum##j += e;                                                                                         \
    } else {                                                                                                 \
        if (end##j >= 0) total += (uint64_t)col##j + (uint64_t)sum##j;                                       \
        col##j = -1;                                                                                         \
        sum##j = 0;                                                                                          \
        if (next < n_out) {                                                                                  \
            pos##j = (int64_t)nnc_uget(row_bits, rbits_width, next);                                         \
            end##j = (int64_t)nnc_uget(row_bits, rbits_width, next + 1);                                     \
            next++;                                                                                          \
        } else if (end##j >= 0) { /* no rows left: this lane is done */                                      \
            end##j = -1;                                                                                     \
            if (++finished == lanes) goto done;                                                              \
        }                                                                                                    \
    }
#define FLOOR_LANE(j) int64_t pos##j = 0, end##j = 0, col##j = -1, sum##j = 0;

/* A positive sum of the rows' steps and entries, or a negative NNC_E* status. lanes: 4 (the real
 * kernel's) or 8 (twice the overlap, at no cost in registers here: the skeleton needs few). */
int64_t nnc_sham_floor(SHAM_ARGS, int lanes) {
    if (lanes != 4 && lanes != 8) return NNC_EARG;
    huff *hv = NULL, *hg = NULL;
    int st = sham_prepare(SHAM_PASS, &hv, &hg);
    if (st) return st;
    int sb = 5;
    while (((int64_t)1 << sb) < k) sb++;
    uint16_t *T = gap_coder == 0 && k <= 256 ? (uint16_t *)malloc(sizeof(uint16_t) << LANE_BITS) : NULL;
    if (!T) {
        free(hv);
        free(hg);
        return NNC_EARG;
    }
    lane_build(T, hg, hv, n_gap_len - 1, sb);
    const uint32_t *w = stream;
    uint64_t total = (uint64_t)lanes; /* cancels the -1 each lane adds on its first visit (no row yet) */
    int64_t next = 0;
    int finished = 0;
    FLOOR_LANE(0) FLOOR_LANE(1) FLOOR_LANE(2) FLOOR_LANE(3)
    FLOOR_LANE(4) FLOOR_LANE(5) FLOOR_LANE(6) FLOOR_LANE(7)
    if (lanes == 4)
        for (;;) {
            FLOOR_STEP(0) FLOOR_STEP(1) FLOOR_STEP(2) FLOOR_STEP(3)
        }
    else
        for (;;) {
            FLOOR_STEP(0) FLOOR_STEP(1) FLOOR_STEP(2) FLOOR_STEP(3)
            FLOOR_STEP(4) FLOOR_STEP(5) FLOOR_STEP(6) FLOOR_STEP(7)
        }
done:
    free(T);
    free(hv);
    free(hg);
    return (int64_t)(total >> 1);
}
