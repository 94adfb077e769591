"""Agents' status from the switch's device states (callstream_ingest.domain.ari_presence): pure logic."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from callstream_ingest.config import read_agents
from callstream_ingest.domain import ari_messages as m
from callstream_ingest.domain.ari_presence import AgentPresence
from callstream_ingest.domain.ari_routing import Agent, Publish, Route, WatchDevices
from callstream_ingest.domain.identity import AgentDirectory
from callstream_routing import domain as d

AT = datetime(2026, 12, 4, 15, 0, tzinfo=UTC)
AGENTS = [Agent("a1", "Local/a1@agents/n", ("sales",)), Agent("E1042", "PJSIP/1001", ("sales", "support"))]


def presence() -> AgentPresence:
    # E1042 is 1001 at the switch (the agent map); a1 has no entry and keeps its own name.
    return AgentPresence(AGENTS, AgentDirectory({"1001": "E1042"}), device_prefix="Custom:agent-")


def commands(effects: list[object]) -> list[tuple[str, str]]:
    return [(e.command.agent_id, e.command.action.value) for e in effects
            if isinstance(e, Route) and isinstance(e.command, d.SetAgentState)]


def events(effects: list[object]) -> list[tuple[str, str]]:
    return [(e.event.agent_id, e.event.WhichOneof("kind") or "") for e in effects if isinstance(e, Publish)]


def test_the_agents_devices_are_named_through_the_agent_map() -> None:
    assert presence().watch() == [WatchDevices(("Custom:agent-1001", "Custom:agent-a1"))]


def test_busy_pauses_and_not_inuse_makes_ready_again() -> None:
    p = presence()
    paused = p.changed("Custom:agent-1001", "BUSY", AT)
    assert commands(paused) == [("E1042", "not_ready")] and events(paused) == [("E1042", "not_ready")]
    assert p.changed("Custom:agent-1001", "BUSY", AT) == []  # the same state again (a re-read at reconnect)
    ready = p.changed("Custom:agent-1001", "NOT_INUSE", AT)
    assert commands(ready) == [("E1042", "ready")] and events(ready) == [("E1042", "ready")]


def test_logged_out_at_the_switch_logs_in_to_the_agents_queues_when_back() -> None:
    p = presence()
    out = p.changed("Custom:agent-a1", "UNAVAILABLE", AT)
    assert commands(out) == [("a1", "logout")] and events(out) == [("a1", "logged_out")]
    back = p.changed("Custom:agent-a1", "BUSY", AT)
    assert commands(back) == [("a1", "login"), ("a1", "not_ready")]
    login = next(e.command for e in back if isinstance(e, Route) and e.command.action is d.AgentAction.LOGIN)
    assert isinstance(login, d.SetAgentState) and [q.queue_id for q in login.queues] == ["sales"]
    assert events(back) == [("a1", "logged_in"), ("a1", "not_ready")]


@pytest.mark.parametrize("state", ["UNKNOWN", "INUSE", "RINGING", "INVALID", "NOT_INUSE"])
def test_states_that_are_not_a_change_of_status_are_ignored(state: str) -> None:
    assert presence().changed("Custom:agent-a1", state, AT) == []  # every agent starts ready


def test_a_device_of_no_agent_of_the_bridge_is_counted_not_applied() -> None:
    p = presence()
    assert p.changed("Custom:agent-zz", "BUSY", AT) == [] and p.changed("Custom:other", "BUSY", AT) == []
    assert p.unknown == {"Custom:agent-zz": 1, "Custom:other": 1}


def test_a_retried_change_has_the_same_command_ids_and_event_ids() -> None:
    first, second = presence().changed("Custom:agent-a1", "BUSY", AT), presence().changed("Custom:agent-a1", "BUSY", AT)
    assert [e.command.command_id for e in first if isinstance(e, Route)] == \
        [e.command.command_id for e in second if isinstance(e, Route)]
    assert [e.event.envelope.event_id for e in first if isinstance(e, Publish)] == \
        [e.event.envelope.event_id for e in second if isinstance(e, Publish)]


def test_device_state_changed_messages() -> None:
    raw = json.dumps({"type": "DeviceStateChanged", "application": "callstream",
                      "timestamp": "2026-12-04T15:08:38.943+0000",
                      "device_state": {"name": "Custom:agent-a1", "state": "BUSY"}})
    parsed = m.parse(raw, AT)
    assert parsed == m.DeviceStateChanged("Custom:agent-a1", "BUSY", datetime(2026, 12, 4, 15, 8, 38, 943000, UTC))
    assert m.parse(json.dumps({"type": "DeviceStateChanged", "device_state": {"state": "BUSY"}}), AT) == \
        m.Malformed("no_device_state", '{"type": "DeviceStateChanged", "device_state": {"state": "BUSY"}}')


def test_an_agent_logs_in_with_the_skills_and_penalties_of_the_agents_file(tmp_path: Path) -> None:
    path = tmp_path / "agents.yaml"
    path.write_text("agents:\n  - {agent_id: s1, endpoint: Local/s1@a/n, queues: [billing, tech], "
                    "skills: {billing: 5}, penalties: {tech: 1}}\n")
    (agent,) = read_agents(path)
    login = agent.login("c1")
    assert login.action is d.AgentAction.LOGIN
    assert [(s.skill_id, s.proficiency) for s in login.skills] == [("billing", 5)]
    assert [(q.queue_id, q.priority) for q in login.queues] == [("billing", 0), ("tech", 1)]
    path.write_text("agents:\n  - {agent_id: s1, endpoint: Local/s1@a/n, queues: [billing], penalties: {tech: 1}}\n")
    with pytest.raises(ValueError, match="penalties of queues it is not in"):
        read_agents(path)
    path.write_text("agents:\n  - {agent_id: s1, endpoint: Local/s1@a/n, queues: [billing], skills: {billing: 9}}\n")
    with pytest.raises(ValueError, match=r"agents\.0\.skills\.billing"):
        read_agents(path)
