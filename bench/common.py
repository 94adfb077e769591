"""Small helpers shared by the benchmarks: percentiles, printing, the machine line."""

from __future__ import annotations

import os
import platform
from collections.abc import Sequence
from datetime import UTC, datetime


def percentile(samples: Sequence[float], pct: float) -> float:
    ordered = sorted(samples)
    if not ordered:
        raise ValueError("no samples")
    rank = max(0, min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1))))
    return ordered[rank]


def machine() -> str:
    return (f"{platform.node()} {platform.machine()} {os.cpu_count()} cores, Python {platform.python_version()}, "
            f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC")


def print_figures(title: str, figures: dict[str, float], baseline: dict[str, float] | None = None) -> None:
    print(f"{title}  [{machine()}]")
    for name, value in figures.items():
        ratio = ""
        if baseline and name in baseline and baseline[name]:
            ratio = f"   ({value / baseline[name]:.2f}x baseline)"
        print(f"  {name:28} {value:14,.3f}{ratio}")
