"""Callstream's routing of Asterisk's calls (the ARI bridge) against Asterisk's own Queue(): from the moment the
caller's channel runs `Stasis()` (or `Queue()`) to the moment the first agent channel exists (the agent's phone
starts ringing), p50 and p99, on the same test center, the same generated load and the same Asterisk process.

Both runs are timed by Asterisk itself: its AMI events (`timestampevents = yes`) recorded by a manager session
meanwhile: `Newexten` of the caller's channel entering `Stasis`/`Queue`, and `Newchannel` of the first agent
channel of that call (app_queue's member call carries the caller's Linkedid; the bridge names its agent
channels `<caller's uniqueid>-agent-<n>`). The routed run includes the bridge's whole path: the ARI event over
the WebSocket, OfferCall over gRPC with a durable command log write, and the originate request. Calls that
waited because every agent was busy wait in both runs; the load is light (`RATE` calls/s on 8 answering agents)
so most calls find an agent free, and p50 is the routing path itself. The rounds alternate (Queue first).

Uses KAFKA_BOOTSTRAP_SERVERS when set, else starts a local broker; builds Asterisk once (cached). `make bench`.
"""

from __future__ import annotations

import asyncio
import tempfile
from contextlib import ExitStack
from pathlib import Path

from bench.common import percentile, print_figures
from bench.kafka_baseline import bootstrap_servers
from callstream_core.kafka import apply_topics
from callstream_devtools.local_asterisk import LocalAsterisk
from callstream_devtools.routed_center import RoutedCenter
from callstream_ingest.adapters.ami_session import AmiSession
from callstream_ingest.domain.ami import Message
from callstream_ingest.domain.call_plan import LoadShape, plan_calls
from callstream_ingest.service_layer.call_generator import CallGenerator

CALLS = 150
RATE = 1.0
ROUNDS = 2
SEED = 7


def ring_delays(events: list[Message], application: str) -> list[float]:
    """Seconds from each caller's `application` (Stasis or Queue) to its first agent channel."""
    started: dict[str, tuple[str, float]] = {}  # caller uniqueid -> (linkedid, time)
    first_agent: dict[str, float] = {}  # caller uniqueid or linkedid -> time of its first agent channel
    for e in events:
        name, at = e.get("Event", ""), float(e.get("Timestamp", "0") or 0)
        if name == "Newexten" and e.get("Application") == application and e.get("Uniqueid") not in started:
            started[e["Uniqueid"]] = (e.get("Linkedid", ""), at)
        elif name == "Newchannel" and "@agents-" in e.get("Channel", ""):
            uniqueid = e.get("Uniqueid", "")
            key = uniqueid.split("-agent-")[0] if "-agent-" in uniqueid else e.get("Linkedid", "")
            first_agent.setdefault(key, at)
    delays = []
    for uniqueid, (linkedid, at) in started.items():
        rang = first_agent.get(uniqueid, first_agent.get(linkedid))
        if rang is not None:
            delays.append(rang - at)
    return delays


async def recorded_run(pbx: LocalAsterisk, context: str) -> list[Message]:
    """The generated load into `context`, and every AMI event Asterisk sent meanwhile."""
    tap = AmiSession("127.0.0.1", pbx.ami_port)
    await tap.open(pbx.ami_user, pbx.secret)
    events: list[Message] = []
    tap.handlers.append(events.append)
    try:
        plan = plan_calls(SEED, LoadShape(calls=CALLS, calls_per_s=RATE, transfer_share=0.0, max_wait_share=0.0))
        await CallGenerator("127.0.0.1", pbx.ami_port, pbx.ami_user, pbx.secret, context=context).run(plan)
    finally:
        await tap.close()
    return events


def main() -> None:
    delays: dict[str, list[float]] = {"Queue": [], "Stasis": []}
    with ExitStack() as stack:
        bootstrap = bootstrap_servers(stack)
        apply_topics(bootstrap)
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="callstream-bench-ari-")))
        pbx = stack.enter_context(LocalAsterisk(tmp / "asterisk"))
        stack.enter_context(RoutedCenter(pbx, bootstrap, tmp / "routed"))
        for _ in range(ROUNDS):
            for application, context in (("Queue", "incoming"), ("Stasis", "routed")):
                delays[application] += ring_delays(asyncio.run(recorded_run(pbx, context)), application)
    figures, baseline = {}, {}
    for pct in (50, 99):
        figures[f"ring_after_ms_p{pct}"] = percentile(delays["Stasis"], pct) * 1000
        baseline[f"ring_after_ms_p{pct}"] = percentile(delays["Queue"], pct) * 1000
    figures["calls_rung"] = len(delays["Stasis"])
    baseline["calls_rung"] = len(delays["Queue"])
    print_figures(f"ARI bridge + router vs Asterisk's Queue(): caller entering Stasis()/Queue() -> first agent "
                  f"channel ({ROUNDS} alternating rounds of {CALLS} calls at {RATE}/s; baseline = Queue(), same "
                  f"center and load)", figures, baseline)
    for name, values in (("Queue()", delays["Queue"]), ("ARI bridge", delays["Stasis"])):
        print(f"  {name:12} p50 {percentile(values, 50) * 1000:8.1f} ms   p99 {percentile(values, 99) * 1000:8.1f} ms"
              f"   n={len(values)}")


if __name__ == "__main__":
    main()
