from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from callstream_qa.domain.calibration import calibration_stats
from callstream_qa.domain.sampling import ContactRecord, allocate, sample
from callstream_qa.domain.states import IllegalTransition, Status, transition


# -- state machine ----------------------------------------------------------------------------------------------
def test_happy_paths() -> None:
    assert transition(Status.DRAFT, "submit") is Status.SUBMITTED
    assert transition(Status.SUBMITTED, "acknowledge") is Status.ACKNOWLEDGED
    assert transition(Status.SUBMITTED, "dispute") is Status.DISPUTED
    assert transition(Status.DISPUTED, "review") is Status.REVIEWED
    assert transition(Status.REVIEWED, "acknowledge") is Status.ACKNOWLEDGED
    assert transition(Status.DRAFT, "delete") is Status.DELETED


@pytest.mark.parametrize("current, action", [
    (Status.DRAFT, "acknowledge"), (Status.SUBMITTED, "submit"), (Status.ACKNOWLEDGED, "dispute"),
    (Status.DISPUTED, "acknowledge"), (Status.SUBMITTED, "update"), (Status.DELETED, "submit"),
    (Status.REVIEWED, "dispute"), (Status.SUBMITTED, "delete"),
])
def test_illegal_transitions(current: Status, action: str) -> None:
    with pytest.raises(IllegalTransition, match=f"cannot {action}"):
        transition(current, action)


# -- sampling ---------------------------------------------------------------------------------------------------
def contacts() -> list[ContactRecord]:
    out = []
    for agent in ("a1", "a2"):
        for i in range(40):
            out.append(ContactRecord(
                call_id=f"{agent}-c{i:02d}", segment=0, agent_id=agent, queue_id="billing" if i % 2 else "sales",
                call_type="PS", talk_s=900.0 if i % 10 == 3 else 120.0, transferred=i % 10 == 5,
                abandoned_after_answer=i == 7,
            ))
    return out


def test_sampling_is_reproducible_and_seed_dependent() -> None:
    first = sample(contacts(), 6, seed=42)
    assert first == sample(list(reversed(contacts())), 6, seed=42)
    assert first != sample(contacts(), 6, seed=43)


def test_sampling_gives_n_per_agent_and_covers_strata() -> None:
    picks = sample(contacts(), 8, seed=1)
    assert Counter(p.agent_id for p in picks) == {"a1": 8, "a2": 8}
    strata = {p.stratum for p in picks if p.agent_id == "a1"}
    # 7 strata exist for a1 (2 queues x normal/long/transfer + 1 abandoned-after-answer): each gets one
    assert {"billing|PS|abandoned_after_answer", "billing|PS|transfer", "billing|PS|long",
            "billing|PS|normal", "sales|PS|normal"} <= strata
    assert len({(p.call_id, p.segment) for p in picks}) == len(picks)


def test_sampling_takes_everything_when_fewer_contacts_than_planned() -> None:
    few = contacts()[:3]
    assert len(sample(few, 10, seed=0)) == 3


@given(st.dictionaries(st.text(min_size=1, max_size=3), st.integers(1, 50), min_size=1, max_size=8),
       st.integers(0, 120))
def test_allocation_sums_and_fits(sizes: dict[str, int], n: int) -> None:
    alloc = allocate(sizes, n)
    assert sum(alloc.values()) == min(n, sum(sizes.values()))
    assert all(0 <= alloc[s] <= sizes[s] for s in sizes)
    if n >= len(sizes):
        assert all(alloc[s] >= 1 for s in sizes)


# -- calibration ------------------------------------------------------------------------------------------------
def test_calibration_against_mean() -> None:
    stats = calibration_stats({"qa1": 80.0, "qa2": 90.0, "qa3": 70.0})
    assert stats.consensus == 80.0
    assert stats.spread == 20.0
    assert stats.deviations == {"qa1": 0.0, "qa2": 10.0, "qa3": -10.0}
    assert stats.mean_abs_deviation == pytest.approx(6.67)
    assert stats.stdev == pytest.approx(8.16)


def test_calibration_against_reference() -> None:
    stats = calibration_stats({"lead": 85.0, "qa1": 80.0, "qa2": 95.0}, reference="lead")
    assert stats.consensus == 85.0
    assert stats.deviations == {"lead": 0.0, "qa1": -5.0, "qa2": 10.0}
    assert stats.mean_abs_deviation == 7.5  # the reference itself does not count


def test_calibration_reference_must_have_scored() -> None:
    with pytest.raises(ValueError, match="has not scored"):
        calibration_stats({"qa1": 1.0}, reference="lead")
