"""What the core remembers of finished calls and callers stays bounded: a router that runs for months holds
what its traffic needs, not everything it ever saw."""

from __future__ import annotations

from callstream_routing.domain import CallOutcome, RouterConfig


def test_outcomes_of_finished_calls_are_kept_up_to_the_bound_oldest_forgotten_first(center):
    c = center(RouterConfig(outcomes_kept=3))
    c.queue("q")
    c.login("a", ["q"])
    for n in range(5):
        c.offer(f"x{n}", "q")
        c.talk(f"x{n}")
    assert [c.core.call_outcome(f"x{n}") for n in range(5)] == [None, None, *[CallOutcome.COMPLETED] * 3]
    c.offer("ghost", "nowhere")  # rejected: an outcome too
    assert c.core.call_outcome("ghost") is CallOutcome.REJECTED and c.core.call_outcome("x2") is None


def test_a_callers_last_agent_is_forgotten_past_every_sticky_window(center, assigned):
    c = center()
    c.queue("q", sticky_window_s=600)
    c.queue("r", sticky_window_s=3600)
    c.login("a1", ["q", "r"])
    c.login("a2", ["q", "r"])
    c.offer("x1", "q", caller_hash="old")
    c.talk("x1")  # "old" last spoke to a1 at 0
    c.t = 1000
    c.offer("x2", "q", caller_hash="recent")
    c.talk("x2")
    c.t = 3500
    # within r's window (3600 s) both callers are still remembered: each gets their agent back in r
    assert assigned(c.offer("x3", "r", caller_hash="old")) == {"x3": "a1"}
    c.talk("x3")
    c.t = 7000  # "old" last served at 3500 (3500 s ago: in r's window); "recent" at 1000: past every window
    c.offer("x4", "q", caller_hash="other")
    c.talk("x4")
    assert set(c.core.snapshot()["last_agent"]) == {"old", "other"}
    c.t = 7200  # and 3700 s after 3500, "old" is past r's window too
    c.offer("x5", "q", caller_hash="other")
    c.talk("x5")
    assert set(c.core.snapshot()["last_agent"]) == {"other"}
