"""The CuPy-only code of the backend layer (nothing here imports CuPy at import).

* :mod:`~xpnn.backend.cuda.errors`: why CuPy cannot run (driver, runtime,
  wheel) and how to fix it;
* :mod:`~xpnn.backend.cuda.kernels`: the element-wise and raw kernels of
  :class:`~xpnn.backend.Ops` (the fused softmax-with-loss included);
* :mod:`~xpnn.backend.cuda.cublas`: matmul by cuBLAS through ctypes, which
  CUDA graphs can record;
* :mod:`~xpnn.backend.cuda.graphs`: :class:`~xpnn.backend.CudaGraph`.

This package imports none of its modules: :mod:`xpnn.backend.openers`
imports ``errors`` while the backend layer is still being imported, and
``graphs`` imports the layer's ``namespace`` module.
"""
