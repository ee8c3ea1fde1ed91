/* rdoq: the level of each weight that minimizes weight * (|x| - m)^2 + lam * bits(m), over the
 * candidates src/nncompress/passes/rdoq.py's numpy `_Fitted._levels` tries, in the same double
 * operations in the same order (ISO C, no contraction into fused multiply-adds), so both give the
 * same levels bit for bit and the numpy path stays the reference where the kernels are not built.
 * numpy took 65 ns a weight over a dozen temporaries (VGG16's 138 M weights: 9 s per encoding).
 *
 * x = c / abs_step; a = |x|; candidates: round(a) (half to even), the other of floor/ceil,
 * max(floor - 1, 0), and 0 (always 0 for an exact zero). bits of magnitude m with x's sign is
 * table[m] (x >= 0) or table[half + m] (x < 0): the signed table of the rate model, half entries
 * each. weight = wts[i] when wts is not NULL (fisher), else 0.5 * (1 + (c / rms)^2) when magnitude
 * is set, else 1.
 *
 * Returns NNC_OK, NNC_EARG for n < 0, half < 2 or a non-positive abs_step, and NNC_EBOUNDS when a
 * magnitude's floor + 1 reaches half (the caller computes that piece by formula instead); levels
 * is then partly written. Never reads outside c[0, n), wts[0, n), table[0, 2 * half) or writes outside
 * levels[0, n). */
#include <math.h> /* fabs */
#include <stdint.h>

#include "nnc_kernels.h"

/* GCC contracts nothing under -std=c11 (ISO mode: -ffp-contract=off); clang needs telling */
#ifdef __clang__
#pragma STDC FP_CONTRACT OFF
#endif

int nnc_rdoq_levels(const float *c, int64_t n, double abs_step, double rms, int magnitude, const double *wts,
                    double lam, const double *table, int64_t half, int64_t *levels) {
    if (n < 0 || half < 2 || !(abs_step > 0.0)) return NNC_EARG;
    /* Selects, not branches: which candidate wins is a coin toss per weight, and mispredicted
     * branches made this loop 26 ns a weight (measured). */
    for (int64_t i = 0; i < n; i++) {
        double x = (double)c[i] / abs_step;
        double a = fabs(x);
        if (!(a + 1.0 < (double)half)) return NNC_EBOUNDS; /* also NaN */
        /* truncation is floor for 0 <= a < half: no libm call (floor() is one without SSE4.1) */
        int64_t fi = (int64_t)a;
        double frac = a - (double)fi;
        int64_t neg = x < 0;
        const double *bits = table + neg * half;
        double wt = 1.0;
        if (wts) {
            wt = wts[i];
        } else if (magnitude) {
            double t = (double)c[i] / rms;
            wt = 0.5 * (1.0 + t * t);
        }
        int64_t up = (frac > 0.5) | ((frac == 0.5) & (fi & 1));
        double j_floor = wt * (frac * frac) + lam * bits[fi];
        double g = 1.0 - frac;
        double j_ceil = wt * (g * g) + lam * bits[fi + 1];
        double j = up ? j_ceil : j_floor;
        double other = up ? j_floor : j_ceil;
        int64_t take = other < j;
        int64_t best = fi + (up ^ take);
        j = take ? other : j;
        int64_t below = fi - (fi > 0);
        double d = a - (double)below;
        double j_below = wt * (d * d) + lam * bits[below];
        take = j_below < j;
        best = take ? below : best;
        j = take ? j_below : j;
        double j_zero = wt * (a * a) + lam * table[0];
        best = ((j_zero < j) | (a == 0.0)) ? 0 : best;
        levels[i] = neg ? -best : best;
    }
    return NNC_OK;
}
