"""The pure fold of one call: its events -> its legs (`fold_call`) -> its contact records (`contacts_of`).

Pure and deterministic: the contacts of a call are recomputed from the call's whole event list, sorted by
(event time, kind order, event id), so duplicates, reordering and replays at any speed give the same rows
(kpis.md, "Vocabulary": one segment per agent leg). The `Sessionizer` decides when a call is folded.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, TypeAlias

from callstream.call.v1 import call_events_pb2

from .contact import ContactRecord

if TYPE_CHECKING:  # only a type: the sessionizer imports this module
    from .sessionizer import SessionizerSettings

CallEvent: TypeAlias = call_events_pb2.CallEvent

# Tie-break of events stamped with the same millisecond: the order they must happen in.
# `transferred`/`overflowed` come before queued/ringing/answered so a next leg that starts in the
# same millisecond as the transfer is attributed to the new leg.
KIND_ORDER: tuple[str, ...] = (
    "offered", "blocked", "ivr_entered", "ivr_left", "transferred", "overflowed", "queued",
    "callback_requested", "ringing", "ring_no_answer", "answered", "hold_started", "hold_ended",
    "abandoned", "ended", "wrap_up_ended",
)
KIND_RANK = {kind: rank for rank, kind in enumerate(KIND_ORDER)}
# The kinds that can end a leg, so complete a call: only these make a provisional fold worth its cost.
ENDING_KINDS = frozenset({"blocked", "ivr_left", "transferred", "overflowed", "callback_requested", "abandoned",
                          "ended", "wrap_up_ended"})

# Outcomes of calls that never reached the ACD (kpis.md: blocked and IVR-ended calls are not offered).
_TERMINAL_UNANSWERED = frozenset({"blocked", "ivr_handled", "ivr_abandoned", "abandoned", "overflowed", "callback"})


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def event_time(event: CallEvent) -> datetime:
    # Same value as Timestamp.ToDatetime(tzinfo=UTC), several times faster: this runs for every sort key.
    stamp = event.envelope.occurred_at
    return _EPOCH + timedelta(seconds=stamp.seconds, microseconds=stamp.nanos // 1000)


def event_kind(event: CallEvent) -> str:
    return event.WhichOneof("kind") or ""


def sort_key(event: CallEvent) -> tuple[datetime, int, str]:
    return event_time(event), KIND_RANK.get(event_kind(event), len(KIND_ORDER)), event.envelope.event_id


@dataclass
class _Leg:
    segment: int
    started_at: datetime
    queue_id: str = ""
    agent_id: str = ""
    acd_entry: datetime | None = None
    queued_at: datetime | None = None
    ring_at: datetime | None = None
    ring_agent: str = ""
    ring_s: float = 0.0
    answered_at: datetime | None = None
    conv_end: datetime | None = None
    hold_open: datetime | None = None
    hold_s: float = 0.0
    hold_count: int = 0
    wrap_at: datetime | None = None
    # The wrap-up the switch announced when the conversation ended: the ACW until a wrap_up_ended says more.
    announced_wrap_s: float = 0.0
    disposition: str = ""
    resolved: bool = False
    hard_call: bool = False
    topic: str = ""
    transfer_kind: str = ""
    outcome: str | None = None
    ended_at: datetime | None = None

    def close_conversation(self, at: datetime) -> None:
        if self.hold_open is not None:
            self.hold_s += max(0.0, (at - self.hold_open).total_seconds())
            self.hold_open = None
        self.conv_end = at

    @property
    def complete(self) -> bool:
        if self.outcome == "answered":
            return self.conv_end is not None
        return self.outcome in _TERMINAL_UNANSWERED


@dataclass
class CallFold:
    """The result of folding a call's sorted events."""

    legs: list[_Leg]
    first_at: datetime
    last_at: datetime
    offered_at: datetime | None = None
    queue_id: str = ""
    call_type: str = ""
    caller_hash: str = ""
    priority: int = 0
    ivr_s: float = 0.0
    ivr_open: datetime | None = None

    @property
    def complete(self) -> bool:
        """Complete when every leg reached its end (a leg's wrap-up does not hold the call back: its ACW is the
        announced one, and a later wrap_up_ended revises the contact)."""
        return all(leg.complete for leg in self.legs)


def _fill_context(fold: CallFold, ctx: call_events_pb2.CallContext) -> None:
    fold.queue_id = fold.queue_id or ctx.queue_id
    fold.call_type = fold.call_type or ctx.call_type
    fold.caller_hash = fold.caller_hash or ctx.caller_hash
    fold.priority = fold.priority or ctx.priority


@dataclass
class _Folding:
    """A fold in progress: the call so far and the consult calls of its current leg."""

    fold: CallFold
    # agent -> when they answered a consult call (warm transfer) during the current leg
    consults: dict[str, datetime] = field(default_factory=dict)

    def leg_of(self, agent_id: str) -> _Leg:
        if agent_id:
            for leg in reversed(self.fold.legs):
                if leg.agent_id == agent_id and leg.answered_at is not None:
                    return leg
        return self.fold.legs[-1]

    def new_leg(self, at: datetime, queue_id: str, agent_id: str = "") -> None:
        leg = _Leg(segment=len(self.fold.legs), started_at=at, queue_id=queue_id, agent_id=agent_id, acd_entry=at)
        if agent_id and agent_id in self.consults:
            # the target already took the consult call: their leg with the caller starts at the transfer
            leg.answered_at, leg.outcome = at, "answered"
        self.consults.clear()
        self.fold.legs.append(leg)


# One handler per event kind: (fold in progress, event, its time, the current leg, whether that leg is still
# open and unanswered as the event arrives).
_Handler: TypeAlias = Callable[[_Folding, CallEvent, datetime, _Leg, bool], None]


def _on_offered(f: _Folding, ev: CallEvent, t: datetime, cur: _Leg, open_unanswered: bool) -> None:
    _fill_context(f.fold, ev.offered.context)
    f.fold.offered_at = f.fold.offered_at or t
    cur.acd_entry = cur.acd_entry or t
    cur.queue_id = cur.queue_id or ev.offered.context.queue_id


def _on_blocked(f: _Folding, ev: CallEvent, t: datetime, cur: _Leg, open_unanswered: bool) -> None:
    _fill_context(f.fold, ev.blocked.context)
    if open_unanswered:
        cur.queue_id = cur.queue_id or ev.blocked.context.queue_id
        cur.outcome, cur.ended_at = "blocked", t


def _on_ivr_entered(f: _Folding, ev: CallEvent, t: datetime, cur: _Leg, open_unanswered: bool) -> None:
    _fill_context(f.fold, ev.ivr_entered.context)
    f.fold.ivr_open = f.fold.ivr_open or t


def _close_ivr(fold: CallFold, t: datetime) -> None:
    if fold.ivr_open is not None:
        fold.ivr_s += max(0.0, (t - fold.ivr_open).total_seconds())
        fold.ivr_open = None


def _on_ivr_left(f: _Folding, ev: CallEvent, t: datetime, cur: _Leg, open_unanswered: bool) -> None:
    _close_ivr(f.fold, t)
    outcome = ev.ivr_left.outcome
    if outcome == call_events_pb2.IvrLeft.OUTCOME_TO_AGENT:
        if cur.acd_entry is None or cur.acd_entry < t:
            cur.acd_entry = t
    elif open_unanswered and cur.queued_at is None:
        self_service = outcome == call_events_pb2.IvrLeft.OUTCOME_SELF_SERVICE
        cur.outcome, cur.ended_at = ("ivr_handled" if self_service else "ivr_abandoned"), t


def _on_queued(f: _Folding, ev: CallEvent, t: datetime, cur: _Leg, open_unanswered: bool) -> None:
    if open_unanswered:
        cur.queued_at = cur.queued_at or t
        cur.queue_id = ev.queued.queue_id or cur.queue_id
        cur.acd_entry = cur.acd_entry or t


def _on_ringing(f: _Folding, ev: CallEvent, t: datetime, cur: _Leg, open_unanswered: bool) -> None:
    if open_unanswered:
        cur.ring_at, cur.ring_agent = t, ev.ringing.agent_id
        cur.queue_id = cur.queue_id or ev.ringing.queue_id
        cur.acd_entry = cur.acd_entry or t


def _on_ring_no_answer(f: _Folding, ev: CallEvent, t: datetime, cur: _Leg, open_unanswered: bool) -> None:
    if open_unanswered and cur.ring_agent == ev.ring_no_answer.agent_id:
        cur.ring_at, cur.ring_agent = None, ""


def _on_answered(f: _Folding, ev: CallEvent, t: datetime, cur: _Leg, open_unanswered: bool) -> None:
    if open_unanswered:
        agent = ev.answered.agent_id or cur.agent_id
        cur.answered_at, cur.agent_id, cur.outcome = t, agent, "answered"
        cur.queue_id = cur.queue_id or ev.answered.queue_id
        cur.acd_entry = cur.acd_entry or t
        if cur.ring_at is not None and cur.ring_agent in ("", agent):
            cur.ring_s = max(0.0, (t - cur.ring_at).total_seconds())
    elif cur.answered_at is not None and ev.answered.agent_id and ev.answered.agent_id != cur.agent_id:
        # another agent picked up while this leg is live: the consult call of a warm transfer
        f.consults[ev.answered.agent_id] = t


def _on_hold_started(f: _Folding, ev: CallEvent, t: datetime, cur: _Leg, open_unanswered: bool) -> None:
    leg = f.leg_of(ev.hold_started.agent_id)
    if leg.answered_at is not None and leg.conv_end is None and leg.hold_open is None:
        leg.hold_open = t
        leg.hold_count += 1


def _on_hold_ended(f: _Folding, ev: CallEvent, t: datetime, cur: _Leg, open_unanswered: bool) -> None:
    leg = f.leg_of(ev.hold_ended.agent_id)
    if leg.hold_open is not None:
        leg.hold_s += max(0.0, (t - leg.hold_open).total_seconds())
        leg.hold_open = None


def _on_transferred(f: _Folding, ev: CallEvent, t: datetime, cur: _Leg, open_unanswered: bool) -> None:
    tr = ev.transferred
    leg = f.leg_of(tr.from_agent_id)
    target = tr.WhichOneof("target")
    to_queue = tr.to_queue_id if target == "to_queue_id" else ""
    to_agent = tr.to_agent_id if target == "to_agent_id" else ""
    if leg is cur and cur.answered_at is not None and cur.conv_end is None:
        cur.close_conversation(t)
        cur.ended_at = t
        cur.transfer_kind = {call_events_pb2.CallTransferred.KIND_BLIND: "blind",
                             call_events_pb2.CallTransferred.KIND_WARM: "warm"}.get(tr.kind, "blind")
        if target != "to_external":  # out of the ACD: no further leg to wait for
            f.new_leg(t, to_queue or cur.queue_id, to_agent)
    elif open_unanswered and to_queue:
        cur.queue_id = to_queue  # moved before anyone answered: same leg, new queue


def _on_overflowed(f: _Folding, ev: CallEvent, t: datetime, cur: _Leg, open_unanswered: bool) -> None:
    ov = ev.overflowed
    if open_unanswered:
        cur.queue_id = cur.queue_id or ov.from_queue_id
        cur.ended_at = t
        if ov.destination == call_events_pb2.CallOverflowed.DESTINATION_CALLBACK:
            cur.outcome = "callback"
        else:
            cur.outcome = "overflowed"
            if ov.destination == call_events_pb2.CallOverflowed.DESTINATION_QUEUE and ov.to_queue_id:
                f.new_leg(t, ov.to_queue_id)


def _on_callback_requested(f: _Folding, ev: CallEvent, t: datetime, cur: _Leg, open_unanswered: bool) -> None:
    if open_unanswered:
        cur.queue_id = cur.queue_id or ev.callback_requested.queue_id
        cur.outcome, cur.ended_at = "callback", t


def _on_abandoned(f: _Folding, ev: CallEvent, t: datetime, cur: _Leg, open_unanswered: bool) -> None:
    if open_unanswered:
        cur.queue_id = cur.queue_id or ev.abandoned.queue_id
        cur.outcome, cur.ended_at = "abandoned", t


def _on_ended(f: _Folding, ev: CallEvent, t: datetime, cur: _Leg, open_unanswered: bool) -> None:
    ender = f.leg_of(ev.ended.agent_id) if ev.ended.agent_id else cur
    if ender.answered_at is not None and ev.ended.wrap_up_ms:
        # also for a leg a transfer closed: the agent's channel ends after it and announces the wrap-up
        ender.announced_wrap_s = ev.ended.wrap_up_ms / 1000.0
    if ender is not cur and ender.conv_end is not None:
        return  # an earlier agent's channel closing after a transfer: not the end of the call
    _close_ivr(f.fold, t)
    if cur.answered_at is not None and cur.conv_end is None:
        cur.close_conversation(t)
        cur.ended_at = t
    elif open_unanswered:
        reached_acd = cur.acd_entry is not None or f.fold.offered_at is not None or cur.segment > 0
        cur.outcome, cur.ended_at = ("abandoned" if reached_acd else "ivr_abandoned"), t


def _on_wrap_up_ended(f: _Folding, ev: CallEvent, t: datetime, cur: _Leg, open_unanswered: bool) -> None:
    wu = ev.wrap_up_ended
    leg = f.leg_of(wu.agent_id)
    if leg.answered_at is not None and leg.wrap_at is None:
        leg.wrap_at = t
        leg.disposition, leg.resolved, leg.hard_call, leg.topic = (
            wu.disposition_code, wu.resolved, wu.hard_call, wu.topic)


_HANDLERS: dict[str, _Handler] = {
    "offered": _on_offered,
    "blocked": _on_blocked,
    "ivr_entered": _on_ivr_entered,
    "ivr_left": _on_ivr_left,
    "queued": _on_queued,
    "ringing": _on_ringing,
    "ring_no_answer": _on_ring_no_answer,
    "answered": _on_answered,
    "hold_started": _on_hold_started,
    "hold_ended": _on_hold_ended,
    "transferred": _on_transferred,
    "overflowed": _on_overflowed,
    "callback_requested": _on_callback_requested,
    "abandoned": _on_abandoned,
    "ended": _on_ended,
    "wrap_up_ended": _on_wrap_up_ended,
}


def fold_call(events: Iterable[CallEvent]) -> CallFold:
    """Fold the events of one call (any order, no duplicates) into its legs."""
    ordered = sorted(events, key=sort_key)
    if not ordered:
        raise ValueError("a call needs at least one event")
    first = event_time(ordered[0])
    folding = _Folding(CallFold(legs=[_Leg(segment=0, started_at=first)], first_at=first,
                                last_at=event_time(ordered[-1])))
    legs = folding.fold.legs
    for ev in ordered:
        handler = _HANDLERS.get(event_kind(ev))
        if handler is not None:
            cur = legs[-1]
            handler(folding, ev, event_time(ev), cur, cur.answered_at is None and cur.outcome is None)
    return folding.fold


def contacts_of(call_id: str, fold: CallFold, settings: SessionizerSettings, *, timed_out: bool = False,
                team_of: Callable[[str], str] | None = None) -> list[ContactRecord]:
    """The contact segments of a folded call. `timed_out`: the session timed out, flag unfinished legs."""
    records: list[ContactRecord] = []
    for leg in fold.legs:
        outcome = leg.outcome
        leg_timed_out = timed_out and not leg.complete
        if outcome is None:
            outcome = "timed_out"
        # Where the leg stops counting queue time: answer, abandon/overflow/callback, or (timed out) last event.
        left_queue = leg.answered_at or leg.ended_at or fold.last_at
        queue_s = max(0.0, (left_queue - leg.queued_at).total_seconds()) if leg.queued_at is not None else 0.0
        conv_end = leg.conv_end
        talk_s = hold_s = acw_s = 0.0
        if leg.answered_at is not None:
            end = conv_end or fold.last_at
            hold_s = leg.hold_s
            if leg.hold_open is not None:  # hold never ended: it lasted to the end of the conversation
                hold_s += max(0.0, (end - leg.hold_open).total_seconds())
            talk_s = max(0.0, (end - leg.answered_at).total_seconds() - hold_s)
            if conv_end is not None and leg.wrap_at is not None and leg.wrap_at >= conv_end:
                acw_s = (leg.wrap_at - conv_end).total_seconds()
            elif conv_end is not None:
                acw_s = leg.announced_wrap_s
        short = False
        if outcome == "abandoned":
            waited_from = leg.queued_at or leg.acd_entry or leg.started_at
            assert leg.ended_at is not None
            wait_s = max(0.0, (leg.ended_at - waited_from).total_seconds())
            short = wait_s <= settings.targets.short_abandon_s(leg.queue_id or fold.queue_id)
        queue_id = leg.queue_id or fold.queue_id
        offered_at = (fold.offered_at or fold.first_at) if leg.segment == 0 else leg.started_at
        records.append(ContactRecord(
            call_id=call_id,
            segment=leg.segment,
            outcome=outcome,
            offered_at=offered_at,
            queue_id=queue_id,
            agent_id=leg.agent_id,
            team_id=team_of(leg.agent_id) if (team_of is not None and leg.agent_id) else "",
            call_type=fold.call_type,
            caller_hash=fold.caller_hash,
            priority=fold.priority,
            answered_at=leg.answered_at,
            ended_at=leg.ended_at or (fold.last_at if leg_timed_out else None),
            ivr_s=fold.ivr_s if leg.segment == 0 else 0.0,
            queue_s=queue_s,
            ring_s=leg.ring_s,
            talk_s=talk_s,
            hold_s=hold_s,
            acw_s=acw_s,
            hold_count=leg.hold_count,
            queued=leg.queued_at is not None,
            short_abandon=short,
            transfer_kind=leg.transfer_kind,
            disposition_code=leg.disposition,
            resolved=leg.resolved,
            hard_call=leg.hard_call,
            topic=leg.topic or fold.call_type,
            timed_out=leg_timed_out,
        ))
    return records
