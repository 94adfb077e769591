"""The one list of every topic: name, key, contract, partitions, retention (architecture.md, "Contracts").

`callstream topics apply` creates what is missing (each topic and its dead-letter topic T.dlq) and
`docs/topics.md` is generated from this list for the enterprise systems that read the topics.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from google.protobuf.message import Message

from callstream.agent.v1 import agent_events_pb2
from callstream.call.v1 import call_events_pb2
from callstream.common.v1 import envelope_pb2
from callstream.hr.v1 import hr_events_pb2
from callstream.kpi.v1 import kpi_events_pb2
from callstream.qa.v1 import qa_events_pb2
from callstream.routing.v1 import routing_pb2
from callstream_core.envelope import deterministic_event_id, new_envelope

# The topic names, for code that produces or consumes a topic (import these; never type the name).
CALL_EVENTS = "cc.call-events.v1"
AGENT_EVENTS = "cc.agent-events.v1"
ROUTING_COMMANDS = "cc.routing-commands.v1"
ROUTING_SNAPSHOTS = "cc.routing-snapshots.v1"
ROUTING_DECISIONS = "cc.routing-decisions.v1"
QA_EVALUATIONS = "cc.qa-evaluations.v1"
HR_SCHEDULES = "cc.hr-schedules.v1"
HR_ATTENDANCE = "cc.hr-attendance.v1"
HR_ABSENCES = "cc.hr-absences.v1"
HR_EMPLOYMENT = "cc.hr-employment.v1"
HR_COSTS = "cc.hr-costs.v1"
CONTACTS = "cc.contacts.v1"
KPI_REALTIME = "cc.kpi-realtime.v1"
ALERTS = "cc.alerts.v1"
KPI_PARTITION_STATE = "cc.kpi-partition-state.v1"

DAY_MS = 24 * 3600 * 1000
DLQ_SUFFIX = ".dlq"
_EXAMPLE_TIME = datetime(2026, 11, 2, 9, 30, 12, 250000, tzinfo=UTC)


@dataclass(frozen=True)
class Topic:
    name: str
    key: str
    message_type: type[Message]
    partitions: int
    retention_ms: int
    description: str
    example: Callable[[], Message]
    # Compacted topics keep the latest value per key (state, not history).
    compacted: bool = False
    # Records larger than the broker's 1 MiB default (state snapshots); None keeps the default.
    max_message_bytes: int | None = None

    @property
    def dlq(self) -> str:
        return self.name + DLQ_SUFFIX

    def config(self) -> dict[str, str]:
        return {
            "retention.ms": str(self.retention_ms),
            "cleanup.policy": "compact" if self.compacted else "delete",
            # A write is confirmed only when every in-sync replica has it; with acks=all and 3 replicas
            # in production, 2 must hold it (a single-node broker lowers it to 1 at creation time).
            "min.insync.replicas": "2",
        } | ({} if self.max_message_bytes is None else {"max.message.bytes": str(self.max_message_bytes)})


def _env(kind: str) -> envelope_pb2.Envelope:
    return new_envelope("example/docs", _EXAMPLE_TIME, deterministic_event_id("example", kind))


def _call_example() -> Message:
    event = call_events_pb2.CallEvent(envelope=_env("call"), call_id="pbx1-1762075812.42")
    event.offered.context.queue_id = "billing"
    event.offered.context.call_type = "PS"
    event.offered.context.priority = 1
    event.offered.context.caller_hash = "3f2a9c0d5e7b41a88c1d2e3f4a5b6c7d"
    event.offered.context.dialed_number = "+40215550100"
    event.offered.context.channel = envelope_pb2.CHANNEL_VOICE
    return event


def _agent_example() -> Message:
    event = agent_events_pb2.AgentEvent(envelope=_env("agent"), agent_id="agent-0042")
    event.not_ready.reason = agent_events_pb2.NOT_READY_REASON_BREAK
    return event


def _decision_example() -> Message:
    decision = routing_pb2.RoutingDecision(envelope=_env("decision"), call_id="pbx1-1762075812.42")
    decision.queue_id = "billing"
    decision.queued.position = 3
    decision.queued.expected_wait_s = 41.5
    return decision


def _command_example() -> Message:
    command = routing_pb2.RoutingCommand(envelope=_env("command"))
    command.cancel_call.command_id = "c-7d1e"
    command.cancel_call.call_id = "pbx1-1762075812.42"
    return command


def _snapshot_example() -> Message:
    return routing_pb2.RouterSnapshot(envelope=_env("snapshot"), command_log_topic=ROUTING_COMMANDS,
                                      next_offset=182_044, commands=181_730, state_format=1, state=b"x\x9c...")


def _qa_example() -> Message:
    return qa_events_pb2.EvaluationChanged(
        envelope=_env("qa"), agent_id="agent-0042", evaluation_id="ev-118", call_id="pbx1-1762075812.42",
        evaluator_id="qa-07", team_id="team-3", form_id="voice-standard", form_version=4,
        status=qa_events_pb2.EVALUATION_STATUS_SUBMITTED, score=87.5, revision=1,
    )


def _schedule_example() -> Message:
    event = hr_events_pb2.SchedulePublished(
        envelope=_env("schedule"), employee_id="emp-0042", schedule_id="2026-W45", version=2
    )
    shift = event.shifts.add(shift_id="s-0042-1102", team_id="team-3")
    shift.start.FromDatetime(datetime(2026, 11, 2, 8, 0))
    shift.end.FromDatetime(datetime(2026, 11, 2, 16, 30))
    return event


def _attendance_example() -> Message:
    return hr_events_pb2.AttendancePunch(
        envelope=_env("punch"), employee_id="emp-0042", kind=hr_events_pb2.AttendancePunch.KIND_IN,
        device="badge-lobby-1", shift_id="s-0042-1102",
    )


def _absence_example() -> Message:
    event = hr_events_pb2.Absence(
        envelope=_env("absence"), employee_id="emp-0042", absence_id="abs-311",
        reason=hr_events_pb2.Absence.REASON_SICK,
    )
    event.start.FromDatetime(datetime(2026, 11, 3, 8, 0))
    event.end.FromDatetime(datetime(2026, 11, 4, 8, 0))
    return event


def _employment_example() -> Message:
    return hr_events_pb2.EmploymentChanged(
        envelope=_env("employment"), employee_id="emp-0042", kind=hr_events_pb2.EmploymentChanged.KIND_LEFT,
        role="agent", team_id="team-3", fte=1.0, exit_reason=hr_events_pb2.EXIT_REASON_WORKLOAD_PRESSURE,
        voluntary=True,
    )


def _cost_example() -> Message:
    event = hr_events_pb2.CostEntry(
        envelope=_env("cost"), cost_center_id="center-main", entry_id="2026-10-salaries",
        amount_minor=18_250_000, currency="EUR", category="salaries",
    )
    event.period_start.FromDatetime(datetime(2026, 10, 1))
    event.period_end.FromDatetime(datetime(2026, 11, 1))
    return event


def _contact_example() -> Message:
    contact = kpi_events_pb2.Contact(
        envelope=_env("contact"), call_id="pbx1-1762075812.42", segment=0, queue_id="billing",
        agent_id="agent-0042", call_type="PS", outcome=kpi_events_pb2.CONTACT_OUTCOME_ANSWERED,
        queue_s=14.0, ring_s=4.0, talk_s=212.0, hold_s=30.0, hold_count=1, acw_s=45.0, queued=True,
        disposition_code="billing-explained", resolved=True, version=1,
    )
    contact.offered_at.FromDatetime(datetime(2026, 11, 2, 9, 30, 12))
    return contact


def _realtime_example() -> Message:
    snap = kpi_events_pb2.RealtimeSnapshot(envelope=_env("realtime"), calls_waiting=4, longest_wait_s=63.0)
    snap.scope.kind = envelope_pb2.Scope.KIND_QUEUE
    snap.scope.id = "billing"
    snap.as_of.FromDatetime(datetime(2026, 11, 2, 9, 30, 10))
    snap.agents_by_state["ready"] = 3
    snap.agents_by_state["talking"] = 11
    snap.windows.add(window_minutes=15, offered=120, answered=111, answered_within_t=93, abandoned=9,
                     short_abandons=3, service_level=79.5, asa_s=17.2, abandon_rate=5.1)
    return snap


def _partition_state_example() -> Message:
    state = kpi_events_pb2.PartitionState(envelope=_env("partition-state"), topic=CALL_EVENTS, partition=3,
                                          owner="kpi-stream-7d9f-x2c4q", generation=12)
    state.published_at.FromDatetime(datetime(2026, 11, 2, 9, 30, 12))
    state.as_of.FromDatetime(datetime(2026, 11, 2, 9, 30, 2))
    decided = state.decided.add(call_id="pbx1-1762075812.42", queue_id="billing", outcome="answered", wait_s=14.0)
    decided.at.FromDatetime(datetime(2026, 11, 2, 9, 30, 12))
    live = state.live.add(call_id="pbx1-1762075840.7", queue_id="billing", waiting_queue="billing")
    live.last_at.FromDatetime(datetime(2026, 11, 2, 9, 30, 40))
    live.acd_entry.FromDatetime(datetime(2026, 11, 2, 9, 30, 40))
    live.first_queued.FromDatetime(datetime(2026, 11, 2, 9, 30, 40))
    live.waiting_since.FromDatetime(datetime(2026, 11, 2, 9, 30, 40))
    return state


def _alert_example() -> Message:
    alert = kpi_events_pb2.Alert(
        envelope=_env("alert"), alert_id="asa:queue:billing:2026-11-02T09:30", kpi="asa", value=48.0,
        target=20.0, comparison="<=", state=kpi_events_pb2.Alert.STATE_FIRING,
    )
    alert.scope.kind = envelope_pb2.Scope.KIND_QUEUE
    alert.scope.id = "billing"
    alert.likely_causes.add(code="acw_over_target", text="ACW over target", confirmed=True,
                            evidence="average ACW 74 s against a 60 s target")
    return alert


TOPICS: tuple[Topic, ...] = (
    Topic(CALL_EVENTS, "call_id", call_events_pb2.CallEvent, 6, 14 * DAY_MS,
          "Every event of a call at the switch (offered, queued, answered, ...).", _call_example),
    Topic(AGENT_EVENTS, "agent_id", agent_events_pb2.AgentEvent, 6, 14 * DAY_MS,
          "Agent state changes, skills and queue membership.", _agent_example),
    Topic(ROUTING_COMMANDS, "queue_id", routing_pb2.RoutingCommand, 1, 7 * DAY_MS,
          "Commands the router accepted, in order: the log its state is rebuilt from.", _command_example),
    # 64 MiB: a snapshot of a 5,000-agent center with its 200,000 remembered command ids is ~10 MB compressed.
    Topic(ROUTING_SNAPSHOTS, "command_log_topic", routing_pb2.RouterSnapshot, 1, 30 * DAY_MS,
          "The router's state with the command log offset it covers: a start replays only the log after it.",
          _snapshot_example, compacted=True, max_message_bytes=64 * 1024 * 1024),
    Topic(ROUTING_DECISIONS, "call_id", routing_pb2.RoutingDecision, 6, 14 * DAY_MS,
          "Every routing decision (assigned, queued with EWT, overflowed, callback, rejected).",
          _decision_example),
    Topic(QA_EVALUATIONS, "agent_id", qa_events_pb2.EvaluationChanged, 3, 365 * DAY_MS,
          "Every submitted or changed QA evaluation with its score (KPI 12).", _qa_example),
    Topic(HR_SCHEDULES, "employee_id", hr_events_pb2.SchedulePublished, 3, 365 * DAY_MS,
          "Published schedules (shifts and breaks) per employee; adherence is computed from them.",
          _schedule_example),
    Topic(HR_ATTENDANCE, "employee_id", hr_events_pb2.AttendancePunch, 3, 365 * DAY_MS,
          "Badge / punch-clock events (KPI 15).", _attendance_example),
    Topic(HR_ABSENCES, "employee_id", hr_events_pb2.Absence, 3, 365 * DAY_MS,
          "Absences with reasons (attendance and adherence diagnosis).", _absence_example),
    Topic(HR_EMPLOYMENT, "employee_id", hr_events_pb2.EmploymentChanged, 3, 3 * 365 * DAY_MS,
          "Hires, leavers with exit reason, role and team changes (KPI 23).", _employment_example),
    Topic(HR_COSTS, "cost_center_id", hr_events_pb2.CostEntry, 1, 3 * 365 * DAY_MS,
          "Center cost entries per period (KPI 4).", _cost_example),
    Topic(CONTACTS, "call_id", kpi_events_pb2.Contact, 6, 30 * DAY_MS,
          "One record per completed contact segment (agent leg), revised with a higher version.",
          _contact_example),
    Topic(KPI_REALTIME, "scope", kpi_events_pb2.RealtimeSnapshot, 1, DAY_MS,
          "Real-time snapshot per center, queue and team every few seconds (wallboard figures; a team's: "
          "its agents and goals).",
          _realtime_example),
    Topic(ALERTS, "alert_id", kpi_events_pb2.Alert, 1, 90 * DAY_MS,
          "KPI target breaches with likely causes checked against the data.", _alert_example),
    # Key "<topic>:<partition>" of a source partition the KPI workers read; compacted: the newest state per
    # partition is all a worker needs. One partition: a few dozen keys, read whole by every worker. 16 MiB: a
    # state holds the calls its partition decided in the last hour (~100 bytes each).
    Topic(KPI_PARTITION_STATE, "topic:partition", kpi_events_pb2.PartitionState, 1, 7 * DAY_MS,
          "Internal to kpi-stream: each worker's real-time state per partition it owns, merged by every worker "
          "into the figures it serves, and continued by the partition's next owner.", _partition_state_example,
          compacted=True, max_message_bytes=16 * 1024 * 1024),
)

BY_NAME: dict[str, Topic] = {t.name: t for t in TOPICS}


def topic(name: str) -> Topic:
    try:
        return BY_NAME[name]
    except KeyError:
        raise KeyError(f"unknown topic {name!r}; known: {sorted(BY_NAME)}") from None
