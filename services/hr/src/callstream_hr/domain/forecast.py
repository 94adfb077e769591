"""Seasonal forecast of offered calls and AHT per interval (day-of-week × time-of-day).

History is a matrix of whole weeks: ``calls[w, s]`` and ``aht_s[w, s]`` for week ``w`` (oldest
first) and slot ``s`` of the week (default 336 = 7 days × 48 half-hours, slot 0 = Monday 00:00 in
whatever time zone the caller aligned the data to).

Model (:class:`SeasonalForecaster`)
    * calls: weighted average of the same slot over the last ``lookback_weeks`` weeks, weight
      ``decay**age`` (age 0 = most recent week);
    * optional trend: a least-squares line through the weekly totals of the last
      ``trend_weeks`` weeks; the seasonal average (which sits at the weighted mean age of its
      weeks) is scaled by ``line(target week) / line(weighted mean week)``;
    * AHT: the same weighted average, additionally weighted by each week's calls in that slot (a
      slot's AHT from 2 calls should not count like one from 200); slots without calls in the
      whole lookback fall back to the call-weighted AHT of all history.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import numpy.typing as npt

__all__ = [
    "SLOTS_PER_WEEK",
    "Forecast",
    "HoldoutAccuracy",
    "IntervalFigures",
    "SeasonalForecaster",
    "WeeklyHistory",
    "evaluate_holdout",
    "history_from_intervals",
    "mape",
    "wape",
]

SLOTS_PER_WEEK = 7 * 48

FloatArray = npt.NDArray[np.float64]


def _as_matrix(values: Sequence[float] | npt.ArrayLike, slots_per_week: int, name: str) -> FloatArray:
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim == 1:
        if arr.size % slots_per_week:
            raise ValueError(f"{name}: length {arr.size} is not a whole number of weeks of {slots_per_week} slots")
        arr = arr.reshape(-1, slots_per_week)
    if arr.ndim != 2 or arr.shape[1] != slots_per_week:
        raise ValueError(f"{name}: expected shape (weeks, {slots_per_week})")
    if not np.all(np.isfinite(arr)) or np.any(arr < 0):
        raise ValueError(f"{name}: values must be finite and >= 0")
    return arr


@dataclass(frozen=True)
class WeeklyHistory:
    """Offered calls and AHT (seconds) per slot, shape ``(weeks, slots_per_week)``, oldest week first."""

    calls: FloatArray
    aht_s: FloatArray

    def __post_init__(self) -> None:
        if self.calls.shape != self.aht_s.shape or self.calls.ndim != 2 or self.calls.shape[0] < 1:
            raise ValueError("calls and aht_s must be matrices of the same shape with at least one week")

    @classmethod
    def from_flat(
        cls,
        calls: Sequence[float] | npt.ArrayLike,
        aht_s: Sequence[float] | npt.ArrayLike,
        slots_per_week: int = SLOTS_PER_WEEK,
    ) -> WeeklyHistory:
        """Build from flat per-interval series that start on the first slot of a week."""
        return cls(_as_matrix(calls, slots_per_week, "calls"), _as_matrix(aht_s, slots_per_week, "aht_s"))

    @property
    def weeks(self) -> int:
        return int(self.calls.shape[0])

    @property
    def slots_per_week(self) -> int:
        return int(self.calls.shape[1])

    def head(self, weeks: int) -> WeeklyHistory:
        return WeeklyHistory(self.calls[:weeks], self.aht_s[:weeks])

    def tail(self, weeks: int) -> WeeklyHistory:
        return WeeklyHistory(self.calls[self.weeks - weeks :], self.aht_s[self.weeks - weeks :])


@dataclass(frozen=True, slots=True)
class IntervalFigures:
    """Offered calls and AHT of one interval as a history source reports them; ``aht_s`` is None when
    no call of the interval was handled (all abandoned, say)."""

    start: datetime
    offered: float
    aht_s: float | None


def history_from_intervals(
    points: Iterable[IntervalFigures], week_start: datetime, weeks: int, interval: timedelta = timedelta(minutes=30)
) -> WeeklyHistory:
    """Whole weeks from ``week_start`` as a :class:`WeeklyHistory`.

    An interval missing from ``points`` had no calls (sources leave empty intervals out). An interval
    with calls but no AHT gets the call-weighted AHT of the rest of the history: the forecaster
    weights AHT by calls, so a 0 there would pull the slot's AHT down.
    """
    if weeks < 1:
        raise ValueError("weeks must be >= 1")
    slots = int(timedelta(days=7) / interval)
    if timedelta(days=7) % interval:
        raise ValueError(f"an interval of {interval} does not divide a week")
    calls = np.zeros(weeks * slots)
    aht = np.zeros(weeks * slots)
    unknown_aht = np.zeros(weeks * slots, dtype=bool)
    seen: set[int] = set()
    for p in points:
        offset = p.start - week_start
        index, rest = divmod(offset, interval)
        if rest or not 0 <= index < weeks * slots:
            raise ValueError(f"interval {p.start.isoformat()} is not a {interval} interval of the "
                             f"{weeks} week(s) from {week_start.isoformat()}")
        if index in seen:
            raise ValueError(f"interval {p.start.isoformat()} is given twice")
        if p.offered < 0 or (p.aht_s is not None and p.aht_s < 0):
            raise ValueError(f"interval {p.start.isoformat()}: offered calls and AHT must be >= 0")
        seen.add(index)
        calls[index] = p.offered
        if p.aht_s is None:
            unknown_aht[index] = p.offered > 0
        else:
            aht[index] = p.aht_s
    known = (calls > 0) & ~unknown_aht
    if unknown_aht.any() and known.any():
        aht[unknown_aht] = float((calls[known] * aht[known]).sum() / calls[known].sum())
    return WeeklyHistory.from_flat(calls, aht, slots)


@dataclass(frozen=True)
class Forecast:
    """Forecast per slot, shape ``(horizon_weeks, slots_per_week)``."""

    calls: FloatArray
    aht_s: FloatArray

    def flat_calls(self) -> FloatArray:
        return self.calls.reshape(-1)

    def flat_aht_s(self) -> FloatArray:
        return self.aht_s.reshape(-1)


@dataclass(frozen=True, slots=True)
class SeasonalForecaster:
    lookback_weeks: int = 4
    decay: float = 0.7
    trend: bool = False
    trend_weeks: int = 8

    def __post_init__(self) -> None:
        if self.lookback_weeks < 1:
            raise ValueError("lookback_weeks must be >= 1")
        if not 0.0 < self.decay <= 1.0:
            raise ValueError("decay must be in (0, 1]")
        if self.trend_weeks < 2:
            raise ValueError("trend_weeks must be >= 2")

    def forecast(self, history: WeeklyHistory, horizon_weeks: int = 1) -> Forecast:
        """Forecast the ``horizon_weeks`` weeks that follow ``history``."""
        if horizon_weeks < 1:
            raise ValueError("horizon_weeks must be >= 1")
        k = min(self.lookback_weeks, history.weeks)
        calls = history.calls[-k:]
        aht = history.aht_s[-k:]
        ages = np.arange(k - 1, -1, -1, dtype=np.float64)  # oldest ... newest(0)
        weights = self.decay**ages
        weights /= weights.sum()
        base_calls = weights @ calls

        cw = weights[:, None] * calls
        cw_sum = cw.sum(axis=0)
        total_calls = float(history.calls.sum())
        fallback_aht = float((history.calls * history.aht_s).sum() / total_calls) if total_calls > 0 else 0.0
        with np.errstate(invalid="ignore", divide="ignore"):
            base_aht = np.where(cw_sum > 0, (cw * aht).sum(axis=0) / cw_sum, fallback_aht)

        factors = np.ones(horizon_weeks)
        if self.trend and history.weeks >= 2:
            tw = min(self.trend_weeks, history.weeks)
            totals = history.calls[-tw:].sum(axis=1)
            x = np.arange(history.weeks - tw, history.weeks, dtype=np.float64)
            slope, intercept = np.polyfit(x, totals, 1)
            mean_week = float(weights @ np.arange(history.weeks - k, history.weeks, dtype=np.float64))
            anchor = slope * mean_week + intercept
            targets = slope * np.arange(history.weeks, history.weeks + horizon_weeks) + intercept
            if anchor > 0:
                factors = np.clip(targets / anchor, 0.0, None)
        out_calls = factors[:, None] * base_calls[None, :]
        out_aht = np.repeat(base_aht[None, :], horizon_weeks, axis=0)
        return Forecast(calls=out_calls, aht_s=out_aht)


def mape(actual: npt.ArrayLike, predicted: npt.ArrayLike) -> float:
    """Mean absolute percentage error over points whose actual is > 0 (0.0 if there are none)."""
    a = np.asarray(actual, dtype=np.float64).reshape(-1)
    p = np.asarray(predicted, dtype=np.float64).reshape(-1)
    mask = a > 0
    if not mask.any():
        return 0.0
    return float(np.mean(np.abs(a[mask] - p[mask]) / a[mask]))


def wape(actual: npt.ArrayLike, predicted: npt.ArrayLike, weights: npt.ArrayLike | None = None) -> float:
    """Weighted absolute percentage error ``Σ w|a − p| / Σ w·a`` (w = 1 by default)."""
    a = np.asarray(actual, dtype=np.float64).reshape(-1)
    p = np.asarray(predicted, dtype=np.float64).reshape(-1)
    w = np.ones_like(a) if weights is None else np.asarray(weights, dtype=np.float64).reshape(-1)
    denom = float((w * np.abs(a)).sum())
    if denom == 0:
        return 0.0
    return float((w * np.abs(a - p)).sum() / denom)


@dataclass(frozen=True, slots=True)
class HoldoutAccuracy:
    """Accuracy on held-out weeks (fractions, e.g. 0.08 = 8 %).

    Calls MAPE skips intervals with no calls; AHT errors are over intervals that had calls, and
    AHT WAPE is weighted by the actual calls of each interval.
    """

    holdout_weeks: int
    intervals: int
    calls_mape: float
    calls_wape: float
    aht_mape: float
    aht_wape: float


def evaluate_holdout(
    history: WeeklyHistory,
    holdout_weeks: int,
    forecaster: SeasonalForecaster | None = None,
) -> HoldoutAccuracy:
    """Fit on all but the last ``holdout_weeks`` weeks, forecast them and score the forecast."""
    if not 1 <= holdout_weeks < history.weeks:
        raise ValueError("holdout_weeks must be >= 1 and leave at least one training week")
    model = forecaster if forecaster is not None else SeasonalForecaster()
    train = history.head(history.weeks - holdout_weeks)
    test = history.tail(holdout_weeks)
    fc = model.forecast(train, horizon_weeks=holdout_weeks)
    has_calls = test.calls > 0
    return HoldoutAccuracy(
        holdout_weeks=holdout_weeks,
        intervals=int(test.calls.size),
        calls_mape=mape(test.calls, fc.calls),
        calls_wape=wape(test.calls, fc.calls),
        aht_mape=mape(test.aht_s[has_calls], fc.aht_s[has_calls]),
        aht_wape=wape(test.aht_s[has_calls], fc.aht_s[has_calls], weights=test.calls[has_calls]),
    )
