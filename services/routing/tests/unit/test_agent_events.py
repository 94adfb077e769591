"""Agent events -> agent state commands: what each kind becomes, the whole profile on logins and changes,
and what cannot be a command."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from callstream.agent.v1 import agent_events_pb2 as ae
from callstream.routing.v1 import routing_pb2
from callstream_core.envelope import new_envelope
from callstream_routing.adapters.agent_events import NotACommand, agent_state_request
from callstream_routing.domain import model as d

Action = routing_pb2.AgentStateRequest
AT = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
PROFILE = d.AgentView(
    agent_id="a1", state=d.AgentStatus.LOGGED_OUT, reason=d.NotReadyReason.UNSPECIFIED, since=0.0, call_ids=(),
    reservation_ids=(), version=0,
    queues=(d.QueueMembership(queue_id="sales", priority=0), d.QueueMembership(queue_id="billing", priority=2)),
    skills=(d.Skill(skill_id="es", proficiency=4),),
    capacity=(d.ChannelCapacity(channel=d.Channel.VOICE, capacity=1),
              d.ChannelCapacity(channel=d.Channel.CHAT, capacity=3)),
    load=(), available_channels=(), misses=0)


def event(kind: str, agent_id: str = "a1") -> ae.AgentEvent:
    e = ae.AgentEvent(agent_id=agent_id, envelope=new_envelope("test", AT))
    getattr(e, kind).SetInParent()
    return e


def queues(request: Action) -> dict[str, int]:
    return {m.queue_id: m.priority for m in request.queues}


def skills(request: Action) -> dict[str, int]:
    return {s.skill_id: s.proficiency for s in request.skills}


def test_the_command_id_is_the_event_id_so_a_repeat_is_a_no_op() -> None:
    e = event("ready")
    request = agent_state_request(e, PROFILE)
    assert request is not None and request.command_id == e.envelope.event_id and request.agent_id == "a1"


def test_login_carries_the_profile_the_core_holds() -> None:
    request = agent_state_request(event("logged_in"), PROFILE)
    assert request is not None and request.action == Action.ACTION_LOGIN
    assert queues(request) == {"sales": 0, "billing": 2}
    assert skills(request) == {"es": 4}
    assert dict(request.capacity) == {"voice": 1, "chat": 3}


def test_login_of_an_unknown_agent_has_no_queues_yet() -> None:
    request = agent_state_request(event("logged_in", "new"), None)
    assert request is not None and request.action == Action.ACTION_LOGIN
    assert not request.queues and not request.skills and not request.capacity


def test_state_changes() -> None:
    out = agent_state_request(event("logged_out"), PROFILE)
    assert out is not None and out.action == Action.ACTION_LOGOUT
    ready = agent_state_request(event("ready"), PROFILE)
    assert ready is not None and ready.action == Action.ACTION_READY
    e = event("not_ready")
    e.not_ready.reason = ae.NOT_READY_REASON_LUNCH
    not_ready = agent_state_request(e, PROFILE)
    assert not_ready is not None and not_ready.action == Action.ACTION_NOT_READY
    assert not_ready.reason == ae.NOT_READY_REASON_LUNCH


def test_skills_change_replaces_the_skills_and_keeps_the_queues() -> None:
    e = event("skills_changed")
    e.skills_changed.skills.add(skill_id="en", proficiency=5)
    e.skills_changed.skills.add(skill_id="mortgages", proficiency=2)
    request = agent_state_request(e, PROFILE)
    assert request is not None and request.action == Action.ACTION_UPDATE_PROFILE
    assert skills(request) == {"en": 5, "mortgages": 2}
    assert queues(request) == {"sales": 0, "billing": 2}


@pytest.mark.parametrize(("member", "want"), [(True, {"sales": 0, "billing": 2, "cards": 1}),
                                              (False, {"sales": 0, "billing": 2})])
def test_queue_membership_change_adds_or_removes_one_queue(member: bool, want: dict[str, int]) -> None:
    e = event("queue_membership_changed")
    e.queue_membership_changed.queue_id, e.queue_membership_changed.member = "cards", member
    e.queue_membership_changed.queue_priority = 1
    request = agent_state_request(e, PROFILE)
    assert request is not None and request.action == Action.ACTION_UPDATE_PROFILE
    assert queues(request) == want and skills(request) == {"es": 4}
    leave = event("queue_membership_changed")
    leave.queue_membership_changed.queue_id = "billing"
    request = agent_state_request(leave, PROFILE)
    assert request is not None and queues(request) == {"sales": 0}


def test_a_profile_change_for_an_unknown_agent_starts_its_profile() -> None:
    e = event("skills_changed", "new")
    e.skills_changed.skills.add(skill_id="en", proficiency=3)
    request = agent_state_request(e, None)
    assert request is not None and request.action == Action.ACTION_UPDATE_PROFILE
    assert skills(request) == {"en": 3} and not request.queues


@pytest.mark.parametrize("kind", ["reserved", "talking", "on_hold", "after_call_work"])
def test_the_switch_echoing_the_routers_own_decisions_changes_nothing(kind: str) -> None:
    assert agent_state_request(event(kind), PROFILE) is None


def test_what_cannot_be_a_command_is_refused_with_the_reason() -> None:
    with pytest.raises(NotACommand, match="agent_id"):
        agent_state_request(event("ready", agent_id=""), None)
    with pytest.raises(NotACommand, match="no kind"):
        agent_state_request(ae.AgentEvent(agent_id="a1", envelope=new_envelope("test", AT)), PROFILE)
    nameless = event("queue_membership_changed")
    with pytest.raises(NotACommand, match="queue_id"):
        agent_state_request(nameless, PROFILE)


# -- the core's profile update -------------------------------------------------------------------------------
def profile(c, agent_id: str, queues: list[str], skills: dict[str, int] | None = None):
    return c.agent(agent_id, d.AgentAction.UPDATE_PROFILE,
                   queues=tuple(d.QueueMembership(queue_id=q, priority=0) for q in queues),
                   skills=tuple(d.Skill(skill_id=s, proficiency=p) for s, p in (skills or {}).items()))


def test_a_profile_before_the_first_login_is_kept_logged_out(center) -> None:
    c = center()
    c.queue("q")
    assert profile(c, "a", ["q"], {"es": 4}).accepted
    view = c.core.agent_state("a")
    assert view is not None and view.state is d.AgentStatus.LOGGED_OUT
    assert [m.queue_id for m in view.queues] == ["q"] and [(s.skill_id, s.proficiency) for s in view.skills] == [
        ("es", 4)]
    assert c.core.queue_state("q").agents_logged_in == 0
    c.offer("x", "q")
    assert c.core.waiting_calls("q") == ("x",)  # a logged-out agent takes no call


def test_a_profile_change_keeps_the_state_and_routes_by_the_new_skills(center, assigned) -> None:
    c = center()
    c.queue("q")
    c.login("a", ["q"], {"es": 2})
    c.agent("a", d.AgentAction.NOT_READY, reason=d.NotReadyReason.LUNCH)
    assert not assigned(c.offer("x", "q", skills={"es": 4}))
    profile(c, "a", ["q"], {"es": 5})
    view = c.core.agent_state("a")
    assert view is not None and view.state is d.AgentStatus.NOT_READY and view.reason is d.NotReadyReason.LUNCH
    assert assigned(c.agent("a", d.AgentAction.READY)) == {"x": "a"}  # now skilled enough for the waiting call


def test_a_ready_agent_given_a_new_queue_takes_its_waiting_call_at_once(center, assigned) -> None:
    c = center()
    c.queue("q")
    c.queue("r")
    c.login("a", ["q"])
    c.offer("x", "r")
    assert assigned(profile(c, "a", ["q", "r"])) == {"x": "a"}


def test_leaving_a_queue_that_then_has_no_agent_overflows_its_callers(center) -> None:
    c = center()
    c.queue("q", leave_when_empty=True, overflow=d.OverflowTarget(destination=d.OverflowDestination.VOICEMAIL))
    c.queue("r")
    c.login("a", ["q", "r"])
    c.agent("a", d.AgentAction.NOT_READY)
    c.offer("x", "q")
    r = profile(c, "a", ["r"])
    assert [(x.call_id, x.outcome.destination) for x in r.decisions] == [("x", d.OverflowDestination.VOICEMAIL)]
    assert c.core.queue_state("q").agents_logged_in == 0 and c.core.queue_state("r").agents_logged_in == 1


def test_an_event_without_envelope_id_or_time_is_refused() -> None:
    """issue 17 item 4: an envelope-less event became a command with an empty command id."""
    with pytest.raises(NotACommand, match="no envelope"):
        agent_state_request(ae.AgentEvent(agent_id="a1", ready=ae.Ready()), PROFILE)
    nameless = event("ready")
    nameless.envelope.event_id = ""
    with pytest.raises(NotACommand, match="event_id is empty"):
        agent_state_request(nameless, PROFILE)
    timeless = event("ready")
    timeless.envelope.ClearField("occurred_at")
    with pytest.raises(NotACommand, match="occurred_at is not set"):
        agent_state_request(timeless, PROFILE)
