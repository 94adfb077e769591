"""A real Asterisk's AMI stream through the ingest service (a real process, killed with SIGKILL and restarted
while calls wait) and the KPI worker: the KPI API's counters equal the figures read from the same run's
queue_log without Callstream code (`asterisk_records.read_queue_log`).

AMI has no replay: what Asterisk said while no adapter was logged in is gone. The test works out from the
queue_log which calls lived during that outage (plus a margin for events the killed process had read but not
yet delivered) and holds the API to exact figures for every other call: the calls offered before the first
of those, and after the last. For the calls of the outage it checks what AMI can recover: the calls still
waiting at the reconnect come back from QueueStatus and are counted; only calls that began and ended inside
the outage are missing. After the run one more call, later than the last end plus the wrap-up and the
worker's allowed lateness, moves the event-time watermark past the run, and no call of the run may then be
open but those whose end fell in the outage (AMI never told it; the session time-out closes them).

What cannot be exact with AMI times against queue_log's whole seconds: a duration differs by less than a
second per call (sums are held to that), and so a call whose queue_log wait equals a whole-second threshold
(service level, short abandon) may fall on either side of it in AMI's microseconds (those calls are counted
from the queue_log and allowed for, nothing more).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from asterisk_records import QueueLogFigures, center_members, center_wrap_up, read_queue_log
from scenarios import TOKEN, isolated_topics, worker_settings

from callstream_devtools.local_asterisk import LocalAsterisk
from callstream_devtools.local_kafka import free_port
from callstream_ingest.adapters.ami_session import AmiSession
from callstream_ingest.domain.call_plan import LoadShape, originate_headers, plan_calls
from callstream_ingest.service_layer.call_generator import CallGenerator
from callstream_kpi.bootstrap import build_worker
from callstream_kpi.entrypoints.worker import KpiWorker

pytestmark = pytest.mark.integration
SEED = 14
CALLS = 300
SL_THRESHOLD_S = 3.0
SHORT_ABANDON_S = 3.0
KILL_AT_CALL = 130  # of 300: mid-load
# Calls that wait across the outage, whatever the machine's speed: the test pauses the members of HELD_QUEUE,
# originates these calls (a caller number of their own, a patience longer than any restart), kills the adapter
# once they wait, and unpauses the members only when the restarted adapter has recovered them from QueueStatus.
HELD_CALLS = 2
HELD_QUEUE = "sales"
HELD_CALLER = "+40729999999"
HELD_PATIENCE_S = 300.0
# Events the killed process had read but Kafka had not confirmed are lost with it: calls with events this
# close before the kill count as calls of the outage.
UNDELIVERED_MARGIN_S = 2
COUNTS = ("offered", "answered", "abandoned", "overflowed", "transferred_blind")


class IngestProcess:
    """`python -m callstream_ingest` with the AMI client on, its output in a file of its own."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.env, self.log = env, log
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> int:
        """Start; returns where its output begins in the log."""
        offset = self.log.stat().st_size if self.log.exists() else 0
        with self.log.open("ab") as out:
            self.process = subprocess.Popen([sys.executable, "-m", "callstream_ingest"], env=self.env, stdout=out,
                                            stderr=subprocess.STDOUT, start_new_session=True)
        return offset

    def wait_logged_in(self, offset: int, timeout: float = 60.0) -> float:
        """Until this run of the process says its AMI session logged in; the wall time it was seen."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process is not None and self.process.poll() is None, self.log.read_text()[-3000:]
            with self.log.open("rb") as f:
                f.seek(offset)
                if b": logged in" in f.read():
                    return time.time()
            time.sleep(0.05)  # polling the process's log with a deadline: it offers nothing to wait on
        raise TimeoutError(f"no AMI login in {timeout} s:\n{self.log.read_text()[-3000:]}")

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(30)


@dataclass
class QueueLogCall:
    callid: str
    entered: int
    last: int
    caller: str
    lines: list[str]
    verbs: list[str]


def queue_log_calls(path: Path) -> dict[str, QueueLogCall]:
    calls: dict[str, QueueLogCall] = {}
    for line in path.read_text().splitlines():
        parts = line.split("|")
        if len(parts) < 5:  # a line Asterisk is writing while the test reads the live file
            continue
        epoch, callid, _queue, _agent, verb, *data = parts
        if callid in ("NONE", "MANAGER"):
            continue
        if verb == "ENTERQUEUE":  # data: url|callerid|position
            calls[callid] = QueueLogCall(callid, int(epoch), int(epoch), data[1] if len(data) > 1 else "", [], [])
        call = calls[callid]
        call.last = int(epoch)
        call.lines.append(line)
        call.verbs.append(verb)
    return calls


def held_waiting(queue_log: Path) -> int:
    """How many held calls wait in their queue now (entered, not yet answered, abandoned or out)."""
    return sum(c.caller == HELD_CALLER and leaving_epoch(c) is None for c in queue_log_calls(queue_log).values())


async def poll(condition: Callable[[], Awaitable[bool]], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not await condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout:.0f} s")
        await asyncio.sleep(0.1)  # polling Asterisk's record or the adapter's metrics with a deadline


async def pause(session: AmiSession, queue: str, paused: bool) -> None:
    for interface in center_members(queue):
        reply = await session.action("QueuePause", {"Queue": queue, "Interface": interface,
                                                    "Paused": "true" if paused else "false", "Reason": "test-outage"})
        assert reply.get("Response", "").lower() == "success", reply


def recovered_calls(metrics: str) -> float:
    match = re.search(r'callstream_ingest_switch_recovered_calls_total\{adapter="ami"\} (\S+)', metrics)
    return float(match.group(1)) if match else 0.0


def figures_of(calls: list[QueueLogCall], folder: Path, name: str) -> QueueLogFigures:
    """read_queue_log over the lines of these calls only (a queue_log of its own)."""
    path = folder / name
    path.write_text("".join(line + "\n" for call in sorted(calls, key=lambda c: c.entered) for line in call.lines))
    return read_queue_log(path, sl_threshold_s=SL_THRESHOLD_S, short_abandon_s=SHORT_ABANDON_S,
                          wrap_up_s=center_wrap_up())


def epoch_of(call: QueueLogCall, verb: str) -> int | None:
    """The time of the call's first `verb` line."""
    for line, v in zip(call.lines, call.verbs, strict=True):
        if v == verb:
            return int(line.split("|")[0])
    return None


def queue_wait(call: QueueLogCall, verb: str) -> int | None:
    """Seconds from ENTERQUEUE to the call's `verb` line, by the queue_log's own times."""
    at = epoch_of(call, verb)
    return None if at is None else at - call.entered


def iso(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat()


@pytest.mark.timeout(900)
def test_ami_figures_equal_the_queue_log_across_a_killed_adapter(kafka_bootstrap: str, clickhouse_url: str,
                                                                  tmp_path: Path) -> None:
    prefix = isolated_topics(kafka_bootstrap)
    wrap = center_wrap_up()
    assert wrap == {"sales": 2.0, "support": 1.0}
    settings = worker_settings(kafka_bootstrap, clickhouse_url, prefix).model_copy(
        update={"default_short_abandon_s": SHORT_ABANDON_S})
    worker = build_worker(settings)
    calls = plan_calls(SEED, LoadShape(calls=CALLS))
    moments: dict[str, float] = {}
    got: dict[str, dict[str, Any]] = {}
    metrics: dict[str, str] = {}

    with LocalAsterisk(tmp_path / "asterisk") as asterisk:
        ingest_port = free_port()
        env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap, "TOPIC_PREFIX": prefix,
               "AMI_HOST": "127.0.0.1", "AMI_PORT": str(asterisk.ami_port), "AMI_USERNAME": asterisk.ami_user,
               "AMI_SECRET": asterisk.secret, "HTTP_PORT": str(ingest_port), "CALLER_SALT": "ami-test-salt",
               "QUEUE_WRAPUP_S": ",".join(f"{q}={s:g}" for q, s in wrap.items()), "LOG_LEVEL": "INFO"}
        ingest = IngestProcess(env, tmp_path / "ingest.log")
        try:
            ingest.wait_logged_in(ingest.start())

            async def until() -> None:
                kill_now = asyncio.Event()

                def progress(n: int) -> None:
                    if n >= KILL_AT_CALL:
                        kill_now.set()

                async def outage() -> None:
                    await kill_now.wait()
                    recovered = {"calls": 0.0}
                    held = [replace(call, token=f"held{i}", queue=HELD_QUEUE, caller_number=HELD_CALLER,
                                    patience_s=HELD_PATIENCE_S, transfer=False, max_wait_s=0)
                            for i, call in enumerate(plan_calls(SEED + 2, LoadShape(calls=HELD_CALLS)))]
                    session = AmiSession("127.0.0.1", asterisk.ami_port)
                    await session.open(asterisk.ami_user, asterisk.secret)
                    try:
                        await pause(session, HELD_QUEUE, True)
                        for call in held:
                            reply = await session.action("Originate", originate_headers(call, "incoming"),
                                                         call.variables())
                            assert reply.get("Response", "").lower() == "success", reply

                        async def all_held_wait() -> bool:
                            return held_waiting(asterisk.queue_log) == HELD_CALLS

                        await poll(all_held_wait, "the held calls in the queue")
                        moments["kill"] = time.time()
                        ingest.kill()
                        offset = ingest.start()
                        moments["reconnect"] = await asyncio.to_thread(ingest.wait_logged_in, offset)

                        async def all_held_recovered() -> bool:
                            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{ingest_port}") as http:
                                with contextlib.suppress(httpx.HTTPError):
                                    recovered["calls"] = recovered_calls((await http.get("/metrics")).text)
                            return recovered["calls"] >= HELD_CALLS

                        await poll(all_held_recovered, "QueueStatus's held calls through the restarted adapter")
                        await pause(session, HELD_QUEUE, False)
                    finally:
                        await session.close()

                restart = asyncio.create_task(outage())
                generator = CallGenerator("127.0.0.1", asterisk.ami_port, asterisk.ami_user, asterisk.secret)
                report = await generator.run(calls, on_progress=progress)
                await restart
                assert report.originated == CALLS and not report.refused
                # The run's record; then one more call, later than the last end plus the longest wrap-up plus
                # the worker's allowed lateness: its events move the event-time watermark past every call of
                # the run, as the next calls of a live center would.
                record = tmp_path / "run.queue_log"
                record.write_bytes(asterisk.queue_log.read_bytes())
                sentinel = replace(plan_calls(SEED + 1, LoadShape(calls=1))[0],
                                   at_s=settings.allowed_lateness_s + max(wrap.values()) + 3)
                await CallGenerator("127.0.0.1", asterisk.ami_port, asterisk.ami_user, asterisk.secret).run(
                    [sentinel])
                later = set(queue_log_calls(asterisk.queue_log)) - set(queue_log_calls(record))
                await settle(worker, settings.http_port, record, later, tmp_path, moments, got)
                async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{ingest_port}", timeout=30) as http:
                    metrics["text"] = (await http.get("/metrics")).text

            asyncio.run(worker.serve(until))
        finally:
            ingest.stop()
    check(got, metrics["text"])


def leaving_epoch(call: QueueLogCall) -> int | None:
    """When the caller left the queue (answered, abandoned, left by a timeout, key or empty queue)."""
    times = [epoch_of(call, verb) for verb in ("CONNECT", "ABANDON", "EXITWITHTIMEOUT", "EXITWITHKEY", "EXITEMPTY")]
    return min((t for t in times if t is not None), default=None)


async def settle(worker: KpiWorker, port: int, queue_log: Path, later: set[str], folder: Path,
                 moments: dict[str, float], got: dict[str, dict[str, Any]]) -> None:
    """Works out the windows from the run's queue_log, then polls the KPI API and the sessionizer (with a
    deadline) until the API's figures for the windows equal the queue_log's and no call is open but those
    whose end fell in the outage (and the `later` calls after the run), or the deadline passes; what they said
    last goes to `got` for `check`."""
    calls = queue_log_calls(queue_log)
    outage_start = int(moments["kill"]) - UNDELIVERED_MARGIN_S
    outage_end = int(moments["reconnect"]) + 1
    of_outage = [c for c in calls.values() if c.entered <= outage_end and c.last >= outage_start]
    first_enter = min(c.entered for c in calls.values())
    last_enter = max(c.entered for c in calls.values())
    # Every call offered in [a, b) is left out of the exact comparison: the calls of the outage and a few
    # around them; calls offered before a lived wholly before the outage, those from b on wholly after it.
    a = min([outage_start, *(c.entered for c in of_outage)])
    b = max([outage_end + 1, *(c.entered + 1 for c in of_outage)])
    windows = {"before": (first_enter, a), "after": (b, last_enter + 1)}
    # rings no one answered are counted by when they rang (call_events), not by the call's offer
    rona = [int(line.split("|")[0]) for c in calls.values() for line in c.lines if "|RINGNOANSWER|" in line]
    for name, (lo, hi) in windows.items():
        got[name] = {"window": (lo, hi), "rona": sum(lo <= t < hi for t in rona),
                     "expected": figures_of([c for c in calls.values() if lo <= c.entered < hi], folder,
                                            f"{name}.queue_log")}
    got["outage"] = {
        "kill": moments["kill"], "reconnect": moments["reconnect"],
        "window": (a, b), "all": calls,
        "in_window": [c for c in calls.values() if a <= c.entered < b],
        # what AMI never saw: calls that began and ended while no adapter was logged in (or delivering)
        "unseen": [c for c in of_outage if c.entered >= outage_start and c.last <= outage_end],
        # the held calls: waiting from before the kill until the restarted adapter had recovered them
        "held": [c for c in calls.values() if c.caller == HELD_CALLER],
    }
    # the calls whose end AMI never told: the sessionizer still holds them (until the session time-out): those
    # that ended in the outage
    # and those answered in it whose caller hung up first at the end: app_queue then publishes AgentComplete
    # without the caller's channel, and only a session that saw the AgentConnect knows whose call it ends
    end_unknown = {c.callid for c in of_outage if outage_start <= c.last <= outage_end
                   or outage_start <= (epoch_of(c, "CONNECT") or 0) <= outage_end}
    last_end = max(c.last for c in calls.values())
    got["open"] = {"end_unknown": end_unknown, "later": later}

    deadline = time.monotonic() + 240
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=60,
                                 headers={"Authorization": f"Bearer {TOKEN}"}) as http:
        while True:
            done = True
            for name, (lo, hi) in [*windows.items(), ("outage", (a, b))]:
                response = await http.get("/v1/kpis", params={"from": iso(lo), "to": iso(hi), "grain": "30m",
                                                             "sl_threshold_s": SL_THRESHOLD_S})
                if response.status_code != 200:
                    done = False
                    continue
                got[name]["api"] = response.json()["total"]["counters"]
                if name in windows:
                    expected = got[name]["expected"]
                    done &= all(got[name]["api"][k] == getattr(expected, k) for k in COUNTS)
            open_ids = set(worker.pipeline.sessionizer.open_call_ids())
            watermark = worker.pipeline.sessionizer.watermark.current
            past = watermark is not None and watermark.timestamp() > last_end + 1 + max(center_wrap_up().values())
            got["open"].update(ids=open_ids, watermark_past=past)
            if (done and past and open_ids <= end_unknown | later) or time.monotonic() > deadline:
                return
            await asyncio.sleep(1)  # polling the worker's progress with a deadline


def check(got: dict[str, dict[str, Any]], metrics: str) -> None:
    outage = got["outage"]
    all_calls: dict[str, QueueLogCall] = outage["all"]
    verbs = [v for c in all_calls.values() for v in c.verbs]
    # the load the issue asks for: calls wait, some abandon (some short), a timeout, transfers, RONA
    assert len(all_calls) == CALLS + HELD_CALLS
    for verb in ("ABANDON", "CONNECT", "BLINDTRANSFER", "RINGNOANSWER", "EXITWITHTIMEOUT"):
        assert verb in verbs, verb
    checked = short = 0
    for name in ("before", "after"):
        expected: QueueLogFigures = got[name]["expected"]
        api = got[name].get("api")
        assert api is not None, f"no KPI API answer for {name}"
        assert expected.duration_mismatches == []
        for key in COUNTS:
            assert api[key] == getattr(expected, key), (name, key, api[key], getattr(expected, key))
        assert api["ring_no_answers"] == got[name]["rona"], name
        # durations: AMI's microseconds against queue_log's whole seconds, less than a second a call
        assert abs(api["sum_talk_s"] - expected.sum_talk_s) < max(1, expected.answered), name
        assert abs(api["sum_queue_s_answered"] - expected.sum_queue_s_answered) < max(1, expected.answered), name
        # a wait of exactly the threshold in whole seconds may be either side of it in microseconds
        lo, hi = got[name]["window"]
        in_window = [c for c in all_calls.values() if lo <= c.entered < hi]
        on_sl = sum(queue_wait(c, "CONNECT") == SL_THRESHOLD_S for c in in_window)
        on_short = sum(queue_wait(c, "ABANDON") == SHORT_ABANDON_S for c in in_window)
        assert expected.answered_within_t - on_sl <= api["answered_within_t"] <= expected.answered_within_t, name
        assert expected.short_abandons - on_short <= api["short_abandons"] <= expected.short_abandons, name
        checked, short = checked + expected.offered, short + expected.short_abandons
    assert short > 0 and checked >= CALLS // 2, (short, checked)  # the comparison covers most calls

    # The outage: every call AMI could know of is counted once; the calls waiting at the reconnect came back
    # from QueueStatus (the killed process's events of them, if delivered, have the same ids).
    held: list[QueueLogCall] = outage["held"]
    # (queue_log's whole seconds: a call that left at second L left before L + 1)
    assert len(held) == HELD_CALLS and all(c.entered <= outage["kill"] and (leaving_epoch(c) or 0) + 1 > outage[
        "reconnect"] for c in held), [c.lines for c in held]
    assert recovered_calls(metrics) >= HELD_CALLS
    # Not counted (yet): calls AMI never saw, and calls whose end it never saw (open until the time-out).
    not_counted = {c.callid for c in outage["unseen"]} | (got["open"]["ids"] - got["open"]["later"])
    offered = outage["api"]["offered"]
    assert len(outage["in_window"]) - len(not_counted) <= offered <= len(outage["in_window"]), (
        offered, len(outage["in_window"]), len(outage["unseen"]), len(got["open"]["ids"]))

    # Every call of the run closed once the watermark passed its end plus the wrap-up, but those whose end AMI
    # could not tell (above): they close at the session time-out, flagged timed out.
    assert got["open"]["watermark_past"]
    assert got["open"]["ids"] <= got["open"]["end_unknown"] | got["open"]["later"], got["open"]["ids"]
