"""The only door to the array libraries.

xpnn writes all of its math against an *array namespace* ``xp`` (the Array API
standard). This package is the one place that imports NumPy's, CuPy's, PyTorch's
and array-api-strict's namespaces (through array-api-compat) and decides:

* which namespace and device a math function works on: the one of its inputs
  (:func:`get_namespace`) -- never global state;
* where *new* arrays go (parameters, data sets, random numbers): the active
  backend (:func:`get_backend`), chosen with :func:`set_backend`,
  :func:`use_backend` or the ``XPNN_BACKEND`` environment variable;
* how data crosses between host and device: only through the explicit
  :func:`asarray` and :func:`to_numpy`.

Backend specs are strings ``"name"`` or ``"name:device"``::

    numpy                         the CPU (default)
    cupy, cupy:1                  CUDA GPU 0 / GPU 1
    torch, torch:cpu, torch:cuda  PyTorch on the CPU (default) / CUDA GPU 0
    torch:cuda:1                  PyTorch on CUDA GPU 1
    array_api_strict              the strict reference namespace (CPU_DEVICE)
    array_api_strict:device1      ... on its simulated second device

Asking for a backend that cannot run raises :class:`BackendUnavailableError`
saying why and how to fix it; xpnn never falls back to another backend.

The selection, transfers and namespaces are imported from here (``from
xpnn.backend import ...``); the layers' named fast paths from their own
modules (``from xpnn.backend.conv_kernels import conv2d_forward``), and the
thread limit from ``xpnn.backend.threads``. The modules of the package, each
owning one job, are::

    selection    specs, Backend, opening and caching backends, the active backend
    openers      importing each library, finding its device, allocating once
    errors       BackendUnavailableError, BackendMismatchError
    dtypes       dtype names across libraries, resolve_dtype
    namespace    get_namespace, backend_of, device_of, _library
    transfer     to_numpy, asarray, zeros, adopt_host_input
    operations   Ops (the buffered operations of a step) and ops()
    loss_ops     LossOps, part of Ops: label checks, picks, softmax cross-entropy
    layer_ops    LayerOps, part of Ops: the layers' fast paths (relu...)
    conv_columns im2col_into, col2im_into: the column matrix, into reused buffers
    conv_kernels Convolution's steps (PyTorch's kernels, the column products)
    conv_pooling Pooling's steps (PyTorch's kernel, the window maxima, routing)
    conv_checks  what the conv layers refuse before any change
    scatter      bincount, index_add_rows: scatter-adds on their device (counts, rows)
    optimizer_ops adam_moments, divide_step: the optimizers' updates into scratch arrays
    recurrent_ops the time layers' fast paths: all steps' products at once, softmax in a buffer
    attention_ops TimeAttention's decoder steps at once: batched products, not a loop
    threads      the CPU libraries' thread limit (threadpoolctl, torch)
    probe        backend_status, available_backends, info
    cuda/        CuPy only: errors (diagnosing CUDA failures), kernels
                 (element-wise and raw kernels), cublas (matmul by ctypes),
                 graphs (CudaGraph)

The active backend (``_default``, ``_env_spec``) is state of ``selection``
alone: save or change it there, not through this package. Likewise patch a
private helper on the module that uses it (e.g. ``cuda.errors`` for
``_cupy_distributions``), not here.
"""

from __future__ import annotations

from xpnn.backend import probe, selection

# Private names are re-exported too (``_x as _x``): the rest of xpnn and the
# tests import them from here, the one import path they rely on.
from xpnn.backend.cuda.cublas import _cupy_gemm as _cupy_gemm
from xpnn.backend.cuda.errors import _cupy_distributions as _cupy_distributions
from xpnn.backend.cuda.errors import _libcuda_loadable as _libcuda_loadable
from xpnn.backend.cuda.graphs import CudaGraph
from xpnn.backend.dtypes import _dtype_name as _dtype_name
from xpnn.backend.dtypes import resolve_dtype
from xpnn.backend.errors import BackendMismatchError, BackendUnavailableError
from xpnn.backend.namespace import _library as _library
from xpnn.backend.namespace import backend_of, device_of, get_namespace
from xpnn.backend.operations import Ops, ops
from xpnn.backend.optimizer_ops import adam_moments, divide_step
from xpnn.backend.probe import available_backends, backend_status, info
from xpnn.backend.selection import (
    BACKEND_NAMES,
    Backend,
    SelectionUnusedWarning,
    get_backend,
    note_selection_unused,
    set_backend,
    use_backend,
)
from xpnn.backend.selection import _open as _open
from xpnn.backend.selection import _reset_for_tests as _reset_for_tests
from xpnn.backend.transfer import adopt_host_input, asarray, to_numpy, zeros

# Public constants outside __all__, assigned rather than imported: the API
# reference renders imported names only if __all__ lists them. They are never
# reassigned, so these copies cannot go stale.

#: The environment variable read when xpnn is imported.
ENV_VAR = selection.ENV_VAR

#: The environment variable of the default backend's float dtype (``XPNN_DTYPE=float64``).
DTYPE_ENV_VAR = selection.DTYPE_ENV_VAR

#: Models and data default to float32: GPUs are many times slower at float64.
DEFAULT_FLOAT_DTYPE = selection.DEFAULT_FLOAT_DTYPE

#: Specs probed by :func:`available_backends`, CPU ones first.
CANDIDATES = probe.CANDIDATES

__all__ = [
    "BACKEND_NAMES",
    "Backend",
    "BackendMismatchError",
    "BackendUnavailableError",
    "CudaGraph",
    "Ops",
    "SelectionUnusedWarning",
    "adam_moments",
    "adopt_host_input",
    "asarray",
    "backend_of",
    "device_of",
    "divide_step",
    "available_backends",
    "backend_status",
    "get_backend",
    "get_namespace",
    "info",
    "note_selection_unused",
    "ops",
    "resolve_dtype",
    "set_backend",
    "to_numpy",
    "use_backend",
    "zeros",
]
