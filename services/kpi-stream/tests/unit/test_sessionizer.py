"""Sessionizer: contact segments from call events, values computed by hand from the event times."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import UTC

from kpi_builders import Call, at

from callstream.call.v1 import call_events_pb2
from callstream.kpi.v1 import kpi_events_pb2
from callstream_kpi.domain.contact import ContactRecord
from callstream_kpi.domain.fold import fold_call
from callstream_kpi.domain.sessionizer import Sessionizer, SessionizerSettings
from callstream_kpi.domain.targets import QueueSettings, QueueTargets
from callstream_kpi.domain.watermark import PartitionWatermark

NO_LATENESS = SessionizerSettings(allowed_lateness_s=0.0)


def run(events, settings: SessionizerSettings = NO_LATENESS) -> tuple[Sessionizer, list[ContactRecord]]:
    s = Sessionizer(settings)
    return s, s.process_batch(events)


def latest(records: list[ContactRecord]) -> dict[int, ContactRecord]:
    out: dict[int, ContactRecord] = {}
    for r in records:
        if r.segment not in out or r.version > out[r.segment].version:
            out[r.segment] = r
    return out


def newest_rows(records: list[ContactRecord]) -> dict[tuple[str, int], ContactRecord]:
    """The rows in force: the newest version of every (call, segment), version left out."""
    newest: dict[tuple[str, int], ContactRecord] = {}
    for r in records:
        if (r.call_id, r.segment) not in newest or r.version > newest[r.call_id, r.segment].version:
            newest[r.call_id, r.segment] = r
    return {k: replace(r, version=0) for k, r in newest.items()}


def in_random_batches(s: Sessionizer, arrivals: list, rng: random.Random, max_batch: int) -> list[ContactRecord]:
    """`arrivals` through `s` in batches of random sizes (1 to `max_batch`), as a consumer would take them."""
    out: list[ContactRecord] = []
    i = 0
    while i < len(arrivals):
        n = rng.randint(1, max_batch)
        out += s.process_batch(arrivals[i:i + n])
        i += n
    return out


def answered_call() -> Call:
    # queued at 1, rings a1 at 10, answered 16, hold 30-50 and 60-65, ended 100, wrap-up 130
    return (Call("c1").offered(0).queued(1).ringing(10, "a1").answered(16, "a1")
            .hold(30, 50, "a1").hold(60, 65, "a1").ended(100, "a1").wrap(130, "a1", resolved=True, topic="bill"))


def test_answered_call_with_holds() -> None:
    s, out = run(answered_call().events)
    assert len(out) == 1
    c = out[0]
    assert (c.segment, c.outcome, c.agent_id, c.queue_id, c.version) == (0, "answered", "a1", "q1", 1)
    assert c.queue_s == 15.0  # 16 - 1
    assert c.ring_s == 6.0  # 16 - 10
    assert c.hold_s == 25.0 and c.hold_count == 2  # 20 + 5
    assert c.talk_s == 59.0  # (100 - 16) - 25
    assert c.acw_s == 30.0  # 130 - 100
    assert c.queued and not c.short_abandon and c.resolved and c.topic == "bill"
    assert c.offered_at == at(0) and c.answered_at == at(16) and c.ended_at == at(100)
    assert s.open_calls == 0


def test_answered_call_closes_when_it_ends_and_a_later_wrap_up_revises_it() -> None:
    """No answered call waits for the switch to say when wrap-up ends: it is emitted at its end (ACW 0 when
    nothing was announced) and revised, version 2, when the wrap-up end arrives."""
    s = Sessionizer(NO_LATENESS)
    events = answered_call().events
    out = [r for ev in events[:-1] for r in s.process(ev)]
    assert [(r.version, r.outcome, r.acw_s, r.talk_s, r.timed_out) for r in out] == [(1, "answered", 0.0, 59.0, False)]
    assert s.open_calls == 0
    revised = s.process(events[-1])
    assert [(r.version, r.acw_s, r.resolved, r.topic) for r in revised] == [(2, 30.0, True, "bill")]


def test_announced_wrap_up_is_the_acw_until_the_real_end_of_wrap_up() -> None:
    """A switch that announces its wrap-up at the end of the call (Asterisk's queue wrapuptime): that is the
    ACW at once; a wrap_up_ended of the leg (here 12 s after the end, not 8) replaces it."""
    call = Call("c9").offered(0).queued(1).answered(5, "a1").ended(65, "a1", wrap_up_ms=8_000)
    s, out = run(call.events)
    assert [(r.version, r.talk_s, r.acw_s) for r in out] == [(1, 60.0, 8.0)]
    assert [(r.version, r.acw_s) for r in s.process_batch(Call("c9").wrap(77, "a1").events)] == [(2, 12.0)]


def test_transfer_out_of_the_acd_closes_the_call_with_the_transferring_leg() -> None:
    call = (Call("c10").offered(0).queued(0).answered(4, "a1")
            .transferred(34, "a1", "blind", to_external="2001@outside"))
    s, out = run(call.events)
    assert [(r.segment, r.outcome, r.transfer_kind, r.talk_s) for r in out] == [(0, "answered", "blind", 30.0)]
    assert s.open_calls == 0
    # the transferring agent's channel ends after the transfer and announces their wrap-up
    revised = s.process_batch(Call("c10").ended(34, "a1", wrap_up_ms=2_000).events)
    assert [(r.version, r.acw_s, r.talk_s) for r in revised] == [(2, 2.0, 30.0)]


def test_not_queued_call_has_zero_queue_time_and_topic_defaults_to_call_type() -> None:
    call = Call("c2", call_type="NE").offered(0).ringing(0, "a1").answered(4, "a1").ended(50).wrap(55, "a1")
    _, out = run(call.events)
    c = out[0]
    assert c.queue_s == 0.0 and not c.queued and c.ring_s == 4.0 and c.talk_s == 46.0 and c.acw_s == 5.0
    assert c.topic == "NE"


def test_warm_transfer_to_agent_yields_two_segments() -> None:
    call = (Call("c3").offered(0).queued(0).ringing(5, "a1").answered(8, "a1")
            .transferred(60, "a1", "warm", to_agent="a2").ringing(60, "a2").answered(65, "a2")
            .wrap(90, "a1").ended(200, "a2").wrap(220, "a2", resolved=True))
    _, out = run(call.events)
    seg = latest(out)
    a, b = seg[0], seg[1]
    assert (a.agent_id, a.transfer_kind, a.outcome) == ("a1", "warm", "answered")
    assert a.queue_s == 8.0 and a.ring_s == 3.0 and a.talk_s == 52.0 and a.acw_s == 30.0  # 60-8, 90-60
    assert a.ended_at == at(60)
    assert (b.agent_id, b.transfer_kind, b.outcome, b.segment) == ("a2", "", "answered", 1)
    assert b.offered_at == at(60) and b.queue_s == 0.0 and not b.queued
    assert b.ring_s == 5.0 and b.talk_s == 135.0 and b.acw_s == 20.0 and b.resolved
    assert all(r.version == 1 for r in out) and len(out) == 2


def test_blind_transfer_to_queue_then_abandon_in_second_queue() -> None:
    call = (Call("c4").offered(0).queued(0).answered(10, "a1").transferred(40, "a1", "blind", to_queue="q2")
            .queued(40, "q2").wrap(45, "a1").abandoned(70))
    _, out = run(call.events)
    seg = latest(out)
    assert seg[0].transfer_kind == "blind" and seg[0].talk_s == 30.0 and seg[0].acw_s == 5.0
    assert (seg[1].queue_id, seg[1].outcome, seg[1].queue_s) == ("q2", "abandoned", 30.0)
    assert not seg[1].short_abandon  # waited 30 s > 20 s


def test_missing_wrap_of_transferring_agent_is_revised_later() -> None:
    call = (Call("c5").offered(0).answered(2, "a1").transferred(20, "a1", "blind", to_agent="a2")
            .answered(25, "a2").ended(100, "a2").wrap(110, "a2"))
    s, out = run(call.events)
    assert {r.segment: r.acw_s for r in out} == {0: 0.0, 1: 10.0}
    late = Call("c5").wrap(50, "a1", resolved=True).events  # a1 leaves wrap-up at 50: ACW 30
    revised = s.process_batch(late)
    assert len(revised) == 1
    r = revised[0]
    assert (r.segment, r.version, r.acw_s, r.resolved) == (0, 2, 30.0, True)


def test_duplicates_are_dropped() -> None:
    events = answered_call().events
    s, out = run([e for ev in events for e in (ev, ev)])
    assert len(out) == 1 and out[0].version == 1
    assert s.stats.duplicates == len(events)


def test_reordering_gives_same_contacts() -> None:
    call = (Call("c6").offered(0).queued(1).ringing(10, "a1").ring_no_answer(16, "a1").ringing(16, "a2")
            .answered(19, "a2").hold(30, 40, "a2").transferred(50, "a2", "warm", to_agent="a3")
            .answered(52, "a3").wrap(70, "a2").ended(90, "a3").wrap(95, "a3"))
    _, expected = run(call.events)
    rng = random.Random(7)
    for _ in range(20):
        shuffled = list(call.events)
        rng.shuffle(shuffled)
        # lateness covers the whole call: nothing emitted until every event is in
        _, out = run(shuffled, SessionizerSettings(allowed_lateness_s=120.0))
        s2 = Sessionizer(SessionizerSettings(allowed_lateness_s=120.0))
        s2.process_batch(shuffled)
        assert out == []
        # then the watermark moves on (an unrelated later event) and the call is emitted once, as in order
        flushed = s2.process_batch(Call("other").offered(400).events)
        assert [r.same_content(e) for r, e in zip(flushed, expected, strict=True)] == [True] * len(expected)
        assert all(r.version == 1 for r in flushed)
    seg = latest(expected)
    assert seg[0].ring_s == 3.0  # ring of the answering agent a2 only: 19 - 16
    assert seg[0].queue_s == 18.0 and seg[0].hold_s == 10.0 and seg[0].talk_s == 21.0 and seg[0].acw_s == 20.0


def test_reordering_beyond_lateness_is_revised() -> None:
    events = answered_call().events
    hold_started = events[4]
    rest = [e for e in events if e is not hold_started and e is not events[5]]
    s, out = run(rest)
    assert out[0].hold_s == 5.0 and out[0].hold_count == 1
    revised = s.process_batch([events[5], hold_started])  # the first hold arrives late
    assert latest(revised)[0].hold_s == 25.0 and latest(revised)[0].version >= 2


def test_short_abandon_threshold_per_queue() -> None:
    short = Call("c7").offered(0).queued(0).abandoned(20)  # 20 s: <= 20 is short
    longer = Call("c8").offered(0).queued(0).abandoned(21)
    strict = Call("c9", queue="vip").offered(0).queued(0).abandoned(8)
    settings = SessionizerSettings(allowed_lateness_s=0.0,
                                   targets=QueueTargets(queues={"vip": QueueSettings("vip", short_abandon_s=5.0)}))
    _, out = run(short.events + longer.events + strict.events, settings)
    by = {r.call_id: r for r in out}
    assert by["c7"].short_abandon and by["c7"].queue_s == 20.0
    assert not by["c8"].short_abandon
    assert not by["c9"].short_abandon  # 8 s > 5 s for queue vip
    assert all(r.outcome == "abandoned" for r in out)


def test_blocked_ivr_callback_overflow_outcomes() -> None:
    blocked = Call("b").blocked(0)
    ivr_ok = Call("i1").ivr(0, 45, "self_service")
    ivr_hang = Call("i2").ivr(0, 10, "caller_hung_up")
    via_ivr = Call("i3").ivr(0, 30, "to_agent").offered(30).queued(30).answered(40, "a1").ended(60).wrap(61, "a1")
    cb = Call("cb").offered(0).queued(0).callback(50)
    ov = Call("ov").offered(0).queued(0).overflowed(120, "queue", to_queue="q9").queued(120, "q9").answered(130, "a4")
    ov.ended(150).wrap(160, "a4")
    _, out = run(blocked.events + ivr_ok.events + ivr_hang.events + via_ivr.events + cb.events + ov.events)
    by = {(r.call_id, r.segment): r for r in out}
    assert by["b", 0].outcome == "blocked"
    assert by["i1", 0].outcome == "ivr_handled" and by["i1", 0].ivr_s == 45.0
    assert by["i2", 0].outcome == "ivr_abandoned"
    assert by["i3", 0].outcome == "answered" and by["i3", 0].ivr_s == 30.0 and by["i3", 0].queue_s == 10.0
    assert by["i3", 0].offered_at == at(30)
    assert by["cb", 0].outcome == "callback" and by["cb", 0].queue_s == 50.0
    assert by["ov", 0].outcome == "overflowed" and by["ov", 0].queue_s == 120.0
    assert (by["ov", 1].queue_id, by["ov", 1].outcome, by["ov", 1].queue_s) == ("q9", "answered", 10.0)


def test_timeout_closes_and_flags_then_late_end_revises() -> None:
    settings = SessionizerSettings(allowed_lateness_s=0.0, session_timeout_s=600.0)
    s = Sessionizer(settings)
    stuck = Call("t1").offered(0).queued(0).answered(10, "a1")  # never ends
    waiting = Call("t2").offered(0).queued(5)  # never answered nor abandoned
    assert s.process_batch(stuck.events + waiting.events) == []
    assert s.process_batch(Call("x").offered(600).events) == []  # watermark 600 = last + timeout: not past
    out = s.process_batch(Call("y").offered(611).events)
    by = {r.call_id: r for r in out}
    assert by["t1"].timed_out and by["t1"].outcome == "answered" and by["t1"].ended_at == at(10)
    assert by["t2"].timed_out and by["t2"].outcome == "timed_out"
    assert s.stats.timed_out == 2
    # the end arrives late (within the grace period): revised, no longer timed out
    revised = s.process_batch(Call("t1").ended(300, "a1").wrap(320, "a1").events)
    assert len(revised) == 1
    r = revised[0]
    assert (r.version, r.timed_out, r.talk_s, r.acw_s) == (2, False, 290.0, 20.0)


def test_eviction_keeps_ids_to_drop_late_duplicates() -> None:
    settings = SessionizerSettings(allowed_lateness_s=0.0, grace_s=60.0, dedup_retention_s=600.0)
    s = Sessionizer(settings)
    events = answered_call().events
    assert len(s.process_batch(events)) == 1
    s.process_batch(Call("z1").offered(191).events)  # watermark 191 > last 130 + 60: evicted
    assert s.held_calls == 1 and s.tombstones == 1  # z1 is open; c1 is a tombstone
    assert s.process_batch([events[3]]) == []
    assert s.stats.duplicates == 1
    assert s.process_batch(Call("c1").hold(70, 71, "a1").events) == []  # new but too late
    assert s.stats.late_dropped == 2
    s.process_batch(Call("z2").offered(791).events)  # past 130 + 60 + 600: forgotten
    assert s.tombstones == 0


def test_late_event_revises_a_call_closed_by_time_out_after_its_grace() -> None:
    """Past its grace a timed-out call is parked whole, not reduced to ids: its late events revise it, and
    the flag stays honest (set while unfinished, cleared once complete)."""
    settings = SessionizerSettings(allowed_lateness_s=0.0, session_timeout_s=600.0, grace_s=60.0,
                                   dedup_retention_s=3600.0)
    s = Sessionizer(settings)
    waiting = Call("w").offered(0).queued(5)
    s.process_batch(waiting.events)
    out = s.process_batch(Call("tick1").offered(606).events)  # past 5 + 600: timed out
    assert [(r.call_id, r.outcome, r.timed_out, r.version) for r in out] == [("w", "timed_out", True, 1)]
    s.process_batch(Call("tick2").offered(700).events)  # past 5 + 60 of grace: evicted
    assert s.parked_calls == 1 and s.tombstones == 0  # w parked whole, not a tombstone of ids
    assert s.process_batch([waiting.events[1]]) == []  # a late duplicate is still a duplicate
    assert s.stats.duplicates == 1 and s.parked_calls == 1
    # answered late but still no end: revised, still flagged timed out
    answered = s.process_batch(Call("w").answered(30, "a1").events)
    assert [(r.outcome, r.timed_out, r.version, r.queue_s) for r in answered] == [("answered", True, 2, 25.0)]
    assert s.stats.revived == 1 and s.stats.late_dropped == 0
    # the end and the wrap-up arrive: complete, no longer timed out
    done = s.process_batch(Call("w").ended(100, "a1").wrap(110, "a1").events)
    assert [(r.outcome, r.timed_out, r.version, r.talk_s, r.acw_s) for r in done] == [
        ("answered", False, 3, 70.0, 10.0)]
    assert s.stats.late_dropped == 0


def test_parked_call_is_kept_for_the_retention_after_it_was_parked() -> None:
    """Counted from when it was parked, not from its last event: a stream out of order by more than the
    retention (a file replayed in its own order) still brings the rest of the call to it."""
    settings = SessionizerSettings(allowed_lateness_s=0.0, session_timeout_s=100.0, grace_s=10.0,
                                   dedup_retention_s=1000.0)
    s = Sessionizer(settings)
    s.process_batch(Call("w").offered(0).events)
    s.process_batch(Call("t1").blocked(5000).events)  # (blocked calls are complete at once)
    assert s.stats.timed_out == 1 and s.parked_calls == 1  # timed out and parked at watermark 5000
    s.process_batch(Call("t2").blocked(5999).events)  # not yet 5000 + 1000
    assert s.parked_calls == 1
    revised = s.process_batch(Call("w").queued(1).abandoned(30).events)
    assert [(r.outcome, r.timed_out, r.version) for r in revised] == [("abandoned", False, 2)]
    s.process_batch(Call("t3").blocked(6100).events)  # w closed (complete) and evicted as a tombstone
    assert s.parked_calls == 0 and s.tombstones >= 1 and s.stats.late_dropped == 0
    assert s.process_batch(Call("w").ended(31).events) == []  # a late new event of a complete call: dropped
    assert s.stats.late_dropped == 1  # (counted; the raw event is in call_events), not a new call


def test_parked_call_is_forgotten_after_the_retention() -> None:
    settings = SessionizerSettings(allowed_lateness_s=0.0, session_timeout_s=100.0, grace_s=10.0,
                                   dedup_retention_s=1000.0)
    s = Sessionizer(settings)
    s.process_batch(Call("w").offered(0).events)
    s.process_batch(Call("t1").blocked(101).events)  # timed out, and past 0 + 10 of grace: parked at 101
    assert s.stats.timed_out == 1 and s.parked_calls == 1
    s.process_batch(Call("t2").blocked(1100).events)  # not yet 101 + 1000
    assert s.parked_calls == 1
    s.process_batch(Call("t3").blocked(1101).events)
    assert s.parked_calls == 0


def test_a_call_no_longer_held_is_restored_from_its_stored_events_before_its_late_event() -> None:
    """What the pipeline does with the raw call_events table: a late event of a call reduced to a tombstone,
    or of a call forgotten altogether, asks for the call's history; restored, the call is revised whole."""
    settings = SessionizerSettings(allowed_lateness_s=0.0, session_timeout_s=600.0, grace_s=60.0,
                                   dedup_retention_s=100.0)
    s = Sessionizer(settings)
    stored = Call("c").offered(0).queued(1).abandoned(40).events  # complete: abandoned
    assert [r.outcome for r in s.process_batch(stored)] == ["abandoned"]
    s.process_batch(Call("t1").blocked(200).events)  # c evicted to a tombstone (40 + 60 < 200)
    late = Call("c")._ev(35, "hold_started", call_events_pb2.HoldStarted()).events[0]  # a new id: not a repeat
    assert not s.needs_history(stored[1]) and s.needs_history(late)
    s.restore(stored)
    assert s.tombstones == 0 and s.held_calls == 2  # c held again (its tombstone gone), and t1
    out = s.process_batch([late])
    assert [(r.call_id, r.outcome, r.queue_s) for r in out] == [("c", "abandoned", 39.0)]
    assert s.stats.late_dropped == 0 and s.stats.restored == 3 and s.stats.events == 5

    forgotten = Sessionizer(settings)
    forgotten.process_batch(Call("w").offered(5000).events)  # the watermark is far past c
    rest = Call("c").ended(50).events[0]
    assert forgotten.needs_history(rest)  # unknown and older than watermark - time-out: maybe forgotten
    assert not forgotten.needs_history(Call("new").offered(4900).events[0])  # recent enough: a new call
    forgotten.restore(stored)
    assert [(r.call_id, r.outcome) for r in forgotten.process_batch([rest])] == [("c", "abandoned")]


def test_a_partition_read_ahead_does_not_time_out_calls_of_a_slower_one() -> None:
    """The January replay bug in miniature: p0 is read a day ahead while p1's call is half delivered. With
    the watermark the minimum over partitions the call is not timed out, and it settles once, complete."""
    wm = PartitionWatermark(allowed_lateness_s=0, idle_timeout_s=5)
    s = Sessionizer(SessionizerSettings(allowed_lateness_s=0.0, session_timeout_s=600.0), watermark=wm)
    slow = answered_call()  # c1, 0..130 s, in p1
    ahead = Call("ahead").offered(86400).queued(86400).abandoned(86460)  # in p0

    def take(partition: str, events: list[call_events_pb2.CallEvent], now_s: float) -> list[ContactRecord]:
        for ev in events:
            wm.observe(partition, ev.envelope.occurred_at.ToDatetime(tzinfo=UTC), now_s)
        wm.advance(now_s)
        return s.process_batch(events)

    assert take("p1", slow.events[:3], 0.0) == []
    assert take("p0", ahead.events, 0.1) == []  # p1 (newest 10 s) holds the watermark
    assert s.stats.timed_out == 0
    out = take("p1", slow.events[3:], 0.2)
    assert [(r.call_id, r.outcome, r.timed_out, r.version) for r in out] == [("c1", "answered", False, 1)]
    assert s.stats.timed_out == 0
    wm.advance(10.0)  # both partitions idle: the newest event time
    assert [(r.call_id, r.outcome) for r in s.sweep()] == [("ahead", "abandoned")]


def test_contact_proto_round_trip() -> None:
    _, out = run(answered_call().events)
    msg = out[0].to_proto()
    assert isinstance(msg, kpi_events_pb2.Contact)
    assert msg.outcome == kpi_events_pb2.CONTACT_OUTCOME_ANSWERED and msg.queue_s == 15.0 and msg.version == 1
    assert ContactRecord.from_proto(msg) == out[0]
    assert msg.envelope.event_id and msg.envelope.occurred_at.ToSeconds() == int(at(100).timestamp())


def test_hold_never_ended_lasts_to_the_end_of_the_conversation() -> None:
    call = Call("h").offered(0).answered(0, "a1")
    call._ev(10, "hold_started", call_events_pb2.HoldStarted(agent_id="a1"))
    assert fold_call(call.events).legs[0].hold_open == at(10)
    call.ended(40).wrap(50, "a1")
    _, out = run(call.events)
    assert (out[0].hold_s, out[0].hold_count, out[0].talk_s, out[0].acw_s) == (30.0, 1, 10.0, 10.0)


def test_warm_transfer_with_consult_answered_before_transfer_and_early_channel_end() -> None:
    # a2 answers a1's consult call at 40; a1 completes the transfer at 60; a1's channel ends at 61
    call = (Call("w").offered(0).answered(5, "a1").answered(40, "a2").transferred(60, "a1", "warm", to_agent="a2")
            .ended(61, "a1").wrap(80, "a1").ended(160, "a2").wrap(170, "a2"))
    _, out = run(call.events)
    seg = latest(out)
    assert (seg[0].talk_s, seg[0].acw_s, seg[0].transfer_kind) == (55.0, 20.0, "warm")
    assert (seg[1].agent_id, seg[1].outcome, seg[1].answered_at, seg[1].talk_s, seg[1].acw_s) == (
        "a2", "answered", at(60), 100.0, 10.0)


def test_replay_speed_batching_jitter_and_duplicates_do_not_change_contacts() -> None:
    from kpi_builders import random_traffic

    from callstream_kpi.domain.kpis import rollup_contacts

    events = random_traffic(seed=11)
    tail = Call("tail").offered(10 * 86400).events  # moves the watermark past every call

    live = Sessionizer(NO_LATENESS)
    out_live = [r for ev in events + tail for r in live.process(ev)] + live.sweep()

    rng = random.Random(5)
    lateness = 30.0
    # arrival order: event time + up to lateness/2 of delay, with 10 % duplicates
    arrivals = sorted(events, key=lambda e: e.envelope.occurred_at.ToSeconds() + rng.uniform(0, lateness / 2))
    arrivals += rng.sample(events, len(events) // 10)
    replay = Sessionizer(SessionizerSettings(allowed_lateness_s=lateness))
    out_replay = in_random_batches(replay, arrivals, rng, 500) + replay.process_batch(tail)

    # Event by event without lateness, a call is emitted at its end and revised by its wrap-up end; the
    # replay may settle it once. What counts is the last version of every segment, which must be the same.
    def final(records: list[ContactRecord]) -> list[ContactRecord]:
        newest = newest_rows(records)
        return [newest[k] for k in sorted(newest)]

    assert final(out_live) == final(out_replay)
    # float sums depend on the order of addition: same order, same bits
    assert rollup_contacts(final(out_live)) == rollup_contacts(final(out_replay))
    assert len({r.call_id for r in out_live}) == len({e.call_id for e in events})
    assert not any(r.timed_out for r in out_live)


def test_provisional_contacts_are_emitted_when_the_call_ends_and_revised_by_late_events() -> None:
    events = answered_call().events  # ..., hold 30-50 and 60-65, ended 100, wrap-up 130
    late_hold = {id(events[4]), id(events[5])}  # the first hold, reordered within the lateness
    on_time = [e for e in events if id(e) not in late_hold]
    settings = SessionizerSettings(allowed_lateness_s=600.0, provisional=True)
    s = Sessionizer(settings)
    first = s.process_batch(on_time)
    # The watermark (newest event - 600 s) is far behind the call, yet it is emitted: `ended` completed it.
    assert s.watermark.current is not None and s.watermark.current < at(0)
    assert [(r.version, r.hold_s, r.hold_count, r.acw_s) for r in first] == [(1, 5.0, 1, 30.0)]
    revised = s.process_batch([events[5], events[4]])
    assert [(r.version, r.hold_s, r.hold_count) for r in revised] == [(2, 25.0, 2)]
    # Without provisional emission nothing comes before the watermark passes; the final rows are the same.
    waiting = Sessionizer(replace(settings, provisional=False))
    assert waiting.process_batch(on_time) + waiting.process_batch([events[5], events[4]]) == []
    final = waiting.process_batch(Call("later").offered(2000).events)
    assert [r.same_content(revised[0]) for r in final] == [True]


def test_provisional_contacts_end_with_the_rows_of_an_in_order_pass() -> None:
    from kpi_builders import random_traffic

    events = random_traffic(seed=13)
    tail = Call("tail").offered(10 * 86400).events
    _, in_order = run(events + tail)
    rng = random.Random(3)
    arrivals = sorted(events, key=lambda e: e.envelope.occurred_at.ToSeconds() + rng.uniform(0, 20.0))
    s = Sessionizer(SessionizerSettings(allowed_lateness_s=30.0, provisional=True))
    out = in_random_batches(s, arrivals, rng, 300) + s.process_batch(tail)

    assert newest_rows(out) == newest_rows(in_order)
    assert s.stats.revisions > 0  # reordering within the lateness did revise provisional contacts


def test_team_of_fills_team_id() -> None:
    s = Sessionizer(NO_LATENESS, team_of={"a1": "t-red"}.get)  # type: ignore[arg-type]
    (c,) = s.process_batch(answered_call().events)
    assert c.team_id == "t-red"
