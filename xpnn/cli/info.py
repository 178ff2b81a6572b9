"""``xpnn info``: which backends can run here, with versions and GPUs."""

from __future__ import annotations

import argparse
import json
from typing import Any


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


def run(args: argparse.Namespace) -> int:
    """Run ``xpnn info`` with the parsed ``args``; returns the exit status."""
    from xpnn.backend import info

    data = info()
    print(json.dumps(data, indent=2) if args.json else _format_info(data))
    return 0
