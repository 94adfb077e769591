"""Evaluations: create, list, read, edit a draft, and the actions of their life cycle."""

from __future__ import annotations

from datetime import UTC
from typing import Literal

from fastapi import APIRouter, HTTPException, Request, status

from callstream_core.db import now
from callstream_qa.adapters.orm import EvaluationRow
from callstream_qa.entrypoints.dependencies import Caller, as_qa, as_reader, as_uow, container, visible
from callstream_qa.entrypoints.schemas import ActionIn, EvaluationIn, EvaluationOut, EvaluationPatch
from callstream_qa.service_layer import common, evaluations
from callstream_qa.service_layer.unit_of_work import EvaluationFilter, UnitOfWork

router = APIRouter(tags=["evaluations"])
ACTION_ROLES = {"submit": ("qa",), "review": ("qa",), "delete": ("qa",), "acknowledge": ("agent",),
                "dispute": ("agent",)}


def evaluation_json(row: EvaluationRow) -> EvaluationOut:
    return EvaluationOut.model_validate({
        "evaluation_id": row.evaluation_id, "call_id": row.call_id, "agent_id": row.agent_id,
        "team_id": row.team_id, "evaluator_id": row.evaluator_id, "form_id": row.form_id,
        "form_version": row.form_version, "status": row.status, "answers": row.answers, "comments": row.comments,
        "score": row.score, "critical_failed": row.critical_failed, "criteria": row.criteria,
        "revision": row.revision, "calibration_session_id": row.calibration_session_id,
        "dispute_reason": row.dispute_reason, "contact_at": common.utc(row.contact_at),
        "created_at": common.utc(row.created_at), "submitted_at": common.utc(row.submitted_at),
        "updated_at": common.utc(row.updated_at),
    })


def _visible_evaluation(uow: UnitOfWork, caller: Caller, evaluation_id: str) -> EvaluationRow:
    row = evaluations.get_evaluation(uow, evaluation_id)
    visible(caller, row.agent_id, row.team_id)
    if caller.role == "agent" and row.status in ("draft", "deleted"):
        raise common.NotFound("not found (or not visible to this caller)")
    return row


@router.post("/evaluations", status_code=201)
def create_evaluation(request: Request, body: EvaluationIn, caller: Caller = as_qa,
                      uow: UnitOfWork = as_uow) -> EvaluationOut:
    contact_at = body.contact_at
    if contact_at is not None and contact_at.tzinfo is None:
        contact_at = contact_at.replace(tzinfo=UTC)
    row = evaluations.create_evaluation(uow, evaluations.NewEvaluation(
        call_id=body.call_id, agent_id=body.agent_id, evaluator_id=body.evaluator_id or caller.person_id
        or caller.subject, form_id=body.form_id, form_version=body.form_version, team_id=body.team_id,
        answers=body.answers, comments=body.comments, contact_at=contact_at, submit=body.submit,
    ), now(), container(request).settings.coaching_due_days)
    return evaluation_json(row)


@router.get("/evaluations")
def list_evaluations(agent_id: str | None = None, team_id: str | None = None, status: str | None = None,
                     caller: Caller = as_reader, uow: UnitOfWork = as_uow) -> list[EvaluationOut]:
    where = EvaluationFilter(agent_id=agent_id or None, team_id=team_id or None, status=status or None,
                             seen_by_agent=caller.person_id if caller.role == "agent" else None,
                             seen_by_team=caller.team_id if caller.role == "team_lead" else None)
    return [evaluation_json(r) for r in uow.evaluations.list(where)]


@router.get("/evaluations/{evaluation_id}")
def read_evaluation(evaluation_id: str, caller: Caller = as_reader, uow: UnitOfWork = as_uow) -> EvaluationOut:
    return evaluation_json(_visible_evaluation(uow, caller, evaluation_id))


@router.patch("/evaluations/{evaluation_id}")
def patch_evaluation(evaluation_id: str, body: EvaluationPatch, caller: Caller = as_qa,
                     uow: UnitOfWork = as_uow) -> EvaluationOut:
    row = evaluations.get_evaluation(uow, evaluation_id)
    return evaluation_json(evaluations.update_draft(uow, row, body.answers, body.comments, now()))


@router.post("/evaluations/{evaluation_id}/{action}")
def evaluation_action(request: Request, evaluation_id: str,
                      action: Literal["submit", "acknowledge", "dispute", "review", "delete"],
                      body: ActionIn | None = None, caller: Caller = as_reader,
                      uow: UnitOfWork = as_uow) -> EvaluationOut:
    if caller.role not in (*ACTION_ROLES[action], "admin"):
        raise HTTPException(status.HTTP_403_FORBIDDEN,
                            f"role {caller.role!r} may not {action} (needs {ACTION_ROLES[action]})")
    row = _visible_evaluation(uow, caller, evaluation_id)
    body = body or ActionIn()
    evaluations.act(uow, row, action, now(), reason=body.reason, answers=body.answers,
            coaching_days=container(request).settings.coaching_due_days)
    return evaluation_json(row)
