"""Matrix products by cuBLAS directly, through ctypes, on CuPy arrays.

Owns :class:`_CublasGemm`, the loading of the cuBLAS library CuPy itself
uses, and :func:`_cupy_gemm`, the matmul of :meth:`xpnn.backend.Ops.matmul` on CuPy.
It exists because CuPy refuses cuBLAS calls while a CUDA graph is being
captured.
"""

from __future__ import annotations

from typing import Any

import numpy as np


class _CublasGemm:
    """``out = a @ b`` for 2-D float32/float64 CuPy arrays, by cuBLAS directly.

    CuPy refuses any cuBLAS call while a stream is being captured into a CUDA
    graph, although cuBLAS supports it; this calls ``cublas<S|D>gemm`` on
    CuPy's own handle and current stream through ctypes, for the layouts the
    layers use (C-ordered arrays and their transposes). Eager and recorded
    steps both use it, so they compute alike.
    """

    def __init__(self, lib: Any):
        import ctypes

        import cupy

        self.cupy = cupy
        vp, i = ctypes.c_void_p, ctypes.c_int
        self.set_stream = lib.cublasSetStream_v2
        self.set_stream.argtypes, self.set_stream.restype = [vp, vp], i
        self.gemm = {}
        for dtype, name, scalar in (
            (np.float32, "cublasSgemm_v2", ctypes.c_float),
            (np.float64, "cublasDgemm_v2", ctypes.c_double),
        ):
            fn = getattr(lib, name)
            fn.argtypes = [vp, i, i, i, i, i, vp, vp, i, vp, i, vp, vp, i]
            fn.restype = i
            one, zero = scalar(1.0), scalar(0.0)
            # Host pointers to alpha = 1 and beta = 0 (kept alive with self).
            self.gemm[np.dtype(dtype)] = (
                fn,
                one,
                zero,
                ctypes.addressof(one),
                ctypes.addressof(zero),
            )

    @staticmethod
    def _layout(x: Any) -> tuple[int, int] | None:
        """(transposed?, leading dimension) of a 2-D array for column-major cuBLAS."""
        rows, cols = x.shape
        s0, s1 = x.strides
        item = x.itemsize
        if s1 == item and s0 % item == 0 and s0 // item >= cols:
            return 0, max(s0 // item, 1)  # row-major: cuBLAS sees x.T untransposed
        if s0 == item and s1 % item == 0 and s1 // item >= rows:
            return 1, max(s1 // item, 1)  # column-major: transpose it
        return None

    def __call__(self, a: Any, b: Any, out: Any) -> bool:
        entry = self.gemm.get(out.dtype)
        if (
            entry is None
            or a.ndim != 2
            or b.ndim != 2
            or out.ndim != 2
            or a.dtype != out.dtype
            or b.dtype != out.dtype
        ):
            return False
        m, k = a.shape
        n = b.shape[1]
        if b.shape[0] != k or out.shape != (m, n) or 0 in (m, n, k):
            return False
        la, lb, lc = self._layout(a), self._layout(b), self._layout(out)
        if la is None or lb is None or lc is None or lc[0] != 0:
            return False
        cp = self.cupy
        if not (a.device.id == b.device.id == out.device.id == cp.cuda.runtime.getDevice()):
            return False
        fn, _, _, one, zero = entry
        handle = cp.cuda.device.get_cublas_handle()
        status = self.set_stream(handle, cp.cuda.get_current_stream().ptr)
        if status == 0:
            # Row-major out = a @ b is column-major out.T = b.T @ a.T.
            status = fn(
                handle, lb[0], la[0], n, m, k, one,
                b.data.ptr, lb[1], a.data.ptr, la[1], zero, out.data.ptr, lc[1],
            )  # fmt: skip
        if status != 0:
            raise RuntimeError(f"cuBLAS gemm failed with status {status}")
        return True


_GEMM: list[Any] = []  # [] before the first try; then [_CublasGemm or None]


def _load_cublas_gemm() -> _CublasGemm | None:
    """The cuBLAS library CuPy itself loaded (its handle only works with it), or None."""
    import ctypes
    import re

    import cupy

    cupy.cuda.device.get_cublas_handle()  # makes CuPy load its cuBLAS
    candidates = []
    try:
        with open("/proc/self/maps") as maps:  # Linux: the very file CuPy loaded
            for line in maps:
                if re.search(r"/libcublas\.so[.0-9]*$", line.strip()):
                    candidates.append(line.split()[-1])
    except OSError:
        pass
    candidates.append(f"libcublas.so.{cupy.cuda.runtime.runtimeGetVersion() // 1000}")
    for name in candidates:
        try:
            return _CublasGemm(ctypes.CDLL(name))
        except (OSError, AttributeError):
            continue
    return None


def _cupy_gemm(a: Any, b: Any, out: Any) -> bool:
    """Run ``out = a @ b`` with :class:`_CublasGemm`; False where it does not apply.

    Only float32 and float64 apply. For float16 it returns False, so
    ``cupy.matmul`` runs the product: CuPy calls ``cublasGemmEx`` with
    ``CUBLAS_COMPUTE_32F`` for float16 (float32 accumulation, as NumPy and
    PyTorch do), but refuses cuBLAS while a CUDA graph is captured, so a
    float16 step cannot be recorded as one (it raises; nothing is computed
    wrongly).
    """
    if not _GEMM:
        _GEMM.append(_load_cublas_gemm())
    gemm = _GEMM[0]
    return gemm is not None and gemm(a, b, out)
