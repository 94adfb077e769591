"""Files the planner's tests feed `callstream plan week`: a synthetic queue_log and an employees CSV."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

HEADER = ("employee_id,name,team_id,skills,min_weekly_hours,max_weekly_hours,min_days_off,unavailable_days,"
          "nights_allowed,hourly_cost")


def queue_log_file(path: Path, weeks: int, seed: int) -> None:
    """Asterisk queue_log lines of `weeks` weeks of one queue: Poisson arrivals, answered after a short wait."""
    rng = np.random.default_rng(seed)
    start = datetime(2026, 11, 2, tzinfo=UTC)
    lines = []
    n = 0
    for slot in range(weeks * 336):
        hour = (slot % 48) / 2
        for offset in sorted(rng.uniform(0, 1800, rng.poisson(6.0 if 8 <= hour < 20 else 1.0))):
            n += 1
            t = int((start + timedelta(minutes=30 * slot, seconds=float(offset))).timestamp())
            wait, talk = int(rng.integers(0, 15)), int(rng.exponential(180)) + 1
            call = f"{t}.{n}"
            lines += [f"{t}|{call}|support|NONE|ENTERQUEUE||555{n:04d}|1",
                      f"{t + wait}|{call}|support|SIP/1001|CONNECT|{wait}|{call}.b|1",
                      f"{t + wait + talk}|{call}|support|SIP/1001|COMPLETECALLER|{wait}|{talk}|1"]
    path.write_text("\n".join(lines) + "\n")


def employees_file(path: Path, rows: list[str]) -> Path:
    path.write_text(HEADER + "\n" + "\n".join(rows) + "\n")
    return path
