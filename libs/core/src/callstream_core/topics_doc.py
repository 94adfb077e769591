"""Renders docs/topics.md from the topic registry, for the enterprise systems that read the topics."""

from __future__ import annotations

import json

from google.protobuf import json_format

from callstream_core.topics import DAY_MS, TOPICS


def render() -> str:
    lines = [
        "# Topics",
        "",
        "Generated from `libs/core/src/callstream_core/topics.py` by `callstream topics doc`; do not edit.",
        "",
        "Every message carries the envelope (`eventId` UUID idempotency key, `occurredAt` event time UTC, "
        "`source`, `schemaVersion`). The value is the protobuf JSON mapping of the contract by default "
        "(header `content-type: application/json`), or binary protobuf (`application/x-protobuf`) when a "
        "producer selects it. Delivery is at-least-once: drop repeats by `eventId`. "
        "Every topic `T` has a dead-letter topic `T.dlq` whose records keep the original value and add the "
        "headers `dlq.source.topic`, `dlq.source.partition`, `dlq.source.offset` and `dlq.error`.",
        "",
        "| topic | key | contract | partitions | retention |",
        "|---|---|---|---|---|",
    ]
    for t in TOPICS:
        days = t.retention_ms / DAY_MS
        lines.append(f"| `{t.name}` | `{t.key}` | `{t.message_type.DESCRIPTOR.full_name}` | {t.partitions} "
                     f"| {days:g} days |")
    for t in TOPICS:
        example = json_format.MessageToDict(t.example())
        lines += [
            "",
            f"## `{t.name}`",
            "",
            t.description,
            "",
            f"Key: `{t.key}`. Contract: `{t.message_type.DESCRIPTOR.full_name}` "
            f"(`proto/{t.message_type.DESCRIPTOR.file.name}`).",
            "",
            "```json",
            json.dumps(example, indent=2, sort_keys=True),  # protobuf maps have no stable order
            "```",
        ]
    return "\n".join(lines) + "\n"
