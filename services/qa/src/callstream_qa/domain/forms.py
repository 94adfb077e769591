"""Evaluation forms: sections of weighted criteria with an answer scale; critical items fail the whole evaluation."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

NOT_APPLICABLE = "na"


class FormError(ValueError):
    """A form definition or an answer does not fit the rules."""


class Scale(StrEnum):
    YES_NO = "yes_no"        # "yes" | "no" | "na"
    ONE_TO_FIVE = "1-5"      # "1".."5" | "na"
    POINTS = "points"        # "0".."max_points" | "na"


@dataclass(frozen=True)
class Criterion:
    criterion_id: str
    label: str
    weight: float
    scale: Scale = Scale.YES_NO
    critical: bool = False
    max_points: int = 0  # only for Scale.POINTS
    allow_na: bool = True

    def fraction(self, answer: str) -> float | None:
        """The share of the weight earned (0..1), None for not applicable; FormError for a bad answer."""
        if answer == NOT_APPLICABLE:
            if not self.allow_na:
                raise FormError(f"criterion {self.criterion_id!r} may not be answered not applicable")
            return None
        if self.scale is Scale.YES_NO:
            if answer not in ("yes", "no"):
                raise FormError(f"criterion {self.criterion_id!r} takes yes, no or na, not {answer!r}")
            return 1.0 if answer == "yes" else 0.0
        try:
            value = int(answer)
        except ValueError:
            raise FormError(f"criterion {self.criterion_id!r} takes a whole number or na, not {answer!r}") from None
        top = 5 if self.scale is Scale.ONE_TO_FIVE else self.max_points
        bottom = 1 if self.scale is Scale.ONE_TO_FIVE else 0
        if not bottom <= value <= top:
            raise FormError(f"criterion {self.criterion_id!r} takes {bottom}..{top} or na, not {answer!r}")
        return (value - bottom) / (top - bottom)


@dataclass(frozen=True)
class Section:
    section_id: str
    title: str
    criteria: tuple[Criterion, ...]


@dataclass(frozen=True)
class Form:
    form_id: str
    version: int
    name: str
    sections: tuple[Section, ...]

    def __post_init__(self) -> None:
        seen: set[str] = set()
        if not self.sections:
            raise FormError("a form needs at least one section")
        for section in self.sections:
            if not section.criteria:
                raise FormError(f"section {section.section_id!r} has no criteria")
            for c in section.criteria:
                if c.criterion_id in seen:
                    raise FormError(f"criterion id {c.criterion_id!r} is used twice")
                seen.add(c.criterion_id)
                if c.weight <= 0:
                    raise FormError(f"criterion {c.criterion_id!r} needs a positive weight")
                if c.scale is Scale.POINTS and c.max_points < 1:
                    raise FormError(f"criterion {c.criterion_id!r} (points) needs max_points >= 1")
                if c.critical and c.scale is not Scale.YES_NO:
                    raise FormError(f"critical criterion {c.criterion_id!r} must use the yes_no scale")

    @property
    def criteria(self) -> dict[str, Criterion]:
        return {c.criterion_id: c for s in self.sections for c in s.criteria}
