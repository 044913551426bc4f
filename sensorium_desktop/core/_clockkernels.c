/* The clock model's two innermost kernels in C: the monotone-chain lower-hull scan and the
 * envelope posterior of a small hull (sensorium_desktop/core/clock.py, _scan_lower_hull and
 * _posterior_small). Every floating-point operation is the Python code's, in its order, with
 * the same libm functions (built with -ffp-contract=off: no fused multiply-adds), so both give
 * the same bits; tests/test_clock_kernels.py compares them on random hulls. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>

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
    Py_ssize_t h = 0;
    double ax = 0.0, ay = 0.0, bx = 0.0, by = 0.0; /* the last vertex (a) and the one before (b) */
    for (Py_ssize_t i = 0; i < n; i++) {
        double px = x[i], py = y[i];
        while (h >= 2 && (ax - bx) * (py - by) - (ay - by) * (px - bx) <= 0) {
            h--;
            ax = bx;
            ay = by;
            if (h >= 2) {
                bx = x[hull[h - 2]];
                by = y[hull[h - 2]];
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

/* numpy's np.add.reduce of up to 128 float64s (its unrolled eight-way pairwise sum). */
static double pairwise_sum(const double *a, Py_ssize_t n) {
    if (n < 8) {
        double total = -0.0;
        for (Py_ssize_t i = 0; i < n; i++) total += a[i];
        return total;
    }
    double r[8];
    for (int j = 0; j < 8; j++) r[j] = a[j];
    Py_ssize_t full = n - n % 8;
    for (Py_ssize_t i = 8; i < full; i += 8)
        for (int j = 0; j < 8; j++) r[j] += a[i + j];
    double total = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
    for (Py_ssize_t i = full; i < n; i++) total += a[i];
    return total;
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
    double hx[MAX_VERTICES], hd[MAX_VERTICES];
    if (read_floats(hx_seq, hx, k) < 0 || read_floats(hd_seq, hd, k) < 0) goto done;
    Py_ssize_t centre = bisect_left(hx, k, x_mean);
    double ref = hd[centre < k - 1 ? centre : k - 1];
    double lam_data, inv_tau;
    if (divide(count, scale, &lam_data) || divide(sqrt(2.0), slope_prior_sigma, &inv_tau)) goto done;
    double edges[MAX_VERTICES], brk[MAX_VERTICES];
    for (Py_ssize_t i = 0; i + 1 < k; i++)
        if (divide((hd[i + 1] - ref) - (hd[i] - ref), hx[i + 1] - hx[i], &edges[i])) goto done;
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
    if (py_exp(e_brk[0] - top, &t) || divide(t, lam0, &mass[0]) || divide(1.0, lam0, &inv)) goto done;
    mean_b[0] = brk[0] - inv;
    if (divide(1.0, pow(lam0, TWO), &var_b[0])) goto done;
    for (Py_ssize_t j = 0; j + 1 < k; j++) { /* the bounded intervals */
        double width = brk[j + 1] - brk[j];
        double z = lam[j + 1] * width;
        double peak = py_max(e_brk[j], e_brk[j + 1]) - top;
        double absz = fabs(z) + 1e-300, m_unit, v_unit, e_peak, frac;
        if (tilted_moment(z, &m_unit, &v_unit) || py_exp(peak, &e_peak) || divide(-expm1(-absz), absz, &frac))
            goto done;
        mass[j + 1] = e_peak * width * frac;
        mean_b[j + 1] = brk[j] + width * m_unit;
        var_b[j + 1] = width * width * v_unit;
    }
    if (py_exp(e_brk[k - 1] - top, &t) || divide(t, -lam1, &mass[k]) || divide(1.0, lam1, &inv)) goto done;
    mean_b[k] = brk[k - 1] - inv;
    if (divide(1.0, pow(lam1, TWO), &var_b[k])) goto done;
    double total = pairwise_sum(mass, k + 1);
    double shift = x_eval - x_mean;
    double slope = 0.0, second = 0.0, line_mean = 0.0, line_second = 0.0;
    for (Py_ssize_t i = 0; i <= k; i++) { /* the four dot products, each summed in order */
        double wi, mi = mean_b[i], vi = var_b[i];
        if (divide(mass[i], total, &wi)) goto done;
        double arm = shift - u_v[i];
        double line = hd_v[i] + arm * mi;
        slope += wi * mi;
        second += wi * (vi + mi * mi);
        line_mean += wi * line;
        line_second += wi * (arm * arm * vi + line * line);
    }
    double tail;
    if (divide(scale, count, &tail)) goto done;
    double offset = ref + line_mean - tail;
    double sigma = sqrt(py_max(line_second - pow(line_mean, TWO), 0.0) + pow(tail, TWO));
    double slope_sigma = sqrt(py_max(second - pow(slope, TWO), 0.0));
    result = Py_BuildValue("dddd", offset, slope, sigma, slope_sigma);
done:
    Py_DECREF(hx_seq);
    Py_DECREF(hd_seq);
    return result;
}

static PyMethodDef methods[] = {
    {"scan_lower_hull", scan_lower_hull, METH_VARARGS,
     "scan_lower_hull(xs, ys) -> indices of the lower hull's vertices (points sorted by strictly increasing x)"},
    {"posterior_small", posterior_small, METH_VARARGS,
     "posterior_small(hx, hd, count, x_mean, scale, x_eval, slope_prior, slope_prior_sigma) -> "
     "(offset, slope, sigma, slope_sigma): clock.py's _posterior_small"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_clockkernels", NULL, -1, methods};

PyMODINIT_FUNC PyInit__clockkernels(void) { return PyModule_Create(&module); }
