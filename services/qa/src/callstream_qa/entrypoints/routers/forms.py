"""Evaluation forms: create, edit (a new version), list, read."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query
from sqlalchemy import select
from sqlalchemy.orm import Session

from callstream_core.db import now
from callstream_qa.adapters.orm import FormRow
from callstream_qa.entrypoints.dependencies import Caller, as_db, as_qa, as_reader
from callstream_qa.entrypoints.schemas import VERSION_MAX, FormBody, FormIn
from callstream_qa.service_layer import common, forms

router = APIRouter(tags=["forms"])


def form_json(row: FormRow, in_use: bool) -> dict[str, Any]:
    return {"form_id": row.form_id, "version": row.version, "name": row.name, "in_use": in_use,
            "sections": row.definition["sections"], "created_at": common.utc(row.created_at)}


@router.post("/forms", status_code=201)
def create_form(body: FormIn, caller: Caller = as_qa, s: Session = as_db) -> dict[str, Any]:
    if forms.latest_form(s, body.form_id) is not None:
        raise common.Conflict(f"form {body.form_id!r} exists: PUT /forms/{body.form_id} edits it")
    row = forms.save_form(s, body.form_id, body.name, body.model_dump(include={"sections"}), now())
    return form_json(row, False)


@router.put("/forms/{form_id}")
def edit_form(form_id: str, body: FormBody, caller: Caller = as_qa, s: Session = as_db) -> dict[str, Any]:
    forms.get_form(s, form_id)
    row = forms.save_form(s, form_id, body.name, body.model_dump(include={"sections"}), now())
    return form_json(row, forms.form_in_use(s, form_id, row.version))


@router.get("/forms")
def list_forms(caller: Caller = as_reader, s: Session = as_db) -> list[dict[str, Any]]:
    rows = s.scalars(select(FormRow).order_by(FormRow.form_id, FormRow.version))
    return [form_json(r, forms.form_in_use(s, r.form_id, r.version)) for r in rows]


@router.get("/forms/{form_id}")
def read_form(form_id: str, version: int | None = Query(None, ge=1, le=VERSION_MAX),
              caller: Caller = as_reader, s: Session = as_db) -> dict[str, Any]:
    row = forms.get_form(s, form_id, version)
    return form_json(row, forms.form_in_use(s, row.form_id, row.version))
