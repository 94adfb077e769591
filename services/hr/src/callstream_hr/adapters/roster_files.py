"""The planner's files: employees with contracts (CSV in) and the roster (CSV out).

Employees CSV, one employee a line after the header::

    employee_id,name,team_id,skills,min_weekly_hours,max_weekly_hours,min_days_off,unavailable_days,nights_allowed,hourly_cost
    E001,Dana Levi,T1,PS;PE,24,40,2,sat;sun,yes,21.5

``skills`` are queue ids separated by ``;``; ``unavailable_days`` weekday names (mon ... sun) separated by
``;`` (may be empty); ``nights_allowed`` yes/no. Every error names the file and the line.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from callstream_hr.domain.roster import Contract, Employee

EMPLOYEE_COLUMNS = ("employee_id", "name", "team_id", "skills", "min_weekly_hours", "max_weekly_hours",
                    "min_days_off", "unavailable_days", "nights_allowed", "hourly_cost")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
ROSTER_COLUMNS = ("employee_id", "name", "queue_id", "template", "start", "end", "breaks", "paid_hours", "extra")


class InputFileError(ValueError):
    """A file the planner cannot use; the message names the file and the line."""


def _number(where: str, column: str, text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise InputFileError(f"{where}: {column} {text!r} is not a number") from None


def _employee(where: str, row: dict[str, str]) -> Employee:
    missing = [c for c in ("employee_id", "skills") if not row.get(c, "").strip()]
    if missing:
        raise InputFileError(f"{where}: {', '.join(missing)} is empty")
    days = set()
    for name in filter(None, (d.strip().lower() for d in row.get("unavailable_days", "").split(";"))):
        if name not in WEEKDAYS:
            raise InputFileError(f"{where}: unavailable_days {name!r} is not one of {', '.join(WEEKDAYS)}")
        days.add(WEEKDAYS.index(name))
    nights = row.get("nights_allowed", "yes").strip().lower() or "yes"
    if nights not in ("yes", "no"):
        raise InputFileError(f"{where}: nights_allowed {nights!r} is not yes or no")
    min_days_off = _number(where, "min_days_off", row.get("min_days_off", "").strip() or "2")
    if min_days_off != int(min_days_off):
        raise InputFileError(f"{where}: min_days_off {min_days_off} is not a whole number")
    try:
        contract = Contract(
            min_weekly_hours=_number(where, "min_weekly_hours", row.get("min_weekly_hours", "").strip() or "0"),
            max_weekly_hours=_number(where, "max_weekly_hours", row.get("max_weekly_hours", "").strip() or "40"),
            min_days_off=int(min_days_off), unavailable_days=frozenset(days), nights_allowed=nights == "yes",
            hourly_cost=_number(where, "hourly_cost", row.get("hourly_cost", "").strip() or "1"))
    except ValueError as exc:
        if isinstance(exc, InputFileError):
            raise
        raise InputFileError(f"{where}: {exc}") from None
    skills = frozenset(filter(None, (s.strip() for s in row["skills"].split(";"))))
    employee_id = row["employee_id"].strip()
    return Employee(employee_id, row.get("name", "").strip() or employee_id, skills, contract,
                    row.get("team_id", "").strip())


def parse_employees(text: str, file: str) -> tuple[Employee, ...]:
    reader = csv.DictReader(io.StringIO(text))
    header = reader.fieldnames or []
    unknown = [c for c in header if c not in EMPLOYEE_COLUMNS]
    if "employee_id" not in header or "skills" not in header or unknown:
        extra = f" (unknown: {', '.join(unknown)})" if unknown else ""
        raise InputFileError(f"{file}:1: the header must have employee_id and skills, and only columns of "
                             f"{', '.join(EMPLOYEE_COLUMNS)}{extra}")
    out: list[Employee] = []
    seen: dict[str, int] = {}
    for row in reader:
        where = f"{file}:{reader.line_num}"
        if None in row:
            raise InputFileError(f"{where}: more fields than the header has")
        employee = _employee(where, {k: v or "" for k, v in row.items()})
        if employee.employee_id in seen:
            raise InputFileError(f"{where}: employee {employee.employee_id} is already on line "
                                 f"{seen[employee.employee_id]}")
        seen[employee.employee_id] = reader.line_num
        out.append(employee)
    if not out:
        raise InputFileError(f"{file}: no employee")
    return tuple(out)


def read_employees(path: Path) -> tuple[Employee, ...]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputFileError(f"{path}: {exc}") from None
    return parse_employees(text, str(path))


def roster_csv(rows: Sequence[dict[str, Any]]) -> str:
    """The roster rows (``RosterPlan.roster_rows``) as CSV; breaks as ``start/end`` pairs separated by ``;``."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=ROSTER_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({**r, "breaks": ";".join(f"{b['start']}/{b['end']}" for b in r["breaks"]),
                         "extra": "yes" if r["extra"] else "no"})
    return out.getvalue()
