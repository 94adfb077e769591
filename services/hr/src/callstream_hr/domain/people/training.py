"""Training: agents whose last N exams are all below the pass mark need individual training."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

SESSION_TYPES = ("business", "systems", "rules_ethics", "soft_skills")
# The handbook's pre-employment programme (seed 003): 1 theory (company, rules and regulations, processes),
# 2 business, 3 systems and skills, 4 on the floor (week 1 shadowing the instructor, week 2 answering
# under the instructor's review), then independent work.
NEW_HIRE_STAGES = ("theory", "business", "systems_skills", "on_site_shadowing", "on_site_supervised", "graduated")


@dataclass(frozen=True)
class ExamResult:
    employee_id: str
    taken_at: datetime
    score: float
    pass_mark: float


@dataclass(frozen=True)
class TrainingFlag:
    employee_id: str
    recent_scores: tuple[float, ...]
    reason: str


def flag_for_individual_training(results: Iterable[ExamResult], last_n: int = 3) -> list[TrainingFlag]:
    if last_n < 1:
        raise ValueError("last_n must be >= 1")
    by_emp: dict[str, list[ExamResult]] = defaultdict(list)
    for r in results:
        by_emp[r.employee_id].append(r)
    flags = []
    for emp, items in sorted(by_emp.items()):
        recent = sorted(items, key=lambda r: r.taken_at)[-last_n:]
        if len(recent) == last_n and all(r.score < r.pass_mark for r in recent):
            flags.append(TrainingFlag(emp, tuple(r.score for r in recent),
                                      f"last {last_n} exams below the pass mark"))
    return flags
