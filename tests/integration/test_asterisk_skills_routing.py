"""Skills routing through the real switch: calls to the skills center's [skills_routed] context (Stasis, the ARI
bridge, Callstream's router with the `skills` strategy) are each answered by an agent with the highest proficiency
in the call's queue while one is free.

The skills center (deploy/local/asterisk/skills): two queues, billing and tech; six agents who serve both, three
experts (proficiency 5) at each and novices (2) at the other. The calls come a few seconds apart and are short,
so an expert of every queue is free whenever a call arrives: the router must ring an expert each time. The
agents file is the center's without its member penalties (which alone would keep novices off a queue while an
expert is free), so only the proficiencies can choose: a strategy blind to them (longest idle, round robin) rings
a novice about every other call (checked: with `longest_idle` this test fails). Who answered each call is read
from Asterisk's CDRs (`asterisk_records.read_center_calls`), the experts from the agents file the router is given.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import yaml
from asterisk_records import read_center_calls

from callstream_core.kafka import apply_topics
from callstream_devtools.local_asterisk import LocalAsterisk, center_dir
from callstream_devtools.routed_center import RoutedCenter
from callstream_ingest.domain.call_plan import LoadShape, plan_calls
from callstream_ingest.service_layer.call_generator import CallGenerator

pytestmark = pytest.mark.integration
SKILLS = center_dir() / "skills"
CALLS = 10
# A call every 4 s on average, talk 1-2 s, ring under a second, a second of wrap-up: with three experts per queue
# one is free for every call (two calls would need to come within ~4 s of each other three times over to take
# all three).
SHAPE = LoadShape(calls=CALLS, calls_per_s=0.25, queues=(("billing", 0.5), ("tech", 0.5)), patience_s=(40.0, 40.0),
                  ring_s=(0.2, 0.6), agent_talk_s=(1.0, 2.0), caller_talk_s=(30.0, 30.0), transfer_share=0.0,
                  max_wait_share=0.0)


def agents_without_penalties(folder: Path) -> Path:
    """The skills center's agents file for the router with the penalties left out."""
    agents = yaml.safe_load((SKILLS / "routed-agents.yaml").read_text())["agents"]
    path = folder / "routed-agents.yaml"
    path.write_text(yaml.safe_dump({"agents": [{k: v for k, v in a.items() if k != "penalties"} for a in agents]}))
    return path


def proficiencies(agents_file: Path) -> dict[str, dict[str, int]]:
    """agent -> queue -> proficiency, as the router's agents file gives them."""
    agents = yaml.safe_load(agents_file.read_text())["agents"]
    return {a["agent_id"]: {q: int(level) for q, level in a["skills"].items()} for a in agents}


@pytest.mark.timeout(600)
def test_each_call_is_answered_by_an_expert_of_its_queue(kafka_bootstrap: str, tmp_path: Path) -> None:
    agents_file = agents_without_penalties(tmp_path)
    skills = proficiencies(agents_file)
    best = {q: max(levels[q] for levels in skills.values()) for q in ("billing", "tech")}
    assert all(min(levels.values()) < max(levels.values()) for levels in skills.values()), "no novices to avoid"
    apply_topics(kafka_bootstrap)
    plan = plan_calls(7, SHAPE)
    assert {call.queue for call in plan} == {"billing", "tech"}
    with (LocalAsterisk(tmp_path / "asterisk", queues_conf=SKILLS / "queues.conf") as pbx,
          RoutedCenter(pbx, kafka_bootstrap, tmp_path / "routed", queues_file=SKILLS / "routed-queues.yaml",
                       agents_file=agents_file)):
        generator = CallGenerator("127.0.0.1", pbx.ami_port, pbx.ami_user, pbx.secret, context="skills_routed")
        report = asyncio.run(generator.run(plan, drain_timeout_s=120))
        assert report.originated == CALLS and not report.refused
        calls = read_center_calls(pbx.cdr_csv, caller_context="skills_routed", agents_context="skills_agents")
    assert len(calls) == CALLS
    unanswered = [c for c in calls if c.answered is None]
    assert not unanswered, f"callers with 40 s of patience gave up: {unanswered}"
    by_whom = [(c.queue, c.agent, skills[c.agent][c.queue]) for c in calls]
    assert all(level == best[queue] for queue, _agent, level in by_whom), by_whom
    # both kinds of expert took calls: the proficiency chose them, not an order in which agents are listed
    assert {agent for _queue, agent, _level in by_whom} & {a for a, lv in skills.items() if lv["billing"] == 5}
    assert {agent for _queue, agent, _level in by_whom} & {a for a, lv in skills.items() if lv["tech"] == 5}
