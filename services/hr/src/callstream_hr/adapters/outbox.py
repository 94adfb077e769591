"""HR's transactional outbox (callstream_core.outbox) on the outbox table."""

from __future__ import annotations

from callstream_core.outbox import Outbox
from callstream_hr.adapters.models import Outbox as OutboxRow

outbox = Outbox(OutboxRow, "callstream-hr")
