"""`callstream plan week`: from a history file (a bank month or an Asterisk queue_log) to next week's roster of
named employees: forecast per queue and 30 minutes with its hold-out accuracy, agents per interval (Erlang A
with each queue's patience), shifts (CP-SAT) and the roster under the employees' contracts."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, tzinfo
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import typer

from callstream_cli.staffing_cmd import service_target

if TYPE_CHECKING:
    from callstream.call.v1 import call_events_pb2 as ce
    from callstream_hr.domain.history import QueueHistory
    from callstream_hr.domain.service_report import WeekService
    from callstream_hr.domain.shifts import ShiftTemplate
    from callstream_hr.service_layer.planning import QueueTargets, RosterPlan

app = typer.Typer(help="Workforce planning from history to roster.", no_args_is_help=True)

BANK_HEADER_START = "vru+line\t"


class Format(StrEnum):
    table = "table"
    json = "json"
    csv = "csv"


def _fail(message: str, code: int = 1) -> typer.Exit:
    typer.echo(message, err=True)
    return typer.Exit(code)


def _lines(path: Path) -> Iterator[str]:
    with path.open(encoding="utf-8", newline="") as fh:
        yield from fh


def read_call_events(path: Path) -> tuple[list[ce.CallEvent], Counter[str], list[str], str]:
    """The call events of a bank month or a queue_log (told apart by the bank's header), the rows that could
    not be mapped (count per reason, and the first few as FILE:LINE: reason) and the file's kind."""
    from callstream.call.v1 import call_events_pb2 as ce
    from callstream_ingest.domain.anonymous_bank import AnonymousBankMapper, RowDefect
    from callstream_ingest.domain.queue_log import LineDefect, QueueLogMapper

    try:
        with path.open(encoding="utf-8") as fh:
            first = fh.readline()
    except (OSError, UnicodeDecodeError) as exc:
        raise _fail(f"{path}: {exc}") from None
    kind = "anonymous-bank" if first.startswith(BANK_HEADER_START) else "queue_log"
    mapper = AnonymousBankMapper(str(path)) if kind == "anonymous-bank" else QueueLogMapper(str(path))
    events: list[ce.CallEvent] = []
    reasons: Counter[str] = Counter()
    examples: list[str] = []
    try:
        for item in mapper.map_lines(_lines(path)):
            if isinstance(item, RowDefect | LineDefect):
                reasons[item.reason_code] += 1
                if len(examples) < 5:
                    examples.append(f"{item.file}:{item.line}: {item.reason_code}: {item.message}")
            elif isinstance(item, ce.CallEvent):
                events.append(item)
    except UnicodeDecodeError as exc:
        raise _fail(f"{path}: not UTF-8 text ({exc})") from None
    return events, reasons, examples, kind


def _per_queue(options: list[str], name: str) -> dict[str, str]:
    out = {}
    for text in options:
        queue, sep, value = text.partition("=")
        if not sep or not queue or not value:
            raise typer.BadParameter(f"{text!r}: give QUEUE=VALUE", param_hint=name)
        out[queue] = value
    return out


def _templates(shift_hours: float, break_minutes: int, start_every_minutes: int) -> tuple[ShiftTemplate, ...]:
    from callstream_hr.domain.shifts import BreakRule, ShiftTemplate

    if shift_hours * 2 != int(shift_hours * 2) or break_minutes % 30 or start_every_minutes % 30:
        raise typer.BadParameter("shift hours, break and start step must be whole 30-minute slots")
    paid, brk = int(shift_hours * 2), break_minutes // 30
    length = paid + brk
    # The unpaid break starts in the middle two hours of the shift (the shift model picks the slot).
    breaks = (BreakRule(brk, max(1, length // 2 - 2), min(length - brk - 1, length // 2 + 1)),) if brk else ()
    return (ShiftTemplate(f"{shift_hours:g}h", length, tuple(range(0, 336, start_every_minutes // 30)), breaks),)


def _zone(name: str) -> tzinfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise typer.BadParameter(f"{name!r} is not a time zone (e.g. Asia/Jerusalem)",
                                 param_hint="--timezone") from None


def _next_monday(after: datetime, zone: tzinfo) -> datetime:
    local = after.astimezone(zone)
    monday = (local + timedelta(days=7 - local.weekday())).date()
    return datetime(monday.year, monday.month, monday.day, tzinfo=zone)


def _stored_targets(api: str, token: str | None) -> dict[str, QueueTargets]:
    from callstream_hr.adapters.kpi_history import KpiApiHistory
    from callstream_hr.service_layer.planning import HistoryUnavailable

    if not token:
        raise typer.BadParameter("--targets-api needs --token (or CALLSTREAM_TOKEN)", param_hint="--token")
    source = KpiApiHistory(api, token, 30.0)
    try:
        return source.queue_targets()
    except HistoryUnavailable as exc:
        raise _fail(f"cannot read the queues' targets: {exc}", 2) from None
    finally:
        source.close()


def _covered_queues(history: dict[str, QueueHistory], start: datetime, end: datetime) -> list[str]:
    """Queues with at least one call in every history week (the others cannot be forecast)."""
    weeks = int((end - start) / timedelta(days=7))
    out = []
    for queue_id, q in sorted(history.items()):
        seen = {int((p.start - start) / timedelta(days=7)) for p in q.intervals if start <= p.start < end}
        if len(seen) == weeks:
            out.append(queue_id)
    return out


@app.command("week")
def week(
    history_file: Path = typer.Argument(..., exists=True, dir_okay=False, help="a bank month or a queue_log"),
    employees_file: Path = typer.Option(..., "--employees", exists=True, dir_okay=False,
                                        help="employees CSV with contracts and skills (services/hr/README.md)"),
    queues: list[str] = typer.Option([], "--queue", help="queue to plan (repeat); default: every queue with "
                                                          "calls in each history week"),
    week_start: datetime | None = typer.Option(None, "--week", help="Monday to plan (local to --timezone); "
                                                                    "default: the one after the history"),
    weeks: int | None = typer.Option(None, min=2, max=52, help="history weeks; default: all whole weeks"),
    holdout: int = typer.Option(1, min=1, max=51, help="last history weeks held out to state the accuracy"),
    timezone: str | None = typer.Option(None, help="the center's zone; default: the bank's (Asia/Jerusalem) "
                                                   "for a bank file, UTC for a queue_log"),
    target: str = typer.Option("80/20", help="service level goal PERCENT/SECONDS of every queue"),
    queue_target: list[str] = typer.Option([], "--queue-target", help="QUEUE=PERCENT/SECONDS (repeat)"),
    patience: list[str] = typer.Option([], "--patience", help="QUEUE=SECONDS mean patience (repeat); default: "
                                                              "the stored one, else estimated from the "
                                                              "history's abandonments"),
    targets_api: str | None = typer.Option(None, "--targets-api", help="KPI API to read the queues' stored "
                                                                       "targets from (callstream targets)"),
    token: str | None = typer.Option(None, "--token", envvar="CALLSTREAM_TOKEN", help="KPI API reader token"),
    shrinkage: float = typer.Option(0.0, min=0, max=0.9, help="share of paid time lost to absence, training, "
                                                              "meetings (not breaks: the shifts place them)"),
    shift_hours: float = typer.Option(8.0, min=1, max=12, help="paid hours of a shift"),
    break_minutes: int = typer.Option(30, min=0, max=120, help="unpaid break in each shift"),
    start_every: int = typer.Option(60, min=30, max=1440, help="minutes between possible shift starts"),
    min_rest_hours: float = typer.Option(11.0, min=0, max=48, help="rest between two shifts of a person"),
    time_limit: float = typer.Option(20.0, min=1, max=600, help="seconds for each solver run"),
    out: Path | None = typer.Option(None, "--out", help="write the roster: .csv (one row a shift) or .json (all)"),
    replay: bool = typer.Option(False, "--replay", help="simulate the planned week with the roster and say, "
                                                        "interval by interval, whether the targets were met"),
    seed: int = typer.Option(1, help="the replay's random seed"),
    fmt: Format = typer.Option(Format.table, "--format", help="what to print"),
) -> None:
    """Next week's roster from a history file: forecast, agents, shifts and named employees."""
    from callstream_hr.adapters.call_events import records_from_events
    from callstream_hr.adapters.roster_files import InputFileError, read_employees, roster_csv
    from callstream_hr.domain.history import RecordedHistory, aggregate_history
    from callstream_hr.domain.roster import RosterRules
    from callstream_hr.service_layer.planning import QueueTargets, RosterOptions, plan_week

    try:
        employees = read_employees(employees_file)
    except InputFileError as exc:
        raise _fail(str(exc)) from None
    templates = _templates(shift_hours, break_minutes, start_every)
    events, defects, examples, kind = read_call_events(history_file)
    zone = _zone(timezone or ("Asia/Jerusalem" if kind == "anonymous-bank" else "UTC"))
    if defects:
        typer.echo(f"{history_file}: {sum(defects.values())} rows not used as calls: "
                   + ", ".join(f"{r} {n}" for r, n in defects.most_common()), err=True)
        for line in examples:
            typer.echo(f"  {line}", err=True)
    records = records_from_events(events)
    if not records:
        raise _fail(f"{history_file}: no call offered to a queue in the file")
    first, last = min(r.offered_at for r in records), max(r.offered_at for r in records)
    start = (week_start.replace(tzinfo=zone) if week_start and week_start.tzinfo is None else week_start) \
        or _next_monday(last, zone)
    # Whole weeks from the first call's day (its local midnight) to the planned week.
    first_day = first.astimezone(zone).replace(hour=0, minute=0, second=0, microsecond=0)
    history_weeks = weeks or int((start - first_day) / timedelta(days=7))
    if history_weeks < 2:
        raise _fail(f"{history_file}: the history before {start.isoformat()} has {history_weeks} whole week(s); "
                    "two or more are needed (one to fit, one to hold out)")
    history_start = start - history_weeks * timedelta(days=7)
    history = aggregate_history(records, start.astimezone(UTC))
    chosen = queues or _covered_queues(history, history_start, start)
    skipped = sorted(set(history) - set(chosen))
    if skipped and not queues:
        typer.echo(f"not planned (a history week without calls): {', '.join(skipped)}", err=True)
    if not chosen:
        raise _fail(f"{history_file}: no queue has calls in each of the {history_weeks} weeks before "
                    f"{start.isoformat()}")
    sl, t_s = service_target(target)
    per_queue_target = {q: service_target(v) for q, v in _per_queue(queue_target, "--queue-target").items()}
    per_queue_patience = {}
    for q, v in _per_queue(patience, "--patience").items():
        try:
            per_queue_patience[q] = float(v)
        except ValueError:
            raise typer.BadParameter(f"{q}={v}: the patience is a number of seconds", param_hint="--patience") from None
    stored = _stored_targets(targets_api, token) if targets_api else {}
    targets = []
    for q in chosen:
        known = stored.get(q)
        q_sl, q_t = per_queue_target.get(q, (known.sl_target, known.t_s) if known else (sl, t_s))
        estimated = history[q].patience_s if q in history else None
        fallback = known.patience_s if known and known.patience_s is not None else estimated
        targets.append(QueueTargets(q, q_sl, q_t, per_queue_patience.get(q, fallback)))
    try:
        plan = plan_week(RecordedHistory.of(history), targets, start,
                         RosterOptions(templates, employees, RosterRules(min_rest_hours=min_rest_hours,
                                                                         time_limit_s=time_limit),
                                       shrinkage=shrinkage, shift_time_limit_s=time_limit),
                         history_weeks=history_weeks, holdout_weeks=holdout)
    except ValueError as exc:  # BadHistory included
        raise _fail(f"cannot plan: {exc}") from None
    doc = plan.as_dict()
    teams = {e.employee_id: e.team_id for e in employees}
    if all(teams.values()):
        doc["schedule"] = plan.schedule(f"plan-{start.date().isoformat()}", teams)
    if replay:
        from callstream_cli.closed_loop import replay as replay_week

        doc["replay"] = _replay_doc(replay_week(plan, seed=seed), plan)
    if out is not None:
        out.write_text(roster_csv(plan.roster_rows()) if out.suffix == ".csv" else json.dumps(doc, indent=2))
    if fmt is Format.json:
        typer.echo(json.dumps(doc, indent=2))
    elif fmt is Format.csv:
        typer.echo(roster_csv(plan.roster_rows()), nl=False)
    else:
        _print_summary(plan, kind)
        if "replay" in doc:
            _print_replay(doc["replay"])
    if plan.roster.unfilled or plan.roster.status not in ("OPTIMAL", "FEASIBLE"):
        raise _fail(f"the roster is incomplete ({plan.roster.status}): "
                    f"{sum(u.count for u in plan.roster.unfilled)} shift(s) have nobody who may work them", 3)


def _print_summary(plan: RosterPlan, kind: str) -> None:
    f = plan.forecast
    typer.echo(f"{kind} history: {f.history_weeks} weeks from {f.history_start:%Y-%m-%d %H:%M} UTC; "
               f"planned week from {f.week_start:%Y-%m-%d %H:%M} UTC")
    typer.echo(f"{'queue':10} {'calls':>7} {'WAPE':>6} {'AHT WAPE':>8} {'patience':>8} {'target':>7} "
               f"{'peak':>5} {'shifts':>6}")
    for q, t in zip(f.queues, plan.targets, strict=True):
        peak = max(r.agents for r in q.staffing or [])
        patience = f"{t.patience_s:.0f}s" if t.patience_s else "-"
        typer.echo(f"{q.queue_id:10} {sum(q.calls):7.0f} {q.accuracy.calls_wape:6.1%} {q.accuracy.aht_wape:8.1%} "
                   f"{patience:>8} {t.sl_target:.0%}/{t.t_s:g}s {peak:5d} "
                   f"{plan.shift_plans[q.queue_id].headcount:6d}")
    r = plan.roster
    typer.echo(f"roster ({r.status}): {len(r.shifts)} shifts for {r.employees} employees, {r.paid_hours:.1f} paid h "
               f"(LP bound {plan.lp_bound_hours:.1f} h, gap {plan.gap:.1%}), cost {r.cost:.2f}, "
               f"weekend spread {r.weekend_spread}, night spread {r.night_spread}")


def _replay_doc(week: WeekService, plan: RosterPlan) -> dict[str, Any]:
    """The replay's figures: per queue the week's service level and share of intervals meeting the target;
    every judged interval with its calls, service level and verdict."""
    queues = []
    for t in plan.targets:
        sl = week.service_level(t.queue_id)
        queues.append({"queue_id": t.queue_id, "sl_target": t.sl_target, "t_s": t.t_s, "service_level": sl,
                       "intervals_judged": len(week.judged(t.queue_id)),
                       "share_met": week.share_met(t.queue_id),
                       "share_met_plain": week.share_met(t.queue_id, plain=True)})
    return {"share_met": week.share_met(), "share_met_plain": week.share_met(plain=True), "queues": queues,
            "intervals": [{"queue_id": i.queue_id, "start": i.start.isoformat(), "offered": i.offered,
                           "answered": i.answered, "abandoned": i.abandoned, "service_level": i.service_level,
                           "met": i.met, "met_plain": i.met_plain} for i in week.judged()]}


def _print_replay(doc: dict[str, Any]) -> None:
    typer.echo(f"replay: {doc['share_met']:.1%} of intervals met their target "
               f"({doc['share_met_plain']:.1%} at or above it)")
    for q in doc["queues"]:
        sl = "-" if q["service_level"] is None else f"{q['service_level']:.1%}"
        typer.echo(f"  {q['queue_id']:10} week SL {sl:>6} (target {q['sl_target']:.0%}/{q['t_s']:g}s), "
                   f"{q['share_met']:.1%} of {q['intervals_judged']} intervals met")
    short = [i for i in doc["intervals"] if i["met"] is False]
    for i in short[:20]:
        typer.echo(f"  short: {i['queue_id']} {i['start']} SL {i['service_level']:.0%} of "
                   f"{i['answered'] + i['abandoned']} calls")
    if len(short) > 20:
        typer.echo(f"  ... {len(short) - 20} more short intervals (--format json lists them all)")
