"""A call's requirement and pools follow the queues' configuration: the core remembers them per queue,
requirement and relaxation stage, and must forget them when a queue is configured."""

from __future__ import annotations

from callstream_routing.domain import CancelCall, RelaxStep, RequiredSkill


def test_new_minimum_applies_to_later_offers(center, assigned):
    c = center()
    c.queue("q", skills=(RequiredSkill(skill_id="s", min_proficiency=3),))
    c.login("a1", ["q"], skills={"s": 2})
    assert assigned(c.offer("x1", "q")) == {}  # a1 is below the minimum
    c.queue("q", skills=(RequiredSkill(skill_id="s", min_proficiency=2),))
    assert c.agent_of("x1") == "a1"  # the waiting call, re-indexed on the reconfiguration
    c.talk("x1")
    assert assigned(c.offer("x2", "q")) == {"x2": "a1"}  # a new offer with the same requirement


def test_new_minimum_applies_to_an_offer_like_an_earlier_one(center, assigned):
    c = center()
    c.queue("q", skills=(RequiredSkill(skill_id="s", min_proficiency=1),))
    c.login("a1", ["q"], skills={"s": 1})
    assert assigned(c.offer("x1", "q")) == {"x1": "a1"}
    c.talk("x1")
    c.queue("q", skills=(RequiredSkill(skill_id="s", min_proficiency=2),))
    assert assigned(c.offer("x2", "q")) == {}  # the same queue and requirement as x1's, no longer a1's


def _relaxed_towards_backup(center):
    """x1 and x2 wait in "q" and, after 10 s, relax towards "backup", a queue not configured yet."""
    c = center()
    c.queue("q", relaxation=(RelaxStep(after_s=10.0, add_queue_id="backup"),))
    c.login("a1", ["q"])
    c.offer("x0", "q")
    c.accept("x0")  # a1 talks throughout
    c.offer("x1", "q")
    c.t = 1.0
    c.offer("x2", "q")
    c.tick(11.0)  # both relaxed towards "backup"
    assert c.agent_of("x1") is None and c.agent_of("x2") is None
    return c


def test_relaxed_call_goes_to_an_agent_of_a_queue_configured_later(center, assigned):
    # b1 is logged in to "backup" before the queue exists: idle, but a member of nothing yet.
    c = _relaxed_towards_backup(center)
    c.login("b1", ["backup"])
    # When "backup" appears, the calls relaxed towards it are in its pools at once (the invariant checker runs
    # after every command): the first in service order takes b1, the other keeps its place in "q".
    assert assigned(c.queue("backup")) == {"x1": "b1"}
    view = c.core.call_state("x2")
    assert view is not None
    assert (view.position, view.virtual_enqueue_time, view.eligible_queues) == (1, 1.0, ("q", "backup"))
    assert c.core.waiting_calls("q") == ("x2",)


def test_relaxed_call_goes_to_an_agent_logging_in_to_a_queue_configured_later(center, assigned):
    c = _relaxed_towards_backup(center)
    c.queue("backup")
    assert assigned(c.login("b1", ["backup"])) == {"x1": "b1"}
    c.t = 12.0
    c.offer("x3", "q")  # not relaxed yet: not b1's (busy anyway) nor waiting in "backup"
    view = c.core.call_state("x3")
    assert view is not None and view.eligible_queues == ("q",)
    c.accept("x1")
    c.end("x1")
    assert c.agent_of("x2") == "b1"  # x2 relaxed, before x3; x3 waits for "q"'s agent
    assert c.agent_of("x3") is None


def test_a_later_offer_relaxes_towards_a_queue_configured_later(center):
    c = _relaxed_towards_backup(center)
    c.do(CancelCall, call_id="x1")
    c.do(CancelCall, call_id="x2")  # (only the remembered stage of "q" matters here, not the calls themselves)
    c.queue("backup")
    c.login("b1", ["backup"])
    c.t = 12.0
    c.offer("x4", "q")
    assert c.agent_of("x4") is None
    c.tick(22.0)  # x4 relaxed at the same stage as x1 and x2, now that "backup" exists
    assert c.agent_of("x4") == "b1"
