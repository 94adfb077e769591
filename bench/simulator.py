"""The virtual PBX as fast as possible: one simulated working day of a 500-agent center (the demo center
scaled: agents ×10, calls ×17, about 50,000 calls), in-process routing core, events built (protobuf with
envelopes and deterministic ids) and counted, not sent. Aim: under 60 s wall. Run by `make bench`."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import yaml

from bench.common import print_figures
from callstream_simulator import CountingSink, Engine, InProcessRouter, parse_scenario

DEMO = Path(__file__).resolve().parents[1] / "deploy" / "local" / "demo-center.yaml"
AGENTS_X = 10
CALLS_X = 17


def scaled() -> dict[str, Any]:
    data = yaml.safe_load(DEMO.read_text())
    data["name"] = "bench"
    data["trunks"] = data["trunks"] * AGENTS_X
    for group in data["agents"]:
        group["count"] *= AGENTS_X
    for ct in data["call_types"]:
        ct["arrivals"]["per_interval"] = [m * CALLS_X for m in ct["arrivals"]["per_interval"]]
    return data


def measure() -> dict[str, float]:
    sc = parse_scenario(scaled(), "bench scenario")
    began = time.perf_counter()
    sink = CountingSink()
    engine = Engine(sc, InProcessRouter(sc), sink)
    summary = engine.run()
    wall = time.perf_counter() - began
    events = sink.calls + sink.agents
    return {
        "agents": float(sum(g.count for g in sc.agents)),
        "calls received": float(summary.received),
        "calls answered": float(summary.answered),
        "service level %": 100 * (summary.service_level or 0.0),
        "ASA s": summary.asa_s or 0.0,
        "events": float(events),
        "virtual hours": summary.end_s / 3600,
        "wall s": wall,
        "events/s": events / wall,
        "calls/s": summary.received / wall,
        "speed-up (virtual/wall)": summary.end_s / wall,
    }


def main() -> None:
    print_figures("simulator: one day of a 500-agent center, max speed, in-process router", measure())


if __name__ == "__main__":
    main()
