"""Value types of the routing core: configuration, commands in, decisions out, read-only views.

Everything here is a frozen dataclass or a string enum, so a command log or a snapshot is plain data.
Times are seconds on the caller's clock (wall time in production, virtual time in simulation).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Channel(StrEnum):
    VOICE = "voice"
    CALLBACK = "callback"  # an outbound callback; uses the agent's voice capacity
    CHAT = "chat"
    EMAIL = "email"


def capacity_channel(channel: Channel) -> Channel:
    """The capacity bucket a call of this channel occupies."""
    return Channel.VOICE if channel is Channel.CALLBACK else channel


class Strategy(StrEnum):
    LONGEST_IDLE = "longest_idle"  # default
    LEAST_OCCUPIED = "least_occupied"  # least busy seconds since login
    FEWEST_CALLS = "fewest_calls"  # fewest calls answered since login
    ROUND_ROBIN = "round_robin"  # least recently offered a call of this queue
    SKILLS = "skills"  # highest proficiency in the required skills, then longest idle


class OverflowDestination(StrEnum):
    QUEUE = "queue"
    VOICEMAIL = "voicemail"
    CALLBACK = "callback"


class AgentAction(StrEnum):
    LOGIN = "login"
    LOGOUT = "logout"
    READY = "ready"
    NOT_READY = "not_ready"
    WRAP_UP_DONE = "wrap_up_done"
    UPDATE_PROFILE = "update_profile"  # queues, skills, capacity; the state stays as it is


class NotReadyReason(StrEnum):
    UNSPECIFIED = "unspecified"
    BREAK = "break"
    LUNCH = "lunch"
    TRAINING = "training"
    MEETING = "meeting"
    COACHING = "coaching"
    OTHER = "other"
    RING_NO_ANSWER = "ring_no_answer"  # set by routing after too many missed offers
    COOL_DOWN = "cool_down"


class AgentStatus(StrEnum):
    """The state shown for an agent (the proto's AgentState.state strings)."""

    READY = "ready"
    RESERVED = "reserved"
    TALKING = "talking"
    WRAP_UP = "wrap_up"
    COOL_DOWN = "cool_down"
    NOT_READY = "not_ready"
    LOGGED_OUT = "logged_out"


class CallState(StrEnum):
    NEW = "new"  # being admitted (transient within a command)
    WAITING = "waiting"
    RESERVED = "reserved"
    CONNECTED = "connected"


class CallOutcome(StrEnum):
    """How a call ended. REJECTED: refused at entry by a guard with no overflow configured."""

    COMPLETED = "completed"
    ABANDONED = "abandoned"
    OVERFLOWED = "overflowed"
    CALLED_BACK = "called_back"
    REJECTED = "rejected"


# --------------------------------------------------------------------------------------------- config


@dataclass(frozen=True, kw_only=True)
class RequiredSkill:
    skill_id: str
    min_proficiency: int = 1


@dataclass(frozen=True, kw_only=True)
class Skill:
    skill_id: str
    proficiency: int  # 1 (novice) .. 5 (expert)


@dataclass(frozen=True, kw_only=True)
class QueueMembership:
    queue_id: str
    priority: int = 0  # lower serves first among the agent's queues (Asterisk "penalty")


@dataclass(frozen=True, kw_only=True)
class ChannelCapacity:
    channel: Channel
    capacity: int


@dataclass(frozen=True, kw_only=True)
class RelaxStep:
    """After `after_s` seconds in the queue, widen the pool of agents; the caller keeps their place."""

    after_s: float
    lower_min_by: int = 0  # lower every required minimum proficiency by this much (not below 1)
    drop_skills: bool = False  # any member of the queue will do
    add_queue_id: str | None = None  # also offer the call to this queue's agents


@dataclass(frozen=True, kw_only=True)
class PriorityAging:
    """Every `every_s` seconds a call waits in the queue its priority rises by one, at most `max_boost` above
    the priority it was given (by its offer or an UpdatePriority); the boost restarts in another queue."""

    every_s: float
    max_boost: int

    def __post_init__(self) -> None:
        if not self.every_s > 0:
            raise ValueError("priority aging: every_s must be > 0")
        if self.max_boost < 1:
            raise ValueError("priority aging: max_boost must be >= 1")


@dataclass(frozen=True, kw_only=True)
class OverflowTarget:
    destination: OverflowDestination
    queue_id: str = ""  # for QUEUE


@dataclass(frozen=True, kw_only=True)
class QueueConfig:
    queue_id: str
    strategy: Strategy = Strategy.LONGEST_IDLE
    skills: tuple[RequiredSkill, ...] = ()  # required of every call of the queue
    max_length: int | None = None
    join_when_empty: bool = True  # accept calls when no agent is logged in
    leave_when_empty: bool = False  # send waiting calls away when the last agent logs out
    max_wait_s: float | None = None  # then the overflow target applies
    overflow: OverflowTarget | None = None  # for full / empty / max wait; None = reject
    wrap_up_s: float = 0.0
    reservation_timeout_s: float = 15.0
    relaxation: tuple[RelaxStep, ...] = ()
    sticky_window_s: float = 0.0  # 0 = no sticky agent
    sticky_wait_s: float = 0.0  # how long a repeat caller waits for their last agent
    callback_threshold_s: float | None = None  # offer a callback when the expected wait reaches this
    service_time_s: float | None = None  # known mean handle time (else estimated)
    patience_s: float | None = None  # known mean patience (else estimated)
    aging: PriorityAging | None = None  # a waiting call's priority rises with its wait


@dataclass(frozen=True, kw_only=True)
class RouterConfig:
    max_ring_misses: int = 3
    rna_delay_s: float = 5.0  # after a single ring-no-answer
    reject_delay_s: float = 10.0
    busy_delay_s: float = 30.0
    cool_down_s: float = 90.0
    global_longest_waiting: bool = False  # agent takes the longest waiter across its queues
    processed_ids_kept: int = 200_000  # command ids remembered for idempotency
    outcomes_kept: int = 200_000  # finished calls whose outcome a query can still read (oldest forgotten first)
    handle_time_alpha: float = 0.1  # EWMA weight of the handle-time estimate


# --------------------------------------------------------------------------------------------- commands


@dataclass(frozen=True, kw_only=True)
class Command:
    command_id: str = ""  # idempotency key; "" = not deduplicated
    now: float = 0.0  # the caller's clock; a time earlier than the core's clock counts as the core's clock


@dataclass(frozen=True, kw_only=True)
class ConfigureQueue(Command):
    config: QueueConfig


@dataclass(frozen=True, kw_only=True)
class OfferCall(Command):
    call_id: str
    queue_id: str
    priority: int = 0  # higher is served first
    required_skills: tuple[RequiredSkill, ...] = ()
    caller_hash: str = ""
    channel: Channel = Channel.VOICE
    virtual_enqueue_time: float | None = None  # carried through transfers and re-entry; None = now
    callback_allowed: bool = False


@dataclass(frozen=True, kw_only=True)
class AcceptReservation(Command):
    reservation_id: str
    call_id: str = ""
    agent_id: str = ""


@dataclass(frozen=True, kw_only=True)
class RejectReservation(Command):
    reservation_id: str
    call_id: str = ""
    agent_id: str = ""
    busy: bool = False  # the agent's device was busy (longer delay)


@dataclass(frozen=True, kw_only=True)
class TimeoutReservation(Command):
    reservation_id: str
    call_id: str = ""
    agent_id: str = ""


@dataclass(frozen=True, kw_only=True)
class CancelCall(Command):
    call_id: str


@dataclass(frozen=True, kw_only=True)
class AcceptCallback(Command):
    """The waiting caller accepted a callback: they hang up and keep their place."""

    call_id: str


@dataclass(frozen=True, kw_only=True)
class TransferCall(Command):
    call_id: str
    from_agent_id: str = ""
    to_agent_id: str | None = None
    to_queue_id: str | None = None


@dataclass(frozen=True, kw_only=True)
class EndCall(Command):
    call_id: str
    agent_id: str = ""
    hard_call: bool = False


@dataclass(frozen=True, kw_only=True)
class SetAgentState(Command):
    agent_id: str
    action: AgentAction
    reason: NotReadyReason = NotReadyReason.UNSPECIFIED
    queues: tuple[QueueMembership, ...] = ()  # LOGIN, UPDATE_PROFILE
    skills: tuple[Skill, ...] = ()  # LOGIN, UPDATE_PROFILE
    capacity: tuple[ChannelCapacity, ...] = ()  # LOGIN, UPDATE_PROFILE; voice 1 unless given
    wrap_up_s: float | None = None  # LOGIN; overrides the queue's wrap-up
    version: int = 0  # the agent's own version; 0 = unversioned, else must grow


@dataclass(frozen=True, kw_only=True)
class UpdatePriority(Command):
    call_id: str
    priority: int


@dataclass(frozen=True, kw_only=True)
class Tick(Command):
    """Let time pass: fires every deadline up to `now`."""


AnyCommand = (
    ConfigureQueue | OfferCall | AcceptReservation | RejectReservation | TimeoutReservation | CancelCall
    | AcceptCallback | TransferCall | EndCall | SetAgentState | UpdatePriority | Tick
)

# --------------------------------------------------------------------------------------------- decisions


@dataclass(frozen=True, kw_only=True)
class Assigned:
    agent_id: str
    reservation_id: str
    reservation_expires_at: float


@dataclass(frozen=True, kw_only=True)
class Queued:
    position: int
    expected_wait_s: float  # negative when it cannot be estimated


@dataclass(frozen=True, kw_only=True)
class Overflowed:
    destination: OverflowDestination
    to_queue_id: str = ""
    reason: str = ""


@dataclass(frozen=True, kw_only=True)
class CallbackOffered:
    position: int
    expected_wait_s: float


@dataclass(frozen=True, kw_only=True)
class Rejected:
    reason: str


Outcome = Assigned | Queued | Overflowed | CallbackOffered | Rejected


@dataclass(frozen=True, kw_only=True)
class Decision:
    call_id: str
    queue_id: str
    outcome: Outcome
    at: float


@dataclass(frozen=True, kw_only=True)
class Result:
    accepted: bool
    reason: str = ""  # why refused or a no-op (duplicate, stale version, unknown call...)
    decisions: tuple[Decision, ...] = ()


# --------------------------------------------------------------------------------------------- views


@dataclass(frozen=True, kw_only=True)
class QueueView:
    queue_id: str
    calls_waiting: int
    longest_wait_s: float
    agents_logged_in: int
    agents_idle: int
    expected_wait_s: float  # for a new caller


@dataclass(frozen=True, kw_only=True)
class AgentView:
    agent_id: str
    state: AgentStatus
    reason: NotReadyReason
    since: float
    call_ids: tuple[str, ...]
    reservation_ids: tuple[str, ...]
    version: int
    queues: tuple[QueueMembership, ...]
    skills: tuple[Skill, ...]
    capacity: tuple[ChannelCapacity, ...]
    load: tuple[ChannelCapacity, ...]
    available_channels: tuple[Channel, ...]  # channels on which the agent can take a call now
    misses: int


@dataclass(frozen=True, kw_only=True)
class CallView:
    call_id: str
    state: CallState
    queue_id: str
    priority: int
    virtual_enqueue_time: float
    entered_at: float
    channel: Channel
    callback: bool
    agent_id: str | None
    reservation_id: str | None
    position: int | None  # in the home queue while waiting
    expected_wait_s: float | None
    # Who may take it now: an agent in one of `eligible_queues` with `requirement`, or only `preferred_agent_id`.
    eligible_queues: tuple[str, ...]
    requirement: tuple[RequiredSkill, ...]
    preferred_agent_id: str | None
    relax_stage: int = field(default=0)
    aging_boost: int = field(default=0)  # priority gained by waiting (included in `priority`)
