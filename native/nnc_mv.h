/* Internal: dense matrix times a chunk of batch vectors, shared by sss.c and lowrank.c. Not part of
 * the API. The vectors of a chunk of nb <= NNC_BCH batch items are interleaved, element j of item b
 * at [j * nb + b], in double: each matrix entry is loaded once per chunk and the inner loop runs over
 * contiguous items, with a constant trip count (vectorizable) for a full chunk. */
#ifndef NNC_MV_H
#define NNC_MV_H

#include "nnc_common.h"

/* out[i][.] += sum_{j < cols} m[i * ldm + j] * v[j][.] for i < rows */
static inline void nnc_mv_add(const float *m, int64_t ldm, int64_t rows, int64_t cols, const double *v,
                              double *out, int nb) {
    for (int64_t i = 0; i < rows; i++) {
        const float *mr = m + i * ldm;
        double *o = out + i * nb;
        if (nb == 1) { /* four independent sums keep the FPU busy */
            double a0 = 0, a1 = 0, a2 = 0, a3 = 0;
            int64_t j = 0;
            for (; j + 4 <= cols; j += 4) {
                a0 += (double)mr[j] * v[j];
                a1 += (double)mr[j + 1] * v[j + 1];
                a2 += (double)mr[j + 2] * v[j + 2];
                a3 += (double)mr[j + 3] * v[j + 3];
            }
            for (; j < cols; j++) a0 += (double)mr[j] * v[j];
            o[0] += (a0 + a1) + (a2 + a3);
        } else if (nb == NNC_BCH) {
            double acc[NNC_BCH] = {0};
            for (int64_t j = 0; j < cols; j++) {
                double w = mr[j];
                const double *vj = v + j * NNC_BCH;
                for (int b = 0; b < NNC_BCH; b++) acc[b] += w * vj[b];
            }
            for (int b = 0; b < NNC_BCH; b++) o[b] += acc[b];
        } else {
            double acc[NNC_BCH] = {0};
            for (int64_t j = 0; j < cols; j++) {
                double w = mr[j];
                const double *vj = v + j * nb;
                for (int b = 0; b < nb; b++) acc[b] += w * vj[b];
            }
            for (int b = 0; b < nb; b++) o[b] += acc[b];
        }
    }
}

/* The float rows x[b * n + j] of nb items as interleaved doubles out[j * nb + b]. */
static inline void nnc_interleave(const float *x, int64_t n, int nb, double *out) {
    for (int b = 0; b < nb; b++)
        for (int64_t j = 0; j < n; j++) out[j * nb + b] = x[b * n + j];
}

#endif
