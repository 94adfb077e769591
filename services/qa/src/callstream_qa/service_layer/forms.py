"""Evaluation forms: read, validated, saved (in place while unused, as a new version once an evaluation uses one)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from callstream_qa.adapters.orm import EvaluationRow, FormRow
from callstream_qa.domain.forms import Criterion, Form, Scale, Section
from callstream_qa.service_layer.common import NotFound


def form_from_definition(form_id: str, version: int, name: str, definition: Mapping[str, Any]) -> Form:
    sections = []
    for s in definition["sections"]:
        criteria = tuple(
            Criterion(criterion_id=c["criterion_id"], label=c.get("label", ""), weight=float(c["weight"]),
                      scale=Scale(c.get("scale", "yes_no")), critical=bool(c.get("critical", False)),
                      max_points=int(c.get("max_points", 0)), allow_na=bool(c.get("allow_na", True)))
            for c in s["criteria"])
        sections.append(Section(section_id=s["section_id"], title=s.get("title", ""), criteria=criteria))
    return Form(form_id=form_id, version=version, name=name, sections=tuple(sections))


def to_form(row: FormRow) -> Form:
    return form_from_definition(row.form_id, row.version, row.name, row.definition)


def latest_form(session: Session, form_id: str) -> FormRow | None:
    return session.scalars(select(FormRow).where(FormRow.form_id == form_id)
                           .order_by(FormRow.version.desc()).limit(1)).first()


def get_form(session: Session, form_id: str, version: int | None = None) -> FormRow:
    row = latest_form(session, form_id) if version is None else session.get(FormRow, (form_id, version))
    if row is None:
        raise NotFound(f"form {form_id!r}" + (f" version {version}" if version else "") + " not found")
    return row


def form_in_use(session: Session, form_id: str, version: int) -> bool:
    used = session.scalar(select(func.count()).select_from(EvaluationRow).where(
        EvaluationRow.form_id == form_id, EvaluationRow.form_version == version))
    return bool(used)


def save_form(session: Session, form_id: str, name: str, definition: dict[str, Any], now: datetime) -> FormRow:
    """Create the form, or edit its newest version: in place while unused, as a new version once in use."""
    current = latest_form(session, form_id)
    version = 1 if current is None else current.version
    if current is not None and form_in_use(session, form_id, current.version):
        version += 1
        current = None
    form_from_definition(form_id, version, name, definition)  # validates (FormError)
    if current is None:
        current = FormRow(form_id=form_id, version=version, created_at=now)
        session.add(current)
    current.name = name
    current.definition = definition
    session.flush()
    return current
