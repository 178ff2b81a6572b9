"""Test, lint and GPU sessions: `nox -s tests` is what CI runs."""

from __future__ import annotations

import nox

nox.options.sessions = ["tests", "lint"]
nox.options.reuse_existing_virtualenvs = True
nox.options.error_on_missing_interpreters = True


@nox.session
def tests(session: nox.Session) -> None:
    """Run the test suite on the CPU backends (numpy, array_api_strict)."""
    session.install("-e", ".[test]")
    session.run("pytest", *session.posargs)


@nox.session(default=False)
def tests_torch(session: nox.Session) -> None:
    """Run the test suite with PyTorch installed as well (CPU, or CUDA if present)."""
    session.install("-e", ".[test,torch]")
    session.run("pytest", "--require-backend", "torch:cpu", *session.posargs)


@nox.session(default=False)
def tests_gpu(session: nox.Session) -> None:
    """Run the test suite with CuPy on a CUDA GPU: `nox -s tests_gpu [-- cuda13]`."""
    extra = "cuda12"
    args = list(session.posargs)
    if args and args[0] in ("cuda12", "cuda13"):
        extra = args.pop(0)
    session.install("-e", f".[test,{extra}]")
    session.run("xpnn", "info")
    # --require-backend: a GPU run must fail, not pass by skipping every GPU test.
    session.run("pytest", "--require-backend", "cupy:0", *args)


@nox.session
def lint(session: nox.Session) -> None:
    """Check style with ruff (lint and formatting)."""
    session.install("ruff>=0.6")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session(default=False)
def docs(session: nox.Session) -> None:
    """Build the documentation site into site/ with mkdocs, warnings as errors."""
    session.install("-e", ".[docs]")
    session.run(
        "mkdocs",
        "build",
        "--strict",
        "--site-dir",
        "site",
        *session.posargs,
        env={"NO_MKDOCS_2_WARNING": "1"},  # mkdocs-material's banner about MkDocs 2.0
    )


@nox.session(default=False)
def notebooks(session: nox.Session) -> None:
    """Execute every notebook in docs/notebooks top to bottom; fail on any error."""
    session.install("-e", ".[notebooks]")
    # The kernel is this virtualenv's Python, never a kernel installed elsewhere.
    session.run("python", "-m", "ipykernel", "install", "--sys-prefix", "--name", "python3")
    out = session.create_tmp()
    session.run("python", "docs/run_notebooks.py", "--out", out, *session.posargs)


@nox.session(default=False)
def bench(session: nox.Session) -> None:
    """Run the benchmarks against the textbook code and PyTorch; write bench.json."""
    session.install("-e", ".[torch]")
    session.run("xpnn", "bench", *session.posargs)
