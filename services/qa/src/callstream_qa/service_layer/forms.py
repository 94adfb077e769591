"""Evaluation forms: read, validated, saved (in place while unused, as a new version once an evaluation uses one)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from callstream_qa.adapters.orm import FormRow
from callstream_qa.domain.forms import Criterion, Form, Scale, Section
from callstream_qa.service_layer.common import Conflict, NotFound
from callstream_qa.service_layer.unit_of_work import UnitOfWork


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


def get_form(uow: UnitOfWork, form_id: str, version: int | None = None) -> FormRow:
    row = uow.forms.latest(form_id) if version is None else uow.forms.get(form_id, version)
    if row is None:
        raise NotFound(f"form {form_id!r}" + (f" version {version}" if version else "") + " not found")
    return row


def create_form(uow: UnitOfWork, form_id: str, name: str, definition: dict[str, Any], now: datetime) -> FormRow:
    """A new form (version 1); an existing id is refused: editing is `edit_form`."""
    if uow.forms.latest(form_id) is not None:
        raise Conflict(f"form {form_id!r} exists: PUT /forms/{form_id} edits it")
    return save_form(uow, form_id, name, definition, now)


def edit_form(uow: UnitOfWork, form_id: str, name: str, definition: dict[str, Any], now: datetime) -> FormRow:
    """Edit an existing form (NotFound otherwise)."""
    get_form(uow, form_id)
    return save_form(uow, form_id, name, definition, now)


def save_form(uow: UnitOfWork, form_id: str, name: str, definition: dict[str, Any], now: datetime) -> FormRow:
    """Create the form, or edit its newest version: in place while unused, as a new version once in use."""
    current = uow.forms.latest(form_id)
    version = 1 if current is None else current.version
    if current is not None and uow.forms.in_use(form_id, current.version):
        version += 1
        current = None
    form_from_definition(form_id, version, name, definition)  # validates (FormError)
    if current is None:
        current = FormRow(form_id=form_id, version=version, created_at=now)
        uow.forms.add(current)
    current.name = name
    current.definition = definition
    uow.commit()
    return current
