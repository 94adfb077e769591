"""Score 0-100 of an evaluation from its form (KPI 12 "monitoring score")."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from callstream_qa.domain.forms import Form, FormError


@dataclass(frozen=True)
class CriterionResult:
    criterion_id: str
    answer: str
    points: float       # weight earned (0 for N/A)
    max_points: float   # the criterion's weight (0 for N/A: dropped from the denominator)
    critical_failed: bool

    @property
    def missed(self) -> bool:
        """An error pointed out to the agent: an applicable criterion not fully earned."""
        return self.max_points > 0 and self.points < self.max_points


@dataclass(frozen=True)
class ScoreResult:
    score: float
    critical_failed: bool
    criteria: tuple[CriterionResult, ...]


def score(form: Form, answers: Mapping[str, str], *, complete: bool = True) -> ScoreResult:
    """Weighted score: sum(weight * fraction) / sum(weight of applicable criteria) * 100.

    N/A answers drop the criterion's weight from the denominator; a critical item answered "no" makes the
    score 0 with critical_failed. `complete=False` (drafts) scores the answered criteria only.
    """
    criteria = form.criteria
    unknown = sorted(set(answers) - set(criteria))
    if unknown:
        raise FormError(f"answers name criteria not on form {form.form_id} v{form.version}: {unknown}")
    missing = [cid for cid in criteria if cid not in answers]
    if complete and missing:
        raise FormError(f"criteria not answered: {missing}")
    results: list[CriterionResult] = []
    earned = possible = 0.0
    critical_failed = False
    for cid, criterion in criteria.items():
        if cid not in answers:
            continue
        fraction = criterion.fraction(answers[cid])
        if fraction is None:
            results.append(CriterionResult(cid, answers[cid], 0.0, 0.0, False))
            continue
        failed = criterion.critical and fraction < 1.0
        critical_failed = critical_failed or failed
        points = criterion.weight * fraction
        earned += points
        possible += criterion.weight
        results.append(CriterionResult(cid, answers[cid], points, criterion.weight, failed))
    if critical_failed:
        value = 0.0
    elif possible == 0:
        if complete and answers:
            raise FormError("every criterion is not applicable: nothing to score")
        value = 0.0
    else:
        value = round(100.0 * earned / possible, 2)
    return ScoreResult(value, critical_failed, tuple(results))
