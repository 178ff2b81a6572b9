"""mkdocs hook: the environment in which mkdocs-jupyter executes the notebooks.

The site shows ``docs/notebooks/*.ipynb`` executed at build time (the plugin's
``execute: true``). Their kernels inherit this process's environment, so it is
set here, before any page is built, for ``nox -s docs`` and a bare ``mkdocs
build`` alike:

* ``XPNN_BACKEND=numpy`` and ``XPNN_MNIST_DIR`` = the MNIST sample shipped
  with xpnn: the pages show the same CPU run on every machine, offline,
  whatever the builder's shell says or has downloaded.
* BLAS single-threaded unless the caller set the thread counts: the
  notebooks' matrices are small, and on a busy machine spinning BLAS threads
  made the training cells many times slower (as in ``run_notebooks.py``).
* The kernel is this environment's Python: its ``bin`` folder goes first on
  ``PATH`` (ipykernel's kernel spec runs ``python``), and Jupyter prefers
  this environment's kernel specs to the user's (``JUPYTER_PREFER_ENV_PATH``).

And on the built notebook pages, links to other pages by their files
(``../x.md``) are rewritten to the pages' addresses (``on_page_content``).
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import Any

BLAS_THREADS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def on_config(config: Any) -> Any:
    from xpnn.datasets.mnist import MNIST5K_DIR

    os.environ["XPNN_BACKEND"] = "numpy"
    os.environ["XPNN_MNIST_DIR"] = str(MNIST5K_DIR)
    for name in BLAS_THREADS:
        os.environ.setdefault(name, "1")
    os.environ["JUPYTER_PREFER_ENV_PATH"] = "1"
    bin_dir = str(Path(sys.executable).parent)
    os.environ["PATH"] = os.pathsep.join([bin_dir, os.environ.get("PATH", "")])
    return config


# A notebook's Markdown links to the other pages by their files ("../x.md"), which
# works on GitHub and in Jupyter; mkdocs-jupyter leaves them so, and on the site, where
# docs/notebooks/y.ipynb becomes notebooks/y/ and docs/x.md becomes x/, they lead
# nowhere. Rewritten here to the pages' addresses, anchors kept.
_NOTEBOOK_MD_LINK = re.compile(r'href="\.\./([A-Za-z0-9_\-/]+)\.md(#[^"]*)?"')


def on_page_content(html: str, page: Any, **kwargs: Any) -> str:
    if not page.file.src_uri.endswith(".ipynb"):
        return html
    return _NOTEBOOK_MD_LINK.sub(lambda m: f'href="../../{m[1]}/{m[2] or ""}"', html)
