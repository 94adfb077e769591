"""What the KPI workers' shared real-time state costs (issue 18): one hour of calls in one call-events partition's
view, published as a `PartitionState` and merged with the other partitions' by every worker at every tick.
For each traffic level: the record's size (binary protobuf, what the workers write; JSON for comparison), the
time to export it, and the time to build the merged view of 6 such partitions (another worker's tick, and the tick of
the worker owning them all, which counts its views as it holds them); the baseline is what a single worker's tick
computed before the states (the snapshots of one view holding the same 6 partitions' calls). No Kafka: the domain
code only, on this machine."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import partial

from bench.common import print_figures
from bench.kpi_restart import call_events
from callstream.kpi.v1 import kpi_events_pb2
from callstream_core import wire
from callstream_core.topics import CALL_EVENTS
from callstream_kpi.domain.partition_state import TeamDirectory, merged_snapshots
from callstream_kpi.domain.realtime import RealtimeSettings, RealtimeView
from callstream_kpi.domain.watermark import FixedClock

PARTITIONS = 6
CALLS_PER_HOUR = (1_000, 10_000, 36_000)  # per partition: ~0.3, ~2.8 and 10 calls/s
START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
SETTINGS = RealtimeSettings(allowed_lateness_s=10.0)


def _view(calls: int, partition: int, rng: random.Random) -> RealtimeView:
    view = RealtimeView(SETTINGS)
    step = 3600.0 / calls
    events = [e for i in range(calls)
              for e in call_events(f"p{partition}-c{i}", f"q{i % 8}", START + timedelta(seconds=i * step), rng)]
    events.sort(key=lambda e: e.envelope.occurred_at.ToNanoseconds())
    view.process_batch(events)
    return view


def _state(view: RealtimeView, partition: int) -> kpi_events_pb2.PartitionState:
    state = kpi_events_pb2.PartitionState(topic=CALL_EVENTS, partition=partition)
    assert view.watermark.current is not None
    state.as_of.FromDatetime(view.watermark.current)
    view.export_state(state)
    return state


def _best_of(runs: int, fn: Callable[[], object]) -> float:
    best = float("inf")
    for _ in range(runs):
        began = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - began)
    return best


def main() -> None:
    rng = random.Random(18)
    for calls in CALLS_PER_HOUR:
        views = [_view(calls, p, rng) for p in range(PARTITIONS)]
        states = [_state(v, p) for p, v in enumerate(views)]
        one = RealtimeView(SETTINGS, watermark=FixedClock(max(s.as_of.ToDatetime(tzinfo=UTC) for s in states)))
        for state in states:
            one.load_state(state)
        one.advance()
        assert one.snapshots(), "the baseline view has figures"
        binary = len(wire.encode(states[0], "protobuf"))
        figures = {
            "record KB (binary)": binary / 1024,
            "record KB (JSON)": len(wire.encode(states[0], "json")) / 1024,
            "bytes per call (binary)": binary / calls,
            "export ms": _best_of(3, partial(_state, views[0], 0)) * 1000,
            "tick ms": _best_of(3, partial(merged_snapshots, states, SETTINGS, TeamDirectory())) * 1000,
            "tick ms, one worker owning the 6 (its views as held)": _best_of(3, partial(
                merged_snapshots, [], SETTINGS, TeamDirectory(), views, None, one.watermark.current)) * 1000,
        }
        print_figures(f"kpi partition state: {calls:,} calls/hour per partition, {PARTITIONS} partitions", figures,
                      baseline={"tick ms": _best_of(3, one.snapshots) * 1000})


if __name__ == "__main__":
    main()
