"""Calibration: several evaluators score one contact; spread and each one's deviation from the consensus."""

from __future__ import annotations

import statistics
from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class CalibrationStats:
    consensus: float
    reference: str | None      # evaluator whose score is the consensus, None = mean of all
    spread: float              # max - min
    stdev: float               # population standard deviation
    deviations: dict[str, float]  # evaluator -> score - consensus
    mean_abs_deviation: float


def calibration_stats(scores: Mapping[str, float], reference: str | None = None) -> CalibrationStats:
    if not scores:
        raise ValueError("a calibration needs at least one score")
    if reference is not None and reference not in scores:
        raise ValueError(f"reference evaluator {reference!r} has not scored this contact")
    values = list(scores.values())
    consensus = scores[reference] if reference is not None else statistics.fmean(values)
    deviations = {who: round(value - consensus, 2) for who, value in sorted(scores.items())}
    others = [abs(d) for who, d in deviations.items() if who != reference]
    return CalibrationStats(
        consensus=round(consensus, 2), reference=reference, spread=round(max(values) - min(values), 2),
        stdev=round(statistics.pstdev(values), 2), deviations=deviations,
        mean_abs_deviation=round(statistics.fmean(others), 2) if others else 0.0,
    )
