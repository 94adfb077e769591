"""Agent choice per queue: every strategy, skills with minimum levels, agent queue priority, sticky agent."""

from __future__ import annotations

from callstream_routing.domain import AgentAction, Queued, RouterConfig, Strategy


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
