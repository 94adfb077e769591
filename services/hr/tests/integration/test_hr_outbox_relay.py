"""The outbox relay on SQLite and PostgreSQL with a recording producer: order, stable event ids,
rows marked only after confirmation, nothing marked when delivery fails."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

import pytest
from google.protobuf.message import Message
from sqlalchemy import Engine

from callstream.hr.v1 import hr_events_pb2
from callstream_core.db import session_factory
from callstream_core.kafka import DeliveryError
from callstream_hr.adapters.db import migrate
from callstream_hr.adapters.outbox import outbox


class Recorder:
    def __init__(self, fail: bool = False) -> None:
        self.sent: list[tuple[str, str, Message]] = []
        self.fail = fail

    def produce_sync(self, topic: str, messages: Iterable[tuple[str, Message]], timeout: float = 120.0) -> int:
        batch = list(messages)
        if self.fail:
            raise DeliveryError("broker unreachable")
        self.sent += [(topic, k, m) for k, m in batch]
        return len(batch)


def test_relay_marks_only_confirmed_rows(engine: Engine) -> None:
    migrate(engine)
    sessions = session_factory(engine)
    ids = []
    with sessions.begin() as session:
        for i in range(3):
            ids.append(outbox.add(session, "cc.hr-attendance.v1", "emp-1", hr_events_pb2.AttendancePunch(
                employee_id="emp-1", kind=hr_events_pb2.AttendancePunch.KIND_IN, device=f"d{i}"),
                datetime(2026, 11, 2, 8, i, tzinfo=UTC)))
        ids.append(outbox.add(session, "cc.hr-costs.v1", "c1", hr_events_pb2.CostEntry(cost_center_id="c1",
                                                                                    entry_id="e1")))
    with pytest.raises(TypeError), sessions.begin() as session:
        outbox.add(session, "cc.hr-costs.v1", "c1", hr_events_pb2.Absence())
    failing = Recorder(fail=True)
    with pytest.raises(DeliveryError):
        outbox.relay_once(sessions, failing)  # type: ignore[arg-type]
    assert outbox.pending(sessions) == 4
    ok = Recorder()
    assert outbox.relay_once(sessions, ok) == 4  # type: ignore[arg-type]
    assert outbox.pending(sessions) == 0
    assert outbox.relay_once(sessions, ok) == 0  # type: ignore[arg-type]
    punches = [m for t, _k, m in ok.sent if t == "cc.hr-attendance.v1"]
    assert [p.device for p in punches] == ["d0", "d1", "d2"]  # type: ignore[attr-defined]
    assert [m.envelope.event_id for _t, _k, m in ok.sent] == ids  # type: ignore[attr-defined]
    assert punches[0].envelope.source == "callstream-hr"  # type: ignore[attr-defined]
