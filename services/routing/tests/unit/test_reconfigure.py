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


def test_relaxation_to_a_queue_configured_later(center):
    c = center()
    c.queue("q", relaxation=(RelaxStep(after_s=10.0, add_queue_id="backup"),))
    c.login("a1", ["q"])
    c.offer("x0", "q")
    c.accept("x0")  # a1 talks throughout
    c.offer("x1", "q")
    c.tick(10.0)  # x1 relaxed towards "backup", which does not exist yet
    c.do(CancelCall, call_id="x1")  # (a call waiting so is not re-indexed when the queue appears)
    c.queue("backup")
    c.login("b1", ["backup"])
    c.t = 11.0
    c.offer("x2", "q")
    assert c.agent_of("x2") is None
    c.tick(21.0)  # x2 relaxed at the same stage as x1, now that "backup" exists
    assert c.agent_of("x2") == "b1"
