"""docs/architecture.md stays true: every module it names exists, and every module is named."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "architecture.md"


def _named() -> set[str]:
    return set(re.findall(r"`(xpnn/[\w/]+\.py)`", PAGE.read_text(encoding="utf-8")))


def test_every_module_named_exists():
    named = _named()
    assert named, "the page names no module"
    missing = sorted(m for m in named if not (ROOT / m).is_file())
    assert not missing, f"docs/architecture.md names modules that do not exist: {missing}"


def test_every_module_of_the_package_is_named():
    # Package markers of sub-packages and __main__ shims need no row of their own.
    modules = {
        p.relative_to(ROOT).as_posix()
        for p in (ROOT / "xpnn").rglob("*.py")
        if p.name not in ("__main__.py",) and "__pycache__" not in p.parts
    }
    optional = {"xpnn/__init__.py", "xpnn/io/__init__.py", "xpnn/datasets/__init__.py"}
    optional |= {m for m in modules if m.endswith("cuda/__init__.py")}
    unnamed = sorted(modules - _named() - optional)
    assert not unnamed, f"docs/architecture.md does not say what these modules own: {unnamed}"
