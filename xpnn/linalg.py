"""Vol. 2 ch. 2's SVD of the PPMI matrix, on the matrix's own backend.

The book reduces its PPMI matrix with ``np.linalg.svd(W)`` (``ch02/
count_method_small.py``) or, for PTB's 10,000 words, with scikit-learn's
``randomized_svd(W, n_components=100, n_iter=5, random_state=None)``
(``count_method_big.py``). Both are here for every backend, by the backend's
own ``linalg.svd`` and ``linalg.qr`` (LAPACK on NumPy, cuSOLVER on CuPy and
PyTorch CUDA): ``from sklearn.utils.extmath import randomized_svd`` becomes
``from xpnn.linalg import randomized_svd``, and the matrix never leaves its
device.

:func:`randomized_svd` is Halko, Martinsson and Tropp's range finder (2011),
as scikit-learn runs it: a Gaussian test matrix of ``n_components +
n_oversamples`` columns, ``n_iter`` power iterations re-orthonormalised by QR
each time, then the exact SVD of the small projected matrix, signs fixed so
that each column of ``U`` has its largest entry positive. The test matrix
comes from :func:`xpnn.random.default_rng` on the matrix's backend: one
``random_state`` gives the same numbers on every backend (the SVDs' own
rounding aside). It costs a few ``(n, k)`` products instead of the ``O(n^3)``
of the full SVD: seconds instead of minutes at 10,000 words.
"""

from __future__ import annotations

from typing import Any

from xpnn.backend import _dtype_name, backend_of, device_of, get_namespace
from xpnn.random import default_rng

__all__ = ["randomized_svd", "svd"]


def _matrix(M: Any, who: str) -> Any:
    if not (hasattr(M, "shape") and hasattr(M, "dtype")):
        raise TypeError(f"{who}: M must be an array, got {type(M).__name__}")
    xp = get_namespace(M)
    if M.ndim != 2 or 0 in M.shape:
        raise ValueError(f"{who}: M must be a non-empty 2-D matrix, got shape {tuple(M.shape)}")
    if not xp.isdtype(M.dtype, "real floating"):
        raise TypeError(
            f"{who}: M must hold real floats, got {_dtype_name(M.dtype)}; convert it, e.g. "
            "with xpnn.asarray(M, dtype='float32')"
        )
    return xp


def svd(M: Any, full_matrices: bool = True) -> tuple[Any, Any, Any]:
    """``U, S, V = svd(M)``: the book's ``np.linalg.svd(W)`` on ``M``'s backend.

    Args:
        M: ``(m, n)`` float matrix of any backend.
        full_matrices: As NumPy's (the book's default True: ``U`` is ``(m, m)``).

    Returns:
        ``U`` ``(m, m)`` (or ``(m, k)``), ``S`` ``(k,)`` descending, ``V``
        ``(n, n)`` (or ``(k, n)``), ``k = min(m, n)``, with ``M = U[:, :k] *
        S @ V[:k]``: NumPy's order and names (``V`` is the transposed right
        factor, NumPy's ``vh``).
    """
    xp = _matrix(M, "svd")
    return tuple(xp.linalg.svd(M, full_matrices=full_matrices))


def _flip_signs(xp: Any, U: Any, V: Any) -> tuple[Any, Any]:
    """Make each column of ``U`` have its largest-magnitude entry positive (scikit-learn's)."""
    rows = xp.argmax(xp.abs(U), axis=0)  # (k,)
    at = xp.arange(U.shape[0], dtype=rows.dtype, device=device_of(U))
    picked = xp.sum(xp.where(xp.reshape(at, (-1, 1)) == rows, U, xp.zeros_like(U)), axis=0)
    signs = xp.where(picked < 0, -xp.ones_like(picked), xp.ones_like(picked))
    return U * signs, V * xp.reshape(signs, (-1, 1))


def randomized_svd(
    M: Any,
    n_components: int,
    *,
    n_oversamples: int = 10,
    n_iter: int | str = "auto",
    random_state: int | None = None,
) -> tuple[Any, Any, Any]:
    """The ``n_components`` largest singular triplets of ``M``, approximately and fast.

    scikit-learn's ``randomized_svd`` (the book's call: ``randomized_svd(W,
    n_components=100, n_iter=5, random_state=None)``), on ``M``'s backend.

    Args:
        M: ``(m, n)`` float matrix of any backend.
        n_components: The singular values wanted, ``1 <= n_components <=
            min(m, n)``.
        n_oversamples: Extra columns of the test matrix (scikit-learn's 10).
        n_iter: Power iterations; ``"auto"`` is scikit-learn's (7 if
            ``n_components < 0.1 * min(m, n)``, else 4).
        random_state: Seed of the Gaussian test matrix (an int); None takes
            one from :func:`xpnn.random.fresh_seed` (reproducible under
            ``xpnn.random.seed``).

    Returns:
        ``U`` ``(m, n_components)``, ``S`` ``(n_components,)`` descending,
        ``V`` ``(n_components, n)``, on ``M``'s device, in ``M``'s dtype.

    Raises:
        TypeError: ``M`` is not a float array.
        ValueError: ``M`` is not 2-D, or ``n_components``, ``n_oversamples``
            or ``n_iter`` is out of range.
    """
    xp = _matrix(M, "randomized_svd")
    m, n = (int(d) for d in M.shape)
    if isinstance(n_components, bool) or not isinstance(n_components, int):
        raise TypeError(f"randomized_svd: n_components must be an int, got {n_components!r}")
    if not 1 <= n_components <= min(m, n):
        raise ValueError(
            f"randomized_svd: n_components must be in 1..{min(m, n)} for a {m} x {n} matrix, "
            f"got {n_components}"
        )
    if n_iter == "auto":
        n_iter = 7 if n_components < 0.1 * min(m, n) else 4
    for name, value in (("n_oversamples", n_oversamples), ("n_iter", n_iter)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"randomized_svd: {name} must be an int >= 0, got {value!r}")
    k = min(n_components + n_oversamples, min(m, n))
    rng = default_rng(random_state, backend=backend_of(M))
    Q = M @ rng.standard_normal((n, k), dtype=_dtype_name(M.dtype))
    Q, _ = xp.linalg.qr(Q)
    for _ in range(n_iter):  # power iterations sharpen the range found
        Q, _ = xp.linalg.qr(M.T @ Q)
        Q, _ = xp.linalg.qr(M @ Q)
    B = Q.T @ M  # (k, n): M projected on the range found
    Ub, S, V = xp.linalg.svd(B, full_matrices=False)
    U, V = _flip_signs(xp, Q @ Ub, V)
    return U[:, :n_components], S[:n_components], V[:n_components, :]
