/* The CPU sample-path inversion's loops in C: the same work and the same numbers as the numba loops of
 * chronobt/augment/kernels.py (see their docstrings), without numba's import and load in every process.
 *
 * Built by setup.py as an optional extension module (chronobt.augment._loops) and called through ctypes
 * (chronobt/augment/loops.py), which releases the GIL for the call. Compiled without fast-math and without
 * contraction into fused multiply-adds: every float64 operation is the one the numpy reference makes, in
 * the same order. No bounds are checked here: the Python wrappers check the shapes.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if defined(_MSC_VER)
#define restrict __restrict
#endif

#if defined(_WIN32)
#define CHRONOBT_EXPORT __declspec(dllexport)
#else
#define CHRONOBT_EXPORT __attribute__((visibility("default")))
#endif

/* x86-64 Linux with glibc (its loader makes the choice) and GCC or clang: the binning loop also built for
 * AVX2 and chosen at load time (the baseline's SSE2 cannot vectorise it); the same operations, so the
 * same numbers either way. */
#if defined(__x86_64__) && defined(__linux__) && defined(__GLIBC__) && (defined(__GNUC__) || defined(__clang__))
#define CHRONOBT_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define CHRONOBT_CLONES
#endif

/* What the exported calls return on failure (loops.py raises for them). */
#define NO_MEMORY (-1)
#define BAD_SEGMENT (-2)

/* The sha256 of this file, defined by setup.py: loops.py uses a library built from the source beside it
 * only (an edited file not yet rebuilt runs the numba loops). */
#ifndef CHRONOBT_LOOPS_SOURCE
#define CHRONOBT_LOOPS_SOURCE ""
#endif

/* Most values sorted by insertion (a pilot, the values of a bin read); more go to qsort. */
#define SMALL_SORT 64

typedef struct {
    int32_t *start;      /* [bins + 3] start[b + 1]: bin b's count (n < 2^31: the wrapper checks) */
    int16_t *where;      /* [n] each value's bin (bins < 32,767: the wrapper checks) */
    int32_t *head;       /* [bins + 2] each bin's last value (-1: none) */
    int32_t *next;       /* [n] the value before it in its bin (-1: none) */
    int64_t *rank_bin;   /* [n_ranks] each rank's bin */
    int64_t *rank_start; /* [n_ranks] the values below each rank's bin */
    double *work;        /* [n] the pilot, a bin's values or the whole row */
} scratch_t;

static int scratch_alloc(scratch_t *s, int64_t n, int64_t n_ranks, int64_t bins) {
    size_t values = (size_t)(n > 0 ? n : 1), ranks = (size_t)(n_ranks > 0 ? n_ranks : 1);
    s->start = malloc(sizeof(int32_t) * (size_t)(bins + 3));
    s->where = malloc(sizeof(int16_t) * values);
    s->head = malloc(sizeof(int32_t) * (size_t)(bins + 2));
    s->next = malloc(sizeof(int32_t) * values);
    s->rank_bin = malloc(sizeof(int64_t) * ranks);
    s->rank_start = malloc(sizeof(int64_t) * ranks);
    s->work = malloc(sizeof(double) * values);
    return s->start && s->where && s->head && s->next && s->rank_bin && s->rank_start && s->work;
}

static void scratch_free(scratch_t *s) {
    free(s->start);
    free(s->where);
    free(s->head);
    free(s->next);
    free(s->rank_bin);
    free(s->rank_start);
    free(s->work);
}

/* numpy's order: NaN last. */
static int compare_nan_last(const void *pa, const void *pb) {
    double a = *(const double *)pa, b = *(const double *)pb;
    if (a != a) return b != b ? 0 : 1;
    if (b != b) return -1;
    return (a > b) - (a < b);
}

static void sort_values(double *a, int64_t n) {
    if (n <= SMALL_SORT) {
        for (int64_t i = 1; i < n; i++) {
            double v = a[i];
            int64_t j = i - 1;
            while (j >= 0 && (v < a[j] || (a[j] != a[j] && v == v))) {
                a[j + 1] = a[j];
                j--;
            }
            a[j + 1] = v;
        }
    } else {
        qsort(a, (size_t)n, sizeof(double), compare_nan_last);
    }
}

/* Each value's bin into where[n]: 1..bins over the bracket from low, 0 below it, bins + 1 (top) above
 * it; returns whether a value mapped to NaN (the row is then sorted whole). */
CHRONOBT_CLONES static int bin_values(const double *restrict row, int64_t n, double low, double inv, double top,
                      int16_t *restrict where) {
    int nan = 0;
    for (int64_t j = 0; j < n; j++) {
        double t = (row[j] - low) * inv + 1.0;
        nan |= t != t;
        double c = t > 0.0 ? t : 0.0;
        c = c < top ? c : top;
        where[j] = (int16_t)(int32_t)c;
    }
    return nan;
}

/* One row's order statistics at ranks into out[n_ranks]: 1 when the row was sorted whole, else 0.
 *
 * kernels.py's _row_statistics, the same values: a pilot brackets the ranks, one pass bins every value
 * (bin_values), a second counts the bins and links each bin's values into a list; blocks of 16 bins'
 * counts locate each rank's bin; each bin holding a rank has its values (a few) sorted on their own,
 * and as the bins ascend with the values, a rank's value is its place among them. */
static int64_t row_statistics(const double *row, int64_t n, const int64_t *ranks, int64_t n_ranks,
                              int64_t stride, int64_t pilot_low, int64_t pilot_high, int64_t bins,
                              scratch_t *s, double *out) {
    int32_t *start = s->start, *head = s->head, *next = s->next;
    int16_t *where = s->where;
    int64_t *rank_bin = s->rank_bin, *rank_start = s->rank_start;
    double *work = s->work;
    const double top = (double)(bins + 1);
    int64_t m = 0;
    for (int64_t j = 0; j < n; j += stride) work[m++] = row[j];
    sort_values(work, m);
    if (m == n) { /* the pilot is the whole row (fewer than two pilots' paths): already sorted */
        for (int64_t u = 0; u < n_ranks; u++) out[u] = work[ranks[u]];
        return 0;
    }
    double a = work[pilot_low], b = work[pilot_high];
    int ok = b > a && b - a < INFINITY;
    if (ok) {
        double low = a - 0.25 * (b - a);
        double inv = (double)bins / (1.5 * (b - a));
        ok = !bin_values(row, n, low, inv, top, where);
    }
    if (ok) {
        memset(start, 0, sizeof(int32_t) * (size_t)(bins + 3));
        memset(head, 0xff, sizeof(int32_t) * (size_t)(bins + 2));
        for (int64_t j = 0; j < n; j++) {
            int64_t bin = where[j];
            start[bin + 1] += 1;
            next[j] = head[bin];
            head[bin] = (int32_t)j;
        }
        /* rank u lies in the bin where the running count first exceeds it: whole blocks of 16 bins
         * skipped by their sum (vectorised), the block holding a rank walked bin by bin */
        const int32_t *count = start + 1;
        int64_t u = 0, before = 0, n_bins = bins + 2;
        for (int64_t b0 = 0; b0 < n_bins && u < n_ranks; b0 += 16) {
            int64_t end = b0 + 16 < n_bins ? b0 + 16 : n_bins;
            int32_t block = 0;
            for (int64_t bin = b0; bin < end; bin++) block += count[bin];
            if (ranks[u] >= before + block) {
                before += block;
                continue;
            }
            for (int64_t bin = b0; bin < end && u < n_ranks; bin++) {
                while (u < n_ranks && ranks[u] < before + count[bin]) {
                    rank_bin[u] = bin;
                    rank_start[u] = before;
                    u++;
                }
                before += count[bin];
            }
        }
        for (u = 0; u < n_ranks; u++)
            if (rank_bin[u] == 0 || rank_bin[u] == bins + 1) ok = 0; /* beyond the bracket */
    }
    if (!ok) {
        memcpy(work, row, sizeof(double) * (size_t)n);
        qsort(work, (size_t)n, sizeof(double), compare_nan_last);
        for (int64_t u = 0; u < n_ranks; u++) out[u] = work[ranks[u]];
        return 1;
    }
    int64_t previous = -1; /* ranks ascend, so do their bins: a bin's ranks are consecutive */
    for (int64_t u = 0; u < n_ranks; u++) {
        int64_t bin = rank_bin[u];
        if (bin != previous) {
            int64_t size = 0;
            for (int32_t j = head[bin]; j >= 0; j = next[j]) work[size++] = row[j];
            sort_values(work, size);
            previous = bin;
        }
        out[u] = work[ranks[u] - rank_start[u]];
    }
    return 0;
}

/* Whether every segment lies in 0 .. n_q - 2 (one pass, vectorised): the draws read q[s] and q[s + 1]. */
static int segments_ok(const int64_t *restrict seg, int64_t count, int64_t n_q) {
    if (n_q < 2) return count == 0;
    uint64_t top = (uint64_t)(n_q - 2);
    int bad = 0;
    for (int64_t i = 0; i < count; i++) bad |= (uint64_t)seg[i] > top;
    return !bad;
}

/* out[k, r, j] = q[k, r, s] + (q[k, r, s + 1] - q[k, r, s]) * frac[k, j] with s = seg[k, j]; returns 0, or
 * BAD_SEGMENT (nothing drawn). */
CHRONOBT_EXPORT int64_t chronobt_draw_steps(const double *q, int64_t h, int64_t rows, int64_t n_q,
                                            const int64_t *seg, const double *frac, int64_t n, double *out) {
    if (!segments_ok(seg, h * n, n_q)) return BAD_SEGMENT;
    for (int64_t k = 0; k < h; k++) {
        const int64_t *seg_k = seg + k * n;
        const double *frac_k = frac + k * n;
        for (int64_t r = 0; r < rows; r++) {
            const double *row = q + (k * rows + r) * n_q;
            double *dest = out + (k * rows + r) * n;
            for (int64_t j = 0; j < n; j++) {
                int64_t s = seg_k[j];
                dest[j] = row[s] + (row[s + 1] - row[s]) * frac_k[j];
            }
        }
    }
    return 0;
}

/* The ranks-th smallest values of each row of paths [rows, n] into out [rows, n_ranks]; returns the rows
 * sorted whole, or NO_MEMORY when the work arrays could not be allocated. */
CHRONOBT_EXPORT int64_t chronobt_order_statistics(const double *paths, int64_t rows, int64_t n,
                                                  const int64_t *ranks, int64_t n_ranks, int64_t stride,
                                                  int64_t pilot_low, int64_t pilot_high, int64_t bins,
                                                  double *out) {
    scratch_t s;
    if (!scratch_alloc(&s, n, n_ranks, bins)) {
        scratch_free(&s);
        return NO_MEMORY;
    }
    int64_t whole = 0;
    for (int64_t r = 0; r < rows; r++)
        whole += row_statistics(paths + r * n, n, ranks, n_ranks, stride, pilot_low, pilot_high, bins, &s,
                                out + r * n_ranks);
    scratch_free(&s);
    return whole;
}

/* order_statistics of the running sums of the drawn steps, step by step (differencing's inverse): path j
 * of row r at step k is x[k] = d[k] + x[k - 1] from x[-1] = first[r]; sums [rows, n] holds them. Returns
 * the rows sorted whole, BAD_SEGMENT or NO_MEMORY. */
CHRONOBT_EXPORT int64_t chronobt_running_sum_statistics(
    const double *q, int64_t h, int64_t rows, int64_t n_q, const int64_t *seg, const double *frac,
    int64_t n, const double *first, const int64_t *ranks, int64_t n_ranks, int64_t stride,
    int64_t pilot_low, int64_t pilot_high, int64_t bins, double *sums, double *out) {
    if (!segments_ok(seg, h * n, n_q)) return BAD_SEGMENT;
    scratch_t s;
    double *rise = malloc(sizeof(double) * (size_t)(n_q > 1 ? n_q - 1 : 1));
    if (!scratch_alloc(&s, n, n_ranks, bins) || !rise) {
        scratch_free(&s);
        free(rise);
        return NO_MEMORY;
    }
    int64_t whole = 0;
    for (int64_t k = 0; k < h; k++) {
        const int64_t *seg_k = seg + k * n;
        const double *frac_k = frac + k * n;
        for (int64_t r = 0; r < rows; r++) {
            const double *row = q + (k * rows + r) * n_q;
            double *dest = sums + r * n;
            for (int64_t i = 0; i < n_q - 1; i++) rise[i] = row[i + 1] - row[i];
            if (k == 0) {
                double base = first[r];
                for (int64_t j = 0; j < n; j++) {
                    int64_t sg = seg_k[j];
                    dest[j] = row[sg] + rise[sg] * frac_k[j] + base;
                }
            } else {
                for (int64_t j = 0; j < n; j++) {
                    int64_t sg = seg_k[j];
                    dest[j] = row[sg] + rise[sg] * frac_k[j] + dest[j];
                }
            }
            whole += row_statistics(dest, n, ranks, n_ranks, stride, pilot_low, pilot_high, bins, &s,
                                    out + (k * rows + r) * n_ranks);
        }
    }
    scratch_free(&s);
    free(rise);
    return whole;
}

/* The layout of the calls above: chronobt/augment/loops.py loads a library of its own version only. */
CHRONOBT_EXPORT int64_t chronobt_loops_version(void) { return 3; }

CHRONOBT_EXPORT const char *chronobt_loops_source(void) { return CHRONOBT_LOOPS_SOURCE; }

/* A module with no Python functions: it exists so that the build and the import system find the library. */
static struct PyModuleDef loops_module = {PyModuleDef_HEAD_INIT, "_loops", NULL, -1, NULL, NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__loops(void) { return PyModule_Create(&loops_module); }
