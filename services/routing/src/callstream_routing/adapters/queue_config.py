"""Queue configuration from a YAML file: a list of queues, each the fields of `QueueConfig`.

Errors name the file, the queue and the field, and stop the service at start-up (fail fast).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from callstream_routing import domain as d


class QueueConfigError(ValueError):
    pass


def _queue(raw: dict[str, Any], where: str) -> d.QueueConfig:
    fields = dict(raw)
    try:
        if "strategy" in fields:
            fields["strategy"] = d.Strategy(fields["strategy"])
        fields["skills"] = tuple(d.RequiredSkill(**s) for s in fields.get("skills", ()))
        fields["relaxation"] = tuple(d.RelaxStep(**s) for s in fields.get("relaxation", ()))
        if fields.get("overflow") is not None:
            overflow = dict(fields["overflow"])
            overflow["destination"] = d.OverflowDestination(overflow["destination"])
            fields["overflow"] = d.OverflowTarget(**overflow)
        if fields.get("aging") is not None:
            fields["aging"] = d.PriorityAging(**fields["aging"])
        return d.QueueConfig(**fields)
    except (TypeError, ValueError, KeyError) as exc:
        raise QueueConfigError(f"{where}: {exc}") from exc


def load_queues(path: Path) -> list[d.QueueConfig]:
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise QueueConfigError(f"{path}: {exc}") from exc
    queues = data.get("queues") if isinstance(data, dict) else None
    if not isinstance(queues, list):
        raise QueueConfigError(f"{path}: expected a mapping with a list `queues`")
    configs = [_queue(q, f"{path}: queue #{i + 1} ({q.get('queue_id', '?') if isinstance(q, dict) else q})")
               for i, q in enumerate(queues)]
    ids = [q.queue_id for q in configs]
    if len(ids) != len(set(ids)):
        raise QueueConfigError(f"{path}: a queue_id appears twice")
    return configs
