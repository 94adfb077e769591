"""The wire format of every topic: protobuf JSON mapping by default, binary protobuf on request.

The producer says which in the `content-type` header, so one topic may carry both and every consumer
decodes either (architecture.md, "Contracts").
"""

from __future__ import annotations

from typing import TypeVar

from google.protobuf import json_format
from google.protobuf.message import DecodeError, Message

JSON = "application/json"
PROTOBUF = "application/x-protobuf"
CONTENT_TYPE = "content-type"

M = TypeVar("M", bound=Message)


class WireError(ValueError):
    """A message that cannot be decoded into its contract; it goes to the topic's DLQ with this reason."""


def content_type(wire_format: str) -> str:
    return PROTOBUF if wire_format == "protobuf" else JSON


def encode(message: Message, wire_format: str = "json") -> bytes:
    if wire_format == "protobuf":
        return message.SerializeToString()
    # Compact JSON with the proto field names in lowerCamelCase, as the canonical JSON mapping says.
    return json_format.MessageToJson(message, indent=None, sort_keys=False).encode()


def decode(data: bytes | None, message_type: type[M], ctype: str | None = None) -> M:
    """Decode `data` as `message_type`; unknown JSON fields are refused (a typo must not pass silently)."""
    if data is None:
        raise WireError("empty message value (tombstone) on an event topic")
    message = message_type()
    try:
        if ctype == PROTOBUF:
            message.ParseFromString(data)
        else:
            json_format.Parse(data.decode("utf-8"), message, ignore_unknown_fields=False)
    except (DecodeError, json_format.ParseError, UnicodeDecodeError) as exc:
        raise WireError(f"cannot decode {message_type.DESCRIPTOR.full_name}: {exc}") from exc
    return message


def header_value(
    headers: dict[str, str | bytes | None] | list[tuple[str, str | bytes | None]] | None, name: str
) -> str | None:
    pairs = list(headers.items()) if isinstance(headers, dict) else list(headers or [])
    for key, value in pairs:
        if key.lower() == name:
            return value.decode() if isinstance(value, bytes) else value
    return None
