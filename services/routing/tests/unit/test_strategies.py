"""Agent choice per queue: every strategy, skills with minimum levels, agent queue priority, sticky agent."""

from __future__ import annotations

import json

from callstream_routing.domain import (
    AgentAction,
    Assigned,
    OverflowDestination,
    OverflowTarget,
    PriorityAging,
    Queued,
    RouterConfig,
    RoutingCore,
    Strategy,
    UpdatePriority,
)


def test_longest_idle_is_default(center, assigned):
    c = center()
    c.queue("q")
    c.login("a1", ["q"])
    c.t = 5
    c.login("a2", ["q"])
    c.t = 10
    assert assigned(c.offer("x1", "q")) == {"x1": "a1"}
    assert assigned(c.offer("x2", "q")) == {"x2": "a2"}
    c.accept("x1")
    c.accept("x2")
    c.t = 20
    c.end("x2")
    c.end("x1")  # both idle since 20
    c.t = 30
    assert assigned(c.offer("x3", "q")) == {"x3": "a1"}  # tie on idle time: lower agent seq


def test_longest_idle_prefers_earlier_free_agent(center, assigned):
    c = center()
    c.queue("q")
    c.login("a1", ["q"])
    c.login("a2", ["q"])
    c.offer("x1", "q")
    c.offer("x2", "q")
    c.accept("x1")
    c.accept("x2")
    c.t = 10
    c.end("x2")  # a2 free at 10
    c.t = 20
    c.end("x1")  # a1 free at 20
    assert assigned(c.offer("x3", "q")) == {"x3": "a2"}


def test_least_occupied(center, assigned):
    c = center()
    c.queue("q", strategy=Strategy.LEAST_OCCUPIED)
    c.login("a1", ["q"])
    c.login("a2", ["q"])
    c.offer("x1", "q")  # a1
    c.offer("x2", "q")  # a2
    c.accept("x1")
    c.accept("x2")
    c.t = 100
    c.end("x1")  # a1 busy 100 s
    c.t = 110
    c.end("x2")  # a2 busy 110 s, idle more recently
    assert assigned(c.offer("x3", "q")) == {"x3": "a1"}


def test_fewest_calls_beats_idle_time(center, assigned):
    c = center()
    c.queue("q", strategy=Strategy.FEWEST_CALLS)
    c.login("a1", ["q"])
    c.offer("x1", "q")
    c.t = 1
    c.talk("x1")  # a1 handled 1, idle since 1
    c.t = 2
    c.login("a2", ["q"])  # a2 handled 0, idle since 2
    c.t = 3
    assert assigned(c.offer("x2", "q")) == {"x2": "a2"}


def test_round_robin_rotates(center, assigned):
    c = center()
    c.queue("q", strategy=Strategy.ROUND_ROBIN)
    for a in ("a1", "a2", "a3"):
        c.login(a, ["q"])
    order = []
    for i in range(6):
        r = c.offer(f"x{i}", "q")
        order.append(assigned(r)[f"x{i}"])
        c.talk(f"x{i}")
    assert order == ["a1", "a2", "a3", "a1", "a2", "a3"]


def test_skills_min_level_and_best_proficiency(center, assigned):
    c = center()
    c.queue("q", strategy=Strategy.SKILLS)
    c.login("novice", ["q"], {"fr": 2})
    c.login("good", ["q"], {"fr": 4})
    c.login("expert", ["q"], {"fr": 5, "de": 1})
    assert assigned(c.offer("x1", "q", {"fr": 3})) == {"x1": "expert"}
    assert assigned(c.offer("x2", "q", {"fr": 3})) == {"x2": "good"}
    r = c.offer("x3", "q", {"fr": 3})  # the novice is below the minimum
    assert isinstance(r.decisions[0].outcome, Queued)
    assert assigned(c.offer("x4", "q", {"fr": 1})) == {"x4": "novice"}
    c.talk("x2")  # good frees up and takes x3
    assert c.agent_of("x3") == "good"


def test_queue_skills_apply_to_every_call(center, assigned):
    from callstream_routing.domain import RequiredSkill

    c = center()
    c.queue("q", skills=(RequiredSkill(skill_id="billing", min_proficiency=2),))
    c.login("a1", ["q"], {"billing": 1})
    c.login("a2", ["q"], {"billing": 3})
    assert assigned(c.offer("x1", "q")) == {"x1": "a2"}


def test_agent_queue_priority_penalty(center, assigned):
    c = center()
    c.queue("q")
    c.login("backup", {"q": 5})
    c.login("primary", {"q": 0})  # idle for less time but lower penalty
    assert assigned(c.offer("x1", "q")) == {"x1": "primary"}
    assert assigned(c.offer("x2", "q")) == {"x2": "backup"}


def test_agent_serves_its_preferred_queue_first(center):
    c = center()
    c.queue("sales")
    c.queue("support")
    c.login("a", {"sales": 1, "support": 0})
    c.offer("busy", "sales")
    c.accept("busy")
    c.t = 1
    c.offer("s1", "sales")  # waits longer
    c.t = 2
    c.offer("p1", "support")
    c.t = 3
    c.end("busy")
    assert c.agent_of("p1") == "a"


def test_global_longest_waiting_across_queues(center):
    c = center(RouterConfig(global_longest_waiting=True))
    c.queue("sales")
    c.queue("support")
    c.login("a", {"sales": 1, "support": 0})
    c.offer("busy", "sales")
    c.accept("busy")
    c.t = 1
    c.offer("s1", "sales")
    c.t = 2
    c.offer("p1", "support")
    c.t = 3
    c.end("busy")
    assert c.agent_of("s1") == "a"


def test_sticky_agent_for_repeat_caller(center, assigned):
    c = center()
    c.queue("q", sticky_window_s=3600, sticky_wait_s=20)
    c.login("a1", ["q"])
    c.login("a2", ["q"])
    c.offer("x1", "q", caller_hash="h")
    assert c.agent_of("x1") == "a1"
    c.accept("x1")
    c.t = 50
    c.end("x1")
    c.t = 100
    # a1 became idle later than a2, but the repeat caller gets a1
    assert assigned(c.offer("x2", "q", caller_hash="h")) == {"x2": "a1"}
    c.accept("x2")
    # the caller again, while a1 is busy: waits for a1 up to 20 s, though a2 is idle
    c.t = 110
    r = c.offer("x3", "q", caller_hash="h")
    assert isinstance(r.decisions[0].outcome, Queued)
    assert c.core.call_state("x3").preferred_agent_id == "a1"
    assert c.core.next_deadline() == 130
    r = c.tick(130)
    assert assigned(r) == {"x3": "a2"}


def test_sticky_agent_returns_within_wait(center):
    c = center()
    c.queue("q", sticky_window_s=3600, sticky_wait_s=20)
    c.login("a1", ["q"])
    c.login("a2", ["q"])
    c.offer("x1", "q", caller_hash="h")
    c.accept("x1")
    c.t = 5
    c.offer("x2", "q", caller_hash="h")
    c.t = 10
    c.end("x1")
    assert c.agent_of("x2") == "a1"


def test_sticky_window_expires(center, assigned):
    c = center()
    c.queue("q", sticky_window_s=60)
    c.login("a1", ["q"])
    c.login("a2", ["q"])
    c.offer("x1", "q", caller_hash="h")
    c.accept("x1")
    c.t = 10
    c.end("x1")  # a1 idle since 10, a2 since 0
    c.t = 1000
    assert assigned(c.offer("x2", "q", caller_hash="h")) == {"x2": "a2"}


def test_not_ready_agent_is_skipped(center, assigned):
    c = center()
    c.queue("q")
    c.login("a1", ["q"])
    c.login("a2", ["q"])
    c.agent("a1", AgentAction.NOT_READY)
    assert assigned(c.offer("x1", "q")) == {"x1": "a2"}
    c.offer("x2", "q")
    r = c.agent("a1", AgentAction.READY)
    assert assigned(r) == {"x2": "a1"}


def test_priority_aging_raises_a_waiting_calls_priority_with_its_wait(center):
    c = center()
    c.queue("q", aging=PriorityAging(every_s=30, max_boost=2))
    c.offer("old", "q")  # priority 0 at t=0
    c.t = 50
    c.offer("new", "q", priority=1)
    assert (c.core.call_state("old").priority, c.core.call_state("old").aging_boost) == (1, 1)  # waited 30 s
    c.t = 70
    c.offer("vip", "q", priority=3)
    # "old" has waited 70 s: +2 (the most it may gain), above "new" (1, 20 s: +0), below "vip" (3, just came)
    assert [c.core.call_state(x).priority for x in ("old", "new", "vip")] == [2, 1, 3]
    c.login("a1", ["q"])
    order = []
    for _ in range(3):
        (call_id,) = [d.call_id for d in c.results[-1].decisions if isinstance(d.outcome, Assigned)]
        order.append(call_id)
        c.talk(call_id)
    assert order == ["vip", "old", "new"]  # without aging: vip, new, old (next test)
    c.agent("a1", AgentAction.LOGOUT)
    c.t = 1000
    c.offer("late", "q")
    c.tick(2000)  # the boost stops at max_boost however long a call waits
    assert (c.core.call_state("late").priority, c.core.call_state("late").aging_boost) == (2, 2)


def test_without_aging_the_younger_higher_priority_call_goes_first(center, assigned):
    c = center()
    c.queue("q")
    c.offer("old", "q")
    c.t = 50
    c.offer("new", "q", priority=1)
    c.t = 70
    c.offer("vip", "q", priority=3)
    c.tick(500)
    assert c.core.call_state("old").priority == 0 and c.core.call_state("old").aging_boost == 0
    c.login("a1", ["q"])
    order = []
    for _ in range(3):
        (call_id,) = assigned(c.results[-1])
        order.append(call_id)
        c.talk(call_id)
    assert order == ["vip", "new", "old"]


def test_aging_restarts_in_the_next_queue_and_keeps_an_explicit_priority(center):
    c = center()
    c.queue("q", aging=PriorityAging(every_s=10, max_boost=5), max_wait_s=25,
            overflow=OverflowTarget(destination=OverflowDestination.QUEUE, queue_id="r"))
    c.queue("r", aging=PriorityAging(every_s=100, max_boost=1))
    c.offer("x", "q", priority=2)
    c.tick(15)
    assert c.core.call_state("x").priority == 3
    c.do(UpdatePriority, call_id="x", priority=4)  # an explicit change keeps what waiting earned
    assert c.core.call_state("x").priority == 5
    c.tick(26)  # past the max wait: overflows to "r", where it has waited 0 s
    view = c.core.call_state("x")
    assert (view.queue_id, view.priority, view.aging_boost) == ("r", 4, 0)
    c.tick(126)
    assert c.core.call_state("x").priority == 5


def test_aging_replays_from_the_log_and_from_a_snapshot(center, assigned):
    c = center()
    c.queue("q", aging=PriorityAging(every_s=7, max_boost=3))
    for i in range(6):
        c.t = i * 4.0
        c.offer(f"x{i}", "q", priority=i % 2)
    c.tick(20)
    half = len(c.log)
    c.login("a1", ["q"])
    served = []
    while len(served) < 6:
        got = assigned(c.results[-1])
        if not got:
            c.tick(c.t + 5)
            continue
        (call_id,) = got
        served.append(call_id)
        c.t += 3
        c.talk(call_id)
    # at 20 s x1 (1 + 2) goes first; then x0, oldest at priority 0 (0 + 3 at 23 s), before x3 and x5 of
    # priority 1 (which would come first without aging)
    assert served[:2] == ["x1", "x0"]
    fresh = RoutingCore(c.core.config)
    assert fresh.handle_all(c.log) == c.results
    assert fresh.snapshot() == c.core.snapshot()
    head = RoutingCore(c.core.config)
    head.handle_all(c.log[:half])
    restored = RoutingCore.restore(json.loads(json.dumps(head.snapshot())))
    assert restored.handle_all(c.log[half:]) == c.results[half:]
    assert restored.snapshot() == c.core.snapshot()
