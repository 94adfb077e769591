"""Small helpers shared by the benchmarks: percentiles, printing, the machine line, the Go load generator."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

LOADGEN_SOURCE = Path(__file__).parent / "loadgen"
# Besides half its closed-loop rate, a gRPC bench paces its call at these fractions of it (with run_loadgen's
# sweep=...): at which load the p99 is under 5 ms, and whether a lighter load is any faster.
SWEEP = {"0.25": "quarter", "0.125": "eighth"}


def percentile(samples: Sequence[float], pct: float) -> float:
    ordered = sorted(samples)
    if not ordered:
        raise ValueError("no samples")
    rank = max(0, min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1))))
    return ordered[rank]


def selected_parts(argv: list[str] | None, parts: Sequence[str]) -> list[str]:
    """The parts of a bench named on its command line (all when none), or exit naming the unknown ones."""
    chosen = (argv if argv is not None else sys.argv[1:]) or list(parts)
    unknown = set(chosen) - set(parts)
    if unknown:
        raise SystemExit(f"unknown part(s) {sorted(unknown)}; choose from {', '.join(parts)}")
    return chosen


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


def build_loadgen(out_dir: Path) -> Path:
    """Build the gRPC load generator (bench/loadgen, Go): its modules come from the Go module proxy, cached after."""
    binary = out_dir / "loadgen"
    try:
        subprocess.run(["go", "build", "-o", str(binary), "."], cwd=LOADGEN_SOURCE, check=True)
    except FileNotFoundError as exc:
        raise SystemExit("this bench needs the go command (Go 1.26) to build bench/loadgen") from exc
    return binary


def run_loadgen(binary: Path, port: int, **flags: object) -> dict[str, Any]:
    """Run the load generator against 127.0.0.1:`port` (flags as in bench/loadgen/main.go, `_` for `-`); its
    latencies, in seconds."""
    args = [f"-{name.replace('_', '-')}={value}" for name, value in flags.items()]
    done = subprocess.run([str(binary), f"-addr=127.0.0.1:{port}", *args], capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"bench/loadgen failed ({done.returncode}): {done.stderr.strip()}")
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def steal_figure(name: str, run: dict[str, Any], phase: str) -> dict[str, float]:
    """The % of the machine's CPU time the hypervisor took during a paced phase of a load generator run (none where
    it could not be read): a p99 measured while the host took a fifth of the CPUs is the host's as much as ours."""
    share = run["steal"][phase]
    return {} if share < 0 else {name: share * 100}


def sweep_figures(run: dict[str, Any]) -> dict[str, float]:
    """The p99 (ms) of each SWEEP step of a load generator run, and the CPU time stolen meanwhile."""
    figures: dict[str, float] = {}
    for fraction, name in SWEEP.items():
        figures[f"p99_ms_at_{name}_rate"] = percentile(run["sweep"][fraction], 99) * 1000
        figures |= steal_figure(f"steal_pct_at_{name}_rate", run, fraction)
    return figures


@dataclass(frozen=True)
class Aim:
    """A figure against its aim (issue 19: every aimed-at figure says whether it is met)."""

    name: str
    value: float
    aim: str
    met: bool


def print_aims(aims: Sequence[Aim]) -> None:
    for a in aims:
        print(f"  AIM {a.name:40} {a.value:14,.3f}   aim {a.aim}: {'met' if a.met else 'NOT MET'}")
