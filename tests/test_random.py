"""xpnn.random: seeded draws that are the same numbers on every backend.

Tests taking the ``backend`` / ``xp`` fixtures run on every backend (see
conftest.py). Each draw is compared, after ``xpnn.to_numpy``, with the same
draw made on the numpy backend, which must match exactly.
"""

from __future__ import annotations

import json

import array_api_compat
import numpy as np
import pytest

import xpnn
from xpnn import backend as B

SEED = 20240611

# Each draw as a function of a generator and extra keyword arguments (dtype).
FLOAT_DRAWS = {
    "normal": lambda g, **kw: g.normal(0.5, 2.0, size=(4, 3), **kw),
    "normal-0d": lambda g, **kw: g.normal(**kw),
    "standard_normal": lambda g, **kw: g.standard_normal((6,), **kw),
    "uniform": lambda g, **kw: g.uniform(-1.0, 3.0, size=(2, 5), **kw),
    "random": lambda g, **kw: g.random((3, 3), **kw),
    "random-0d": lambda g, **kw: g.random(**kw),
}
INT_DRAWS = {
    "integers": lambda g, **kw: g.integers(-5, 100, size=(7,), **kw),
    "integers-high-only": lambda g, **kw: g.integers(10, size=(2, 2), **kw),
    "choice": lambda g, **kw: g.choice(50, size=8, **kw),
    "choice-no-replace": lambda g, **kw: g.choice(50, size=20, replace=False, **kw),
    "permutation": lambda g, **kw: g.permutation(30, **kw),
    "permutation-empty": lambda g, **kw: g.permutation(0, **kw),
}
DRAWS = {**FLOAT_DRAWS, **INT_DRAWS}

# The same draws made directly by NumPy's own Generator (in float64 / int64).
NUMPY_DRAWS = {
    "normal": lambda r: r.normal(0.5, 2.0, size=(4, 3)),
    "standard_normal": lambda r: r.normal(0.0, 1.0, size=(6,)),
    "uniform": lambda r: r.uniform(-1.0, 3.0, size=(2, 5)),
    "random": lambda r: r.random((3, 3)),
    "integers": lambda r: r.integers(-5, 100, size=(7,)),
    "choice-no-replace": lambda r: r.choice(50, size=20, replace=False),
    "permutation": lambda r: r.permutation(30),
}


# ------------------------------------------------------------------ helpers


def on_numpy(seed: int = SEED) -> xpnn.Generator:
    """A generator whose draws land on the numpy backend: the reference."""
    return xpnn.default_rng(seed, backend=B._open("numpy"))


def host(x) -> np.ndarray:
    return xpnn.to_numpy(x)


def assert_on(x, backend: xpnn.Backend) -> None:
    """``x`` is an array of ``backend``'s namespace on ``backend``'s device."""
    assert xpnn.get_namespace(x) is backend.xp
    assert array_api_compat.device(x) == backend.device


def assert_same_numbers(x, reference, what: str = "") -> None:
    """Exactly equal values, dtype and shape once both are on the host."""
    np.testing.assert_array_equal(host(x), host(reference), err_msg=what, strict=True)


def global_numpy_state() -> tuple:
    """NumPy's legacy global random state (what np.random.rand & co. draw from)."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()  # noqa: NPY002
    return kind, keys.copy(), pos, has_gauss, cached


def assert_same_global_state(a: tuple, b: tuple) -> None:
    assert a[0] == b[0] and a[2:] == b[2:]
    np.testing.assert_array_equal(a[1], b[1])


@pytest.fixture
def restore_global_numpy_state():
    """Put NumPy's global random state back after a test that reseeds it."""
    saved = np.random.get_state()  # noqa: NPY002
    yield
    np.random.set_state(saved)  # noqa: NPY002


# ------------------------------------------------- same numbers everywhere


@pytest.mark.parametrize("draw", DRAWS)
def test_same_seed_same_numbers_on_every_backend(backend, draw):
    x = DRAWS[draw](xpnn.default_rng(SEED, backend=backend))
    assert_on(x, backend)
    assert_same_numbers(x, DRAWS[draw](on_numpy()))


def test_a_sequence_of_draws_matches_numpy(backend):
    ours, reference = xpnn.default_rng(SEED), on_numpy()  # ours: the active backend
    for name, draw in [*DRAWS.items(), *DRAWS.items()]:
        x = draw(ours)
        assert_on(x, backend)
        assert_same_numbers(x, draw(reference), what=name)


@pytest.mark.parametrize("draw", NUMPY_DRAWS)
def test_draws_are_numpys_own_pcg64_draws(backend, draw):
    kw = {"dtype": "float64"} if draw in FLOAT_DRAWS else {}
    x = DRAWS[draw](xpnn.default_rng(SEED), **kw)
    expected = NUMPY_DRAWS[draw](np.random.default_rng(SEED))
    np.testing.assert_array_equal(host(x), expected, strict=True)


@pytest.mark.parametrize("draw", ["normal", "normal-0d", "standard_normal"])
def test_float32_normal_draws_are_the_float64_draws_rounded(backend, draw):
    # Documented for normal(): "Drawn in float64 on the host, then cast".
    x32 = DRAWS[draw](xpnn.default_rng(SEED))
    x64 = DRAWS[draw](xpnn.default_rng(SEED), dtype="float64")
    np.testing.assert_array_equal(host(x32), host(x64).astype(np.float32), strict=True)


# -------------------------------------------------------------------- dtypes


@pytest.mark.parametrize("draw", FLOAT_DRAWS)
def test_float_draws_take_the_backend_float_dtype(backend, xp, draw):
    x = FLOAT_DRAWS[draw](xpnn.default_rng(SEED))
    assert x.dtype == backend.float_dtype == xp.float32


@pytest.mark.parametrize("draw", FLOAT_DRAWS)
def test_float_draws_are_float64_when_asked(backend, xp, draw):
    asked = FLOAT_DRAWS[draw](xpnn.default_rng(SEED), dtype="float64")
    assert asked.dtype == xp.float64
    with xpnn.use_backend(backend.name, backend.device, dtype="float64"):
        by_default = FLOAT_DRAWS[draw](xpnn.default_rng(SEED))
    assert by_default.dtype == xp.float64
    assert_same_numbers(by_default, asked)


@pytest.mark.parametrize("draw", INT_DRAWS)
def test_integer_draws_are_int64(backend, xp, draw):
    assert INT_DRAWS[draw](xpnn.default_rng(SEED)).dtype == xp.int64
    with xpnn.use_backend(backend.name, backend.device, dtype="float64"):
        assert INT_DRAWS[draw](xpnn.default_rng(SEED)).dtype == xp.int64


@pytest.mark.parametrize("dtype", ["int32", "uint8"])
def test_integer_draws_in_another_dtype(backend, xp, dtype):
    x = xpnn.default_rng(SEED).integers(0, 100, size=10, dtype=dtype)
    assert x.dtype == getattr(xp, dtype)
    assert_same_numbers(x, on_numpy().integers(0, 100, size=10, dtype=dtype))


# --------------------------------------------------------------- statistics


def test_normal_has_the_asked_spread():
    w = host(on_numpy().normal(0.0, 0.01, size=(784, 50)))
    assert w.shape == (784, 50)
    assert abs(w.std() - 0.01) < 0.05 * 0.01
    assert abs(w.mean()) < 5 * 0.01 / np.sqrt(w.size)  # 5 standard errors


def test_normal_loc_shifts_the_mean():
    x = host(on_numpy().normal(5.0, 1.0, size=10_000))
    assert abs(x.mean() - 5.0) < 0.05
    assert abs(x.std() - 1.0) < 0.05


@pytest.mark.parametrize(("low", "high"), [(0.0, 1.0), (-3.0, 2.0), (10.0, 10.5)])
def test_uniform_stays_in_low_high(low, high):
    x = host(on_numpy().uniform(low, high, size=20_000))
    assert low <= x.min() and x.max() < high
    assert x.min() < low + 0.01 * (high - low)  # fills the interval
    assert x.max() > high - 0.01 * (high - low)


def test_random_stays_in_0_1():
    x = host(on_numpy().random(20_000))
    assert 0.0 <= x.min() and x.max() < 1.0
    assert abs(x.mean() - 0.5) < 0.01


@pytest.mark.parametrize(("low", "high"), [(0, 10), (-7, -2), (5, 6)])
def test_integers_stay_in_low_high_and_hit_every_value(low, high):
    x = host(on_numpy().integers(low, high, size=5_000))
    assert set(np.unique(x).tolist()) == set(range(low, high))


def test_integers_with_one_bound_start_at_zero():
    x = host(on_numpy().integers(4, size=1_000))
    assert set(np.unique(x).tolist()) == {0, 1, 2, 3}


@pytest.mark.parametrize("n", [0, 1, 2, 1000])
def test_permutation_is_a_permutation(n):
    p = host(on_numpy().permutation(n))
    assert p.shape == (n,)
    np.testing.assert_array_equal(np.sort(p), np.arange(n))


def test_permutation_shuffles():
    p = host(on_numpy().permutation(1000))
    assert (p != np.arange(1000)).mean() > 0.9


@pytest.mark.parametrize(("n", "k"), [(100, 100), (60000, 100), (10, 3)])
def test_choice_without_replace_has_no_repeats(n, k):
    c = host(on_numpy().choice(n, k, replace=False))
    assert c.shape == (k,)
    assert len(np.unique(c)) == k
    assert 0 <= c.min() and c.max() < n


def test_choice_with_replace_repeats_and_stays_in_range():
    c = host(on_numpy().choice(10, size=(50, 4)))
    assert c.shape == (50, 4)
    assert set(np.unique(c).tolist()) == set(range(10))


def test_choice_without_replace_cannot_take_more_than_there_is():
    with pytest.raises(ValueError, match="larger sample than population"):
        on_numpy().choice(3, 5, replace=False)


# --------------------------------------------------------- seeds and state


def test_different_seeds_give_different_numbers(backend):
    for draw in (FLOAT_DRAWS["normal"], INT_DRAWS["permutation"]):
        a = host(draw(xpnn.default_rng(1)))
        b = host(draw(xpnn.default_rng(2)))
        assert not np.array_equal(a, b)


def test_successive_draws_differ(backend):
    g = xpnn.default_rng(SEED)
    assert not np.array_equal(host(g.random(10)), host(g.random(10)))


@pytest.mark.parametrize("seed", [0, np.int64(7), 2**70])
def test_seed_may_be_any_non_negative_int(seed):
    a, b = xpnn.default_rng(seed), xpnn.default_rng(int(seed))
    assert_same_numbers(a.random(5), b.random(5))
    assert a.seed == seed


def test_no_seed_gives_fresh_entropy():
    a, b = xpnn.default_rng(), xpnn.default_rng(None)
    assert not np.array_equal(host(a.random(10)), host(b.random(10)))


def test_get_state_set_state_replays_the_same_draws(backend):
    g = xpnn.default_rng(SEED)
    g.normal(size=5)  # the state is taken mid-stream
    state = g.get_state()
    first = [draw(g) for draw in DRAWS.values()]
    g.set_state(state)
    for x, draw in zip(first, DRAWS.values(), strict=True):
        assert_same_numbers(draw(g), x)


def test_state_survives_json_and_moves_to_another_generator(backend):
    g = xpnn.default_rng(SEED)
    g.permutation(10)
    state = json.loads(json.dumps(g.get_state()))
    other = xpnn.default_rng(0, backend=B._open("numpy"))
    other.set_state(state)
    assert_same_numbers(g.normal(size=(3, 3)), other.normal(size=(3, 3)))


def test_get_state_is_a_snapshot(backend):
    g = xpnn.default_rng(SEED)
    state = g.get_state()
    g.random(10)
    assert state != g.get_state()
    g.set_state(state)
    assert_same_numbers(g.random(10), xpnn.default_rng(SEED).random(10))


def test_generators_with_the_same_seed_are_independent(backend):
    a, b = xpnn.default_rng(SEED), xpnn.default_rng(SEED)
    for _ in range(3):
        a.normal(size=100)  # drawing from a must not advance b
    assert_same_numbers(b.normal(size=4), on_numpy().normal(size=4))
    assert not np.array_equal(host(a.normal(size=4)), host(on_numpy().normal(size=4)))


def test_draws_leave_numpys_global_random_state_alone(backend):
    before = global_numpy_state()
    g = xpnn.default_rng(SEED)
    for draw in DRAWS.values():
        draw(g)
    xpnn.default_rng()  # fresh entropy must not come from np.random either
    assert_same_global_state(global_numpy_state(), before)


def test_global_numpy_seed_does_not_change_the_draws(backend, restore_global_numpy_state):
    np.random.seed(1)  # noqa: NPY002
    a = host(xpnn.default_rng(SEED).normal(size=5))
    np.random.seed(2)  # noqa: NPY002
    b = host(xpnn.default_rng(SEED).normal(size=5))
    np.testing.assert_array_equal(a, b)


# ------------------------------------------------------- where draws land


def test_generator_without_a_backend_follows_the_active_backend(backend):
    g, reference = xpnn.default_rng(SEED), on_numpy()
    numpy = B._open("numpy")
    device1 = B._open("array_api_strict:device1")
    for where in (backend, numpy, device1, backend):
        with xpnn.use_backend(where.name, where.device):
            x = g.normal(size=(2, 3))
        assert_on(x, where)
        assert_same_numbers(x, reference.normal(size=(2, 3)))  # one stream throughout


def test_generator_with_a_backend_ignores_the_active_backend(backend):
    device1 = B._open("array_api_strict:device1")
    g = xpnn.default_rng(SEED, backend=device1)
    x = g.permutation(5)  # the active backend is the one under test
    assert_on(x, device1)
    with xpnn.use_backend("numpy"):
        assert_on(g.random(3), device1)


def test_generator_follows_the_float64_default_of_the_active_backend(backend, xp):
    g = xpnn.default_rng(SEED)
    with xpnn.use_backend(backend.name, backend.device, dtype="float64"):
        x = g.normal(size=3)
    y = g.normal(size=3)
    assert x.dtype == xp.float64
    assert y.dtype == xp.float32


# -------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("seed", "error"),
    [
        pytest.param(1.0, TypeError, id="float"),
        pytest.param(1.5, TypeError, id="fractional-float"),
        pytest.param("42", TypeError, id="str"),
        pytest.param(True, TypeError, id="bool"),
        pytest.param([1, 2], TypeError, id="list"),
        pytest.param(np.array(3), TypeError, id="array"),
        pytest.param(-1, ValueError, id="negative"),
        pytest.param(np.int64(-5), ValueError, id="negative-numpy-int"),
    ],
)
def test_bad_seed(seed, error):
    with pytest.raises(error, match="seed must be"):
        xpnn.default_rng(seed)


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        pytest.param(lambda g: g.normal(0.0, -0.01), ValueError, "scale", id="normal-scale<0"),
        pytest.param(
            lambda g: g.uniform(2.0, 1.0), ValueError, "low <= high", id="uniform-low>high"
        ),
        pytest.param(lambda g: g.integers(5, 2), ValueError, "low >= high", id="integers-low>high"),
        pytest.param(lambda g: g.integers(5, 5), ValueError, "low >= high", id="integers-empty"),
        pytest.param(lambda g: g.integers(0), ValueError, "high <= 0", id="integers-high<=0"),
        pytest.param(lambda g: g.choice(np.arange(5)), TypeError, "xp.take", id="choice-array"),
        pytest.param(lambda g: g.choice([1, 2, 3]), TypeError, "int", id="choice-list"),
        pytest.param(lambda g: g.choice(5.0), TypeError, "int", id="choice-float"),
        pytest.param(lambda g: g.choice(True), TypeError, "int", id="choice-bool"),
        pytest.param(lambda g: g.choice(0), ValueError, "positive", id="choice-0"),
        pytest.param(lambda g: g.choice(-3), ValueError, "positive", id="choice-negative"),
        pytest.param(lambda g: g.permutation(-1), ValueError, "non-negative", id="perm-negative"),
        pytest.param(lambda g: g.permutation(3.0), TypeError, "int", id="perm-float"),
        pytest.param(lambda g: g.permutation(np.arange(3)), TypeError, "int", id="perm-array"),
        pytest.param(lambda g: g.permutation(False), TypeError, "int", id="perm-bool"),
    ],
)
def test_bad_arguments(backend, call, error, match):
    g = xpnn.default_rng(SEED)
    state = g.get_state()
    with pytest.raises(error, match=match):
        call(g)
    assert g.get_state() == state  # a refused call draws nothing


@pytest.mark.parametrize("draw", ["random", "uniform"])
def test_float32_draws_stay_below_high(backend, draw):
    # PCG64 seeded with 0 makes a float64 that rounds to float32 1.0 as its
    # 14_817_372nd draw; jump right before it instead of drawing 15 million.
    bits = np.random.PCG64(0)
    bits.advance(14_817_372)
    g = xpnn.default_rng(0)
    g.set_state(bits.state)
    x = g.random() if draw == "random" else g.uniform(0.0, 1.0)
    assert float(host(x)) < 1.0


@pytest.mark.parametrize("size", [None, 1, 100, (3, 4)])
def test_choice_draws_what_numpy_choice_draws(size):
    """The book's np.random.choice(n, k): xpnn draws the same numbers from the same seed."""
    ours, numpy_rng = xpnn.default_rng(5), np.random.default_rng(5)
    for n in (1, 7, 60_000):
        got = xpnn.to_numpy(ours.choice(n, size))
        np.testing.assert_array_equal(got, numpy_rng.choice(n, size))
