"""The KPI worker as a real process for the fault tests (issue 17): settings of its own, its figures read
over HTTP, readiness and progress polled with deadlines."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx
from scenarios import TOKEN, worker_settings

from callstream_devtools.testing import ServiceProcess
from callstream_kpi.config import KpiSettings

T = TypeVar("T")


def process_settings(kafka_bootstrap: str, chdb_dir: Path, prefix: str, **overrides: Any) -> KpiSettings:
    """A worker of its own (group, port, database) on its own chDB directory (one process per directory)."""
    base = worker_settings(kafka_bootstrap, f"chdb://{chdb_dir}", prefix)
    return KpiSettings(**{**base.model_dump(), **overrides})


def kpi_worker(settings: KpiSettings, log_path: Path) -> ServiceProcess:
    return ServiceProcess("callstream_kpi", settings, log_path)


def poll(what: str, probe: Callable[[], T | None], *, timeout: float, worker: ServiceProcess | None = None) -> T:
    """`probe()` until it returns something other than None, or fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if worker is not None and not worker.alive():
            raise AssertionError(f"the worker exited while waiting for {what}:\n{worker.log_tail()}")
        found = probe()
        if found is not None:
            return found
        time.sleep(0.3)  # polling the worker over HTTP with a deadline
    tail = worker.log_tail() if worker is not None else ""
    raise AssertionError(f"{what}: not within {timeout} s\n{tail}")


def api_get(settings: KpiSettings, path: str, params: dict[str, str] | None = None) -> httpx.Response | None:
    try:
        return httpx.get(f"http://127.0.0.1:{settings.http_port}{path}", params=params, timeout=30,
                         headers={"Authorization": f"Bearer {TOKEN}"})
    except httpx.TransportError:
        return None


def ready(settings: KpiSettings) -> bool | None:
    response = api_get(settings, "/readyz")
    return True if response is not None and response.status_code == 200 else None


def figures(settings: KpiSettings, start: str, end: str) -> dict[str, float] | None:
    """Offered, answered, abandoned, timed-out and ASA of [start, end) from the KPI API."""
    response = api_get(settings, "/v1/kpis", {"from": start, "to": end, "grain": "month"})
    if response is None or response.status_code != 200:
        return None
    total = response.json()["total"]
    counters = total["counters"]
    return {"offered": counters["offered"], "answered": counters["answered"], "abandoned": counters["abandoned"],
            "asa": total["asa"]}


def metric(settings: KpiSettings, name: str) -> float | None:
    """A Prometheus sample of the worker (first line starting with `name`)."""
    response = api_get(settings, "/metrics")
    if response is None or response.status_code != 200:
        return None
    for line in response.text.splitlines():
        if line.startswith(name):
            return float(line.rsplit(" ", 1)[1])
    return None
