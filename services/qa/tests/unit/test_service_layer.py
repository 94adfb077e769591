"""The service layer's pure steps: a stored form definition read into the domain's Form, a month into its bounds."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from callstream_qa.domain.forms import Criterion, FormError, Scale, Section
from callstream_qa.service_layer.forms import form_from_definition
from callstream_qa.service_layer.reports import month_bounds


def test_a_definition_becomes_the_form_with_the_documented_defaults() -> None:
    definition = {"sections": [
        {"section_id": "open", "title": "Opening", "criteria": [
            {"criterion_id": "greet", "weight": 2},
            {"criterion_id": "id", "label": "Identified the caller", "weight": "1.5", "critical": True,
             "allow_na": False},
        ]},
        {"section_id": "close", "criteria": [
            {"criterion_id": "summary", "weight": 1, "scale": "points", "max_points": 4},
        ]},
    ]}
    form = form_from_definition("f1", 3, "Inbound", definition)
    assert (form.form_id, form.version, form.name) == ("f1", 3, "Inbound")
    assert form.sections == (
        Section(section_id="open", title="Opening", criteria=(
            Criterion(criterion_id="greet", label="", weight=2.0, scale=Scale.YES_NO, critical=False,
                      max_points=0, allow_na=True),
            Criterion(criterion_id="id", label="Identified the caller", weight=1.5, scale=Scale.YES_NO,
                      critical=True, max_points=0, allow_na=False))),
        Section(section_id="close", title="", criteria=(
            Criterion(criterion_id="summary", label="", weight=1.0, scale=Scale.POINTS, critical=False,
                      max_points=4, allow_na=True),)),
    )


def test_an_invalid_definition_is_refused_with_the_domain_error() -> None:
    with pytest.raises(FormError, match="needs a positive weight"):
        form_from_definition("f1", 1, "x", {"sections": [{"section_id": "s", "criteria": [
            {"criterion_id": "c", "weight": 0}]}]})


@pytest.mark.parametrize(("month", "start", "end"), [
    ("2024-02", datetime(2024, 2, 1, tzinfo=UTC), datetime(2024, 3, 1, tzinfo=UTC)),  # leap February
    ("2024-12", datetime(2024, 12, 1, tzinfo=UTC), datetime(2025, 1, 1, tzinfo=UTC)),  # year end
    ("2025-01", datetime(2025, 1, 1, tzinfo=UTC), datetime(2025, 2, 1, tzinfo=UTC)),  # 31 days
])
def test_month_bounds(month: str, start: datetime, end: datetime) -> None:
    assert month_bounds(month) == (start, end)


@pytest.mark.parametrize("month", ["2024-13", "2024/05", "May 2024", ""])
def test_a_month_not_yyyy_mm_is_refused(month: str) -> None:
    with pytest.raises(FormError, match="month must be YYYY-MM"):
        month_bounds(month)
