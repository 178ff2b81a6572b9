"""The CuPy kernels of :class:`~xpnn.backend.Ops`, compiled on first use.

Owns the sources of the element-wise kernels (sigmoid, its backward, the
scaled differences, the SGD update, softmax-with-loss's backward) and of the
raw kernel that fuses the softmax-with-loss forward, and the cache of
compiled kernels (:func:`_cupy_kernel`). A GPU step is bound by kernel
launches, so each of these is one launch where separate array operations
would be several.
"""

from __future__ import annotations

from typing import Any

_CUPY_KERNELS: dict[str, Any] = {}
_KERNEL_SOURCES = {
    # The formula of Ops.sigmoid: accurate for negative x too, inf -> 0 is intended.
    "sigmoid": ("T x", "T y", "y = (T)1 / ((T)1 + exp(-x))"),
    "sigmoid_backward": ("T y, T dout", "T dx", "dx = ((T)1 - y) * y * dout"),
    "scaled_difference": ("T a, T b, T scale", "T out", "out = (a - b) * scale"),
    "subtract_scaled": ("T g, T lr", "T p", "p -= lr * g"),
}


_KERNEL_SOURCES["label_difference"] = (
    "T y, raw S t, int32 c, T scale",
    "T dx",
    # A row whose label is out of range is NaN, as the loss kernel's row loss:
    # reading the labels on the host to refuse them would be a sync. (NVRTC
    # has no NAN macro; a double quiet NaN converts to a NaN of any T.)
    "const long long label = (long long)t[i / c];"
    "dx = (label < 0 || label >= c) ? (T)__longlong_as_double(0x7ff8000000000000LL)"
    " : (y - (label == i % c ? (T)1 : (T)0)) * scale",
)

# One thread per row: the max, the exponentials, their sum, the softmax and
# the row's loss, where separate array operations would be a dozen launches.
_SOFTMAX_XENT_SOURCE = r"""
__device__ inline float xpnn_exp(float v) { return expf(v); }
__device__ inline double xpnn_exp(double v) { return exp(v); }
__device__ inline float xpnn_log(float v) { return logf(v); }
__device__ inline double xpnn_log(double v) { return log(v); }
__device__ inline float xpnn_nan(float) { return __int_as_float(0x7fc00000); }
__device__ inline double xpnn_nan(double) { return __longlong_as_double(0x7ff8000000000000LL); }

template <typename T>
__device__ void softmax_xent(const T* x, const long long* t, T* y, T* row_loss, int n, int c) {
    int i = blockDim.x * blockIdx.x + threadIdx.x;
    if (i >= n) return;
    const T* xi = x + (long long)i * c;
    T* yi = y + (long long)i * c;
    T m = xi[0];
    for (int j = 1; j < c; ++j) m = xi[j] > m ? xi[j] : m;
    T total = 0;
    for (int j = 0; j < c; ++j) { yi[j] = xpnn_exp(xi[j] - m); total += yi[j]; }
    for (int j = 0; j < c; ++j) yi[j] /= total;
    long long label = t[i];
    row_loss[i] = (label < 0 || label >= c) ? xpnn_nan(m)
                                            : xpnn_log(total) - (xi[label] - m);
}
extern "C" __global__ void softmax_xent_float(
        const float* x, const long long* t, float* y, float* r, int n, int c) {
    softmax_xent<float>(x, t, y, r, n, c);
}
extern "C" __global__ void softmax_xent_double(
        const double* x, const long long* t, double* y, double* r, int n, int c) {
    softmax_xent<double>(x, t, y, r, n, c);
}
"""


class _CupySoftmaxXent:
    """The fused CuPy softmax-with-loss forward of :meth:`Ops.softmax_cross_entropy`.

    float32 and float64 only, ``x`` and ``y`` of one dtype (Ops checks both):
    float16 scores reach it already cast to float32, as autocast computes
    softmax and the loss.
    """

    def __init__(self) -> None:
        import cupy

        self.cupy = cupy
        self.module = cupy.RawModule(code=_SOFTMAX_XENT_SOURCE)
        self.rows: dict[tuple[int, Any, int], Any] = {}  # per-row losses, per size and GPU
        self.functions: dict[tuple[int, str], Any] = {}  # (GPU, name) -> loaded kernel

    def __call__(self, x: Any, t: Any, y: Any) -> tuple[Any, Any]:
        cp = self.cupy
        n, c = x.shape
        x = cp.ascontiguousarray(x)
        if t.dtype != cp.int64:
            t = t.astype(cp.int64)
        t = cp.ascontiguousarray(t)
        key = (n, x.dtype, x.device.id)
        rows = self.rows.get(key)
        if rows is None:
            rows = self.rows[key] = cp.empty(n, dtype=x.dtype)
        name = "softmax_xent_float" if x.dtype == cp.float32 else "softmax_xent_double"
        threads = 128
        blocks = (n + threads - 1) // threads
        function = self.functions.get((key[2], name))
        if function is None:  # a module is loaded on each GPU it runs on
            function = self.functions[key[2], name] = self.module.get_function(name)
        function((blocks,), (threads,), (x, t, y, rows, cp.int32(n), cp.int32(c)))
        return y, cp.mean(rows)


def _cupy_kernel(name: str) -> Any:
    """A CuPy kernel of :class:`Ops`, compiled on first use."""
    kernel = _CUPY_KERNELS.get(name)
    if kernel is None:
        import cupy

        if name == "softmax_cross_entropy":
            kernel = _CupySoftmaxXent()
        else:
            params, outputs, body = _KERNEL_SOURCES[name]
            kernel = cupy.ElementwiseKernel(params, outputs, body, f"xpnn_{name}")
        _CUPY_KERNELS[name] = kernel
    return kernel
