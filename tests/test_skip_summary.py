"""The test run names its skipped tests: per backend, with the count, why, and the command.

Each test runs pytest on a tiny test file in a fresh folder whose conftest is
tests/conftest.py itself, in a subprocess (the conftest is then imported
afresh, as in a real run).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import xpnn.backend

pytest_plugins = ["pytester"]

CONFTEST = Path(__file__).with_name("conftest.py")


@pytest.fixture
def run(pytester: pytest.Pytester):
    """Run pytest on ``source`` with the real conftest; its outcome and output lines."""
    pytester.makeconftest(CONFTEST.read_text(encoding="utf-8"))

    def run(source: str, *args: str) -> tuple[pytest.RunResult, list[str]]:
        pytester.makepyfile(test_tiny=source)
        result = pytester.runpytest_subprocess("-p", "no:cacheprovider", *args)
        return result, result.stdout.lines

    return run


TINY = """
import pytest

NOT_INSTALLED = "the package 'torch' is not installed (No module named 'torch')"

@pytest.mark.parametrize("k", range(3))
def test_torch_cpu(k):
    pytest.skip("torch:cpu cannot run here: " + NOT_INSTALLED)

@pytest.mark.parametrize("k", range(1002))
def test_cupy(k):
    pytest.skip("cupy:0 cannot run here: no CUDA GPU is visible")

def test_imports_torch():
    pytest.importorskip("torch_which_is_not_there_either")
    pytest.importorskip("torch")

@pytest.mark.parametrize("k", range(2))
def test_root(k):
    pytest.skip("root may write anywhere")

@pytest.mark.skipif(True, reason="no symlinks here")
def test_links():
    pass

def test_passes():
    pass
"""


def test_each_backend_and_every_other_reason_is_one_counted_line(run):
    result, lines = run(TINY)
    result.assert_outcomes(passed=1, skipped=1009)
    cupy = "cupy:0: no CUDA GPU is visible, 1,002 tests skipped; run them with: nox -s tests_gpu"
    assert cupy in lines
    # importorskip of a library that is not there counts for the library's backend
    # (torch_which_is_not_there_either is not torch: it is "other").
    other = [line for line in lines if line.startswith("other: ")]
    assert other == [
        "other: 4 tests skipped: root may write anywhere (2); "
        "could not import 'torch_which_is_not_there_either': No module named "
        "'torch_which_is_not_there_either' (1); no symlinks here (1)"
    ]
    assert "torch:cpu: not installed, 3 tests skipped; run them with: nox -s tests_torch" in lines
    # pytest's own line stays last, so CI's grep for "[0-9]+ passed" still finds it.
    assert re.search(r"1 passed, 1,?009 skipped", lines[-1])
    header = next(i for i, line in enumerate(lines) if "skipped, by backend and reason" in line)
    assert header < len(lines) - 1 and "1,009 skipped" in lines[header]


def test_the_backend_fixture_skips_are_counted_per_backend_that_cannot_run(run):
    result, lines = run(
        "import pytest\n"
        "@pytest.mark.parametrize('k', range(4))\n"
        "def test_on_every_backend(backend, k):\n"
        "    pass\n"
    )
    status = xpnn.backend.backend_status()
    absent = [spec for spec in ("torch:cpu", "torch:cuda", "cupy:0") if status[spec] is not None]
    for spec in absent:
        line = next(line for line in lines if line.startswith(f"{spec}: "))
        assert ", 4 tests skipped; run them with: nox -s tests_" in line, line
        if "is not installed" in status[spec]:
            assert line.startswith(f"{spec}: not installed, ")
    result.assert_outcomes(passed=4 * (5 - len(absent)), skipped=4 * len(absent))
    assert not any(line.startswith("other: ") for line in lines)


def test_nothing_is_added_when_nothing_is_skipped(run):
    result, lines = run("def test_a():\n    pass\n")
    result.assert_outcomes(passed=1)
    assert not any("by backend and reason" in line for line in lines)
