"""First-call resolution with repeat-call detection on event time."""

from __future__ import annotations

from kpi_builders import at

from callstream_kpi.domain import kpis
from callstream_kpi.domain.contact import ContactRecord
from callstream_kpi.domain.fcr import FcrTracker

H = 3600.0


def obs(t: FcrTracker, call_id: str, hours: float, *, caller: str = "x", topic: str = "bill", queue: str = "q1",
        resolved: bool = True, answered: bool = True) -> dict[str, bool]:
    ups = t.observe_call(call_id, caller_hash=caller, topic=topic, offered_at=at(hours * H), queue_id=queue,
                         answered=answered, resolved=resolved)
    return {u.call_id: u.first_call_resolved for u in ups}


def test_repeat_within_window_revises_earlier_call() -> None:
    t = FcrTracker()
    assert obs(t, "A", 0) == {"A": True}
    assert obs(t, "B", 24) == {"A": False, "B": True}  # B repeats A within 72 h
    assert t.verdict("A") is False and t.verdict("B") is True
    assert obs(t, "C", 24 + 73) == {"C": True}  # 73 h after B: not a repeat of B
    # exactly 72 h after B: within B's window; and C follows D 1 h later, so D is repeated too
    assert obs(t, "D", 24 + 72) == {"B": False, "D": False}


def test_other_topic_other_caller_anonymous_unresolved() -> None:
    t = FcrTracker()
    assert obs(t, "A", 0) == {"A": True}
    assert obs(t, "B", 1, topic="card") == {"B": True}
    assert obs(t, "C", 1, caller="y") == {"C": True}
    assert obs(t, "N1", 0, caller="") == {"N1": True}
    assert obs(t, "N2", 1, caller="") == {"N2": True}  # anonymous: never a repeat
    assert obs(t, "U", 2, topic="loan", resolved=False) == {"U": False}
    assert obs(t, "X", 2, topic="tax", answered=False) == {}  # not answered: no FCR figure
    assert t.verdict("A") is True


def test_repeat_can_be_unanswered_and_can_arrive_first() -> None:
    t = FcrTracker()
    assert obs(t, "B", 10, answered=False, resolved=False) == {}
    assert obs(t, "A", 0) == {"A": False}  # A arrives after its repeat: judged at once


def test_window_per_queue_and_final_sweep() -> None:
    t = FcrTracker(window_per_queue={"fast": 1 * H})
    assert obs(t, "A", 0, queue="fast") == {"A": True}
    assert obs(t, "B", 2, queue="fast") == {"B": True}  # 2 h > 1 h window of queue "fast"
    assert t.verdict("A") is True
    final = t.sweep(at(2 * H))  # A's window closed at 1 h; B's closes at 3 h
    assert [(u.call_id, u.first_call_resolved, u.final) for u in final] == [("A", True, True)]
    assert len(t) == 1 and t.verdict("A") is None


def test_observe_contacts_and_rollup_correction() -> None:
    def c(call_id: str, seg: int, hours: float, resolved: bool) -> ContactRecord:
        return ContactRecord(call_id=call_id, segment=seg, outcome="answered", offered_at=at(hours * H),
                             answered_at=at(hours * H + 5), caller_hash="x", call_type="PS", topic="PS",
                             resolved=resolved, agent_id=f"a{seg}")

    first = [c("A", 0, 0, False), c("A", 1, 0, True)]  # resolved on the transferred leg
    t = FcrTracker()
    ups = t.observe(first)
    assert [(u.call_id, u.first_call_resolved) for u in ups] == [("A", True)]
    before = kpis.rollup_contacts(first, first_call_resolved=t.is_first_call_resolved)
    assert before.resolved_no_repeat == 1 and kpis.first_call_resolution(before) == 100.0
    ups = t.observe([c("B", 0, 30, True)])
    assert {(u.call_id, u.first_call_resolved, u.repeated_by) for u in ups} == {("A", False, "B"), ("B", True, "")}
    after = kpis.rollup_contacts(first, first_call_resolved=t.is_first_call_resolved)
    assert after.resolved_no_repeat == 0 and kpis.first_call_resolution(after) == 0.0
