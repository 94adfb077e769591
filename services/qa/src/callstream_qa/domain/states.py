"""Life cycle of an evaluation: draft -> submitted -> acknowledged, or disputed -> reviewed -> acknowledged."""

from __future__ import annotations

from enum import StrEnum


class Status(StrEnum):
    DRAFT = "draft"
    SUBMITTED = "submitted"
    ACKNOWLEDGED = "acknowledged"
    DISPUTED = "disputed"
    REVIEWED = "reviewed"
    DELETED = "deleted"


class IllegalTransition(Exception):
    def __init__(self, current: Status, action: str) -> None:
        allowed = sorted(a for (s, a) in TRANSITIONS if s is current)
        super().__init__(f"cannot {action} an evaluation that is {current.value} (allowed: {allowed or 'none'})")
        self.current = current
        self.action = action


TRANSITIONS: dict[tuple[Status, str], Status] = {
    (Status.DRAFT, "update"): Status.DRAFT,
    (Status.DRAFT, "submit"): Status.SUBMITTED,
    (Status.DRAFT, "delete"): Status.DELETED,
    (Status.SUBMITTED, "acknowledge"): Status.ACKNOWLEDGED,
    (Status.SUBMITTED, "dispute"): Status.DISPUTED,
    (Status.DISPUTED, "review"): Status.REVIEWED,
    (Status.REVIEWED, "acknowledge"): Status.ACKNOWLEDGED,
}

# Statuses whose score counts in reports (KPI 12).
SCORED = frozenset({Status.SUBMITTED, Status.ACKNOWLEDGED, Status.DISPUTED, Status.REVIEWED})


def transition(current: Status, action: str) -> Status:
    try:
        return TRANSITIONS[(current, action)]
    except KeyError:
        raise IllegalTransition(current, action) from None
