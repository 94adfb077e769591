"""Every KPI formula of kpis.md pinned on hand-made contacts; expected values worked out by hand."""

from __future__ import annotations

from dataclasses import fields, replace

import pytest
from kpi_builders import Call, at

from callstream_kpi.domain import kpis
from callstream_kpi.domain.contact import ContactRecord
from callstream_kpi.domain.kpis import Rollup, rollup_contacts
from callstream_kpi.domain.sessionizer import Sessionizer, SessionizerSettings


def c(call_id: str, outcome: str, segment: int = 0, *, answered: bool | None = None, **kw: object) -> ContactRecord:
    is_answered = outcome == "answered" if answered is None else answered
    return ContactRecord(call_id=call_id, segment=segment, outcome=outcome, offered_at=at(0), queue_id="q1",
                         answered_at=at(1) if is_answered else None, **kw)  # type: ignore[arg-type]


CONTACTS = [
    c("A", "answered", queued=True, queue_s=10, ring_s=7, talk_s=100, hold_s=20, hold_count=1, acw_s=30,
      resolved=True, agent_id="a1"),
    c("B", "answered", queued=True, queue_s=30, ring_s=12, talk_s=200, acw_s=40, transfer_kind="warm",
      agent_id="a1"),
    c("B", "answered", 1, ring_s=0, talk_s=50, hold_s=10, hold_count=2, acw_s=20, resolved=True, agent_id="a2"),
    c("C", "answered", ring_s=6, talk_s=60, acw_s=10, transfer_kind="blind", agent_id="a2"),
    c("C", "abandoned", 1, queued=True, queue_s=25),
    c("D", "abandoned", queued=True, queue_s=15, short_abandon=True),
    c("E", "abandoned", queued=True, queue_s=40),
    c("F", "blocked"),
    c("G", "ivr_handled", ivr_s=50),
    c("H", "overflowed", queued=True, queue_s=100),
]


@pytest.fixture
def r() -> Rollup:
    return rollup_contacts(CONTACTS, sl_threshold_s=20.0, ring_cycle_s=6.0)


def test_counters(r: Rollup) -> None:
    assert (r.received, r.blocked, r.ivr_handled, r.offered, r.queued) == (8, 1, 1, 6, 5)
    assert (r.answered, r.answered_within_t, r.abandoned, r.abandoned_within_t, r.short_abandons) == (3, 2, 2, 1, 1)
    assert (r.overflowed, r.callbacks, r.timed_out) == (1, 0, 0)
    assert (r.sum_queue_s, r.sum_queue_s_answered, r.sum_wait_abandoned_s) == (195.0, 40.0, 55.0)
    assert (r.answered_legs, r.sum_talk_s, r.sum_hold_s, r.calls_with_hold, r.sum_hold_count) == (4, 410.0, 30.0, 2, 3)
    assert (r.sum_acw_s, r.sum_rings, r.transferred_blind, r.transferred_warm) == (100.0, 5, 1, 1)
    assert r.resolved_no_repeat == 2


def test_contact_kpis(r: Rollup) -> None:
    assert kpis.average_acw(r) == 25.0  # 100 / 4 legs
    assert kpis.average_time_to_abandon(r) == 27.5  # (15 + 40) / 2
    assert kpis.average_handle_time(r) == 135.0  # (410 + 30 + 100) / 4
    assert kpis.average_hold_time(r) == 7.5  # 30 / 4
    assert kpis.average_hold_time_per_held_call(r) == 15.0  # 30 / 2
    assert kpis.average_rings_to_answer(r) == 1.0  # (2 + 2 + 0 + 1) / (4 legs + 1 IVR answer)
    assert kpis.average_queue_time(r) == 39.0  # 195 / 5
    assert kpis.average_speed_of_answer(r) == pytest.approx(40 / 3)
    assert kpis.average_talk_time(r) == 102.5  # 410 / 4
    assert kpis.abandon_rate(r) == 20.0  # (2 - 1) / (6 - 1)
    assert kpis.abandon_rate_all(r) == pytest.approx(100 * 2 / 6)
    assert kpis.blocked_rate(r) == 12.5  # 1 / 8
    assert kpis.first_call_resolution(r) == pytest.approx(100 * 2 / 3)
    assert kpis.queued_rate(r) == pytest.approx(100 * 5 / 6)
    assert kpis.transfer_rate(r) == 50.0  # 2 / 4 legs
    assert kpis.transfer_rate_blind(r) == 25.0 and kpis.transfer_rate_warm(r) == 25.0
    assert kpis.answered_rate(r) == 50.0  # 3 / 6
    assert kpis.total_calls(r) == 8


def test_service_level_variants(r: Rollup) -> None:
    assert kpis.service_level(r) == 40.0  # 2 / (6 - 1)
    assert kpis.service_level_of_answered(r) == pytest.approx(100 * 2 / 3)
    assert kpis.service_level_of_offered(r) == pytest.approx(100 * 2 / 6)
    assert kpis.service_level_abandons_within_t_excluded(r) == 40.0  # 2 / (6 - 1 abandoned within T)
    assert kpis.service_level_abandons_within_t_met(r) == 50.0  # (2 + 1) / 6


def test_threshold_per_queue_and_ring_cycle() -> None:
    r = rollup_contacts(CONTACTS, sl_threshold_s=lambda q: 30.0 if q == "q1" else 20.0, ring_cycle_s=5.0)
    assert r.answered_within_t == 3 and r.abandoned_within_t == 1  # 30 s counts as within 30 s
    assert r.sum_rings == 2 + 3 + 0 + 2  # ceil(7/5), ceil(12/5), 0, ceil(6/5)
    assert kpis.rings(6.0) == 1 and kpis.rings(6.001) == 2 and kpis.rings(0.0) == 0


def test_fcr_uses_repeat_verdict() -> None:
    r = rollup_contacts(CONTACTS, first_call_resolved=lambda rec: rec.call_id != "B")
    assert r.resolved_no_repeat == 1
    assert kpis.first_call_resolution(r) == pytest.approx(100 / 3)


def test_state_hr_qa_finance_kpis(r: Rollup) -> None:
    other = Rollup(logged_in_s=7200, productive_s=6000, busy_s=4000, available_idle_s=1000,
                   scheduled_on_phone_s=6400, qa_score_sum=170, qa_count=2, cost=20.0, cost_entries=1, leavers=3,
                   headcount_fte_s=20 * 86400 * 30, period_s=86400 * 30, present=9, scheduled=10)
    x = r + other
    assert kpis.adherence(x) == 93.75  # 6000 / 6400
    assert kpis.calls_per_hour(x) == 2.0  # 4 legs / 2 h
    assert kpis.monitoring_score(x) == 85.0
    assert kpis.occupancy(x) == 80.0  # 4000 / (4000 + 1000)
    assert kpis.attendance_rate(x) == 90.0
    assert kpis.cost_per_call(x) == 5.0  # 20 / (3 answered + 1 IVR)
    assert kpis.agent_attrition(x) == 15.0  # 3 / 20 average FTE
    assert kpis.agent_attrition_annualised(x) == pytest.approx(15.0 * 365 / 30)


def test_zero_denominators_are_none() -> None:
    values = kpis.compute_all(Rollup(), variants=True)
    assert values.pop("total_calls") == 0
    assert all(v is None for v in values.values()), values
    # offered == short abandons: SL and abandon rate have no denominator
    only_short = Rollup(offered=2, abandoned=2, short_abandons=2, received=2)
    assert kpis.service_level(only_short) is None and kpis.abandon_rate(only_short) is None
    assert kpis.answered_rate(only_short) == 0.0  # a true 0


def test_rollup_is_a_monoid() -> None:
    a = rollup_contacts(CONTACTS[:4])
    b = rollup_contacts(CONTACTS[4:])
    assert a + Rollup() == a and Rollup() + a == a
    assert a + b == b + a == rollup_contacts(CONTACTS)
    assert Rollup.sum([a, b, a]) == (a + b) + a == a + (b + a)
    day = Rollup(period_s=1800, headcount_fte_s=1800 * 10)
    day = replace(day, leavers=1)  # attrition = 100 x leavers / average headcount (FTE-seconds / period)
    assert (day + day).period_s == 3600 and kpis.agent_attrition(day + day) == 100 * 2 / 10
    assert day.merge_scopes(day).period_s == 1800 and kpis.agent_attrition(day.merge_scopes(day)) == 100 * 2 / 20
    assert kpis.agent_attrition(Rollup.sum_scopes([day, day, day])) == 100 * 3 / 30


def test_from_query_row_ignores_other_columns_and_nulls() -> None:
    row = {"bucket": "x", "answered": 3, "answered_legs": 4, "sum_queue_s_answered": 40.0, "cost": None, "unknown": 1}
    assert Rollup.from_mapping(row) == Rollup(answered=3, answered_legs=4, sum_queue_s_answered=40.0)


def test_23_kpis_registered() -> None:
    assert len(kpis.KPIS) == 23
    assert {f.name for f in fields(Rollup)} >= {"offered", "answered_within_t", "resolved_no_repeat"}


def test_end_to_end_from_events() -> None:
    """Sessionizer output straight into the rollup: one answered, one short abandon, one transfer."""
    s = Sessionizer(SessionizerSettings(allowed_lateness_s=0.0))
    events = (
        Call("e1").offered(0).queued(0).ringing(12, "a1").answered(18, "a1").ended(78).wrap(108, "a1").events
        + Call("e2").offered(0).queued(0).abandoned(5).events
        + Call("e3").offered(0).queued(0).answered(25, "a2").transferred(85, "a2", to_agent="a3")
        .answered(90, "a3").ended(150).wrap(160, "a3").wrap(95, "a2").events
    )
    r = rollup_contacts(s.process_batch(events))
    assert (r.offered, r.answered, r.answered_within_t, r.short_abandons, r.answered_legs) == (3, 2, 1, 1, 3)
    assert kpis.service_level(r) == 50.0  # 1 / (3 - 1)
    assert kpis.abandon_rate(r) == 0.0  # (1 - 1) / (3 - 1)
    assert kpis.average_speed_of_answer(r) == 21.5  # (18 + 25) / 2
    assert kpis.average_talk_time(r) == 60.0  # (60 + 60 + 60) / 3
    assert kpis.average_acw(r) == pytest.approx(50 / 3)  # (30 + 10 + 10) / 3
    assert kpis.average_rings_to_answer(r) == pytest.approx(1 / 3)  # ceil(6/6) + 0 + 0
    assert kpis.transfer_rate(r) == pytest.approx(100 / 3)


def test_cost_per_call_unknown_without_cost_entries(r: Rollup) -> None:
    assert kpis.cost_per_call(r) is None  # calls but no finance data: unknown, not 0
    assert kpis.cost_per_call(r + Rollup(cost=0.0, cost_entries=1)) == 0.0


def test_group_rollups_by_interval_and_queue() -> None:
    from callstream_kpi.domain.watermark import interval_start

    late = ContactRecord(call_id="L", segment=0, outcome="abandoned", offered_at=at(1800), queue_id="q2",
                         queued=True, queue_s=30.0)
    rows = kpis.group_rollups([*CONTACTS, late], key=lambda x: (interval_start(x.offered_at), x.queue_id))
    assert set(rows) == {(at(0), "q1"), (at(1800), "q2")}
    assert rows[at(0), "q1"] == rollup_contacts(CONTACTS)
    assert rows[at(1800), "q2"].abandoned == 1
    assert Rollup.sum_scopes(rows.values()).received == 9


def test_rollup_to_alert_with_confirmed_cause() -> None:
    from callstream_kpi.domain.targets import CENTER, AlertEvaluator

    slow = [c("S1", "answered", queued=True, queue_s=50, talk_s=100, acw_s=90),
            c("S2", "answered", queued=True, queue_s=40, talk_s=100, acw_s=70)]
    values = kpis.alert_values(rollup_contacts(slow), forecast_offered=2.0)
    assert values["asa"] == 45.0 and values["average_acw"] == 80.0 and values["offered"] == 2
    alerts = {a.kpi: a for a in AlertEvaluator().evaluate(CENTER, values, interval_start=at(0),
                                                            interval_end=at(1800))}
    assert {"asa", "average_acw", "service_level"} <= set(alerts)
    causes = {x.code: x.confirmed for x in alerts["asa"].likely_causes}
    assert causes["acw_over_target"] and not causes["forecast_error"] and not causes["hold_over_expected"]
