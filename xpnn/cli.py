"""The ``xpnn`` command line.

``xpnn info`` says which backends can run here, with versions and GPUs.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

__all__ = ["main"]


def _format_info(data: dict[str, Any]) -> str:
    lines = [
        f"xpnn {data['xpnn']} on Python {data['python']} ({data['platform']})",
        "",
        "packages:",
    ]
    for name, version in data["packages"].items():
        lines.append(f"  {name:<18} {version or 'not installed'}")
    lines += ["", "backends (probed by allocating an array):"]
    for spec, reason in data["backends"].items():
        mark = "yes" if reason is None else f"no  ({reason})"
        lines.append(f"  {spec:<18} {mark}")
    lines += ["", f"active backend: {data['active']}"]
    if data["gpus"]:
        lines += ["", "GPUs:"]
        for gpu in data["gpus"]:
            total = gpu["memory_total_bytes"] / 2**30
            free = gpu["memory_free_bytes"] / 2**30
            lines.append(f"  {gpu['index']}: {gpu['name']}, {total:.1f} GiB ({free:.1f} GiB free)")
    else:
        lines += ["", "GPUs: none usable"]
    return "\n".join(lines)


def _cmd_info(args: argparse.Namespace) -> int:
    from xpnn.backend import info

    data = info()
    print(json.dumps(data, indent=2) if args.json else _format_info(data))
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``xpnn`` command."""
    from xpnn import __version__

    parser = argparse.ArgumentParser(
        prog="xpnn",
        description="Neural networks of 'Deep Learning from Scratch' on CPU or GPU.",
    )
    parser.add_argument("--version", action="version", version=f"xpnn {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    p_info = sub.add_parser("info", help="backends that can run here, versions, GPUs")
    p_info.add_argument("--json", action="store_true", help="print JSON instead of text")
    p_info.set_defaults(func=_cmd_info)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``xpnn`` command; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
