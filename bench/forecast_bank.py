"""Forecast accuracy on the bank's real January 1999: Callstream's seasonal forecast against statsforecast.

History: `/work/shared/data/anonymous-bank/january.txt` read as `callstream plan week` reads it (ingest's
mapper, the HR call records), offered calls per queue and half hour in the bank's zone, weeks from Monday
1999-01-04 00:00 (four whole weeks to the 31st). Held-out weeks: 3 and 4 of those, each forecast from the
weeks before it (rolling origin: 2 weeks of history for week 3, 3 for week 4), the same for every model:

* Callstream: `SeasonalForecaster()` (day of week × half hour, decayed weights), as the planner uses it;
* statsforecast 2.x: MSTL with daily and weekly seasonality (48, 336) and an AutoETS trend; AutoETS with a
  weekly season (336; statsforecast fits a non-seasonal model where the season is too long for ETS);
  SeasonalNaive(336) (last week again) as the floor every model should beat.

Figures: calls WAPE per queue and over all queues' intervals; and the agents each forecast implies (Erlang C,
80/20, with the interval's actual AHT so only the calls differ) against the agents the actual calls needed:
agents WAPE and agent-hours. Run `uv run python -m bench.forecast_bank` (about a minute on 2 cores).
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt

from bench.common import machine
from callstream_cli.plan_cmd import read_call_events
from callstream_hr.adapters.call_events import records_from_events
from callstream_hr.domain.erlang import required_agents
from callstream_hr.domain.forecast import (
    IntervalFigures,
    SeasonalForecaster,
    WeeklyHistory,
    history_from_intervals,
    wape,
)

BANK = Path("/work/shared/data/anonymous-bank/january.txt")
ZONE = ZoneInfo("Asia/Jerusalem")
FIRST_MONDAY = datetime(1999, 1, 4, tzinfo=ZONE)
WEEKS = 4
HELD_OUT = (2, 3)  # week indexes (0-based): weeks 3 and 4
SLOTS = 336

Matrix = npt.NDArray[np.float64]


def _history() -> dict[str, WeeklyHistory]:
    from callstream_hr.domain.history import aggregate_history

    events, _, _, _ = read_call_events(BANK)
    start = FIRST_MONDAY
    end = start + WEEKS * timedelta(days=7)
    records = [r for r in records_from_events(events) if start <= r.offered_at < end]
    out = {}
    for queue_id, q in aggregate_history(records, start).items():
        points: list[IntervalFigures] = q.intervals
        out[queue_id] = history_from_intervals(points, start, WEEKS)
    return out


def _statsforecast(train: Matrix, models: list[str]) -> dict[str, Matrix]:
    import pandas as pd
    from statsforecast import StatsForecast
    from statsforecast.models import MSTL, AutoETS, SeasonalNaive

    y = train.reshape(-1)
    df = pd.DataFrame({"unique_id": "q", "ds": pd.date_range("1999-01-04", periods=y.size, freq="30min"), "y": y})
    chosen = {"MSTL": MSTL(season_length=[48, 336], trend_forecaster=AutoETS(model="ZZN")),
              "AutoETS": AutoETS(season_length=336), "SeasonalNaive": SeasonalNaive(season_length=336)}
    sf = StatsForecast(models=[chosen[m] for m in models], freq="30min", n_jobs=1)
    fc = sf.forecast(df=df, h=SLOTS)
    # negative forecasts are impossible counts: the planner would staff 0 there
    return {m: np.clip(fc[m].to_numpy(dtype=np.float64), 0.0, None) for m in models}


def _agents(calls: Matrix, aht: Matrix) -> Matrix:
    return np.array([required_agents(float(c), 1800.0, float(a), 0.8, 20.0).raw_agents if c > 0 and a > 0 else 0
                     for c, a in zip(calls, aht, strict=True)], dtype=np.float64)


def main() -> None:
    if not BANK.exists():
        print(f"forecast_bank: skipped, {BANK} is not on this machine")
        return
    t0 = time.perf_counter()
    history = _history()
    load_s = time.perf_counter() - t0
    models = ["Callstream", "MSTL", "AutoETS", "SeasonalNaive"]
    sf_models = models[1:]
    actual_all: list[Matrix] = []
    predicted: dict[str, list[Matrix]] = {m: [] for m in models}
    fit_s = {"Callstream": 0.0, "statsforecast": 0.0}  # the three statsforecast models run together
    per_queue: dict[str, dict[str, float]] = {}
    agents: dict[str, list[float]] = {m: [0.0, 0.0] for m in models}  # Σ|error|, Σ actual
    for queue_id, h in sorted(history.items()):
        if (h.calls.sum(axis=1) == 0).any():
            continue  # a week without calls cannot be forecast (the planner leaves such queues out too)
        q_actual: list[Matrix] = []
        q_pred: dict[str, list[Matrix]] = {m: [] for m in models}
        for week in HELD_OUT:
            train, actual = h.head(week), h.calls[week]
            t = time.perf_counter()
            ours = SeasonalForecaster().forecast(train).calls[0]
            fit_s["Callstream"] += time.perf_counter() - t
            t = time.perf_counter()
            theirs = _statsforecast(train.calls, sf_models)
            fit_s["statsforecast"] += time.perf_counter() - t
            forecasts = {"Callstream": ours, **theirs}
            need = _agents(actual, h.aht_s[week])
            for m in models:
                q_pred[m].append(forecasts[m])
                implied = _agents(forecasts[m], h.aht_s[week])
                agents[m][0] += float(np.abs(implied - need).sum())
                agents[m][1] += float(need.sum())
            q_actual.append(actual)
        actual_q = np.concatenate(q_actual)
        actual_all.append(actual_q)
        per_queue[queue_id] = {}
        for m in models:
            pred_q = np.concatenate(q_pred[m])
            predicted[m].append(pred_q)
            per_queue[queue_id][m] = wape(actual_q, pred_q)
    actual = np.concatenate(actual_all)
    print(f"forecast accuracy on the bank's January 1999, held-out weeks 3 and 4 (rolling origin)  [{machine()}]")
    print(f"  read {BANK.name}: {load_s:.1f} s; queues {', '.join(per_queue)}; {actual.sum():,.0f} held-out calls")
    print(f"  {'calls WAPE':24}" + "".join(f"{m:>15}" for m in models))
    for queue_id, figures in per_queue.items():
        print(f"  {queue_id:24}" + "".join(f"{figures[m]:15.1%}" for m in models))
    print(f"  {'all queues':24}" + "".join(f"{wape(actual, np.concatenate(predicted[m])):15.1%}" for m in models))
    print(f"  {'agents WAPE (Erlang C)':24}" + "".join(f"{agents[m][0] / agents[m][1]:15.1%}" for m in models))
    print(f"  fit + forecast: Callstream {fit_s['Callstream']:.3f} s, statsforecast's three models together "
          f"{fit_s['statsforecast']:.1f} s")


if __name__ == "__main__":
    main()
