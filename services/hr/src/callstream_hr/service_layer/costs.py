"""Cost entries of the cost centers (KPI 4, cost per contact, divides them by the contacts)."""

from __future__ import annotations

from collections.abc import Sequence

from callstream.hr.v1 import hr_events_pb2
from callstream_core.topics import HR_COSTS
from callstream_hr.adapters.models import CostEntryRow
from callstream_hr.service_layer.commands import CostIn
from callstream_hr.service_layer.common import utc
from callstream_hr.service_layer.errors import Conflict
from callstream_hr.service_layer.unit_of_work import UnitOfWork


def add_cost(uow: UnitOfWork, body: CostIn) -> None:
    if uow.costs.get(body.entry_id) is not None:
        raise Conflict(f"cost entry {body.entry_id!r} already exists")
    uow.costs.add(CostEntryRow(**{**body.model_dump(), "period_start": utc(body.period_start),
                                  "period_end": utc(body.period_end)}))
    msg = hr_events_pb2.CostEntry(cost_center_id=body.cost_center_id, entry_id=body.entry_id,
                                  amount_minor=body.amount_minor, currency=body.currency, category=body.category)
    msg.period_start.FromDatetime(utc(body.period_start))
    msg.period_end.FromDatetime(utc(body.period_end))
    uow.publish(HR_COSTS, body.cost_center_id, msg, utc(body.period_end))
    uow.commit(f"cost entry {body.entry_id!r} already exists")


def list_costs(uow: UnitOfWork, cost_center_id: str | None) -> Sequence[CostEntryRow]:
    return uow.costs.list(cost_center_id)
