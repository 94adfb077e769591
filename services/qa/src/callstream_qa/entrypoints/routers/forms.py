"""Evaluation forms: create, edit (a new version), list, read."""

from __future__ import annotations

from fastapi import APIRouter, Query

from callstream_core.db import now
from callstream_qa.adapters.orm import FormRow
from callstream_qa.entrypoints.dependencies import Caller, as_qa, as_reader, as_uow
from callstream_qa.entrypoints.schemas import VERSION_MAX, FormBody, FormIn, FormOut
from callstream_qa.service_layer import common, forms
from callstream_qa.service_layer.unit_of_work import UnitOfWork

router = APIRouter(tags=["forms"])


def form_json(row: FormRow, in_use: bool) -> FormOut:
    return FormOut.model_validate({"form_id": row.form_id, "version": row.version, "name": row.name, "in_use": in_use,
            "sections": row.definition["sections"], "created_at": common.utc(row.created_at)})


@router.post("/forms", status_code=201)
def create_form(body: FormIn, caller: Caller = as_qa, uow: UnitOfWork = as_uow) -> FormOut:
    row = forms.create_form(uow, body.form_id, body.name, body.model_dump(include={"sections"}), now())
    return form_json(row, False)


@router.put("/forms/{form_id}")
def edit_form(form_id: str, body: FormBody, caller: Caller = as_qa, uow: UnitOfWork = as_uow) -> FormOut:
    row = forms.edit_form(uow, form_id, body.name, body.model_dump(include={"sections"}), now())
    return form_json(row, uow.forms.in_use(form_id, row.version))


@router.get("/forms")
def list_forms(caller: Caller = as_reader, uow: UnitOfWork = as_uow) -> list[FormOut]:
    return [form_json(r, uow.forms.in_use(r.form_id, r.version)) for r in uow.forms.list()]


@router.get("/forms/{form_id}")
def read_form(form_id: str, version: int | None = Query(None, ge=1, le=VERSION_MAX),
              caller: Caller = as_reader, uow: UnitOfWork = as_uow) -> FormOut:
    row = forms.get_form(uow, form_id, version)
    return form_json(row, uow.forms.in_use(row.form_id, row.version))
