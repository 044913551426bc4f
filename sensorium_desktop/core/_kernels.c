/* core's kernels in C.
 *
 * The clock model's two innermost ones: the monotone-chain lower-hull scan and the envelope
 * posterior of a small hull (clock.py, _scan_lower_hull_py and _posterior_small_py). Every
 * floating-point operation is the Python code's, in its order, with the same libm functions
 * (built with -ffp-contract=off: no fused multiply-adds), so both give the same bits;
 * tests/test_kernels.py compares them on random hulls.
 *
 * The frames' CRC-32 (framing.py): zlib's CRC by carry-less multiplication (PCLMULQDQ) on
 * x86-64 CPUs that have it, ~4x zlib's tables (tests/test_kernels.py compares it with zlib). */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#define MAX_VERTICES 64 /* posterior_small's bound (clock.py calls it with up to 14) */

/* Python's x**2 is libm's pow(x, 2.0), which may differ from x * x in the last bit: the
 * exponent is read at run time so that the compiler cannot turn the call into x * x. */
static volatile double TWO = 2.0;

/* A float sequence (list or tuple) as a C array; -1 with an exception set on a non-float. */
static int read_floats(PyObject *seq, double *out, Py_ssize_t n) {
    PyObject **items = PySequence_Fast_ITEMS(seq);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *item = items[i];
        out[i] = PyFloat_CheckExact(item) ? PyFloat_AS_DOUBLE(item) : PyFloat_AsDouble(item);
        if (out[i] == -1.0 && PyErr_Occurred()) return -1;
    }
    return 0;
}

/* The monotone-chain scan (clock.py's _scan_lower_hull_py) of n points sorted by strictly
 * increasing x, point i at (x[i * stride], y[i * stride]): the hull vertices' indices into
 * hull (room for n); returns their count. */
static Py_ssize_t scan_hull(const double *x, const double *y, Py_ssize_t n, Py_ssize_t stride, Py_ssize_t *hull) {
    Py_ssize_t h = 0;
    double ax = 0.0, ay = 0.0, bx = 0.0, by = 0.0; /* the last vertex (a) and the one before it (b) */
    for (Py_ssize_t i = 0; i < n; i++) {
        double px = x[i * stride], py = y[i * stride];
        while (h >= 2 && (ax - bx) * (py - by) - (ay - by) * (px - bx) <= 0) {
            h--;
            ax = bx;
            ay = by;
            if (h >= 2) {
                bx = x[hull[h - 2] * stride];
                by = y[hull[h - 2] * stride];
            }
        }
        if (h) {
            bx = ax;
            by = ay;
        }
        ax = px;
        ay = py;
        hull[h++] = i;
    }
    return h;
}

static PyObject *scan_lower_hull(PyObject *self, PyObject *args) {
    PyObject *xs_obj, *ys_obj;
    if (!PyArg_ParseTuple(args, "OO", &xs_obj, &ys_obj)) return NULL;
    PyObject *xs_seq = PySequence_Fast(xs_obj, "xs must be a sequence");
    if (!xs_seq) return NULL;
    PyObject *ys_seq = PySequence_Fast(ys_obj, "ys must be a sequence");
    if (!ys_seq) { Py_DECREF(xs_seq); return NULL; }
    Py_ssize_t n = PySequence_Fast_GET_SIZE(xs_seq);
    PyObject *result = NULL;
    double *buf = NULL;
    Py_ssize_t *hull = NULL;
    if (PySequence_Fast_GET_SIZE(ys_seq) != n) {
        PyErr_SetString(PyExc_ValueError, "zip() arguments have different lengths");
        goto done;
    }
    buf = PyMem_Malloc(sizeof(double) * (size_t)(2 * n + 1));
    hull = PyMem_Malloc(sizeof(Py_ssize_t) * (size_t)(n + 1));
    if (!buf || !hull) { PyErr_NoMemory(); goto done; }
    double *x = buf, *y = buf + n;
    if (read_floats(xs_seq, x, n) < 0 || read_floats(ys_seq, y, n) < 0) goto done;
    Py_ssize_t h = scan_hull(x, y, n, 1, hull);
    result = PyList_New(h);
    if (!result) goto done;
    for (Py_ssize_t k = 0; k < h; k++) {
        PyObject *v = PyLong_FromSsize_t(hull[k]);
        if (!v) { Py_CLEAR(result); goto done; }
        PyList_SET_ITEM(result, k, v);
    }
done:
    PyMem_Free(buf);
    PyMem_Free(hull);
    Py_DECREF(xs_seq);
    Py_DECREF(ys_seq);
    return result;
}

/* Python's bisect.bisect_left on a float array. */
static Py_ssize_t bisect_left(const double *a, Py_ssize_t n, double v) {
    Py_ssize_t lo = 0, hi = n;
    while (lo < hi) {
        Py_ssize_t mid = (lo + hi) / 2;
        if (a[mid] < v) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

/* Python's max(a, b) on floats: a unless b > a. */
static double py_max(double a, double b) { return b > a ? b : a; }

/* numpy's np.add.reduce of n float64s spaced by stride (its pairwise sum: eight
 * accumulators up to 128 terms, halves above). */
static double numpy_sum(const double *a, Py_ssize_t n, Py_ssize_t stride) {
    if (n < 8) {
        double total = -0.0;
        for (Py_ssize_t i = 0; i < n; i++) total += a[i * stride];
        return total;
    }
    if (n <= 128) {
        double r[8];
        for (int j = 0; j < 8; j++) r[j] = a[j * stride];
        Py_ssize_t i;
        for (i = 8; i < n - n % 8; i += 8)
            for (int j = 0; j < 8; j++) r[j] += a[(i + j) * stride];
        double total = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        for (; i < n; i++) total += a[i * stride];
        return total;
    }
    Py_ssize_t n2 = n / 2;
    n2 -= n2 % 8;
    return numpy_sum(a, n2, stride) + numpy_sum(a + n2 * stride, n - n2, stride);
}

static int divide(double num, double den, double *out) {
    if (den == 0.0) {
        PyErr_SetString(PyExc_ZeroDivisionError, "float division by zero");
        return -1;
    }
    *out = num / den;
    return 0;
}

/* math.exp: OverflowError when a finite argument overflows. */
static int py_exp(double v, double *out) {
    *out = exp(v);
    if (isinf(*out) && isfinite(v)) {
        PyErr_SetString(PyExc_OverflowError, "math range error");
        return -1;
    }
    return 0;
}

/* clock.py's _tilted_moment. */
static int tilted_moment(double z, double *m_unit, double *v_unit) {
    if (fabs(z) < 1e-3) {
        *m_unit = 0.5 + z / 12.0;
        *v_unit = 1.0 / 12.0 - z * z / 720.0;
        return 0;
    }
    double zc = z;
    if (-700.0 > zc) zc = -700.0;
    if (700.0 < zc) zc = 700.0;
    double half = sinh(0.5 * zc);
    double a, b, c, d;
    if (divide(1.0, -expm1(-zc), &a) || divide(1.0, z, &b) || divide(1.0, z * z, &c) || divide(0.25, half * half, &d))
        return -1;
    *m_unit = a - b;
    *v_unit = c - d;
    return 0;
}

/* clock.py's _posterior_small_py on k (1..MAX_VERTICES) hull vertices: out = (offset,
 * slope, sigma, slope_sigma); -1 with a Python exception set (ZeroDivisionError,
 * OverflowError) where the Python code raises. */
static int posterior_core(const double *hx, const double *hd, Py_ssize_t k, double count, double x_mean, double scale,
                          double x_eval, double slope_prior, double slope_prior_sigma, double out[4]) {
    if (k < 1 || k > MAX_VERTICES) {
        PyErr_SetString(PyExc_ValueError, "posterior: 1 to 64 hull vertices");
        return -1;
    }
    Py_ssize_t centre = bisect_left(hx, k, x_mean);
    double ref = hd[centre < k - 1 ? centre : k - 1];
    double lam_data, inv_tau;
    if (divide(count, scale, &lam_data) || divide(sqrt(2.0), slope_prior_sigma, &inv_tau)) return -1;
    double edges[MAX_VERTICES], brk[MAX_VERTICES];
    for (Py_ssize_t i = 0; i + 1 < k; i++)
        if (divide((hd[i + 1] - ref) - (hd[i] - ref), hx[i + 1] - hx[i], &edges[i])) return -1;
    Py_ssize_t split = bisect_left(edges, k - 1, slope_prior);
    for (Py_ssize_t i = 0; i < k; i++) brk[i] = i < split ? edges[i] : (i == split ? slope_prior : edges[i - 1]);
    double u_v[MAX_VERTICES + 1], hd_v[MAX_VERTICES + 1], lam[MAX_VERTICES + 1], e_brk[MAX_VERTICES];
    for (Py_ssize_t i = 0; i <= k; i++) { /* interval i: between breakpoints i-1 and i, on vertex v */
        Py_ssize_t v = i <= split ? i : i - 1;
        double ui = hx[v] - x_mean, hi = hd[v] - ref;
        u_v[i] = ui;
        hd_v[i] = hi;
        lam[i] = (i <= split ? inv_tau : -inv_tau) - lam_data * ui;
        if (i < k) {
            double b = brk[i];
            e_brk[i] = lam_data * (hi - b * ui) - fabs(b - slope_prior) * inv_tau;
        }
    }
    double top = e_brk[0];
    for (Py_ssize_t i = 1; i < k; i++)
        if (e_brk[i] > top) top = e_brk[i];
    double lam0 = lam[0], lam1 = lam[k];
    double mass[MAX_VERTICES + 1], mean_b[MAX_VERTICES + 1], var_b[MAX_VERTICES + 1], t, inv;
    if (py_exp(e_brk[0] - top, &t) || divide(t, lam0, &mass[0]) || divide(1.0, lam0, &inv)) return -1;
    mean_b[0] = brk[0] - inv;
    if (divide(1.0, pow(lam0, TWO), &var_b[0])) return -1;
    for (Py_ssize_t j = 0; j + 1 < k; j++) { /* the bounded intervals */
        double width = brk[j + 1] - brk[j];
        double z = lam[j + 1] * width;
        double peak = py_max(e_brk[j], e_brk[j + 1]) - top;
        double absz = fabs(z) + 1e-300, m_unit, v_unit, e_peak, frac;
        if (tilted_moment(z, &m_unit, &v_unit) || py_exp(peak, &e_peak) || divide(-expm1(-absz), absz, &frac))
            return -1;
        mass[j + 1] = e_peak * width * frac;
        mean_b[j + 1] = brk[j] + width * m_unit;
        var_b[j + 1] = width * width * v_unit;
    }
    if (py_exp(e_brk[k - 1] - top, &t) || divide(t, -lam1, &mass[k]) || divide(1.0, lam1, &inv)) return -1;
    mean_b[k] = brk[k - 1] - inv;
    if (divide(1.0, pow(lam1, TWO), &var_b[k])) return -1;
    double total = numpy_sum(mass, k + 1, 1);
    double shift = x_eval - x_mean;
    double slope = 0.0, second = 0.0, line_mean = 0.0, line_second = 0.0;
    for (Py_ssize_t i = 0; i <= k; i++) { /* the four dot products, each summed in order */
        double wi, mi = mean_b[i], vi = var_b[i];
        if (divide(mass[i], total, &wi)) return -1;
        double arm = shift - u_v[i];
        double line = hd_v[i] + arm * mi;
        slope += wi * mi;
        second += wi * (vi + mi * mi);
        line_mean += wi * line;
        line_second += wi * (arm * arm * vi + line * line);
    }
    double tail;
    if (divide(scale, count, &tail)) return -1;
    double offset = ref + line_mean - tail;
    double sigma = sqrt(py_max(line_second - pow(line_mean, TWO), 0.0) + pow(tail, TWO));
    double slope_sigma = sqrt(py_max(second - pow(slope, TWO), 0.0));
    out[0] = offset;
    out[1] = slope;
    out[2] = sigma;
    out[3] = slope_sigma;
    return 0;
}

static PyObject *posterior_small(PyObject *self, PyObject *args) {
    PyObject *hx_obj, *hd_obj;
    double count, x_mean, scale, x_eval, slope_prior, slope_prior_sigma;
    if (!PyArg_ParseTuple(args, "OOdddddd", &hx_obj, &hd_obj, &count, &x_mean, &scale, &x_eval, &slope_prior,
                          &slope_prior_sigma))
        return NULL;
    PyObject *hx_seq = PySequence_Fast(hx_obj, "hx must be a sequence");
    if (!hx_seq) return NULL;
    PyObject *hd_seq = PySequence_Fast(hd_obj, "hd must be a sequence");
    if (!hd_seq) { Py_DECREF(hx_seq); return NULL; }
    PyObject *result = NULL;
    Py_ssize_t k = PySequence_Fast_GET_SIZE(hx_seq);
    if (k < 1 || k > MAX_VERTICES || PySequence_Fast_GET_SIZE(hd_seq) != k) {
        PyErr_SetString(PyExc_ValueError, "posterior_small: 1 to 64 vertices, as many x as d");
        goto done;
    }
    double hx[MAX_VERTICES], hd[MAX_VERTICES], out[4];
    if (read_floats(hx_seq, hx, k) < 0 || read_floats(hd_seq, hd, k) < 0) goto done;
    if (posterior_core(hx, hd, k, count, x_mean, scale, x_eval, slope_prior, slope_prior_sigma, out) < 0) goto done;
    result = Py_BuildValue("dddd", out[0], out[1], out[2], out[3]);
done:
    Py_DECREF(hx_seq);
    Py_DECREF(hd_seq);
    return result;
}

/* The delivery count of n bin rows (x, d, deliveries) by numpy's sum, and into *weighted their
 * deliveries x x summed first to last (clock.py: sn.sum(), _sum_in_order(sn * sx)). */
static double window_moments(const double *row, Py_ssize_t n, double *weighted) {
    double w = row[2] * row[0];
    for (Py_ssize_t i = 1; i < n; i++) w += row[3 * i + 2] * row[3 * i];
    *weighted = w;
    return numpy_sum(row + 2, n, 3);
}

/* window_posterior(bins, lo, x_eval, scale, slope_prior, slope_prior_sigma): clock.py's
 * _window_posterior_py — the posterior of the bins (x, d, deliveries; float64 rows) from row
 * lo on: their hull, delivery count and delivery-weighted mean x — as (offset, slope, sigma,
 * slope_sigma), or None when the hull has more than 64 vertices (the numpy code decides). */
static PyObject *window_posterior(PyObject *self, PyObject *args) {
    Py_buffer bins;
    Py_ssize_t lo;
    double x_eval, scale, slope_prior, slope_prior_sigma;
    if (!PyArg_ParseTuple(args, "y*ndddd", &bins, &lo, &x_eval, &scale, &slope_prior, &slope_prior_sigma))
        return NULL;
    PyObject *result = NULL;
    Py_ssize_t rows = bins.len / 24;
    Py_ssize_t *hull = NULL;
    if (bins.len % 24 || lo < 0 || lo >= rows) {
        PyErr_SetString(PyExc_ValueError, "window_posterior: float64 rows of 3 and 0 <= lo < rows");
        goto done;
    }
    const double *row = (const double *)bins.buf + 3 * lo;
    Py_ssize_t n = rows - lo;
    double weighted, count = window_moments(row, n, &weighted);
    double x_mean;
    if (divide(weighted, count, &x_mean)) goto done;
    hull = PyMem_Malloc(sizeof(Py_ssize_t) * (size_t)n);
    if (!hull) { PyErr_NoMemory(); goto done; }
    Py_ssize_t h = scan_hull(row, row + 1, n, 3, hull);
    if (h > MAX_VERTICES) {
        result = Py_NewRef(Py_None);
        goto done;
    }
    double hx[MAX_VERTICES], hd[MAX_VERTICES], out[4];
    for (Py_ssize_t j = 0; j < h; j++) {
        hx[j] = row[3 * hull[j]];
        hd[j] = row[3 * hull[j] + 1];
    }
    if (posterior_core(hx, hd, h, count, x_mean, scale, x_eval, slope_prior, slope_prior_sigma, out) < 0) goto done;
    result = Py_BuildValue("dddd", out[0], out[1], out[2], out[3]);
done:
    PyMem_Free(hull);
    PyBuffer_Release(&bins);
    return result;
}

/* The k-th smallest of a[0..n-1] (0-based; a is reordered: a[0..k-1] <= a[k] after). */
static double kth_smallest(double *a, Py_ssize_t n, Py_ssize_t k) {
    Py_ssize_t lo = 0, hi = n - 1;
    while (lo < hi) {
        double pivot = a[lo + (hi - lo) / 2];
        Py_ssize_t i = lo, j = hi;
        while (i <= j) {
            while (a[i] < pivot) i++;
            while (a[j] > pivot) j--;
            if (i <= j) {
                double t = a[i];
                a[i] = a[j];
                a[j] = t;
                i++;
                j--;
            }
        }
        if (k <= j) hi = j;
        else if (k >= i) lo = i;
        else break;
    }
    return a[k];
}

/* np.median of n non-NaN float64s (scratch is reordered). */
static double numpy_median(double *a, Py_ssize_t n) {
    Py_ssize_t half = n / 2;
    double upper = kth_smallest(a, n, half);
    if (n % 2) return upper;
    double lower = a[0];
    for (Py_ssize_t i = 1; i < half; i++)
        if (a[i] > lower) lower = a[i];
    return (-0.0 + lower + upper) / 2.0;
}

/* refine_knots(bins, knots, lo, hi, slope_fallback, slope_prior_sigma, scale_floor, values, done):
 * RefinedClock.from_model's knots in C (see there): for knot i, the bins lo[i]..hi[i] (rows x,
 * d, deliveries): their hull, delivery count, mean x, the hull edge at the mean as slope (one
 * vertex: slope_fallback), the median excess delay over it as scale (at least scale_floor),
 * and the posterior's offset at the knot into values[i]; done[i] = 1. Knots it leaves to the
 * Python code (done[i] = 0): more than 64 hull vertices, a NaN, a division by zero. */
static PyObject *refine_knots(PyObject *self, PyObject *args) {
    Py_buffer bins, knots, los, his, values, done;
    double slope_fallback, prior_sigma, scale_floor;
    if (!PyArg_ParseTuple(args, "y*y*y*y*dddw*w*", &bins, &knots, &los, &his, &slope_fallback, &prior_sigma,
                          &scale_floor, &values, &done))
        return NULL;
    PyObject *result = NULL;
    Py_ssize_t rows = bins.len / 24, k_count = knots.len / 8;
    Py_ssize_t *hull = NULL;
    double *scratch = NULL;
    if (bins.len % 24 || knots.len % 8 || los.len != knots.len || his.len != knots.len || values.len != knots.len ||
        done.len != k_count) {
        PyErr_SetString(PyExc_ValueError, "refine_knots: float64 rows of 3; knots, lo, hi, values, done of one length");
        goto done;
    }
    const int64_t *lo = los.buf, *hi = his.buf;
    for (Py_ssize_t i = 0; i < k_count; i++)
        if (lo[i] < 0 || hi[i] > rows || hi[i] - lo[i] < 1) {
            PyErr_SetString(PyExc_ValueError, "refine_knots: a window outside the bins");
            goto done;
        }
    hull = PyMem_Malloc(sizeof(Py_ssize_t) * (size_t)(rows + 1));
    scratch = PyMem_Malloc(sizeof(double) * (size_t)(rows + 1));
    if (!hull || !scratch) { PyErr_NoMemory(); goto done; }
    const double *kx = knots.buf, *all = bins.buf;
    double *val = values.buf;
    unsigned char *ok = done.buf;
    static volatile double two = 2.0;
    double ln2 = log(two);
    for (Py_ssize_t i = 0; i < k_count; i++) {
        ok[i] = 0;
        const double *row = all + 3 * lo[i];
        Py_ssize_t n = hi[i] - lo[i];
        double weighted, count = window_moments(row, n, &weighted);
        if (count == 0.0) continue;
        double mean_x = weighted / count;
        Py_ssize_t h = scan_hull(row, row + 1, n, 3, hull);
        if (h > MAX_VERTICES) continue;
        double hx[MAX_VERTICES], hd[MAX_VERTICES];
        int increasing = 1;
        for (Py_ssize_t j = 0; j < h; j++) {
            hx[j] = row[3 * hull[j]];
            hd[j] = row[3 * hull[j] + 1];
            if (j && !(hx[j] > hx[j - 1])) increasing = 0;
        }
        if (!increasing) continue;
        Py_ssize_t e = 0; /* searchsorted(hx, mean_x, side="right") */
        Py_ssize_t a = 0, b = h;
        while (a < b) {
            Py_ssize_t mid = (a + b) / 2;
            if (mean_x < hx[mid]) b = mid;
            else a = mid + 1;
        }
        e = a - 1;
        if (e < 0) e = 0;
        if (e > (h - 2 > 0 ? h - 2 : 0)) e = h - 2 > 0 ? h - 2 : 0;
        double slope = slope_fallback;
        if (h > 1) {
            double run = hx[e + 1] - hx[e];
            if (run == 0.0) continue;
            slope = (hd[e + 1] - hd[e]) / run;
        }
        int nan = 0;
        for (Py_ssize_t j = 0; j < n; j++) {
            double excess = row[3 * j + 1] - (hd[e] + slope * (row[3 * j] - hx[e]));
            if (isnan(excess)) nan = 1;
            scratch[j] = (excess >= 0.0 ? excess : 0.0) * row[3 * j + 2];
            if (isnan(scratch[j])) nan = 1;
        }
        if (nan) continue;
        double scale = numpy_median(scratch, n) / ln2;
        if (scale_floor > scale) scale = scale_floor;
        double out[4];
        if (posterior_core(hx, hd, h, count, mean_x, scale, kx[i], slope, prior_sigma, out) < 0) {
            PyErr_Clear();
            continue;
        }
        val[i] = out[0];
        ok[i] = 1;
    }
    result = Py_NewRef(Py_None);
done:
    PyMem_Free(hull);
    PyMem_Free(scratch);
    PyBuffer_Release(&bins);
    PyBuffer_Release(&knots);
    PyBuffer_Release(&los);
    PyBuffer_Release(&his);
    PyBuffer_Release(&values);
    PyBuffer_Release(&done);
    return result;
}

/* refined_to_host(x, x0, knots, values, out) -> bool: RefinedClock.to_host in one pass: out[i]
 * = x[i] + the knots' offset at x[i] - x0 (np.interp's arithmetic inside, the end segments'
 * lines outside); False (nothing written) unless there are two or more strictly increasing
 * knots. x, knots, values, out: float64. */
static PyObject *refined_to_host(PyObject *self, PyObject *args) {
    Py_buffer xb, kb, vb, ob;
    double x0;
    if (!PyArg_ParseTuple(args, "y*dy*y*w*", &xb, &x0, &kb, &vb, &ob)) return NULL;
    PyObject *result = NULL;
    double *slopes = NULL;
    Py_ssize_t n = xb.len / 8, m = kb.len / 8;
    if (xb.len % 8 || kb.len % 8 || vb.len != kb.len || ob.len != xb.len) {
        PyErr_SetString(PyExc_ValueError, "refined_to_host: x and out, knots and values of one length (float64)");
        goto done;
    }
    const double *x = xb.buf, *kx = kb.buf, *kv = vb.buf;
    double *out = ob.buf;
    int increasing = m >= 2;
    for (Py_ssize_t j = 1; j < m && increasing; j++) increasing = kx[j] > kx[j - 1];
    if (!increasing) {
        result = Py_NewRef(Py_False);
        goto done;
    }
    slopes = PyMem_Malloc(sizeof(double) * (size_t)(m - 1));
    if (!slopes) { PyErr_NoMemory(); goto done; }
    for (Py_ssize_t j = 0; j + 1 < m; j++) slopes[j] = (kv[j + 1] - kv[j]) / (kx[j + 1] - kx[j]);
    double slope_lo = slopes[0], slope_hi = slopes[m - 2];
    Py_BEGIN_ALLOW_THREADS
    Py_ssize_t j = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        double xr = x[i] - x0, off;
        if (xr < kx[0]) {
            off = kv[0] + slope_lo * (xr - kx[0]);
        } else if (xr > kx[m - 1]) {
            off = kv[m - 1] + slope_hi * (xr - kx[m - 1]);
        } else if (isnan(xr)) {
            off = xr;
        } else {
            if (!(kx[j] <= xr && (j + 1 >= m || xr < kx[j + 1]))) { /* the knot at or before xr */
                Py_ssize_t a = 0, b = m;
                while (b - a > 1) {
                    Py_ssize_t mid = (a + b) / 2;
                    if (kx[mid] <= xr) a = mid;
                    else b = mid;
                }
                j = a;
            }
            if (j == m - 1 || kx[j] == xr) {
                off = kv[j];
            } else {
                off = slopes[j] * (xr - kx[j]) + kv[j];
                if (isnan(off)) {
                    off = slopes[j] * (xr - kx[j + 1]) + kv[j + 1];
                    if (isnan(off) && kv[j] == kv[j + 1]) off = kv[j];
                }
            }
        }
        out[i] = off + x[i];
    }
    Py_END_ALLOW_THREADS
    result = Py_NewRef(Py_True);
done:
    PyMem_Free(slopes);
    PyBuffer_Release(&xb);
    PyBuffer_Release(&kb);
    PyBuffer_Release(&vb);
    PyBuffer_Release(&ob);
    return result;
}

/* refit_spread(bins, lo, open_row, alpha, beta) -> (ptp of d, the n//2-th smallest deliveries x
 * excess) or None (a NaN: the numpy code decides): ClockModel._refit's window statistics over
 * the bins from row lo (float64 rows x, d, deliveries) and open_row (a row of 3, or empty):
 * the excess is max(d - (alpha + beta x), 0). */
static PyObject *refit_spread(PyObject *self, PyObject *args) {
    Py_buffer bins, open_row;
    Py_ssize_t lo;
    double alpha, beta;
    if (!PyArg_ParseTuple(args, "y*ny*dd", &bins, &lo, &open_row, &alpha, &beta)) return NULL;
    PyObject *result = NULL;
    double *scratch = NULL;
    Py_ssize_t rows = bins.len / 24, extra = open_row.len / 24;
    if (bins.len % 24 || open_row.len % 24 || extra > 1 || lo < 0 || lo > rows || rows - lo + extra < 1) {
        PyErr_SetString(PyExc_ValueError, "refit_spread: float64 rows of 3, 0 <= lo <= rows, at most one open row");
        goto done;
    }
    Py_ssize_t n = rows - lo + extra;
    scratch = PyMem_Malloc(sizeof(double) * (size_t)n);
    if (!scratch) { PyErr_NoMemory(); goto done; }
    const double *row = (const double *)bins.buf + 3 * lo, *open = open_row.buf;
    double d_min = 0.0, d_max = 0.0;
    int nan = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        const double *r = i < rows - lo ? row + 3 * i : open;
        double excess = r[1] - (alpha + beta * r[0]);
        scratch[i] = (excess >= 0.0 ? excess : 0.0) * r[2];
        if (isnan(r[1]) || isnan(scratch[i])) nan = 1;
        if (i == 0 || r[1] < d_min) d_min = r[1];
        if (i == 0 || r[1] > d_max) d_max = r[1];
    }
    if (nan) {
        result = Py_NewRef(Py_None);
        goto done;
    }
    double kth = kth_smallest(scratch, n, n / 2);
    result = Py_BuildValue("dd", d_max - d_min, kth);
done:
    PyMem_Free(scratch);
    PyBuffer_Release(&bins);
    PyBuffer_Release(&open_row);
    return result;
}

/* CRC-32 (zlib's: reflected polynomial 0xEDB88320), eight bytes a step ("slicing-by-8"). */
static uint32_t crc_table[8][256];

static void crc_init(void) {
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        crc_table[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; i++)
        for (int t = 1; t < 8; t++) crc_table[t][i] = crc_table[0][crc_table[t - 1][i] & 0xFF] ^ (crc_table[t - 1][i] >> 8);
}

static uint32_t crc32_of(const unsigned char *p, size_t n) {
    uint32_t c = 0xFFFFFFFFu;
    while (n && ((uintptr_t)p & 7)) {
        c = crc_table[0][(c ^ *p++) & 0xFF] ^ (c >> 8);
        n--;
    }
#if !(defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__)
    while (n >= 8) {
        uint32_t lo, hi;
        memcpy(&lo, p, 4);
        memcpy(&hi, p + 4, 4);
        lo ^= c; /* little-endian hosts: the bytes in memory order */
        c = crc_table[7][lo & 0xFF] ^ crc_table[6][(lo >> 8) & 0xFF] ^ crc_table[5][(lo >> 16) & 0xFF] ^
            crc_table[4][lo >> 24] ^ crc_table[3][hi & 0xFF] ^ crc_table[2][(hi >> 8) & 0xFF] ^
            crc_table[1][(hi >> 16) & 0xFF] ^ crc_table[0][hi >> 24];
        p += 8;
        n -= 8;
    }
#endif
    while (n--) c = crc_table[0][(c ^ *p++) & 0xFF] ^ (c >> 8);
    return c ^ 0xFFFFFFFFu;
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define HAVE_CLMUL_CRC 1
/* The CRC register over len bytes (len >= 64, a multiple of 16) by carry-less multiplication
 * (Gopal et al., "Fast CRC computation for generic polynomials using PCLMULQDQ", Intel 2009:
 * fold 4 x 128 bits at a time, then to 128, to 64 and a Barrett reduction to 32 bits); the
 * constants are the paper's for the bit-reflected polynomial 0xEDB88320, as in zlib. */
__attribute__((target("sse4.1,pclmul"))) static uint32_t crc32_clmul(const unsigned char *buf, size_t len,
                                                                      uint32_t crc) {
    static const uint64_t k1k2[2] __attribute__((aligned(16))) = {0x0154442bd4, 0x01c6e41596};
    static const uint64_t k3k4[2] __attribute__((aligned(16))) = {0x01751997d0, 0x00ccaa009e};
    static const uint64_t k5k0[2] __attribute__((aligned(16))) = {0x0163cd6124, 0x0000000000};
    static const uint64_t poly[2] __attribute__((aligned(16))) = {0x01db710641, 0x01f7011641};
    __m128i x0, x1, x2, x3, x4, x5, x6, x7, x8, y5, y6, y7, y8;
    x1 = _mm_loadu_si128((const __m128i *)(buf + 0x00));
    x2 = _mm_loadu_si128((const __m128i *)(buf + 0x10));
    x3 = _mm_loadu_si128((const __m128i *)(buf + 0x20));
    x4 = _mm_loadu_si128((const __m128i *)(buf + 0x30));
    x1 = _mm_xor_si128(x1, _mm_cvtsi32_si128((int)crc));
    x0 = _mm_load_si128((const __m128i *)k1k2);
    buf += 64;
    len -= 64;
    while (len >= 64) { /* fold four blocks of 128 bits in parallel */
        x5 = _mm_clmulepi64_si128(x1, x0, 0x00);
        x6 = _mm_clmulepi64_si128(x2, x0, 0x00);
        x7 = _mm_clmulepi64_si128(x3, x0, 0x00);
        x8 = _mm_clmulepi64_si128(x4, x0, 0x00);
        x1 = _mm_clmulepi64_si128(x1, x0, 0x11);
        x2 = _mm_clmulepi64_si128(x2, x0, 0x11);
        x3 = _mm_clmulepi64_si128(x3, x0, 0x11);
        x4 = _mm_clmulepi64_si128(x4, x0, 0x11);
        y5 = _mm_loadu_si128((const __m128i *)(buf + 0x00));
        y6 = _mm_loadu_si128((const __m128i *)(buf + 0x10));
        y7 = _mm_loadu_si128((const __m128i *)(buf + 0x20));
        y8 = _mm_loadu_si128((const __m128i *)(buf + 0x30));
        x1 = _mm_xor_si128(_mm_xor_si128(x1, x5), y5);
        x2 = _mm_xor_si128(_mm_xor_si128(x2, x6), y6);
        x3 = _mm_xor_si128(_mm_xor_si128(x3, x7), y7);
        x4 = _mm_xor_si128(_mm_xor_si128(x4, x8), y8);
        buf += 64;
        len -= 64;
    }
    x0 = _mm_load_si128((const __m128i *)k3k4); /* fold the four into one */
    x5 = _mm_clmulepi64_si128(x1, x0, 0x00);
    x1 = _mm_clmulepi64_si128(x1, x0, 0x11);
    x1 = _mm_xor_si128(_mm_xor_si128(x1, x2), x5);
    x5 = _mm_clmulepi64_si128(x1, x0, 0x00);
    x1 = _mm_clmulepi64_si128(x1, x0, 0x11);
    x1 = _mm_xor_si128(_mm_xor_si128(x1, x3), x5);
    x5 = _mm_clmulepi64_si128(x1, x0, 0x00);
    x1 = _mm_clmulepi64_si128(x1, x0, 0x11);
    x1 = _mm_xor_si128(_mm_xor_si128(x1, x4), x5);
    while (len >= 16) { /* single blocks of 128 bits */
        x2 = _mm_loadu_si128((const __m128i *)buf);
        x5 = _mm_clmulepi64_si128(x1, x0, 0x00);
        x1 = _mm_clmulepi64_si128(x1, x0, 0x11);
        x1 = _mm_xor_si128(_mm_xor_si128(x1, x2), x5);
        buf += 16;
        len -= 16;
    }
    x2 = _mm_clmulepi64_si128(x1, x0, 0x10); /* 128 bits to 64 */
    x3 = _mm_setr_epi32(~0, 0, ~0, 0);
    x1 = _mm_srli_si128(x1, 8);
    x1 = _mm_xor_si128(x1, x2);
    x0 = _mm_loadl_epi64((const __m128i *)k5k0);
    x2 = _mm_srli_si128(x1, 4);
    x1 = _mm_and_si128(x1, x3);
    x1 = _mm_clmulepi64_si128(x1, x0, 0x00);
    x1 = _mm_xor_si128(x1, x2);
    x0 = _mm_load_si128((const __m128i *)poly); /* Barrett reduction to 32 bits */
    x2 = _mm_and_si128(x1, x3);
    x2 = _mm_clmulepi64_si128(x2, x0, 0x10);
    x2 = _mm_and_si128(x2, x3);
    x2 = _mm_clmulepi64_si128(x2, x0, 0x00);
    x1 = _mm_xor_si128(x1, x2);
    return (uint32_t)_mm_extract_epi32(x1, 1);
}
static int have_clmul;
#endif

/* zlib.crc32 of n bytes: carry-less multiplication where the CPU has it, else the tables. */
static uint32_t crc32_full(const unsigned char *p, size_t n) {
#ifdef HAVE_CLMUL_CRC
    if (have_clmul && n >= 64) {
        size_t chunk = n & ~(size_t)15;
        uint32_t reg = crc32_clmul(p, chunk, 0xFFFFFFFFu);
        p += chunk;
        n -= chunk;
        while (n--) reg = crc_table[0][(reg ^ *p++) & 0xFF] ^ (reg >> 8);
        return reg ^ 0xFFFFFFFFu;
    }
#endif
    return crc32_of(p, n);
}

static PyObject *crc32(PyObject *self, PyObject *arg) {
    Py_buffer data;
    if (PyObject_GetBuffer(arg, &data, PyBUF_SIMPLE) < 0) return NULL;
    uint32_t c;
    if (data.len > 65536) {
        Py_BEGIN_ALLOW_THREADS
        c = crc32_full(data.buf, (size_t)data.len);
        Py_END_ALLOW_THREADS
    } else {
        c = crc32_full(data.buf, (size_t)data.len);
    }
    PyBuffer_Release(&data);
    return PyLong_FromUnsignedLong(c);
}

static PyObject *crc32_tables(PyObject *self, PyObject *arg) {
    Py_buffer data;
    if (PyObject_GetBuffer(arg, &data, PyBUF_SIMPLE) < 0) return NULL;
    uint32_t c = crc32_of(data.buf, (size_t)data.len);
    PyBuffer_Release(&data);
    return PyLong_FromUnsignedLong(c);
}

/* concat_into(dst, sources, offsets, lengths): sources[i][offsets[i]:offsets[i] + lengths[i]]
 * written back to back into dst from its start (offsets, lengths: int64 buffers); the
 * copying runs with the GIL released, so a thread can fill one array while Python goes on. */
static PyObject *concat_into(PyObject *self, PyObject *args) {
    Py_buffer dst, offs, lens;
    PyObject *sources;
    if (!PyArg_ParseTuple(args, "w*O!y*y*", &dst, &PyList_Type, &sources, &offs, &lens)) return NULL;
    PyObject *result = NULL;
    Py_ssize_t k = PyList_GET_SIZE(sources), got = 0;
    Py_buffer *views = NULL;
    if (offs.len != 8 * k || lens.len != 8 * k) {
        PyErr_SetString(PyExc_ValueError, "concat_into: one int64 offset and length per source");
        goto done;
    }
    views = PyMem_Calloc((size_t)(k ? k : 1), sizeof(Py_buffer));
    if (!views) { PyErr_NoMemory(); goto done; }
    const int64_t *o = offs.buf, *n = lens.buf;
    int64_t total = 0;
    for (; got < k; got++) {
        if (PyObject_GetBuffer(PyList_GET_ITEM(sources, got), &views[got], PyBUF_SIMPLE) < 0) goto done;
        if (o[got] < 0 || n[got] < 0 || o[got] + n[got] > views[got].len) {
            PyErr_Format(PyExc_ValueError, "concat_into: source %zd has no bytes %lld..%lld", got, (long long)o[got],
                         (long long)(o[got] + n[got]));
            got++;
            goto done;
        }
        total += n[got];
    }
    if (total > dst.len) {
        PyErr_SetString(PyExc_ValueError, "concat_into: the sources do not fit into dst");
        goto done;
    }
    Py_BEGIN_ALLOW_THREADS
    char *at = dst.buf;
    for (Py_ssize_t i = 0; i < k; i++) {
        memcpy(at, (const char *)views[i].buf + o[i], (size_t)n[i]);
        at += n[i];
    }
    Py_END_ALLOW_THREADS
    result = Py_NewRef(Py_None);
done:
    for (Py_ssize_t i = 0; i < got; i++) PyBuffer_Release(&views[i]);
    PyMem_Free(views);
    PyBuffer_Release(&dst);
    PyBuffer_Release(&offs);
    PyBuffer_Release(&lens);
    return result;
}

/* bin_minima(x, y, width, backstep, keep, counts) -> m: clock.py's bin_minima_py in one pass
 * (see there): keep[:m] the kept samples' indices, counts[:m] their deliveries; -1 when a
 * y - x is NaN (the numpy code then decides). x, y: float64 (n,); keep: int64, counts:
 * float64, both writable (n,). */
static PyObject *bin_minima(PyObject *self, PyObject *args) {
    Py_buffer xb, yb, kb, cb;
    double width, backstep;
    if (!PyArg_ParseTuple(args, "y*y*ddw*w*", &xb, &yb, &width, &backstep, &kb, &cb)) return NULL;
    PyObject *result = NULL;
    Py_ssize_t n = xb.len / 8;
    if (xb.len % 8 || yb.len != xb.len || kb.len != xb.len || cb.len != xb.len || n < 1) {
        PyErr_SetString(PyExc_ValueError, "bin_minima: x, y (float64), keep (int64), counts (float64) of one length >= 1");
        goto done;
    }
    const double *x = xb.buf, *y = yb.buf;
    int64_t *keep = kb.buf;
    double *counts = cb.buf;
    Py_ssize_t m = 0;
    int nan = 0;
    Py_BEGIN_ALLOW_THREADS
    double x0 = x[0], lowest = y[0] - x[0], count = 0.0;
    int64_t bin = (int64_t)floor((x[0] - x0) / width);
    Py_ssize_t seg_first = 0, at_min = 0;
    for (Py_ssize_t i = 0; i < n && !nan; i++) {
        double d = y[i] - x[i];
        if (isnan(d)) {
            nan = 1;
            break;
        }
        int reset = i > 0 && x[i] < x[i - 1] - backstep;
        if (reset) x0 = x[i];
        int64_t b = (int64_t)floor((x[i] - x0) / width);
        if (i > 0 && (reset || b != bin)) { /* the group before ends */
            if (at_min != seg_first && seg_first >= 0) { /* its segment's first sample starts its epoch */
                keep[m] = seg_first;
                counts[m++] = 0.0;
            }
            keep[m] = at_min;
            counts[m++] = count;
            seg_first = -1;
            lowest = d;
            at_min = i;
            count = 0.0;
        } else if (d < lowest) {
            lowest = d;
            at_min = i;
        }
        if (reset) seg_first = i;
        bin = b;
        count += (i == n - 1 || y[i + 1] != y[i]) ? 1.0 : 0.0; /* the last sample of a delivery */
    }
    if (!nan) {
        if (at_min != seg_first && seg_first >= 0) {
            keep[m] = seg_first;
            counts[m++] = 0.0;
        }
        keep[m] = at_min;
        counts[m++] = count;
    }
    Py_END_ALLOW_THREADS
    result = PyLong_FromSsize_t(nan ? -1 : m);
done:
    PyBuffer_Release(&xb);
    PyBuffer_Release(&yb);
    PyBuffer_Release(&kb);
    PyBuffer_Release(&cb);
    return result;
}

static PyMethodDef methods[] = {
    {"scan_lower_hull", scan_lower_hull, METH_VARARGS,
     "scan_lower_hull(xs, ys) -> indices of the lower hull's vertices (points sorted by strictly increasing x)"},
    {"posterior_small", posterior_small, METH_VARARGS,
     "posterior_small(hx, hd, count, x_mean, scale, x_eval, slope_prior, slope_prior_sigma) -> "
     "(offset, slope, sigma, slope_sigma): clock.py's _posterior_small"},
    {"concat_into", concat_into, METH_VARARGS,
     "concat_into(dst, sources, offsets, lengths): the sources' byte ranges back to back into dst (GIL released)"},
    {"bin_minima", bin_minima, METH_VARARGS,
     "bin_minima(x, y, width, backstep, keep, counts) -> m: clock.py's bin_minima in one pass (-1: a NaN)"},
    {"window_posterior", window_posterior, METH_VARARGS,
     "window_posterior(bins, lo, x_eval, scale, slope_prior, slope_prior_sigma) -> the posterior of bins[lo:] "
     "(None: more than 64 hull vertices)"},
    {"refine_knots", refine_knots, METH_VARARGS,
     "refine_knots(bins, knots, lo, hi, slope_fallback, slope_prior_sigma, scale_floor, values, done): "
     "RefinedClock.from_model's knot offsets (done[i] = 0: left to the Python code)"},
    {"refined_to_host", refined_to_host, METH_VARARGS,
     "refined_to_host(x, x0, knots, values, out) -> bool: RefinedClock.to_host in one pass (False: not done)"},
    {"refit_spread", refit_spread, METH_VARARGS,
     "refit_spread(bins, lo, open_row, alpha, beta) -> (ptp of d, n//2-th smallest excess x deliveries) or None"},
    {"crc32", crc32, METH_O, "crc32(data) -> zlib.crc32(data) (a bytes-like object)"},
    {"crc32_tables", crc32_tables, METH_O, "crc32 by the tables alone (the path of CPUs without PCLMULQDQ)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_kernels", NULL, -1, methods};

PyMODINIT_FUNC PyInit__kernels(void) {
    crc_init();
#ifdef HAVE_CLMUL_CRC
    __builtin_cpu_init();
    have_clmul = __builtin_cpu_supports("pclmul") && __builtin_cpu_supports("sse4.1");
#endif
    return PyModule_Create(&module);
}
