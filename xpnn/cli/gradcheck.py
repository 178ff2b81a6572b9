"""``xpnn gradcheck``: backpropagation against numerical gradients of a small net."""

from __future__ import annotations

import argparse


def run(args: argparse.Namespace) -> int:
    """Run ``xpnn gradcheck`` with the parsed ``args``; returns the exit status."""
    import numpy as np

    import xpnn

    if args.backend:
        xpnn.set_backend(args.backend)
    # Numerical gradients need float64: in float32 the central difference
    # with h = 1e-4 loses most of its digits.
    with xpnn.use_backend(xpnn.get_backend().spec, dtype="float64"):
        net = xpnn.TwoLayerNet(
            args.input_size, args.hidden, args.classes, weight_init_std=1.0, seed=args.seed
        )
        rng = xpnn.default_rng(args.seed + 1)
        x = rng.standard_normal((args.batch, args.input_size))
        t = rng.integers(0, args.classes, size=args.batch)
        numeric = {k: xpnn.to_numpy(v) for k, v in net.numerical_gradient(x, t).items()}
        backprop = {k: xpnn.to_numpy(v) for k, v in net.gradient(x, t).items()}
    print(
        f"gradcheck on {xpnn.get_backend().spec}, float64: TwoLayerNet("
        f"{args.input_size}, {args.hidden}, {args.classes}), batch {args.batch}"
    )
    print(f"{'param':<6} {'shape':<10} {'max abs diff':>14} {'rel diff':>10}")
    worst = 0.0
    for key in net.KEYS:
        a, b = backprop[key], numeric[key]
        diff = float(np.max(np.abs(a - b)))
        rel = diff / max(float(np.max(np.abs(a))), float(np.max(np.abs(b))), 1e-12)
        worst = max(worst, rel)
        print(f"{key:<6} {a.shape!s:<10} {diff:>14.3e} {rel:>10.2e}")
    ok = worst <= args.tol
    print(
        f"{'OK' if ok else 'FAILED'}: largest relative difference {worst:.2e} "
        f"({'<=' if ok else '>'} tolerance {args.tol:g})"
    )
    return 0 if ok else 1
