"""From call records to a roster: history aggregation, patience estimate, and the planning pipeline."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from callstream_hr.domain.erlang import required_agents
from callstream_hr.domain.history import CallOutcome, CallRecord, RecordedHistory, aggregate_history
from callstream_hr.domain.roster import Contract, Employee, RosterRules
from callstream_hr.domain.shifts import BreakRule, ShiftTemplate
from callstream_hr.service_layer.planning import BadHistory, QueueTargets, RosterOptions, plan_week

MONDAY = datetime(2026, 11, 2, tzinfo=UTC)
HALF_HOUR = timedelta(minutes=30)


def test_intervals_count_offered_calls_and_average_handle_time_of_answered_ones() -> None:
    at = MONDAY + timedelta(minutes=5)
    records = [
        CallRecord("q", at, CallOutcome.ANSWERED, 10.0, 200.0),
        CallRecord("q", at + timedelta(minutes=20), CallOutcome.ANSWERED, 0.0, 100.0),
        CallRecord("q", at + timedelta(minutes=24), CallOutcome.ABANDONED, 30.0),
        CallRecord("q", at + timedelta(minutes=40), CallOutcome.OTHER, 0.0),  # next interval, no AHT
        CallRecord("r", at, CallOutcome.ABANDONED, 5.0),
    ]
    history = aggregate_history(records, MONDAY)
    q = history["q"]
    assert [(p.start, p.offered, p.aht_s) for p in q.intervals] == [
        (MONDAY, 3.0, 150.0), (MONDAY + HALF_HOUR, 1.0, None)]
    assert (q.offered, q.answered, q.abandoned) == (4, 2, 1)
    assert q.patience_s == pytest.approx((10 + 0 + 30) / 1)
    assert history["r"].patience_s == 5.0
    assert RecordedHistory.of(history).intervals("q", MONDAY + HALF_HOUR, MONDAY + 2 * HALF_HOUR) == q.intervals[1:]


def test_patience_estimate_recovers_an_exponential_patience_from_censored_waits() -> None:
    rng = np.random.default_rng(7)
    patience, offer_wait = rng.exponential(90.0, 40_000), rng.exponential(60.0, 40_000)
    records = [CallRecord("q", MONDAY, CallOutcome.ABANDONED if p < w else CallOutcome.ANSWERED, float(min(p, w)),
                          None if p < w else 120.0) for p, w in zip(patience, offer_wait, strict=True)]
    estimate = aggregate_history(records, MONDAY)["q"].patience_s
    assert estimate == pytest.approx(90.0, rel=0.03)


def test_bad_records_are_refused() -> None:
    with pytest.raises(ValueError, match="handle time"):
        CallRecord("q", MONDAY, CallOutcome.ABANDONED, 3.0, 100.0)
    with pytest.raises(ValueError, match="negative"):
        CallRecord("q", MONDAY, CallOutcome.ANSWERED, -1.0, 100.0)
    with pytest.raises(ValueError, match="timezone"):
        CallRecord("q", datetime(2026, 1, 1), CallOutcome.OTHER, 0.0)


def _rates(peak: float) -> np.ndarray:
    slot = np.arange(336)
    hour = (slot % 48) / 2.0
    shape = np.exp(-((hour - 11) ** 2) / 10) + 0.5 * np.exp(-((hour - 16) ** 2) / 6) + 0.1
    return peak * shape / shape.max()


def _records(rates: dict[str, np.ndarray], weeks: int, aht_s: float, seed: int) -> list[CallRecord]:
    rng = np.random.default_rng(seed)
    out = []
    for queue_id, rate in rates.items():
        for w in range(weeks):
            for slot, n in enumerate(rng.poisson(rate)):
                start = MONDAY + (w * 336 + slot) * HALF_HOUR
                for offset, handle in zip(rng.uniform(0, 1800, n), rng.exponential(aht_s, n), strict=True):
                    out.append(CallRecord(queue_id, start + timedelta(seconds=float(offset)), CallOutcome.ANSWERED,
                                          0.0, float(handle)))
    return out


TEMPLATES = (ShiftTemplate("8h", 17, tuple(range(0, 336, 2)), (BreakRule(1, 6, 10),)),)


def _employees(n: int) -> tuple[Employee, ...]:
    return tuple(Employee(f"E{i:02d}", f"Agent {i}", frozenset({"sales", "support"} if i % 2 else {"sales"}),
                          Contract(0, 40, 2)) for i in range(n))


def test_plan_week_goes_from_records_to_a_roster_with_the_queue_targets() -> None:
    rates = {"sales": _rates(40.0), "support": _rates(15.0)}
    source = RecordedHistory.of(aggregate_history(_records(rates, 5, 240.0, seed=3), MONDAY))
    targets = (QueueTargets("sales", 0.8, 20.0, patience_s=120.0), QueueTargets("support", 0.9, 30.0))
    week = MONDAY + 5 * 7 * timedelta(days=1)
    plan = plan_week(source, targets, week, RosterOptions(TEMPLATES, _employees(60), RosterRules(time_limit_s=8.0),
                                                          shrinkage=0.1, shift_time_limit_s=3.0),
                     history_weeks=5, holdout_weeks=1)
    for q, t in zip(plan.forecast.queues, targets, strict=True):
        truth = rates[t.queue_id]
        # the forecast is the (decayed) average of 5 Poisson weeks: close to the true rates in total
        assert sum(q.calls) == pytest.approx(truth.sum(), rel=0.05)
        assert 0.0 < q.accuracy.calls_wape < 0.5
        assert q.staffing is not None
        for c, a, r in zip(q.calls, q.aht_s, q.staffing, strict=True):
            # Erlang A with the queue's own patience (C without one); the 10 % shrinkage applied once
            direct = required_agents(c, 1800.0, a, t.sl_target, t.t_s, patience_s=t.patience_s) if c else None
            assert r.raw_agents == (direct.raw_agents if direct else 0)
            assert r.agents == -(-r.raw_agents * 10 // 9)
        # the queue's shift plan covers exactly those agents (breaks are the shift model's, not shrinkage)
        assert list(plan.shift_plans[t.queue_id].requirement) == [r.agents for r in q.staffing]
        assert all(c >= r for c, r in zip(plan.roster.coverage(t.queue_id, 336),
                                          plan.shift_plans[t.queue_id].requirement, strict=True))
    assert plan.roster.unfilled == ()
    assert plan.roster.paid_hours >= plan.lp_bound_hours - 1e-6
    assert 0.0 <= plan.gap < 0.2
    rows = plan.roster_rows()
    assert {r["employee_id"] for r in rows} <= {e.employee_id for e in _employees(60)}
    assert all(r["queue_id"] == "sales" for r in rows if int(r["employee_id"][1:]) % 2 == 0)
    first = rows[0]
    assert datetime.fromisoformat(first["end"]) - datetime.fromisoformat(first["start"]) == timedelta(hours=8.5)
    doc = plan.as_dict()
    assert doc["roster"]["paid_hours"] == plan.roster.paid_hours
    assert doc["queues"][0]["targets"]["patience_s"] == 120.0
    schedule = plan.schedule("wk", {e.employee_id: "T1" for e in _employees(60)})
    assert len(schedule["shifts"]) == len(rows)


def test_a_queue_without_history_is_named() -> None:
    source = RecordedHistory.of(aggregate_history(_records({"sales": _rates(5.0)}, 2, 200.0, seed=1), MONDAY))
    with pytest.raises(BadHistory, match="'billing'"):
        plan_week(source, (QueueTargets("billing"),), MONDAY + timedelta(days=14),
                  RosterOptions(TEMPLATES, _employees(2)), history_weeks=2)


def test_handle_time_takes_the_wrap_up_the_end_announces_unless_a_wrap_up_end_says_otherwise() -> None:
    from google.protobuf.timestamp_pb2 import Timestamp

    from callstream.call.v1 import call_events_pb2 as ce
    from callstream_hr.adapters.call_events import records_from_events

    def event(call_id: str, seconds: int, kind: str, payload: object) -> ce.CallEvent:
        e = ce.CallEvent(call_id=call_id)
        e.envelope.occurred_at.CopyFrom(Timestamp(seconds=int(MONDAY.timestamp()) + seconds))
        getattr(e, kind).CopyFrom(payload)
        return e

    events = []
    for call_id, extra in (("announced", []), ("reported", [event("reported", 200, "wrap_up_ended",
                                                                     ce.WrapUpEnded(agent_id="a"))])):
        events += [event(call_id, 0, "offered", ce.CallOffered(context=ce.CallContext(queue_id="q"))),
                   event(call_id, 10, "answered", ce.CallAnswered(agent_id="a", queue_id="q")),
                   event(call_id, 130, "ended", ce.CallEnded(agent_id="a", wrap_up_ms=30_000)), *extra]
    events.append(event("gone", 5, "offered", ce.CallOffered(context=ce.CallContext(queue_id="q"))))
    events.append(event("gone", 50, "abandoned", ce.CallAbandoned(queue_id="q")))
    got = {(r.outcome, r.wait_s, r.handle_s) for r in records_from_events(events)}
    # talk 120 s + the announced 30 s; or talk + the wrap-up up to its reported end (190 s); abandoned at 45 s
    assert got == {(CallOutcome.ANSWERED, 10.0, 150.0), (CallOutcome.ANSWERED, 10.0, 190.0),
                   (CallOutcome.ABANDONED, 45.0, None)}
