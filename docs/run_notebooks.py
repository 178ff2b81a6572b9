"""Execute the notebooks of docs/notebooks top to bottom, as ``nox -s notebooks`` does.

Each notebook runs in a fresh kernel from its own folder; any cell that raises
fails the run (exit status 1) after all notebooks have been tried. The stored
notebooks must carry no outputs; the executed copies (with outputs) and the
figures the notebooks save go to ``--out``::

    python docs/run_notebooks.py --out /tmp/nb-out
    XPNN_BACKEND=torch python docs/run_notebooks.py --out /tmp/nb-out docs/notebooks/chapter4.ipynb
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError, CellTimeoutError

HERE = Path(__file__).resolve().parent


def stored_outputs(nb: nbformat.NotebookNode) -> list[int]:
    """Indices of the code cells that were saved with outputs or execution counts."""
    return [
        i
        for i, cell in enumerate(nb.cells)
        if cell.cell_type == "code" and (cell.get("outputs") or cell.get("execution_count"))
    ]


def run(path: Path, out: Path, timeout: int, kernel: str) -> str | None:
    """Execute one notebook; returns None on success, else what went wrong."""
    nb = nbformat.read(path, as_version=4)
    dirty = stored_outputs(nb)
    if dirty:
        return f"stored with outputs in code cells {dirty}: clear them before committing"
    client = NotebookClient(
        nb,
        timeout=timeout,
        kernel_name=kernel,
        resources={"metadata": {"path": str(path.parent)}},
    )
    start = time.perf_counter()
    try:
        client.execute()
    except (CellExecutionError, CellTimeoutError) as exc:
        return str(exc)
    finally:
        nbformat.write(nb, out / path.name)
    print(f"{path.name}: {len(nb.cells)} cells ran in {time.perf_counter() - start:.1f} s")
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("notebooks", nargs="*", type=Path, help="default: docs/notebooks/*.ipynb")
    parser.add_argument("--out", type=Path, required=True, help="executed copies and figures")
    parser.add_argument("--timeout", type=int, default=120, help="seconds per cell (120)")
    parser.add_argument("--kernel", default="python3", help="Jupyter kernel name (python3)")
    args = parser.parse_args(argv)

    paths = args.notebooks or sorted((HERE / "notebooks").glob("*.ipynb"))
    if not paths:
        print("no notebooks found", file=sys.stderr)
        return 1
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    os.environ["XPNN_NOTEBOOK_OUT"] = str(out)  # the kernels inherit it: figures go there
    # The notebooks' matrices are small: BLAS threads gain nothing on them, and on a
    # busy machine (CI runners, parallel sessions) spinning threads make NumPy many
    # times slower. One thread each, unless the caller chose otherwise.
    for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(name, "1")
    failed = []
    for path in paths:
        problem = run(path.resolve(), out, args.timeout, args.kernel)
        if problem is not None:
            failed.append(path.name)
            print(f"{path.name}: FAILED\n{problem}", file=sys.stderr)
    print(f"executed copies in {out}")
    if failed:
        print(f"{len(failed)} of {len(paths)} notebooks failed: {', '.join(failed)}")
        return 1
    print(f"all {len(paths)} notebooks ran without errors")
    return 0


if __name__ == "__main__":
    sys.exit(main())
