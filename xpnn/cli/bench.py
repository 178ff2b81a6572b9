"""``xpnn bench``: the benchmarks of :mod:`xpnn.bench`, with ``--json`` checked first."""

from __future__ import annotations

import argparse

from xpnn.cli.paths import make_output_folders
from xpnn.io import check_output_path


def run(args: argparse.Namespace) -> int:
    """Run ``xpnn bench`` with the parsed ``args``; returns the exit status."""
    from xpnn.bench import CASES
    from xpnn.bench import main as bench_main

    unknown = [c for c in args.cases if c not in CASES]
    if unknown:
        raise ValueError(f"unknown case {unknown[0]!r}; valid: {', '.join(CASES)}")
    if args.json:  # before the benchmarks run, not after
        check_output_path(args.json, "--json", example="bench.json")
        make_output_folders("bench", [("--json", args.json)])  # as train does, and says so
    return bench_main(args.cases or None, json_path=args.json, threads=args.threads)
