"""Provisional real-time figures (issue 19): a call counts as soon as the event deciding it arrives, ahead of the
watermark; a late event revises it; the watermark's decision is final and the call is counted once.

Expected figures come from kpis.md's definitions, written out here (T = 20 s, short abandon <= 20 s):
service level = answered within T / (offered - short abandons), ASA = sum of answered waits / answered,
abandon rate = (abandoned - short abandons) / (offered - short abandons)."""

from __future__ import annotations

import pytest
from kpi_builders import Call, at

from callstream.call.v1 import call_events_pb2
from callstream.kpi.v1 import kpi_events_pb2
from callstream_kpi.domain.realtime import RealtimeSettings, RealtimeView, WindowFigures
from callstream_kpi.domain.watermark import FixedClock

T_S = 20.0  # the default SL threshold and short-abandon threshold
SETTINGS = RealtimeSettings(allowed_lateness_s=10.0)  # the default allowed lateness


def expected(answered_waits: list[float], abandoned_after: list[float]) -> tuple[int, float, float | None, float]:
    """(offered, service level %, ASA s, abandon rate %) by kpis.md, from each call's wait."""
    offered = len(answered_waits) + len(abandoned_after)
    short = sum(w <= T_S for w in abandoned_after)
    within = sum(w <= T_S for w in answered_waits)
    asa = sum(answered_waits) / len(answered_waits) if answered_waits else None
    return (offered, 100 * within / (offered - short), asa, 100 * (len(abandoned_after) - short) / (offered - short))


def figures(w: WindowFigures) -> tuple[int, float | None, float | None, float | None]:
    return w.offered, w.service_level, w.asa_s, w.abandon_rate


def events(*calls: Call) -> list[call_events_pb2.CallEvent]:
    return [e for c in calls for e in c.events]


def first_batch() -> list[call_events_pb2.CallEvent]:
    """c1 queued at 20, answered at 30 (its queueing at 0 comes late); c2 queued at 0, the caller hung up at 25
    (the answer at 22 comes late); the newest event is at 32, so the watermark is at 22."""
    return events(Call("c1").offered(0).queued(20).answered(30, "a1"), Call("c2").offered(0).queued(0).ended(25),
                  Call("tick").offered(32))


def late_batch() -> list[call_events_pb2.CallEvent]:
    c1, c2 = Call("c1"), Call("c2")
    return events(c1.queued(0), c2.answered(22, "a2"))


def test_a_call_counts_at_once_provisionally_then_a_late_event_revises_it_and_the_watermark_makes_it_final() -> None:
    view = RealtimeView(SETTINGS)
    view.process_batch(first_batch())
    snap = view.snapshot()
    assert snap is not None and snap.as_of == at(22) and snap.provisional_as_of == at(32)
    w15 = snap.windows[0]
    # Neither call is decided at the watermark (22): both count provisionally, c1 answered after 10 s, c2
    # abandoned after 25 s.
    assert figures(w15) == pytest.approx(expected(answered_waits=[10], abandoned_after=[25]))
    assert w15.provisional == 2 and (w15.answered, w15.abandoned) == (1, 1)
    assert snap.calls_waiting == 0  # as of the newest event nobody waits

    view.process_batch(late_batch())
    w15 = view.window_figures()[0]
    # c1 waited from 0 (30 s, beyond T); c2 was answered at 22 (final: the watermark has passed it) after 22 s.
    assert figures(w15) == pytest.approx(expected(answered_waits=[30, 22], abandoned_after=[]))
    assert w15.provisional == 1 and (w15.answered, w15.abandoned) == (2, 0)

    view.process_batch(events(Call("tick2").offered(50)))  # the watermark (40) passes every event
    w15 = view.window_figures()[0]
    assert figures(w15) == pytest.approx(expected(answered_waits=[30, 22], abandoned_after=[]))
    assert w15.provisional == 0
    proto = view.snapshot()
    assert proto is not None and proto.to_proto().windows[0].provisional == 0


def test_a_waiting_call_shows_as_of_the_newest_event() -> None:
    view = RealtimeView(SETTINGS)
    view.process_batch(events(Call("c1").offered(0).queued(5), Call("tick").offered(12)))
    snap = view.snapshot()
    # The watermark (2) has not reached the queueing; as of the newest event (12) the caller has waited 7 s.
    assert snap is not None and (snap.calls_waiting, snap.longest_wait_s) == (1, 7.0)
    msg = snap.to_proto()
    assert msg.provisional_as_of.ToDatetime().timestamp() == at(12).replace(tzinfo=None).timestamp()


def test_a_partition_state_carries_the_provisional_calls_and_a_new_owner_does_not_count_them_twice() -> None:
    view = RealtimeView(SETTINGS)
    view.process_batch(first_batch())
    state = kpi_events_pb2.PartitionState(topic="cc.call-events.v1", partition=0)
    view.export_state(state)
    merged = RealtimeView(SETTINGS, watermark=FixedClock(at(22)))
    merged.load_state(state)
    merged.advance()
    assert merged.window_figures() == view.window_figures()

    owner = RealtimeView(SETTINGS)
    owner.load_state(state)
    owner.process_batch(first_batch() + late_batch())  # read again after the last committed offset, then late
    owner.process_batch(events(Call("tick2").offered(50)))
    w15 = owner.window_figures()[0]
    assert figures(w15) == pytest.approx(expected(answered_waits=[30, 22], abandoned_after=[]))
    assert w15.provisional == 0


def test_provisional_figures_reach_at_most_a_minute_past_the_watermark() -> None:
    """A replay's slow partition can hold the watermark far behind: calls decided further ahead wait for it."""
    view = RealtimeView(SETTINGS, watermark=FixedClock(at(0)))
    for ev in events(Call("near").offered(10).queued(10).answered(30, "a1"),
                     Call("far").offered(70).queued(70).answered(80, "a2")):
        view.on_call_event(ev)
    snap = view.snapshot()
    assert snap is not None and snap.provisional_as_of == at(SETTINGS.provisional_ahead_s)
    w15 = snap.windows[0]
    assert figures(w15) == pytest.approx(expected(answered_waits=[20], abandoned_after=[]))
    assert w15.provisional == 1
