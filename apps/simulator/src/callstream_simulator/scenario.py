"""The scenario file of the virtual PBX: pydantic models of the YAML, strict (unknown fields are errors).

Times of day are hours from the scenario's `start` (0 = start). Durations are seconds unless the field
name says minutes or hours. Distributions are mappings with a `dist` field (see `Distribution`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator


class ScenarioError(ValueError):
    """A scenario that cannot be loaded; the message names the file and the field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Constant(_Strict):
    dist: Literal["constant"]
    value: float = Field(ge=0)


class Exponential(_Strict):
    dist: Literal["exponential"]
    mean: float = Field(gt=0)


class Uniform(_Strict):
    dist: Literal["uniform"]
    low: float = Field(ge=0)
    high: float = Field(ge=0)

    @model_validator(mode="after")
    def _order(self) -> Uniform:
        if self.high < self.low:
            raise ValueError("high must be >= low")
        return self


class LogNormal(_Strict):
    """Parametrised by the mean and standard deviation of the value itself (not of its logarithm)."""

    dist: Literal["lognormal"]
    mean: float = Field(gt=0)
    sd: float = Field(gt=0)


class Gamma(_Strict):
    """Parametrised by mean and coefficient of variation (cv = 1 is the exponential)."""

    dist: Literal["gamma"]
    mean: float = Field(gt=0)
    cv: float = Field(gt=0)


Distribution = Annotated[Constant | Exponential | Uniform | LogNormal | Gamma, Field(discriminator="dist")]


class Arrivals(_Strict):
    """Poisson arrivals, either a mean count per interval (time-varying) or a constant hourly rate."""

    interval_minutes: float = Field(default=30, gt=0)
    per_interval: list[float] | None = None  # mean calls in each interval from the start
    rate_per_hour: float | None = Field(default=None, ge=0)
    hours: float | None = Field(default=None, gt=0)  # with rate_per_hour

    @field_validator("per_interval")
    @classmethod
    def _non_negative(cls, v: list[float] | None) -> list[float] | None:
        if v is not None and any(x < 0 for x in v):
            raise ValueError("mean calls per interval must be >= 0")
        return v

    @model_validator(mode="after")
    def _one_form(self) -> Arrivals:
        if (self.per_interval is None) == (self.rate_per_hour is None):
            raise ValueError("give either per_interval or rate_per_hour (with hours)")
        if self.rate_per_hour is not None and self.hours is None:
            raise ValueError("rate_per_hour needs hours")
        return self

    def intervals(self) -> list[tuple[float, float, float]]:
        """(start_s, length_s, mean calls) per interval."""
        length = self.interval_minutes * 60
        if self.per_interval is not None:
            return [(i * length, length, m) for i, m in enumerate(self.per_interval)]
        assert self.rate_per_hour is not None and self.hours is not None
        total = self.hours * 3600
        out, t = [], 0.0
        while t < total:
            span = min(length, total - t)
            out.append((t, span, self.rate_per_hour * span / 3600))
            t += span
        return out


class Ivr(_Strict):
    ivr_id: str = "main"
    share: float = Field(default=1.0, ge=0, le=1)  # of the call type's calls that go through the IVR
    self_service_share: float = Field(default=0.0, ge=0, le=1)  # of those, served by the IVR alone
    duration: Distribution = Constant(dist="constant", value=30)


class Hold(_Strict):
    share: float = Field(ge=0, le=1)  # of answered calls that are put on hold once
    duration: Distribution


class Transfer(_Strict):
    share: float = Field(ge=0, le=1)  # of answered calls transferred (at the end of the first conversation)
    to_queue: str
    warm_share: float = Field(default=0.0, ge=0, le=1)  # warm: the agent consults (caller on hold) first
    consult: Distribution = Constant(dist="constant", value=20)


class Repeat(_Strict):
    share: float = Field(ge=0, le=1)  # of unresolved (or abandoned) callers who call again
    delay_minutes: Distribution


class CallType(_Strict):
    call_type: str
    queue_id: str
    dialed_number: str = ""
    priority: int = 0
    arrivals: Arrivals
    ivr: Ivr | None = None
    talk: Distribution
    hold: Hold | None = None
    acw: Distribution = Constant(dist="constant", value=0)
    patience: Distribution | None = None  # None: the caller never hangs up
    transfer: Transfer | None = None
    repeat: Repeat | None = None
    resolved_share: float = Field(default=1.0, ge=0, le=1)
    hard_call_share: float = Field(default=0.0, ge=0, le=1)
    callback_accept_share: float = Field(default=0.0, ge=0, le=1)  # when the router offers a callback
    disposition: str = "done"


class SkillSpec(_Strict):
    skill_id: str
    proficiency: int = Field(default=3, ge=1, le=5)


class QueueSpec(_Strict):
    queue_id: str
    strategy: Literal["longest_idle", "least_occupied", "fewest_calls", "round_robin", "skills"] = "longest_idle"
    max_length: int | None = Field(default=None, ge=0)
    max_wait_s: float | None = Field(default=None, gt=0)
    overflow_to_queue: str | None = None  # with max_wait_s or max_length
    callback_threshold_s: float | None = Field(default=None, gt=0)


class Membership(_Strict):
    queue_id: str
    priority: int = 0


class Break(_Strict):
    at_h: float = Field(ge=0)
    minutes: float = Field(gt=0)
    reason: Literal["break", "lunch", "training", "meeting", "coaching", "other"] = "break"


class Lateness(_Strict):
    share: float = Field(ge=0, le=1)
    minutes: Distribution


class AgentGroup(_Strict):
    """`count` agents with the same profile; ids `<id_prefix>-001`, ..."""

    id_prefix: str
    count: int = Field(ge=1)
    team_id: str = ""
    queues: list[Membership] = Field(min_length=1)
    skills: list[SkillSpec] = []
    shift_start_h: float = Field(default=0, ge=0)
    shift_end_h: float | None = Field(default=None, gt=0)  # None: until the last call is over
    breaks: list[Break] = []
    lateness: Lateness | None = None
    absence_share: float = Field(default=0.0, ge=0, le=1)  # of the group, absent the whole day
    # Scatter shift starts (and ends) uniformly over this many minutes, so a group does not log in at once.
    stagger_minutes: float = Field(default=0, ge=0)


class RouterSettings(_Strict):
    # Upper bound of after-call work: the router's wrap-up timer; the simulator ends wrap-up itself before it.
    acw_cap_s: float = Field(default=900, gt=0)
    cool_down_s: float = Field(default=90, ge=0)  # must match the router's (gRPC) configuration
    reservation_timeout_s: float = Field(default=15, gt=0)


class Scenario(_Strict):
    name: str
    seed: int = 0
    start: datetime = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
    source: str = "simulator"
    caller_salt: str = "callstream-sim"
    trunks: int | None = Field(default=None, ge=1)  # simultaneous calls in the center; None = unlimited
    service_level_s: float = Field(default=20, ge=0)
    ring: Distribution = Constant(dist="constant", value=3)  # seconds an agent's phone rings before answer
    router: RouterSettings = RouterSettings()
    queues: list[QueueSpec] = Field(min_length=1)
    call_types: list[CallType] = Field(min_length=1)
    agents: list[AgentGroup] = Field(min_length=1)

    @field_validator("start")
    @classmethod
    def _aware(cls, v: datetime) -> datetime:
        if v.tzinfo is None:
            raise ValueError("start must carry a timezone (e.g. 2026-01-05T08:00:00Z)")
        return v.astimezone(UTC)

    @model_validator(mode="after")
    def _references(self) -> Scenario:
        ids = [q.queue_id for q in self.queues]
        if len(ids) != len(set(ids)):
            raise ValueError("queues: a queue_id appears twice")
        known = set(ids)
        for i, q in enumerate(self.queues):
            if q.overflow_to_queue is not None and q.overflow_to_queue not in known:
                raise ValueError(f"queues.{i}.overflow_to_queue: unknown queue {q.overflow_to_queue!r}")
        for i, ct in enumerate(self.call_types):
            if ct.queue_id not in known:
                raise ValueError(f"call_types.{i}.queue_id: unknown queue {ct.queue_id!r}")
            if ct.transfer is not None and ct.transfer.to_queue not in known:
                raise ValueError(f"call_types.{i}.transfer.to_queue: unknown queue {ct.transfer.to_queue!r}")
        for i, g in enumerate(self.agents):
            for j, m in enumerate(g.queues):
                if m.queue_id not in known:
                    raise ValueError(f"agents.{i}.queues.{j}.queue_id: unknown queue {m.queue_id!r}")
            if g.shift_end_h is not None and g.shift_end_h <= g.shift_start_h:
                raise ValueError(f"agents.{i}.shift_end_h: must be after shift_start_h")
        prefixes = [g.id_prefix for g in self.agents]
        if len(prefixes) != len(set(prefixes)):
            raise ValueError("agents: an id_prefix appears twice")
        return self


def _format(exc: ValidationError, where: str) -> str:
    lines = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "(scenario)"
        lines.append(f"{where}: {loc}: {err['msg']}")
    return "\n".join(lines)


def parse_scenario(data: object, where: str = "scenario") -> Scenario:
    try:
        return Scenario.model_validate(data)
    except ValidationError as exc:
        raise ScenarioError(_format(exc, where)) from None


def load_scenario(path: str | Path) -> Scenario:
    p = Path(path)
    try:
        data = yaml.safe_load(p.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ScenarioError(f"{p}: {exc}") from exc
    return parse_scenario(data, str(p))
