"""QA's transactional outbox (callstream_core.outbox) on the qa_outbox table."""

from __future__ import annotations

from callstream_core.outbox import Outbox
from callstream_qa.adapters.orm import OutboxRow

outbox = Outbox(OutboxRow, "callstream-qa")
