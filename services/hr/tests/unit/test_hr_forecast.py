"""Seasonal forecast: exact on periodic data, accurate on noisy seasonal data, trend helps on growth."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from callstream_hr.domain.forecast import (
    SLOTS_PER_WEEK,
    IntervalFigures,
    SeasonalForecaster,
    WeeklyHistory,
    evaluate_holdout,
    history_from_intervals,
    mape,
    wape,
)


def _profile(peak: float) -> np.ndarray:
    slot = np.arange(SLOTS_PER_WEEK)
    hour = (slot % 48) / 2.0
    day = slot // 48
    daily = np.exp(-((hour - 11.0) ** 2) / 8.0) + 0.6 * np.exp(-((hour - 16.5) ** 2) / 5.0)
    daily[(hour < 7) | (hour >= 21)] = 0.0  # closed at night: intervals with no calls
    return peak * daily / daily.max() * np.where(day < 5, 1.0, 0.5)


def _history(weeks: int, peak: float, *, growth: float = 0.0, seed: int = 1, noise: bool = True) -> WeeklyHistory:
    rng = np.random.default_rng(seed)
    mean = np.stack([_profile(peak) * (1 + growth * w) for w in range(weeks)])
    calls = rng.poisson(mean).astype(np.float64) if noise else mean
    aht_mean = np.tile(240 + 40 * np.sin(np.arange(SLOTS_PER_WEEK) / 48 * np.pi), (weeks, 1))
    aht = np.where(calls > 0, rng.normal(aht_mean, 10.0) if noise else aht_mean, 0.0)
    return WeeklyHistory(calls, aht)


def test_periodic_history_is_forecast_exactly() -> None:
    h = _history(6, 200.0, noise=False)
    acc = evaluate_holdout(h, 2)
    assert acc.calls_mape == pytest.approx(0.0, abs=1e-12)
    assert acc.calls_wape == pytest.approx(0.0, abs=1e-12)
    assert acc.aht_mape == pytest.approx(0.0, abs=1e-12)
    assert acc.intervals == 2 * SLOTS_PER_WEEK


def test_noisy_seasonal_history_accuracy() -> None:
    h = _history(10, 300.0)
    acc = evaluate_holdout(h, 2, SeasonalForecaster(lookback_weeks=6, decay=0.9))
    # Poisson noise alone on ~100-300 calls per interval is a few percent.
    assert acc.calls_wape < 0.08
    assert acc.calls_mape < 0.20
    assert acc.aht_wape < 0.05
    # A longer, flatter lookback averages more noise away than the last week alone.
    last_week = evaluate_holdout(h, 2, SeasonalForecaster(lookback_weeks=1))
    assert acc.calls_wape < last_week.calls_wape


def test_trend_helps_on_growing_volume() -> None:
    h = _history(10, 300.0, growth=0.05)
    flat = evaluate_holdout(h, 2, SeasonalForecaster(lookback_weeks=4, decay=0.8))
    trend = evaluate_holdout(h, 2, SeasonalForecaster(lookback_weeks=4, decay=0.8, trend=True))
    assert trend.calls_wape < flat.calls_wape
    assert trend.calls_wape < 0.08


def test_forecast_shapes_and_aht_fallback() -> None:
    h = _history(3, 50.0)
    fc = SeasonalForecaster().forecast(h, horizon_weeks=3)
    assert fc.calls.shape == (3, SLOTS_PER_WEEK) and fc.aht_s.shape == (3, SLOTS_PER_WEEK)
    assert fc.flat_calls().shape == (3 * SLOTS_PER_WEEK,)
    night = 0  # Monday 00:00: never any calls → the history-wide call-weighted AHT
    expected = float((h.calls * h.aht_s).sum() / h.calls.sum())
    assert fc.aht_s[0, night] == pytest.approx(expected)
    assert np.all(fc.calls >= 0)


def test_weighted_average_of_same_slot() -> None:
    calls = np.array([[10.0, 0.0], [20.0, 0.0], [40.0, 4.0]])
    aht = np.array([[100.0, 0.0], [200.0, 0.0], [400.0, 300.0]])
    fc = SeasonalForecaster(lookback_weeks=3, decay=0.5).forecast(WeeklyHistory(calls, aht))
    w = np.array([0.25, 0.5, 1.0]) / 1.75
    assert fc.calls[0, 0] == pytest.approx(w @ calls[:, 0])
    assert fc.calls[0, 1] == pytest.approx(w[2] * 4)
    assert fc.aht_s[0, 0] == pytest.approx((w * calls[:, 0]) @ aht[:, 0] / (w @ calls[:, 0]))
    assert fc.aht_s[0, 1] == pytest.approx(300.0)


def test_from_flat_and_validation() -> None:
    flat = np.arange(2 * SLOTS_PER_WEEK, dtype=float)
    h = WeeklyHistory.from_flat(flat, np.full_like(flat, 200.0))
    assert h.weeks == 2 and h.slots_per_week == SLOTS_PER_WEEK
    with pytest.raises(ValueError):
        WeeklyHistory.from_flat(flat[:-1], flat[:-1])
    with pytest.raises(ValueError):
        WeeklyHistory.from_flat(-flat - 1, flat)
    with pytest.raises(ValueError):
        evaluate_holdout(h, 2)
    with pytest.raises(ValueError):
        SeasonalForecaster(decay=0.0)


def test_error_measures() -> None:
    assert mape([100, 0, 50], [110, 5, 40]) == pytest.approx((0.1 + 0.2) / 2)
    assert wape([100, 0, 50], [110, 5, 40]) == pytest.approx(25 / 150)
    assert wape([0, 0], [1, 1]) == 0.0


MONDAY = datetime(2026, 11, 2, tzinfo=UTC)
HALF_HOUR = timedelta(minutes=30)


def test_history_from_intervals_fills_gaps_and_unknown_aht() -> None:
    points = [IntervalFigures(MONDAY + 16 * HALF_HOUR, 10, 200.0),
              IntervalFigures(MONDAY + timedelta(weeks=1) + 17 * HALF_HOUR, 30, 300.0),
              IntervalFigures(MONDAY + 3 * HALF_HOUR, 2, None)]  # calls, none handled
    h = history_from_intervals(points, MONDAY, 2)
    assert h.weeks == 2 and h.calls.sum() == 42 and h.calls[1, 17] == 30 and h.calls[0, 0] == 0
    assert h.aht_s[0, 16] == 200 and h.aht_s[1, 17] == 300
    assert h.aht_s[0, 3] == pytest.approx((10 * 200 + 30 * 300) / 40)  # call-weighted AHT of the rest
    assert h.aht_s[0, 0] == 0  # no calls: AHT unused


@pytest.mark.parametrize(("points", "words"), [
    ([IntervalFigures(MONDAY + timedelta(minutes=10), 1, 100.0)], "is not a"),
    ([IntervalFigures(MONDAY - HALF_HOUR, 1, 100.0)], "is not a"),
    ([IntervalFigures(MONDAY + timedelta(weeks=1), 1, 100.0)], "is not a"),
    ([IntervalFigures(MONDAY, 1, 100.0), IntervalFigures(MONDAY, 2, 100.0)], "twice"),
    ([IntervalFigures(MONDAY, -1, 100.0)], ">= 0"),
])
def test_history_from_intervals_refuses_bad_points(points: list[IntervalFigures], words: str) -> None:
    with pytest.raises(ValueError, match=words):
        history_from_intervals(points, MONDAY, 1)
