"""Better routing than the switch's own? The same generated calls (fixed seed) on the skills center, once routed by
Asterisk's app_queue and once by Callstream's router through the ARI bridge, in the same Asterisk process.

The skills center (deploy/local/asterisk/skills): two queues, billing and tech, and six agents who serve both;
s1-s3 are experts at billing and novices at tech, s4-s6 the reverse, and a novice talks twice as long
([skills_agents] in extensions.conf). app_queue says it with member penalties (expert 0, novice 1: a novice is
rung only when no expert of the queue is free) and its longest-idle strategy (`leastrecent`); the router with
proficiencies (5 and 2) and its `skills` strategy. Same ring timeout (3 s), wrap-up (1 s), load and patience.

Every figure comes from Asterisk's CDRs (Master.csv, read by tests/integration/asterisk_records.py, no Callstream
code; one-second resolution): service level (answered within SL_THRESHOLD_S of entering, over offered), ASA,
abandon rate, the share of answers by an expert of the call's queue, each agent's occupancy (talk seconds over
the run: from the first caller to the end of the last talk) and its spread across agents (max - min, population
standard deviation). Also the bridge's CPU per routed call (its process's user + system time over the routed
run, /proc): the calls/s one bridge process sustains when CPU-bound.

Uses KAFKA_BOOTSTRAP_SERVERS when set, else starts a local broker; builds Asterisk once (cached). `make bench`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import statistics
import tempfile
from contextlib import ExitStack
from pathlib import Path

import yaml

from bench.common import machine
from bench.kafka_baseline import bootstrap_servers
from callstream_core.kafka import apply_topics
from callstream_devtools.local_asterisk import LocalAsterisk, center_dir
from callstream_devtools.routed_center import RoutedCenter
from callstream_ingest.domain.call_plan import LoadShape, plan_calls
from callstream_ingest.service_layer.call_generator import CallGenerator
from tests.integration.asterisk_records import CenterCall, read_center_calls

SKILLS = center_dir() / "skills"
SEED = 11
SL_THRESHOLD_S = 5
# Six agents whose expert talk averages 4 s serve 1.5 calls/s when each call reaches an expert: 1.2/s loads the
# center to ~80 % that way, and over 100 % when many calls reach novices (twice the talk).
SHAPE = LoadShape(calls=240, calls_per_s=1.2, queues=(("billing", 0.5), ("tech", 0.5)), patience_s=(4.0, 25.0),
                  ring_s=(0.3, 1.0), agent_talk_s=(2.0, 6.0), caller_talk_s=(60.0, 60.0), transfer_share=0.0,
                  max_wait_share=0.0)  # the caller talks longer than any agent: the agent ends every call


def experts() -> dict[str, str]:
    """agent -> the queue it is an expert at (proficiency 5), as routed-agents.yaml gives the router."""
    agents = yaml.safe_load((SKILLS / "routed-agents.yaml").read_text())["agents"]
    return {a["agent_id"]: next(q for q, level in a["skills"].items() if level == 5) for a in agents}


def figures(calls: list[CenterCall], agents: dict[str, str]) -> dict[str, float]:
    answered = [c for c in calls if c.answered is not None]
    waits = [(c.answered - c.entered).total_seconds() for c in answered if c.answered is not None]
    start = min(c.entered for c in calls)
    end = max(c.answered.timestamp() + c.talk_s for c in answered if c.answered is not None)
    span_s = end - start.timestamp()
    occupancy = {a: 100 * sum(c.talk_s for c in answered if c.agent == a) / span_s for a in agents}
    return {
        "offered": len(calls),
        "service_level_pct": 100 * sum(w <= SL_THRESHOLD_S for w in waits) / len(calls),
        "asa_s": statistics.fmean(waits),
        "abandon_rate_pct": 100 * (len(calls) - len(answered)) / len(calls),
        "expert_answers_pct": 100 * sum(agents.get(c.agent) == c.queue for c in answered) / len(answered),
        "mean_talk_s": statistics.fmean(c.talk_s for c in answered),
        "occupancy_mean_pct": statistics.fmean(occupancy.values()),
        "occupancy_spread_pct": max(occupancy.values()) - min(occupancy.values()),
        "occupancy_stdev_pct": statistics.pstdev(occupancy.values()),
    }


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a running process (/proc/<pid>/stat, fields 14 and 15, in clock ticks)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    tag = f"{os.getloadavg()[0]:.2f}"
    with ExitStack() as stack:
        bootstrap = bootstrap_servers(stack)
        apply_topics(bootstrap)
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="callstream-bench-skills-")))
        pbx = stack.enter_context(LocalAsterisk(tmp / "asterisk", queues_conf=SKILLS / "queues.conf"))
        center = stack.enter_context(RoutedCenter(pbx, bootstrap, tmp / "routed",
                                                  queues_file=SKILLS / "routed-queues.yaml",
                                                  agents_file=SKILLS / "routed-agents.yaml"))
        assert center.bridge is not None
        plan = plan_calls(SEED, SHAPE)
        generator = CallGenerator("127.0.0.1", pbx.ami_port, pbx.ami_user, pbx.secret, context="skills_incoming")
        asyncio.run(generator.run(plan, drain_timeout_s=180))
        # The same calls again; new tokens, as the dialplan remembers each token's answer (GLOBAL(ANS_<token>)).
        again = [dataclasses.replace(call, token=f"{call.token}r") for call in plan]
        cpu_before = cpu_s(center.bridge.pid)
        generator = CallGenerator("127.0.0.1", pbx.ami_port, pbx.ami_user, pbx.secret, context="skills_routed")
        asyncio.run(generator.run(again, drain_timeout_s=180))
        bridge_cpu_s = cpu_s(center.bridge.pid) - cpu_before
        records = {context: read_center_calls(pbx.cdr_csv, caller_context=context, agents_context="skills_agents")
                   for context in ("skills_incoming", "skills_routed")}
    agents = experts()
    queue, routed = figures(records["skills_incoming"], agents), figures(records["skills_routed"], agents)
    print(f"Skills center: app_queue (leastrecent, penalties) vs Callstream's router (skills strategy) via the ARI "
          f"bridge; {SHAPE.calls} calls at {SHAPE.calls_per_s}/s, seed {SEED}, SL threshold {SL_THRESHOLD_S} s; "
          f"from Asterisk's CDRs  [{machine()}, load average {tag} at start, {os.getloadavg()[0]:.2f} at end]")
    print(f"  {'':24} {'app_queue':>12} {'Callstream':>12} {'ratio':>8}")
    for name in queue:
        ratio = f"{routed[name] / queue[name]:.2f}x" if queue[name] else "-"
        print(f"  {name:24} {queue[name]:12.2f} {routed[name]:12.2f} {ratio:>8}")
    per_call_ms = 1000 * bridge_cpu_s / len(records["skills_routed"])
    print(f"  bridge CPU per routed call {per_call_ms:.2f} ms: {1000 / per_call_ms:,.0f} calls/s per process "
          f"when CPU-bound")


if __name__ == "__main__":
    main()
