"""Test-only pieces of tests/test_search.py and tests/test_search_edges.py that run on Dask workers.

tests/test_search.py (which tests/test_search_edges.py imports) registers this module with
``cloudpickle.register_pickle_by_value``, so the workers receive the
functions themselves and need not import this file.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from xpnn.models import TwoLayerNet
from xpnn.search import Trial, train_trial


def die_once(trial: Trial, marker_dir: str, number: int = 1) -> dict[str, Any]:
    """Kill the worker process the first time trial ``number`` runs, then train normally.

    The marker file in ``marker_dir`` records the first attempt (any worker
    sees it: they share this machine's disk).
    """
    marker = Path(marker_dir) / f"died-{trial.number}"
    if trial.number == number and not marker.exists():
        marker.write_text(str(os.getpid()))
        os._exit(1)  # no cleanup, no exception: the process is gone mid-trial
    return train_trial(trial)


def fail_once(trial: Trial, marker_dir: str, number: int = 1) -> dict[str, Any]:
    """Raise the first time trial ``number`` runs (a passing failure), then train normally."""
    marker = Path(marker_dir) / f"failed-{trial.number}"
    if trial.number == number and not marker.exists():
        marker.write_text(str(os.getpid()))
        raise RuntimeError(f"trial {trial.number}: a passing failure")
    return train_trial(trial)


class TinyNet(TwoLayerNet):
    """A MultiLayerNet look-alike for the CLI test: the first hidden size, decay recorded only."""

    def __init__(
        self,
        input_size: int,
        hidden_size_list: list[int],
        output_size: int,
        weight_decay_lambda: float = 0.0,
        *,
        seed: int | None = None,
        dtype: Any = None,
    ):
        super().__init__(input_size, hidden_size_list[0], output_size, seed=seed, dtype=dtype)
        self.weight_decay_lambda = weight_decay_lambda


def stop_at(trial: Trial, marker_dir: str, stop: int = 3) -> dict[str, Any]:
    """Record that trial ``number`` started; from trial ``stop`` on, raise (the search ends).

    Each trial leaves ``started-N`` (the time it began) in ``marker_dir``:
    the test counts how many trials were sent out and when the first began.
    """
    (Path(marker_dir) / f"started-{trial.number}").write_text(repr(time.time()))
    if trial.number >= stop:
        raise RuntimeError(f"trial {trial.number}: the test stops the search here")
    return {"val_acc": 0.5}
