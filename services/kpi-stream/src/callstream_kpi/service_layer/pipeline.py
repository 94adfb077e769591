"""The KPI stream's service layer: batches of events in, facts and figures out.

Each `on_*` handles one decoded batch from one topic: it writes the raw facts and everything derived
from them to ClickHouse (idempotent: dedup tokens from the batch's offsets, ReplacingMergeTree keys),
publishes derived contacts, and only then returns, so the caller acknowledges the batch after the sinks
succeeded. Calls are serialized by the caller (one worker thread): the domain objects are not shared.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from clickhouse_connect.driver.client import Client
from prometheus_client import Counter, Gauge

from callstream.agent.v1 import agent_events_pb2
from callstream.call.v1 import call_events_pb2
from callstream.hr.v1 import hr_events_pb2
from callstream.kpi.v1 import kpi_events_pb2
from callstream.qa.v1 import qa_events_pb2
from callstream.routing.v1 import routing_pb2
from callstream_core.envelope import new_envelope
from callstream_core.kafka import DeadLetters, EventProducer, Received
from callstream_core.topics import ALERTS, CALL_EVENTS, CONTACTS, KPI_REALTIME
from callstream_kpi.adapters import clickhouse_facts as facts
from callstream_kpi.adapters.partition_states import PartitionStateLog
from callstream_kpi.adapters.queue_settings import QueueSettingsStore, TeamSettingsStore
from callstream_kpi.config import KpiSettings
from callstream_kpi.domain.agent_states import AgentStateTracker, split_interval
from callstream_kpi.domain.contact import ContactRecord
from callstream_kpi.domain.kpis import alert_scopes, alert_values
from callstream_kpi.domain.partition_state import (
    TeamDirectory,
    TeamOf,
    export_agents,
    load_agents,
    merged_snapshots,
    state_key,
    supersedes,
)
from callstream_kpi.domain.realtime import RealtimeSettings, RealtimeView
from callstream_kpi.domain.sessionizer import Sessionizer, SessionizerSettings
from callstream_kpi.domain.targets import AlertEvaluator, QueueSettings, QueueTargets, TeamSettings
from callstream_kpi.domain.watermark import PartitionWatermark, interval_start

log = logging.getLogger(__name__)

EVENTS = Counter("callstream_kpi_events_total", "Events taken into the KPI stream", ["topic"])
CONTACTS_WRITTEN = Counter("callstream_kpi_contacts_total", "Contact segments written (new or revised)")
RETRIES = Counter("callstream_kpi_sink_retries_total", "ClickHouse writes retried after an error")
WATERMARK = Gauge("callstream_kpi_watermark_seconds", "Event-time watermark of the stream (unix seconds)")
OPEN_CALLS = Gauge("callstream_kpi_open_calls", "Calls the sessionizer holds open")

Offsets = list[tuple[str, int, int]]
Partition = tuple[str, int]  # (topic, partition)

def _offsets(batch: Sequence[Received[Any]]) -> Offsets:
    return [(r.topic, r.partition, r.offset) for r in batch]


def _version_stamp() -> int:
    """Processing time in microseconds as the row version of derived facts: the domain's own revision
    counters restart with the process, but a revision written after a restart must still win."""
    return time.time_ns() // 1000


class KpiPipeline:
    def __init__(self, settings: KpiSettings, client: Client, producer: EventProducer, *,
                 topic_prefix: str = "", monotonic: Callable[[], float] = time.monotonic,
                 states: PartitionStateLog | None = None) -> None:
        self.topic_prefix = topic_prefix
        self.settings = settings
        self.monotonic = monotonic
        # One event-time clock for the whole stream: the minimum over the Kafka partitions it reads (call and
        # agent events) of each partition's newest event time, idle partitions left out. The sessionizer, the
        # agent states and the real-time view read it; this pipeline observes every event into it.
        self.watermark = PartitionWatermark(settings.allowed_lateness_s, settings.partition_idle_s)
        self.retrying = facts.RetryingClient(client, on_retry=self._on_retry)
        # A row ClickHouse cannot store goes to its topic's DLQ with the reason; the stream goes on.
        self.facts = facts.FactWriter(self.retrying, facts.RowDeadLetters(DeadLetters(producer), topic_prefix))
        # The stream's own offset rows: never refused as data, so no DLQ; a failure is an outage, retried.
        self._offsets = facts.FactWriter(self.retrying)
        self.producer = producer
        self.sink_error: str | None = None
        self.agents = AgentStateTracker(allowed_lateness_s=settings.allowed_lateness_s, watermark=self.watermark)
        # The defaults until `load_targets` reads the queue settings.
        self.targets = QueueTargets(QueueSettings("", settings.default_sl_threshold_s, settings.default_sl_goal_pct,
                                                  settings.default_short_abandon_s))
        self.sessionizer = Sessionizer(
            SessionizerSettings(session_timeout_s=settings.session_timeout_s,
                                allowed_lateness_s=settings.allowed_lateness_s, targets=self.targets,
                                provisional=settings.provisional_contacts),
            team_of=self.team_of, watermark=self.watermark)
        self.realtime_settings = RealtimeSettings(allowed_lateness_s=settings.allowed_lateness_s,
                                                  targets=self.targets, session_timeout_s=settings.session_timeout_s)
        # Real-time state per source partition (call events: calls; routing decisions: wait quotes), so each
        # partition's state can be published on its own and continued by whichever worker owns it next.
        self.views: dict[Partition, RealtimeView] = {}
        # Agent -> the agent-events partition its events come from; agent -> team, and what each partition taught.
        self._agent_partition: dict[str, Partition] = {}
        self.teams = TeamDirectory()
        self._teams_by_partition: dict[Partition, TeamDirectory] = {}
        # The partitions this worker owns in its consumer group (None: every partition it reads, one worker
        # alone), the group generation it got them in, and the newest state of every partition read from the
        # state topic (this worker's own publications included).
        self.assigned: set[Partition] | None = None
        self.generation = 0
        self.owner = settings.group_instance_id or settings.service_name
        self.states = states
        self.remote: dict[str, kpi_events_pb2.PartitionState] = {}
        # The recent contacts of a remote state, decoded once when the alerts first need them: a worker reads its
        # own states back too, a second after it published them, and has no use for their contacts.
        self._remote_contacts: dict[str, list[ContactRecord]] = {}
        self.alerts = AlertEvaluator(self.targets.book())
        # Latest version of each recent contact per call-events partition (published with its state: every
        # worker evaluates the alerts on all partitions'), and the partition of each call with events here.
        self._recent: dict[Partition, dict[tuple[str, int], ContactRecord]] = {}
        self._call_partition: dict[str, Partition] = {}
        # The watermark the sessionizer last swept at: any input that moves the watermark (call events, agent
        # events, a quiet stream's tick) sweeps, so calls close whatever moved it.
        self._swept_at: datetime | None = None

    def _on_retry(self, exc: Exception) -> None:
        RETRIES.inc()
        self.sink_error = f"ClickHouse write failing, retrying: {exc}"
        log.warning(self.sink_error)

    def migrate(self) -> list[int]:
        return self.retrying.run(facts.apply_migrations)

    # -- targets -------------------------------------------------------------------------------------
    def load_targets(self) -> bool:
        """Read the queue and team settings (the targets written through the KPI API) and put them in force: the
        real-time figures, the contacts' short abandons and the alerts use them from now on. True when
        they changed."""
        return self.use_targets(*self.retrying.run(
            lambda client: (QueueSettingsStore(client).all(), TeamSettingsStore(client).all())))

    def use_targets(self, queues: Sequence[QueueSettings], teams: Sequence[TeamSettings] = ()) -> bool:
        targets = QueueTargets.of_queues(self.targets.defaults, queues, teams)
        if targets == self.targets:
            return False
        self.targets = targets
        self.sessionizer.settings = replace(self.sessionizer.settings, targets=targets)
        self.realtime_settings = replace(self.realtime_settings, targets=targets)
        for view in self.views.values():
            view.settings = self.realtime_settings
        self.alerts.book = targets.book()
        log.info("targets in force for %d queues and %d teams: %s", len(queues), len(teams),
                 ", ".join(f"{q.queue_id} SL {q.sl_goal_pct:g} % in {q.sl_threshold_s:g} s" for q in queues))
        return True

    # -- event time ----------------------------------------------------------------------------------
    def note_offsets(self, taken: Mapping[Partition, int], end_offsets: Mapping[Partition, int | None]) -> None:
        """The last offset taken per partition (decoded or dead-lettered) and the consumer's log end offsets:
        a partition with records not taken yet is never idle."""
        for partition, offset in taken.items():
            self.watermark.note_taken(partition, offset)
        for partition, end in end_offsets.items():
            self.watermark.note_end_offset(partition, end)

    def partitions_ahead(self) -> set[Partition]:
        """Partitions to pause until the slowest partition with records left catches up (the backlog is read
        evenly in event time, so what the watermark holds back stays bounded)."""
        return {cast(Partition, p) for p in
                self.watermark.running_ahead(timedelta(seconds=self.settings.max_partition_lead_s))}

    def _observe(self, batch: Sequence[Received[Any]]) -> None:
        now = self.monotonic()
        for r in batch:
            self.watermark.observe((r.topic, r.partition), r.value.envelope.occurred_at.ToDatetime(tzinfo=UTC), now,
                                   r.offset)
        self.watermark.advance(now)

    # -- inputs --------------------------------------------------------------------------------------
    def on_call_events(self, batch: Sequence[Received[call_events_pb2.CallEvent]]) -> None:
        EVENTS.labels("call").inc(len(batch))
        offsets = _offsets(batch)
        self.facts.insert("call_events", [facts.call_event_row(r.value, r.partition, r.offset) for r in batch],
                          facts.CALL_EVENT_COLUMNS, offsets)
        self._observe(batch)
        events = [r.value for r in batch]
        late = {e.call_id for e in events if self.sessionizer.needs_history(e)}
        if late:  # rebuild those calls from what ClickHouse holds, so their late events revise them
            ids = {e.envelope.event_id for e in events}
            self.sessionizer.restore(e for e in facts.stored_call_events(self.retrying, sorted(late))
                                     if e.envelope.event_id not in ids)
        contacts = self.sessionizer.process_batch(events)
        self._swept_at = self.watermark.current
        self._to_views(batch)
        self._store_contacts(contacts)
        self.sink_error = None

    def on_agent_events(self, batch: Sequence[Received[agent_events_pb2.AgentEvent]]) -> None:
        EVENTS.labels("agent").inc(len(batch))
        offsets = _offsets(batch)
        self.facts.insert("agent_events", [facts.agent_event_row(r.value, r.partition, r.offset) for r in batch],
                          facts.AGENT_EVENT_COLUMNS, offsets)
        self._observe(batch)
        events = [r.value for r in batch]
        for r in batch:
            self._agent_partition[r.value.agent_id] = (r.topic, r.partition)
            if r.value.WhichOneof("kind") == "logged_in" and r.value.logged_in.team_id:
                self._learn_team((r.topic, r.partition), r.value.agent_id, TeamOf(
                    r.value.logged_in.team_id, r.value.envelope.occurred_at.ToDatetime(tzinfo=UTC), "switch"))
        # The tracker is shared with the real-time views: feed it once.
        intervals = self.agents.process_batch(events)
        stamp = _version_stamp()
        # The team of an agent's time is HR's, as for its contacts (the switch's log-in when HR has none).
        rows = [facts.interval_row(replace(piece, team_id=self.team_of(piece.agent_id)), stamp)
                for iv in intervals for piece in split_interval(iv)]
        self.facts.insert("agent_state_intervals", rows, facts.INTERVAL_COLUMNS, None)
        self._sweep()  # agent events move the watermark too: the calls it passes close now
        self._advance_views()
        self.sink_error = None

    def on_routing_decisions(self, batch: Sequence[Received[routing_pb2.RoutingDecision]]) -> None:
        """The router's expected-wait quotes (its Queued decisions) for the wallboard; nothing is stored: the
        decisions topic is the record, and the next quote replaces this one within seconds on a live queue."""
        EVENTS.labels("routing").inc(len(batch))
        for r in batch:
            if r.value.WhichOneof("outcome") == "queued":
                at = r.value.envelope.occurred_at.ToDatetime(tzinfo=UTC)
                self._view((r.topic, r.partition)).on_wait_quote(r.value.queue_id, at, r.value.queued.expected_wait_s)

    def on_qa(self, batch: Sequence[Received[qa_events_pb2.EvaluationChanged]]) -> None:
        EVENTS.labels("qa").inc(len(batch))
        self.facts.insert("qa_evaluations", [facts.qa_row(r.value) for r in batch], facts.QA_COLUMNS,
                          _offsets(batch))

    def on_schedules(self, batch: Sequence[Received[hr_events_pb2.SchedulePublished]]) -> None:
        EVENTS.labels("schedules").inc(len(batch))
        rows = [row for r in batch for row in facts.shift_rows(r.value)]
        self.facts.insert("hr_shifts", rows, facts.SHIFT_COLUMNS, _offsets(batch))

    def on_attendance(self, batch: Sequence[Received[hr_events_pb2.AttendancePunch]]) -> None:
        EVENTS.labels("attendance").inc(len(batch))
        self.facts.insert("hr_attendance", [facts.attendance_row(r.value) for r in batch],
                          facts.ATTENDANCE_COLUMNS, _offsets(batch))

    def on_employment(self, batch: Sequence[Received[hr_events_pb2.EmploymentChanged]]) -> None:
        EVENTS.labels("employment").inc(len(batch))
        self.facts.insert("hr_employment", [facts.employment_row(r.value) for r in batch],
                          facts.EMPLOYMENT_COLUMNS, _offsets(batch))
        for r in batch:  # HR is the record of agent -> team (the employee id is the agent id)
            if r.value.team_id:
                self._learn_team((r.topic, r.partition), r.value.employee_id, TeamOf(
                    r.value.team_id, r.value.envelope.occurred_at.ToDatetime(tzinfo=UTC), "hr"))

    def on_costs(self, batch: Sequence[Received[hr_events_pb2.CostEntry]]) -> None:
        EVENTS.labels("costs").inc(len(batch))
        self.facts.insert("hr_costs", [facts.cost_row(r.value) for r in batch], facts.COST_COLUMNS,
                          _offsets(batch))

    # -- consumed offsets ----------------------------------------------------------------------------
    def store_consumed_offsets(self, taken: Mapping[Partition, int]) -> None:
        """Record, after a batch's facts are stored and before it is acknowledged, the next offset to read of
        each partition it came from: the offsets are kept with the facts, so a start can check that the
        group's committed offsets do not run past what this store holds (`missing_facts`)."""
        rows = [[self.settings.consumer_group, t, p, offset + 1] for (t, p), offset in sorted(taken.items())]
        self._offsets.insert("consumed_offsets", rows, facts.CONSUMED_OFFSET_COLUMNS,
                             [(t, p, offset) for (t, p), offset in sorted(taken.items())])

    def missing_facts(self, committed: Mapping[Partition, int]) -> dict[Partition, tuple[int, int]]:
        """Partitions whose committed offset (the next record the group reads) is past the offsets this
        store took facts from: {partition: (committed, stored)}. Such a store lacks the facts of the records
        in between (a new or wiped ClickHouse path under an old consumer group); resuming would report
        figures without them. A store written before offsets were kept (facts, no offsets) is not judged."""
        stored = facts.consumed_offsets(self.retrying, self.settings.consumer_group)
        if not stored and facts.holds_stream_facts(self.retrying):
            log.warning("this ClickHouse store holds facts but no consumed offsets (written before they were "
                        "kept): the committed offsets are taken as they are")
            return {}
        return {tp: (offset, stored.get(tp, 0)) for tp, offset in sorted(committed.items())
                if offset > stored.get(tp, 0)}

    # -- derived -------------------------------------------------------------------------------------
    def recover(self, committed: Mapping[Partition, int] | None = None) -> int:
        """Rebuild, after a restart, the calls the last process may still have held (open, or closed and
        within their grace for late events), each from its whole history in the raw `call_events` table.

        Which calls: every call with no stored contact yet (open: it was held whatever its event time, e.g.
        in a replay where one partition's clock holds the watermark days back), every call with an event in
        the last session time-out + grace + lateness before the newest stored event (closed, still within
        reach of late events), and every call with an event at or past its partition's committed offset
        (read again after the restart). Older calls were closed and evicted (a late event of one is rebuilt
        by `needs_history`). Whole history, never a time cut: a call that crossed a cut would be rebuilt
        from its tail and re-emitted as a wrong contact (issue 17 item 2). A rebuilt call whose contacts the
        store already holds unchanged is not written again; it is held so that a record re-read after the
        restart (offsets not yet committed) is dropped as a duplicate instead of starting a call of its own.

        `committed`: the group's committed offsets (the next record to read): a rebuilt partition is
        at that offset, not at its last stored event's (records past it were taken before the restart), so
        it is not mistaken for a backlog that holds the watermark back. Returns the number of events replayed."""
        horizon = (self.settings.session_timeout_s + self.sessionizer.settings.grace_s
                   + self.settings.allowed_lateness_s)
        topic = self.topic_prefix + CALL_EVENTS
        # Records at or past a partition's committed offset will be read again: their calls are held, so
        # that the repeats are dropped as duplicates.
        again = sorted((p, o) for (t, p), o in (committed or {}).items() if t == topic)
        stored_events = facts.call_events_to_recover(self.retrying, int(horizon), again)
        events = [event for event, _, _ in stored_events]
        now = self.monotonic()
        for event, partition, offset in stored_events:
            self.watermark.observe((topic, partition), event.envelope.occurred_at.ToDatetime(tzinfo=UTC), now, offset)
        for (committed_topic, partition), offset in (committed or {}).items():
            if committed_topic == topic and offset > 0:
                self.watermark.note_taken((topic, partition), offset - 1)
        self.watermark.advance(now)
        for event, partition, _ in stored_events:
            self._call_partition[event.call_id] = (topic, partition)
            self._view((topic, partition)).on_call_event(event)
        self._advance_views()
        contacts = self.sessionizer.process_batch(events)
        self._swept_at = self.watermark.current
        stored = facts.stored_contacts(self.retrying, sorted({c.call_id for c in contacts}))
        self._store_contacts([c for c in contacts if facts.contact_content(facts.contact_row(c.to_proto()))
                              != stored.get((c.call_id, c.segment))])
        return len(events)

    def _sweep(self) -> None:
        """Close the calls the watermark passed since the last sweep (whatever input moved it)."""
        now = self.watermark.current
        if now is not None and now != self._swept_at:
            self._swept_at = now
            self._store_contacts(self.sessionizer.sweep())

    def _store_contacts(self, contacts: list[ContactRecord]) -> None:
        if not contacts:
            return
        stamp = _version_stamp()
        contacts = [replace(c, version=stamp) for c in contacts]
        protos = [c.to_proto() for c in contacts]
        self.facts.insert("contacts", [facts.contact_row(p) for p in protos], facts.CONTACT_COLUMNS, None)
        self.producer.produce_sync(self.topic_prefix + CONTACTS, [(p.call_id, p) for p in protos])
        CONTACTS_WRITTEN.inc(len(contacts))
        for c in contacts:
            partition = self._call_partition.get(c.call_id)
            if partition is not None:
                self._recent.setdefault(partition, {})[(c.call_id, c.segment)] = c

    def tick(self) -> tuple[list[kpi_events_pb2.RealtimeSnapshot], list[kpi_events_pb2.Alert]]:
        """Real-time snapshots as of the watermark and alert transitions for the current interval.

        The watermark can move here with no new event (a partition went idle): calls it settles are stored
        first, so a quiet stream still closes its last calls."""
        now = self.watermark.advance(self.monotonic())
        if now is not None:
            self._sweep()
            self._advance_views()
            WATERMARK.set(now.timestamp())
            OPEN_CALLS.set(self.sessionizer.open_calls)
            self._forget_contacts(now)
        own = self.partition_states()
        if self.states is not None:
            self.states.publish(own.values())
            self.read_states()
        others = [v for k, v in self.remote.items() if k not in own]
        snapshots = [s.to_proto() for s in merged_snapshots(others, self.realtime_settings, self.teams,
                                                            list(self.views.values()), self.agents,
                                                            self.watermark.current)]
        alerts = self._evaluate_alerts(snapshots[0].as_of.ToDatetime(tzinfo=UTC), set(own)) if snapshots else []
        if self.publishes_snapshots:  # every worker computes the same; one copy of each goes to the topics
            for snap in snapshots:
                self.producer.produce(self.topic_prefix + KPI_REALTIME, snap, key=snapshot_key(snap))
            for alert in alerts:
                self.producer.produce(self.topic_prefix + ALERTS, alert, key=alert.alert_id)
        self.producer.poll(0)
        return snapshots, alerts

    # -- real-time state per partition ---------------------------------------------------------------
    def _view(self, partition: Partition) -> RealtimeView:
        view = self.views.get(partition)
        if view is None:
            view = self.views[partition] = RealtimeView(self.realtime_settings, agents=self.agents,
                                                        watermark=self.watermark)
        return view

    def _to_views(self, batch: Sequence[Received[call_events_pb2.CallEvent]]) -> None:
        for r in batch:
            self._call_partition[r.value.call_id] = (r.topic, r.partition)
            self._view((r.topic, r.partition)).on_call_event(r.value)
        self._advance_views()

    def _advance_views(self) -> None:
        for view in self.views.values():
            view.advance()

    def _learn_team(self, partition: Partition, agent_id: str, team: TeamOf) -> None:
        self.teams.learn(agent_id, team)
        self._teams_by_partition.setdefault(partition, TeamDirectory()).learn(agent_id, team)

    def team_of(self, agent_id: str) -> str:
        """The agent's team: HR's (employment events, read by whichever worker), else the switch's log-in."""
        return self.teams.team_of(agent_id) or self.agents.team_of(agent_id)

    def _owned(self) -> set[Partition]:
        if self.assigned is not None:
            return self.assigned
        return (set(self.views) | set(self._teams_by_partition) | set(self._agent_partition.values()))

    @property
    def publishes_snapshots(self) -> bool:
        """One worker publishes the merged snapshots and the alerts to their topics: the owner of the first
        call-events partition (every worker computes the same; one copy on a topic is enough)."""
        return self.assigned is None or (self.topic_prefix + CALL_EVENTS, 0) in self.assigned

    def partition_states(self) -> dict[str, kpi_events_pb2.PartitionState]:
        """The state of every partition this worker owns, keyed as on the state topic."""
        now = self.watermark.current
        agents_of: dict[Partition, list[str]] = {}
        for agent_id, source in self._agent_partition.items():
            agents_of.setdefault(source, []).append(agent_id)
        out: dict[str, kpi_events_pb2.PartitionState] = {}
        published = datetime.now(UTC)
        for topic_name, partition in sorted(self._owned()):
            name = topic_name.removeprefix(self.topic_prefix)
            state = kpi_events_pb2.PartitionState(
                envelope=new_envelope(self.owner, now or published), topic=name, partition=partition,
                owner=self.owner, generation=self.generation)
            state.published_at.FromDatetime(published)
            if now is not None:
                state.as_of.FromDatetime(now)
            view = self.views.get((topic_name, partition))
            if view is not None:
                view.export_state(state)
            export_agents(self.agents, agents_of.get((topic_name, partition), ()), state)
            teams = self._teams_by_partition.get((topic_name, partition))
            if teams is not None:
                teams.export(state)
            recent = self._recent.get((topic_name, partition), {})
            state.recent_contacts.extend(c.to_proto(self.owner) for _, c in sorted(recent.items()))
            out[state_key(name, partition)] = state
        return out

    def read_states(self, *, to_end: bool = False) -> None:
        """Take in what the workers published since the last read (the newest state per partition); `to_end`:
        everything published until now (a start, a rebalance: the previous owners' last states)."""
        assert self.states is not None
        for state in (self.states.read_to_end() if to_end else self.states.read()):
            self.teams.learn_state(state)
            key = state_key(state.topic, state.partition)
            if supersedes(state, self.remote.get(key)):
                self._keep_remote(state)

    def _keep_remote(self, state: kpi_events_pb2.PartitionState) -> None:
        key = state_key(state.topic, state.partition)
        self.remote[key] = state
        self._remote_contacts.pop(key, None)

    def _remote_recent(self, key: str) -> list[ContactRecord]:
        contacts = self._remote_contacts.get(key)
        if contacts is None:
            contacts = list(map(ContactRecord.from_proto, self.remote[key].recent_contacts))
            self._remote_contacts[key] = contacts
        return contacts

    def assign(self, partitions: set[Partition], generation: int) -> None:
        """The group gave this worker `partitions` (generation `generation`): each one it did not own starts
        from its last published state (the previous owner's), which this worker's states then supersede."""
        if self.states is not None:
            self.read_states(to_end=True)
        before = self._owned() if self.assigned is not None else set()
        self.assigned, self.generation = set(partitions), generation
        for partition in set(self.views) - self.assigned:
            del self.views[partition]
        for partition in sorted(self.assigned - before):
            name = partition[0].removeprefix(self.topic_prefix)
            state = self.remote.get(state_key(name, partition[1]))
            if state is None:
                continue
            if state.live or state.decided or state.pending or state.quotes:
                self.views.pop(partition, None)  # the state is newer than what a restart rebuilt from ClickHouse
                self._view(partition).load_state(state)
            for agent_id in load_agents(self.agents, state):
                self._agent_partition[agent_id] = partition
            for t in state.teams:
                self._learn_team(partition, t.agent_id, TeamOf(t.team_id, t.since.ToDatetime(tzinfo=UTC), t.source))
            for contact in map(ContactRecord.from_proto, state.recent_contacts):
                self._recent.setdefault(partition, {})[(contact.call_id, contact.segment)] = contact
                self._call_partition[contact.call_id] = partition

    def revoke(self, partitions: set[Partition]) -> None:
        """The group takes `partitions` away: their final state is published (the next owner starts from it),
        then this worker forgets them."""
        states = self.partition_states()
        gone = {state_key(t.removeprefix(self.topic_prefix), p) for t, p in partitions}
        final = [state for key, state in states.items() if key in gone]
        if self.states is not None:
            self.states.publish(final, wait=True)
        for state in final:
            self._keep_remote(state)
        for partition in partitions:
            self.views.pop(partition, None)
            self._teams_by_partition.pop(partition, None)
            self._recent.pop(partition, None)
        for call_id, partition in list(self._call_partition.items()):
            if partition in partitions:
                del self._call_partition[call_id]
        for agent_id, partition in list(self._agent_partition.items()):
            if partition in partitions:
                del self._agent_partition[agent_id]
                self.agents.forget(agent_id)
        if self.assigned is not None:
            self.assigned -= partitions

    def _forget_contacts(self, now: datetime) -> None:
        """Contacts offered before the previous interval no longer count for alerts: dropped with their calls."""
        horizon = interval_start(now) - timedelta(minutes=30)
        for recent in self._recent.values():
            for key, contact in list(recent.items()):
                if contact.offered_at < horizon:
                    del recent[key]
                    self._call_partition.pop(contact.call_id, None)

    def _evaluate_alerts(self, now: datetime, own: set[str]) -> list[kpi_events_pb2.Alert]:
        """Alert transitions for the current interval, from the recent contacts of every partition: this worker's
        own (keys `own`), the others' from their states."""
        start = interval_start(now)
        contacts = [c for recent in self._recent.values() for c in recent.values()]
        contacts += [c for key in self.remote if key not in own for c in self._remote_recent(key)]
        end = start + timedelta(minutes=30)
        alerts = []
        for a in alert_scopes((c for c in contacts if c.offered_at >= start), self.targets):
            alerts += self.alerts.evaluate(a.scope, alert_values(a.rollup), interval_start=start, interval_end=end,
                                           only=a.only)
        return alerts


def snapshot_key(snap: kpi_events_pb2.RealtimeSnapshot) -> str:
    return f"{snap.scope.kind}:{snap.scope.id}"
