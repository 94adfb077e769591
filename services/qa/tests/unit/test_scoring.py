from __future__ import annotations

import pytest

from callstream_qa.domain.forms import Criterion, Form, FormError, Scale, Section
from callstream_qa.domain.scoring import score


def make_form() -> Form:
    return Form("voice", 1, "Voice standard", (
        Section("open", "Opening", (
            Criterion("greet", "Greets with name", 10),
            Criterion("verify", "Verifies identity", 20, critical=True),
        )),
        Section("body", "Handling", (
            Criterion("empathy", "Empathy", 30, scale=Scale.ONE_TO_FIVE),
            Criterion("solution", "Solution", 40, scale=Scale.POINTS, max_points=4),
        )),
    ))


def test_all_top_answers_score_100() -> None:
    result = score(make_form(), {"greet": "yes", "verify": "yes", "empathy": "5", "solution": "4"})
    assert result.score == 100.0
    assert not result.critical_failed
    assert not any(c.missed for c in result.criteria)


def test_weighted_mix() -> None:
    # greet 0/10, verify 20/20, empathy (3-1)/4*30 = 15, solution 2/4*40 = 20 -> 55/100
    result = score(make_form(), {"greet": "no", "verify": "yes", "empathy": "3", "solution": "2"})
    assert result.score == 55.0
    assert [c.criterion_id for c in result.criteria if c.missed] == ["greet", "empathy", "solution"]


def test_not_applicable_drops_weight_from_denominator() -> None:
    # greet N/A: 20 + 30 + 20 = 70 of 90 -> 77.78
    result = score(make_form(), {"greet": "na", "verify": "yes", "empathy": "5", "solution": "2"})
    assert result.score == 77.78
    greet = next(c for c in result.criteria if c.criterion_id == "greet")
    assert (greet.points, greet.max_points, greet.missed) == (0.0, 0.0, False)


def test_failed_critical_item_zeroes_the_score() -> None:
    result = score(make_form(), {"greet": "yes", "verify": "no", "empathy": "5", "solution": "4"})
    assert result.score == 0.0
    assert result.critical_failed
    assert [c.criterion_id for c in result.criteria if c.critical_failed] == ["verify"]


def test_critical_item_not_applicable_does_not_fail() -> None:
    result = score(make_form(), {"greet": "yes", "verify": "na", "empathy": "5", "solution": "4"})
    assert result.score == 100.0 and not result.critical_failed


@pytest.mark.parametrize("answers, message", [
    ({"greet": "maybe", "verify": "yes", "empathy": "5", "solution": "4"}, "yes, no or na"),
    ({"greet": "yes", "verify": "yes", "empathy": "6", "solution": "4"}, "1..5"),
    ({"greet": "yes", "verify": "yes", "empathy": "0", "solution": "4"}, "1..5"),
    ({"greet": "yes", "verify": "yes", "empathy": "5", "solution": "five"}, "whole number"),
    ({"greet": "yes", "verify": "yes", "empathy": "5"}, "not answered"),
    ({"greet": "yes", "verify": "yes", "empathy": "5", "solution": "4", "extra": "yes"}, "not on form"),
    ({"greet": "na", "verify": "na", "empathy": "na", "solution": "na"}, "nothing to score"),
])
def test_bad_answers_are_refused(answers: dict[str, str], message: str) -> None:
    with pytest.raises(FormError, match=message):
        score(make_form(), answers)


def test_draft_scores_answered_criteria_only() -> None:
    assert score(make_form(), {"greet": "yes"}, complete=False).score == 100.0
    assert score(make_form(), {}, complete=False).score == 0.0


@pytest.mark.parametrize("sections, message", [
    ((), "at least one section"),
    ((Section("s", "", ()),), "no criteria"),
    ((Section("s", "", (Criterion("a", "", 1), Criterion("a", "", 1))),), "used twice"),
    ((Section("s", "", (Criterion("a", "", 0),)),), "positive weight"),
    ((Section("s", "", (Criterion("a", "", 1, scale=Scale.POINTS),)),), "max_points"),
    ((Section("s", "", (Criterion("a", "", 1, scale=Scale.ONE_TO_FIVE, critical=True),)),), "yes_no"),
])
def test_invalid_forms_are_refused(sections: tuple[Section, ...], message: str) -> None:
    with pytest.raises(FormError, match=message):
        Form("f", 1, "f", sections)
