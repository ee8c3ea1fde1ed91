/* dct: y = x @ W.T where W is kept as sparse coefficients of a 2-D orthonormal transform
 * (src/nncompress/formats/dct.py): y = T_out^T (S (T_in x)) computed in the transform domain.
 * kernel 0 = DCT-II, 1 = DST-II (scipy norm="ortho"), 2 = DFT (numpy rfft2 half spectrum).
 * S is CSR over the coefficient grid (n_out, n_in) for dct/dst and (n_out, n_in / 2 + 1) for dft
 * (n_in > 0); values hold one float per entry, or (re, im) pairs for dft (n_values = 2 * n_col).
 * Every column must lie in the grid (NNC_EBOUNDS); order within a row is free.
 *
 * The optimized kernel uses real O(n log n) transforms: an iterative power-of-two complex FFT (its
 * radix-2 stages taken two at a time), with Bluestein's chirp-z for other lengths, whose twiddles and
 * chirps are built once per call and length (a square matrix shares them); DCT-II/III by Makhoul's
 * length-n reordering, DST-II/III through the DCT (DST(x)_k = DCT(s x)_{n-1-k}, s_j = (-1)^j), two
 * batch items packed into one complex FFT. Batch items are split over the threads (scratch per thread,
 * NNC_ENOMEM if it cannot be had); the naive kernel evaluates the transforms as direct O(n^2) sums.
 * Double inside. */
#include <math.h>

#include "nnc_common.h"

#define NNC_PI 3.14159265358979323846

enum { K_DCT = 0, K_DST = 1, K_DFT = 2 };

static int dct_check(int64_t n_out, int64_t n_in, int kernel, const float *values, int64_t n_values,
                     const void *col_idx, int64_t n_col, int col_width, const void *row_ptr, int64_t n_ptr,
                     int ptr_width, const float *x, int64_t batch, const float *y, int threads, int64_t *grid) {
    int st = nnc_check_dims(n_out, n_in, x, batch, y, threads);
    if (st) return st;
    if (kernel < K_DCT || kernel > K_DFT || n_col < 0) return NNC_EARG;
    if (n_values != (kernel == K_DFT ? nnc_mul(n_col, 2) : n_col) || (n_values > 0 && !values)) return NNC_EARG;
    if ((st = nnc_check_array(col_idx, n_col, col_width))) return st;
    if (n_ptr != n_out + 1) return NNC_EARG;
    if ((st = nnc_check_ptr(row_ptr, n_ptr, ptr_width, (uint64_t)n_col))) return st;
    int64_t g = kernel == K_DFT && n_in ? n_in / 2 + 1 : n_in;
    /* checked once here so the transform-domain loops run check-free */
    if (n_col > 0 && nnc_umax(col_idx, col_width, n_col) >= (uint64_t)g) return NNC_EBOUNDS;
    *grid = g;
    return NNC_OK;
}

/* ---- complex FFT: interleaved (re, im) doubles ---- */
typedef struct {
    int64_t n, m;  /* the length, and the power-of-two length actually transformed (n, or Bluestein's) */
    double *tw;    /* m / 2 twiddles e^{-2 pi i k / m} */
    double *chirp; /* Bluestein only: n chirps e^{-i pi k^2 / n} */
    double *bf;    /* Bluestein only: the FFT of the conjugate chirp filter, 1 / m folded in */
    double *rot;   /* dct/dst only: n rotations e^{-i pi k / (2 n)} of Makhoul's reordering */
} plan;

static void fft_pow2(double *z, int64_t m, const double *tw) {
    for (int64_t i = 1, j = 0; i < m; i++) { /* bit-reversal permutation */
        int64_t bit = m >> 1;
        for (; j & bit; bit >>= 1) j ^= bit;
        j ^= bit;
        if (i < j) {
            double t0 = z[2 * i], t1 = z[2 * i + 1];
            z[2 * i] = z[2 * j], z[2 * i + 1] = z[2 * j + 1];
            z[2 * j] = t0, z[2 * j + 1] = t1;
        }
    }
    int64_t len = 1; /* the size of the sub-transforms done so far */
    int stages = 0;
    while (((int64_t)1 << stages) < m) stages++;
    if (stages & 1) { /* an odd stage count: one radix-2 pass first */
        for (int64_t i = 0; i < m; i += 2) {
            double *a = z + 2 * i, r = a[2], im = a[3];
            a[2] = a[0] - r, a[3] = a[1] - im;
            a[0] += r, a[1] += im;
        }
        len = 2;
    }
    /* then radix-4 passes: two radix-2 stages at once, half the sweeps over z and 3 twiddle products
     * per 4 points instead of 4 */
    for (; 4 * len <= m; len *= 4) {
        const int64_t q = len, s2 = m / (2 * q), s4 = m / (4 * q);
        for (int64_t i = 0; i < m; i += 4 * q)
            for (int64_t k = 0; k < q; k++) {
                double *a0 = z + 2 * (i + k), *a1 = a0 + 2 * q, *a2 = a1 + 2 * q, *a3 = a2 + 2 * q;
                double wr = tw[2 * k * s2], wi = tw[2 * k * s2 + 1];
                double t1r = a1[0] * wr - a1[1] * wi, t1i = a1[0] * wi + a1[1] * wr;
                double t3r = a3[0] * wr - a3[1] * wi, t3i = a3[0] * wi + a3[1] * wr;
                double b0r = a0[0] + t1r, b0i = a0[1] + t1i, b1r = a0[0] - t1r, b1i = a0[1] - t1i;
                double b2r = a2[0] + t3r, b2i = a2[1] + t3i, b3r = a2[0] - t3r, b3i = a2[1] - t3i;
                double vr = tw[2 * k * s4], vi = tw[2 * k * s4 + 1];
                double u2r = b2r * vr - b2i * vi, u2i = b2r * vi + b2i * vr;
                double u3r = b3r * vi + b3i * vr, u3i = b3i * vi - b3r * vr; /* b3 v (-i) */
                a0[0] = b0r + u2r, a0[1] = b0i + u2i, a2[0] = b0r - u2r, a2[1] = b0i - u2i;
                a1[0] = b1r + u3r, a1[1] = b1i + u3i, a3[0] = b1r - u3r, a3[1] = b1i - u3i;
            }
    }
}

/* In place forward DFT of p->n complex values; work holds p->m complex (Bluestein's convolution). */
static void fft_exec(const plan *p, double *z, double *work) {
    if (!p->chirp) {
        fft_pow2(z, p->m, p->tw);
        return;
    }
    const int64_t n = p->n, m = p->m;
    const double *c = p->chirp;
    for (int64_t k = 0; k < n; k++) {
        work[2 * k] = z[2 * k] * c[2 * k] - z[2 * k + 1] * c[2 * k + 1];
        work[2 * k + 1] = z[2 * k] * c[2 * k + 1] + z[2 * k + 1] * c[2 * k];
    }
    memset(work + 2 * n, 0, (size_t)(2 * (m - n)) * sizeof(double));
    fft_pow2(work, m, p->tw);
    for (int64_t k = 0; k < m; k++) { /* times the filter, conjugated for the inverse transform below */
        double ar = work[2 * k], ai = work[2 * k + 1], br = p->bf[2 * k], bi = p->bf[2 * k + 1];
        work[2 * k] = ar * br - ai * bi;
        work[2 * k + 1] = -(ar * bi + ai * br);
    }
    fft_pow2(work, m, p->tw);
    for (int64_t k = 0; k < n; k++) {
        double ar = work[2 * k], ai = -work[2 * k + 1];
        z[2 * k] = ar * c[2 * k] - ai * c[2 * k + 1];
        z[2 * k + 1] = ar * c[2 * k + 1] + ai * c[2 * k];
    }
}

/* Unnormalized inverse DFT: conj(FFT(conj(z))). */
static void ifft_exec(const plan *p, double *z, double *work) {
    for (int64_t k = 0; k < p->n; k++) z[2 * k + 1] = -z[2 * k + 1];
    fft_exec(p, z, work);
    for (int64_t k = 0; k < p->n; k++) z[2 * k + 1] = -z[2 * k + 1];
}

static void plan_free(plan *p) {
    free(p->tw), free(p->chirp), free(p->bf), free(p->rot);
    memset(p, 0, sizeof *p);
}

static double *cplx(int64_t n) { return (double *)malloc((size_t)(n > 0 ? n : 1) * 2 * sizeof(double)); }

/* out[j] = e^{-2 pi i j / N} for j < count <= N. With 4 | N, cos and sin are evaluated on the first
 * octant (8 | N) or quadrant only and the rest follows by exact symmetries: the trigonometric calls
 * would otherwise dominate a call's setup. */
static void roots(double *out, int64_t N, int64_t count) {
    const int64_t Q = N % 4 ? N : N / 4; /* the range [0, Q] is built directly, the rest by quarter turns */
    const int64_t base = count < Q + 1 ? count : Q + 1;
    for (int64_t r = 0; r < base; r++) { /* (cos, sin) of 2 pi r / N first */
        if (N % 8 == 0 && 2 * r > Q) { /* cos(pi/2 - a) = sin(a), from Q - r < r */
            out[2 * r] = out[2 * (Q - r) + 1], out[2 * r + 1] = out[2 * (Q - r)];
        } else {
            double a = 2.0 * NNC_PI * (double)r / (double)N;
            out[2 * r] = cos(a), out[2 * r + 1] = sin(a);
        }
    }
    for (int64_t j = count - 1; j > Q; j--) { /* only with 4 | N; reads r < Q, not yet negated */
        int64_t r = j % Q;
        double c = out[2 * r], s = out[2 * r + 1], cj, sj;
        switch (j / Q) {
        case 1: cj = -s, sj = c; break;
        case 2: cj = -c, sj = -s; break;
        default: cj = s, sj = -c;
        }
        out[2 * j] = cj, out[2 * j + 1] = -sj;
    }
    for (int64_t r = 0; r < base; r++) out[2 * r + 1] = -out[2 * r + 1];
}

/* n >= 1. All twiddles, chirps and rotations are roots of unity read from exact tables (no
 * recurrences, so no error growth with the length). */
static int plan_init(plan *p, int64_t n, int rotations) {
    memset(p, 0, sizeof *p);
    int pow2 = (n & (n - 1)) == 0;
    int64_t m = 1;
    while (m < (pow2 ? n : 2 * n - 1)) m <<= 1;
    if ((uint64_t)m > SIZE_MAX / (4 * sizeof(double))) return NNC_ENOMEM;
    p->n = n, p->m = m;
    if (!(p->tw = cplx(m / 2))) return NNC_ENOMEM;
    roots(p->tw, m, m / 2);
    if (pow2 && !rotations) return NNC_OK;
    /* e^{-i pi k / 2n} = u_k and e^{-i pi k^2 / n} = u_{2 (k^2 mod 2n)} with u the 4n-th roots */
    double *u = cplx(pow2 ? n : 4 * n); /* the rotations alone need the first quadrant only */
    if (!u) return NNC_ENOMEM;
    roots(u, 4 * n, pow2 ? n : 4 * n);
    int st = NNC_OK;
    if (!pow2) {
        if (!(p->chirp = cplx(n)) || !(p->bf = cplx(m))) {
            st = NNC_ENOMEM;
        } else {
            for (int64_t k = 0; k < n; k++) {
                int64_t j = 2 * ((k * k) % (2 * n));
                p->chirp[2 * k] = u[2 * j], p->chirp[2 * k + 1] = u[2 * j + 1];
            }
            memset(p->bf, 0, (size_t)(2 * m) * sizeof(double));
            for (int64_t k = 0; k < n; k++) {
                p->bf[2 * k] = p->chirp[2 * k] / (double)m, p->bf[2 * k + 1] = -p->chirp[2 * k + 1] / (double)m;
                if (k) p->bf[2 * (m - k)] = p->bf[2 * k], p->bf[2 * (m - k) + 1] = p->bf[2 * k + 1];
            }
            fft_pow2(p->bf, m, p->tw);
        }
    }
    if (st == NNC_OK && rotations) {
        if (!(p->rot = cplx(n))) {
            st = NNC_ENOMEM;
        } else {
            for (int64_t k = 0; k < n; k++) p->rot[2 * k] = u[2 * k], p->rot[2 * k + 1] = -u[2 * k + 1];
        }
    }
    free(u);
    return st;
}

/* Makhoul's order: even inputs first, then the odd ones backwards. */
static inline int64_t makhoul(int64_t j, int64_t n) { return j & 1 ? n - 1 - j / 2 : j / 2; }

/* Orthonormal DCT-II (or DST-II) of two real rows x1, x2 (x2 null: zeros) into o1[k * os], o2[k * os]
 * (o2 ignored when x2 is null), by one complex FFT of x1 + i x2 reordered. z: n complex. */
static void fwd_real(const plan *p, int kernel, const float *x1, const float *x2, double *o1, double *o2,
                     int64_t os, double *z, double *work) {
    const int64_t n = p->n;
    for (int64_t j = 0; j < n; j++) {
        double sg = kernel == K_DST && (j & 1) ? -1.0 : 1.0;
        int64_t t = makhoul(j, n);
        z[2 * t] = sg * x1[j], z[2 * t + 1] = x2 ? sg * x2[j] : 0.0;
    }
    fft_exec(p, z, work);
    const double s0 = sqrt(1.0 / (double)n), s1 = sqrt(2.0 / (double)n);
    for (int64_t k = 0; k < n; k++) {
        int64_t kc = k ? n - k : 0;
        double zr = z[2 * k], zi = z[2 * k + 1], cr = z[2 * kc], ci = -z[2 * kc + 1];
        /* split the packed spectrum: V1 = (Z_k + conj Z_{-k}) / 2, V2 = (Z_k - conj Z_{-k}) / 2i */
        double v1r = 0.5 * (zr + cr), v1i = 0.5 * (zi + ci), v2r = 0.5 * (zi - ci), v2i = -0.5 * (zr - cr);
        double c = p->rot[2 * k], s = p->rot[2 * k + 1], sc = k ? s1 : s0;
        int64_t at = kernel == K_DST ? n - 1 - k : k;
        o1[at * os] = sc * (v1r * c + v1i * s);
        if (x2) o2[at * os] = sc * (v2r * c + v2i * s);
    }
}

/* Orthonormal DCT-III (or DST-III), the inverses of fwd_real, of coefficient rows c1[k * is], c2[k * is]
 * (c2 null: none) into the float rows y1, y2. */
static void inv_real(const plan *p, int kernel, const double *c1, const double *c2, int64_t is, float *y1,
                     float *y2, double *z, double *work) {
    const int64_t n = p->n;
    const double s0 = sqrt(1.0 / (double)n), h1 = 0.5 * sqrt(2.0 / (double)n);
#define COEF(c, k) ((c) ? (k ? h1 : s0) * (c)[(kernel == K_DST ? n - 1 - (k) : (k)) * is] : 0.0)
    for (int64_t k = 0; k < n; k++) {
        /* W_k = C_k - i C_{n-k} (W_0 = C_0), V_k = e^{i pi k / 2n} W_k; the two rows packed as V1 + i V2 */
        int64_t kc = n - k;
        double w1r = COEF(c1, k), w1i = k ? -COEF(c1, kc) : 0.0;
        double w2r = COEF(c2, k), w2i = k ? -COEF(c2, kc) : 0.0;
        double c = p->rot[2 * k], s = p->rot[2 * k + 1];
        double v1r = c * w1r - s * w1i, v1i = s * w1r + c * w1i;
        double v2r = c * w2r - s * w2i, v2i = s * w2r + c * w2i;
        z[2 * k] = v1r - v2i, z[2 * k + 1] = v1i + v2r;
    }
#undef COEF
    ifft_exec(p, z, work);
    for (int64_t j = 0; j < n; j++) {
        double sg = kernel == K_DST && (j & 1) ? -1.0 : 1.0;
        int64_t t = makhoul(j, n);
        y1[j] = (float)(sg * z[2 * t]);
        if (y2) y2[j] = (float)(sg * z[2 * t + 1]);
    }
}

/* dft forward: t_k = conj(rfft(x)_k) c_k / n for k < n / 2 + 1 (c_k as formats/dct.py's _weights), two
 * real rows per FFT; outputs complex at o1[2 k os], o2[2 k os]. */
static void fwd_dft(const plan *p, const float *x1, const float *x2, double *o1, double *o2, int64_t os,
                    double *z, double *work) {
    const int64_t n = p->n, h = n / 2 + 1;
    for (int64_t j = 0; j < n; j++) z[2 * j] = x1[j], z[2 * j + 1] = x2 ? x2[j] : 0.0;
    fft_exec(p, z, work);
    for (int64_t k = 0; k < h; k++) {
        int64_t kc = k ? n - k : 0;
        double zr = z[2 * k], zi = z[2 * k + 1], cr = z[2 * kc], ci = -z[2 * kc + 1];
        double w = (k == 0 || (n % 2 == 0 && k == h - 1) ? 1.0 : 2.0) / (double)n;
        /* X1 = (Z_k + conj Z_{-k}) / 2, X2 = (Z_k - conj Z_{-k}) / 2i; store conj(X) w */
        o1[2 * k * os] = w * 0.5 * (zr + cr), o1[2 * k * os + 1] = -w * 0.5 * (zi + ci);
        if (x2) o2[2 * k * os] = w * 0.5 * (zi - ci), o2[2 * k * os + 1] = w * 0.5 * (zr - cr);
    }
}

/* dft inverse: y = Re(ifft(q)) for complex rows q1[2 r is], q2 (null: none). Re(ifft(q)) is the ifft of
 * q's Hermitian part, which is real, so two rows share one FFT as H1 + i H2. */
static void inv_dft(const plan *p, const double *q1, const double *q2, int64_t is, float *y1, float *y2,
                    double *z, double *work) {
    const int64_t n = p->n;
    for (int64_t r = 0; r < n; r++) {
        int64_t rc = r ? n - r : 0;
        double h1r = 0.5 * (q1[2 * r * is] + q1[2 * rc * is]), h1i = 0.5 * (q1[2 * r * is + 1] - q1[2 * rc * is + 1]);
        double h2r = 0, h2i = 0;
        if (q2) h2r = 0.5 * (q2[2 * r * is] + q2[2 * rc * is]), h2i = 0.5 * (q2[2 * r * is + 1] - q2[2 * rc * is + 1]);
        z[2 * r] = h1r - h2i, z[2 * r + 1] = h1i + h2r;
    }
    ifft_exec(p, z, work);
    for (int64_t j = 0; j < n; j++) {
        y1[j] = (float)(z[2 * j] / (double)n);
        if (y2) y2[j] = (float)(z[2 * j + 1] / (double)n);
    }
}

typedef struct {
    int64_t n_out, n_in, grid;
    int kernel;
    const float *values;
    const void *col_idx, *row_ptr;
    int col_width, ptr_width;
    const float *x;
    float *y;
    const plan *pin, *pout;
} dct_ctx;

/* The sparse product in the transform domain, q[r][b] = sum_i v_i t[col_i][b], on rows interleaved by
 * batch item (element j of item b at [j * nb + b], (re, im) pairs for dft) so the nb values a
 * coefficient multiplies share a cache line. Columns were checked by dct_check. */
#define COEF_LOOP(NB)                                                                                        \
    for (int64_t i = i0; i < i1; i++) {                                                                      \
        const double *tc = t + (int64_t)ci[i] * (NB);                                                        \
        double v = k->values[i];                                                                             \
        for (int b = 0; b < (NB); b++) acc[b] += v * tc[b];                                                  \
    }
#define DFT_LOOP(NB)                                                                                         \
    for (int64_t i = i0; i < i1; i++) {                                                                      \
        const double *tc = t + 2 * (int64_t)ci[i] * (NB);                                                    \
        double vr = k->values[2 * i], vi = k->values[2 * i + 1];                                             \
        for (int b = 0; b < (NB); b++) {                                                                     \
            acc[2 * b] += vr * tc[2 * b] - vi * tc[2 * b + 1];                                               \
            acc[2 * b + 1] += vr * tc[2 * b + 1] + vi * tc[2 * b];                                           \
        }                                                                                                    \
    }
/* A full chunk gets a constant trip count the compiler can vectorize. */
#define COEF_ROWS(NAME, T)                                                                                   \
    static void NAME(const dct_ctx *k, const double *t, double *q, int nb) {                                 \
        const T *ci = (const T *)k->col_idx;                                                                 \
        const int cx = k->kernel == K_DFT ? 2 : 1;                                                           \
        for (int64_t r = 0; r < k->n_out; r++) {                                                             \
            int64_t i0 = (int64_t)nnc_uget(k->row_ptr, k->ptr_width, r);                                     \
            int64_t i1 = (int64_t)nnc_uget(k->row_ptr, k->ptr_width, r + 1);                                 \
            double acc[2 * NNC_BCH] = {0};                                                                   \
            if (nb == 1) { /* scalar sums, two of them for the real case, keep the chain in registers */     \
                double a0 = 0, a1 = 0, a2 = 0, a3 = 0;                                                       \
                int64_t i = i0;                                                                              \
                if (cx == 1) {                                                                               \
                    for (; i + 2 <= i1; i += 2) {                                                            \
                        a0 += (double)k->values[i] * t[ci[i]];                                               \
                        a1 += (double)k->values[i + 1] * t[ci[i + 1]];                                       \
                    }                                                                                        \
                    if (i < i1) a0 += (double)k->values[i] * t[ci[i]];                                       \
                } else {                                                                                     \
                    for (; i < i1; i++) {                                                                    \
                        double vr = k->values[2 * i], vi = k->values[2 * i + 1];                             \
                        double tr = t[2 * (int64_t)ci[i]], ti = t[2 * (int64_t)ci[i] + 1];                   \
                        a0 += vr * tr, a1 -= vi * ti, a2 += vr * ti, a3 += vi * tr;                          \
                    }                                                                                        \
                }                                                                                            \
                acc[0] = a0 + a1, acc[1] = a2 + a3;                                                          \
            } else if (cx == 1 && nb == NNC_BCH) {                                                           \
                COEF_LOOP(NNC_BCH)                                                                           \
            } else if (cx == 1) {                                                                            \
                COEF_LOOP(nb)                                                                                \
            } else if (nb == NNC_BCH) {                                                                      \
                DFT_LOOP(NNC_BCH)                                                                            \
            } else {                                                                                         \
                DFT_LOOP(nb)                                                                                 \
            }                                                                                                \
            for (int b = 0; b < cx * nb; b++) q[r * cx * nb + b] = acc[b];                                   \
        }                                                                                                    \
    }
COEF_ROWS(coef_rows_u8, uint8_t)
COEF_ROWS(coef_rows_u16, uint16_t)
COEF_ROWS(coef_rows_u32, uint32_t)
COEF_ROWS(coef_rows_u64, uint64_t)

/* Batch items b0..b1, NNC_BCH at a time so that the sparse product reads each coefficient once per
 * chunk. */
static int dct_items(const void *vctx, int64_t b0, int64_t b1) {
    const dct_ctx *k = (const dct_ctx *)vctx;
    const int cx = k->kernel == K_DFT ? 2 : 1; /* doubles per transform-domain value */
    const int64_t n_in = k->n_in, n_out = k->n_out, g = k->grid;
    int64_t nmax = n_in > n_out ? n_in : n_out, mmax = k->pin->m > k->pout->m ? k->pin->m : k->pout->m;
    size_t need = (size_t)(NNC_BCH * cx * (g + n_out) + 2 * nmax + 2 * mmax);
    double *mem = (double *)malloc(need * sizeof(double));
    if (!mem) return NNC_ENOMEM;
    double *t = mem, *q = t + NNC_BCH * cx * g, *z = q + NNC_BCH * cx * n_out, *work = z + 2 * nmax;
    for (int64_t c0 = b0; c0 < b1; c0 += NNC_BCH) {
        int nb = (int)(b1 - c0 < NNC_BCH ? b1 - c0 : NNC_BCH);
        for (int b = 0; b < nb; b += 2) {
            const float *x1 = k->x + (c0 + b) * n_in, *x2 = b + 1 < nb ? x1 + n_in : NULL;
            if (cx == 2)
                fwd_dft(k->pin, x1, x2, t + 2 * b, t + 2 * (b + 1), nb, z, work);
            else
                fwd_real(k->pin, k->kernel, x1, x2, t + b, t + b + 1, nb, z, work);
        }
        switch (k->col_width) {
        case 1: coef_rows_u8(k, t, q, nb); break;
        case 2: coef_rows_u16(k, t, q, nb); break;
        case 4: coef_rows_u32(k, t, q, nb); break;
        default: coef_rows_u64(k, t, q, nb);
        }
        for (int b = 0; b < nb; b += 2) {
            float *y1 = k->y + (c0 + b) * n_out, *y2 = b + 1 < nb ? y1 + n_out : NULL;
            if (cx == 2)
                inv_dft(k->pout, q + 2 * b, y2 ? q + 2 * (b + 1) : NULL, nb, y1, y2, z, work);
            else
                inv_real(k->pout, k->kernel, q + b, y2 ? q + b + 1 : NULL, nb, y1, y2, z, work);
        }
    }
    free(mem);
    return NNC_OK;
}

int nnc_dct_dot(int64_t n_out, int64_t n_in, int kernel, const float *values, int64_t n_values,
                const void *col_idx, int64_t n_col, int col_width, const void *row_ptr, int64_t n_ptr,
                int ptr_width, const float *x, int64_t batch, float *y, int threads) {
    int64_t grid = 0;
    int st = dct_check(n_out, n_in, kernel, values, n_values, col_idx, n_col, col_width, row_ptr, n_ptr,
                       ptr_width, x, batch, y, threads, &grid);
    if (st) return st;
    if (batch == 0 || n_out == 0) return NNC_OK;
    if (n_in == 0 || n_col == 0) {
        memset(y, 0, (size_t)(batch * n_out) * sizeof(float));
        return NNC_OK;
    }
    plan pin, pout; /* a square matrix needs one plan: its tables are a good part of a call's cost */
    int rot = kernel != K_DFT, same = n_in == n_out;
    memset(&pout, 0, sizeof pout);
    st = plan_init(&pin, n_in, rot);
    if (st == NNC_OK && !same) st = plan_init(&pout, n_out, rot);
    if (st == NNC_OK) {
        dct_ctx k = {n_out, n_in, grid, kernel, values, col_idx, row_ptr, col_width, ptr_width, x, y, &pin,
                     same ? &pin : &pout};
        st = nnc_run_rows(dct_items, &k, batch, threads);
    }
    plan_free(&pin);
    plan_free(&pout);
    return st;
}

/* ---- naive: the defining sums. cos(pi q / 2n) for q mod 4n from one table per length; sines and the
 * DFT's e^{2 pi i q / n} are read from the same table at shifted indices. ---- */
static double *cos_table(int64_t n) {
    double *c = (double *)malloc((size_t)(4 * n) * sizeof(double));
    if (c)
        for (int64_t q = 0; q < 4 * n; q++) c[q] = cos(NNC_PI * (double)q / (2.0 * (double)n));
    return c;
}

/* cos(pi q / 2n) and sin(pi q / 2n) = cos(pi (q - n) / 2n) for any q >= 0 */
static inline double tcos(const double *c, int64_t n, uint64_t q) { return c[q % (uint64_t)(4 * n)]; }
static inline double tsin(const double *c, int64_t n, uint64_t q) {
    return c[(q + 3 * (uint64_t)n) % (uint64_t)(4 * n)];
}

int nnc_dct_dot_naive(int64_t n_out, int64_t n_in, int kernel, const float *values, int64_t n_values,
                      const void *col_idx, int64_t n_col, int col_width, const void *row_ptr, int64_t n_ptr,
                      int ptr_width, const float *x, int64_t batch, float *y, int threads) {
    int64_t grid = 0;
    int st = dct_check(n_out, n_in, kernel, values, n_values, col_idx, n_col, col_width, row_ptr, n_ptr,
                       ptr_width, x, batch, y, threads, &grid);
    if (st) return st;
    if (batch == 0 || n_out == 0) return NNC_OK;
    if (n_in == 0) {
        memset(y, 0, (size_t)(batch * n_out) * sizeof(float));
        return NNC_OK;
    }
    const int cx = kernel == K_DFT ? 2 : 1;
    double *ci = cos_table(n_in), *co = cos_table(n_out);
    double *t = (double *)malloc((size_t)(cx * grid) * sizeof(double));
    double *q = (double *)malloc((size_t)(cx * n_out) * sizeof(double));
    if (!ci || !co || !t || !q) {
        free(ci), free(co), free(t), free(q);
        return NNC_ENOMEM;
    }
    const double ni = (double)n_in, no = (double)n_out;
    for (int64_t b = 0; b < batch; b++) {
        const float *xb = x + b * n_in;
        for (int64_t kk = 0; kk < grid; kk++) {
            uint64_t k = (uint64_t)kk;
            double re = 0.0, im = 0.0;
            for (int64_t jj = 0; jj < n_in; jj++) {
                uint64_t j = (uint64_t)jj;
                if (kernel == K_DCT) {
                    re += xb[jj] * tcos(ci, n_in, k * (2 * j + 1));
                } else if (kernel == K_DST) {
                    re += xb[jj] * tsin(ci, n_in, (k + 1) * (2 * j + 1));
                } else {
                    uint64_t a = 4 * ((j * k) % (uint64_t)n_in);
                    re += xb[jj] * tcos(ci, n_in, a);
                    im += xb[jj] * tsin(ci, n_in, a);
                }
            }
            if (kernel == K_DFT) { /* conj(sum x e^{-2 pi i jk/n}) = sum x e^{+2 pi i jk/n}, weighted */
                double w = (kk == 0 || (n_in % 2 == 0 && kk == grid - 1) ? 1.0 : 2.0) / ni;
                t[2 * kk] = w * re, t[2 * kk + 1] = w * im;
            } else {
                int lone = kernel == K_DCT ? kk == 0 : kk == n_in - 1;
                t[kk] = sqrt((lone ? 1.0 : 2.0) / ni) * re;
            }
        }
        for (int64_t r = 0; r < n_out; r++) {
            double re = 0.0, im = 0.0;
            for (int64_t i = (int64_t)nnc_uget(row_ptr, ptr_width, r); i < (int64_t)nnc_uget(row_ptr, ptr_width, r + 1);
                 i++) {
                int64_t c = (int64_t)nnc_uget(col_idx, col_width, i);
                if (kernel == K_DFT) {
                    re += (double)values[2 * i] * t[2 * c] - (double)values[2 * i + 1] * t[2 * c + 1];
                    im += (double)values[2 * i] * t[2 * c + 1] + (double)values[2 * i + 1] * t[2 * c];
                } else {
                    re += (double)values[i] * t[c];
                }
            }
            q[cx * r] = re;
            if (kernel == K_DFT) q[2 * r + 1] = im;
        }
        for (int64_t jj = 0; jj < n_out; jj++) {
            uint64_t j = (uint64_t)jj;
            double acc = 0.0;
            for (int64_t kk = 0; kk < n_out; kk++) {
                uint64_t k = (uint64_t)kk;
                if (kernel == K_DCT) acc += sqrt((kk ? 2.0 : 1.0) / no) * q[kk] * tcos(co, n_out, k * (2 * j + 1));
                else if (kernel == K_DST)
                    acc += sqrt((kk == n_out - 1 ? 1.0 : 2.0) / no) * q[kk] * tsin(co, n_out, (k + 1) * (2 * j + 1));
                else { /* Re(q_k e^{2 pi i jk / n}) / n */
                    uint64_t a = 4 * ((j * k) % (uint64_t)n_out);
                    acc += (q[2 * kk] * tcos(co, n_out, a) - q[2 * kk + 1] * tsin(co, n_out, a)) / no;
                }
            }
            y[b * n_out + jj] = (float)acc;
        }
    }
    free(ci), free(co), free(t), free(q);
    return NNC_OK;
}
