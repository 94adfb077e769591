"""The forms use cases (service_layer.forms) on the in-memory unit of work: a form is created once, edited in
place while no evaluation uses it and as a new version once one does (README "PUT /forms/{id}")."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from qa_fakes import FakeUnitOfWork

from callstream_qa.domain.forms import FormError
from callstream_qa.service_layer import evaluations, forms
from callstream_qa.service_layer.common import Conflict, NotFound

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def definition(weight: int = 1) -> dict[str, Any]:
    return {"sections": [{"section_id": "s", "criteria": [{"criterion_id": "greet", "weight": weight}]}]}


def test_a_new_form_is_version_1_and_committed() -> None:
    uow = FakeUnitOfWork()
    row = forms.create_form(uow, "voice", "Voice", definition(), NOW)
    assert (row.form_id, row.version, row.name, row.definition, row.created_at) == (
        "voice", 1, "Voice", definition(), NOW)
    assert uow.forms.list() == [row]
    assert uow.commits == 1


def test_creating_an_existing_form_is_a_conflict_and_changes_nothing() -> None:
    uow = FakeUnitOfWork()
    forms.create_form(uow, "voice", "Voice", definition(), NOW)
    with pytest.raises(Conflict, match="PUT /forms/voice edits it"):
        forms.create_form(uow, "voice", "Other", definition(2), NOW)
    (only,) = uow.forms.list()
    assert (only.version, only.name, only.definition) == (1, "Voice", definition())
    assert uow.commits == 1


def test_an_unused_form_is_edited_in_place() -> None:
    uow = FakeUnitOfWork()
    forms.create_form(uow, "voice", "Voice", definition(), NOW)
    row = forms.edit_form(uow, "voice", "Voice v2 draft", definition(3), NOW)
    assert (row.version, row.name, row.definition) == (1, "Voice v2 draft", definition(3))
    assert len(uow.forms.list()) == 1


def test_a_used_form_gets_a_new_version_and_the_used_one_stays() -> None:
    uow = FakeUnitOfWork()
    forms.create_form(uow, "voice", "Voice", definition(), NOW)
    evaluations.create_evaluation(uow, evaluations.NewEvaluation(
        call_id="c1", agent_id="a1", evaluator_id="q1", form_id="voice", answers={}), NOW)
    row = forms.edit_form(uow, "voice", "Voice, weighted", definition(5), NOW)
    assert (row.version, row.name) == (2, "Voice, weighted")
    old, new = uow.forms.list()
    assert (old.version, old.name, old.definition) == (1, "Voice", definition())
    assert new is row
    assert forms.get_form(uow, "voice") is row  # the newest by default
    assert forms.get_form(uow, "voice", 1) is old


def test_an_unknown_form_or_version_is_not_found() -> None:
    uow = FakeUnitOfWork()
    with pytest.raises(NotFound, match="form 'nope' not found"):
        forms.edit_form(uow, "nope", "x", definition(), NOW)
    assert uow.forms.list() == []
    forms.create_form(uow, "voice", "Voice", definition(), NOW)
    with pytest.raises(NotFound, match="form 'voice' version 2 not found"):
        forms.get_form(uow, "voice", 2)


def test_an_invalid_definition_stores_nothing() -> None:
    uow = FakeUnitOfWork()
    with pytest.raises(FormError, match="positive weight"):
        forms.create_form(uow, "voice", "Voice", definition(0), NOW)
    assert uow.forms.list() == []
    assert uow.commits == 0
