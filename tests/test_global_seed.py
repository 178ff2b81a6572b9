"""The global seed: ``xpnn.random.seed(n)`` / ``XPNN_SEED`` make a whole script reproducible.

While a global seed is set, everything left unseeded (``default_rng()``,
models without ``seed=``, ``Dropout()``) takes its seed from one sequence
derived from it: two runs of a script print the same numbers, on every
backend. Without it they differ. The scripts run in fresh interpreters, as a
user's would.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

import numpy as np
import pytest

import xpnn
import xpnn.random as xr

# A ported script that seeds nothing itself; prints what it drew, rounded
# nowhere (exact host values). ``SEED_CALL`` is replaced by the seeding line.
SCRIPT = """
import json, sys
import xpnn
from xpnn.layers import Dropout
from xpnn.util import shuffle_dataset
SEED_CALL
net = xpnn.TwoLayerNet(input_size=4, hidden_size=3, output_size=2)
rng = xpnn.default_rng()
x = xpnn.asarray([[float(i)] for i in range(6)])
t = xpnn.asarray(list(range(6)), dtype="int64")
_, order = shuffle_dataset(x, t)
fixed = xpnn.default_rng(7).normal(size=3)
out = {
    "backend": xpnn.get_backend().name,
    "W1": xpnn.to_numpy(net.params["W1"]).tolist(),
    "draw": xpnn.to_numpy(rng.normal(size=4)).tolist(),
    "dropout": Dropout(0.5).seed,
    "order": xpnn.to_numpy(order).tolist(),
    "fixed": xpnn.to_numpy(fixed).tolist(),
}
print(json.dumps(out))
"""

MULTILAYER_SCRIPT = """
import json
import xpnn
xpnn.random.seed(0)
net = xpnn.MultiLayerNetExtend(4, [3], 2, use_dropout=True)
print(json.dumps(xpnn.to_numpy(net.params["W1"]).tolist()))
conv = xpnn.SimpleConvNet(input_dim=(1, 6, 6), conv_param={"filter_num": 2, "filter_size": 3,
                          "pad": 0, "stride": 1}, hidden_size=3, output_size=2)
print(json.dumps(xpnn.to_numpy(conv.params["W1"]).tolist()))
"""


def _run(
    code: str, *, env_seed: str | None = None, backend: str = "numpy"
) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("XPNN_SEED", "XPNN_BACKEND")}
    env["XPNN_BACKEND"] = backend
    if env_seed is not None:
        env["XPNN_SEED"] = env_seed
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=180
    )


def _script(seed_call: str = "", **kw) -> dict:
    import json

    out = _run(SCRIPT.replace("SEED_CALL", seed_call), **kw)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def _without_backend(d: dict) -> dict:
    return {k: v for k, v in d.items() if k != "backend"}


@pytest.fixture(scope="module")
def reference() -> dict:
    """The script's numbers with XPNN_SEED=0 on numpy."""
    return _script(env_seed="0")


def test_xpnn_seed_makes_two_runs_print_the_same_numbers(reference):
    again = _script(env_seed="0")
    assert again == reference
    assert _script(env_seed="1")["W1"] != reference["W1"]


def test_xpnn_random_seed_in_the_script_is_the_same_as_the_variable(reference):
    assert _script("xpnn.random.seed(0)") == reference
    # seed() wins over the variable, as a later np.random.seed would.
    assert _script("xpnn.random.seed(0)", env_seed="5") == reference


def test_without_a_global_seed_two_runs_differ(reference):
    a, b = _script(), _script()
    for key in ("W1", "draw", "dropout"):
        assert a[key] != b[key], key
    assert a["fixed"] == b["fixed"] == reference["fixed"]  # an explicit seed= always wins
    assert _script("xpnn.random.seed(None)", env_seed="0")["W1"] != reference["W1"]


@pytest.mark.parametrize("spec", ["array_api_strict", "torch:cpu"])
def test_the_global_seed_gives_the_same_numbers_on_every_backend(spec, reference):
    if importlib.util.find_spec(spec.partition(":")[0]) is None:
        pytest.skip(f"{spec}: not installed")
    got = _script(env_seed="0", backend=spec)
    assert got["backend"] == spec.partition(":")[0]
    assert _without_backend(got) == _without_backend(reference)


@pytest.mark.parametrize("bad", ["abc", "-1", "1.5", " "])
def test_a_bad_xpnn_seed_is_a_clear_error_naming_the_variable(bad):
    out = _run("import xpnn\nxpnn.default_rng().normal()", env_seed=bad)
    if not bad.strip():  # blank: as unset, like XPNN_BACKEND
        assert out.returncode == 0, out.stderr
        return
    assert out.returncode != 0
    assert "XPNN_SEED=" in out.stderr and "non-negative integer" in out.stderr
    # `import xpnn` itself never fails on it.
    assert _run("import xpnn", env_seed=bad).returncode == 0


def test_the_global_seed_reaches_multilayer_nets():
    a, b = _run(MULTILAYER_SCRIPT), _run(MULTILAYER_SCRIPT)
    assert a.returncode == b.returncode == 0, a.stderr + b.stderr
    assert a.stdout == b.stdout


# ------------------------------------------------------------ in this process


@pytest.fixture
def global_seed():
    """Save and restore the module's global seed state around a test."""
    saved = (xr._env_seed, xr._seed_value, xr._stream)
    yield xr
    xr._env_seed, xr._seed_value, xr._stream = saved


def _normal(seed=None) -> np.ndarray:
    return xpnn.to_numpy(xpnn.default_rng(seed).normal(size=3))


def test_seed_restarts_the_sequence_and_explicit_seeds_win(global_seed):
    xr.seed(3)
    first = [_normal(), _normal()]
    assert not np.array_equal(first[0], first[1])  # each generator gets its own seed
    assert xr.get_seed() == 3
    xr.seed(3)
    np.testing.assert_array_equal(_normal(), first[0])
    np.testing.assert_array_equal(_normal(5), np.random.default_rng(5).normal(size=3).astype("f4"))
    np.testing.assert_array_equal(_normal(), first[1])  # the explicit seed drew nothing
    assert xpnn.default_rng(5).seed == 5
    assert isinstance(xpnn.default_rng().seed, int)  # the derived seed is recorded


def test_seed_none_goes_back_to_fresh_entropy(global_seed):
    xr.seed(3)
    xr.seed(None)
    assert xr.get_seed() is None
    assert xpnn.default_rng().seed is None
    assert not np.array_equal(_normal(), _normal())


def test_dropout_and_models_take_their_seeds_from_the_sequence(global_seed):
    from xpnn.layers import Dropout

    xr.seed(0)
    d1, net1 = Dropout(), xpnn.TwoLayerNet(3, 2, 2)
    xr.seed(0)
    d2, net2 = Dropout(), xpnn.TwoLayerNet(3, 2, 2)
    assert d1.seed == d2.seed and 0 <= d1.seed < 2**63
    np.testing.assert_array_equal(
        xpnn.to_numpy(net1.params["W1"]), xpnn.to_numpy(net2.params["W1"])
    )
    assert Dropout(seed=9).seed == 9


def test_xpnn_seed_is_read_lazily_and_a_bad_value_raises_at_each_use(global_seed):
    xr._seed_value, xr._stream, xr._env_seed = xr._FROM_ENV, None, "twelve"
    for _ in range(2):
        with pytest.raises(ValueError, match=r"XPNN_SEED='twelve' is not a seed"):
            xr.fresh_seed()
    with pytest.raises(ValueError, match="XPNN_SEED"):
        xpnn.default_rng()
    xr.seed(4)  # seed() overrides the variable
    assert xr.get_seed() == 4
    xr._seed_value, xr._stream, xr._env_seed = xr._FROM_ENV, None, "12"
    assert xr.get_seed() == 12
    first = xr.fresh_seed()
    xr.seed(12)
    assert xr.fresh_seed() == first  # the variable and seed() start the same sequence


@pytest.mark.parametrize(
    ("value", "error"), [(-1, ValueError), (1.5, TypeError), (True, TypeError)]
)
def test_seed_refuses_what_is_not_a_seed(global_seed, value, error):
    with pytest.raises(error, match="seed"):
        xr.seed(value)


def test_the_global_seed_is_public():
    assert {"seed", "get_seed", "fresh_seed"} <= set(xr.__all__)
    assert xr.SEED_ENV_VAR == "XPNN_SEED"
