"""The fast JSON encoder writes exactly what json_format writes, for every contract message (property test).

Random messages of every message type in libs/contracts (nested, oneofs, maps, repeated, enums incl. numbers an
open enum does not know, 64-bit integers, NaN / infinities / -0.0, non-ASCII and control characters, timestamps
over the whole range and every fractional precision) are encoded both ways and compared byte for byte, as
parsed JSON, and after a round trip through json_format.Parse.
"""

from __future__ import annotations

import importlib
import json
import pkgutil
from functools import cache
from typing import Any

import pytest
from google.protobuf import duration_pb2, json_format, struct_pb2, timestamp_pb2, wrappers_pb2
from google.protobuf.descriptor import Descriptor, FieldDescriptor, OneofDescriptor
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import callstream
from callstream.call.v1 import call_events_pb2
from callstream_core import wire

MAX_DEPTH = 4
F = FieldDescriptor


def _contract_messages() -> list[Descriptor]:
    found: list[Descriptor] = []

    def walk(descriptor: Descriptor) -> None:
        if not descriptor.GetOptions().map_entry:
            found.append(descriptor)
        for nested in descriptor.nested_types:
            walk(nested)

    for module in pkgutil.walk_packages(callstream.__path__, "callstream."):
        if module.name.endswith("_pb2"):
            for descriptor in importlib.import_module(module.name).DESCRIPTOR.message_types_by_name.values():
                walk(descriptor)
    return sorted(found, key=lambda d: d.full_name)


CONTRACT_MESSAGES = _contract_messages()

_text = st.text(st.characters(exclude_categories=["Cs"]), max_size=12)  # proto strings are valid UTF-8
_timestamps = st.builds(
    timestamp_pb2.Timestamp,
    seconds=st.integers(-62_135_596_800, 253_402_300_799),
    nanos=st.one_of(st.just(0), st.integers(0, 999).map(lambda n: n * 1_000_000),
                    st.integers(0, 999_999).map(lambda n: n * 1_000), st.integers(0, 999_999_999)),
)
_SCALARS: dict[int, st.SearchStrategy[Any]] = {
    F.TYPE_STRING: _text,
    F.TYPE_BYTES: st.binary(max_size=12),
    F.TYPE_BOOL: st.booleans(),
    F.TYPE_DOUBLE: st.floats(allow_nan=True, allow_infinity=True),
    F.TYPE_FLOAT: st.floats(width=32, allow_nan=True, allow_infinity=True),
    F.TYPE_INT32: st.integers(-2**31, 2**31 - 1),
    F.TYPE_SINT32: st.integers(-2**31, 2**31 - 1),
    F.TYPE_SFIXED32: st.integers(-2**31, 2**31 - 1),
    F.TYPE_UINT32: st.integers(0, 2**32 - 1),
    F.TYPE_FIXED32: st.integers(0, 2**32 - 1),
    F.TYPE_INT64: st.integers(-2**63, 2**63 - 1),
    F.TYPE_SINT64: st.integers(-2**63, 2**63 - 1),
    F.TYPE_SFIXED64: st.integers(-2**63, 2**63 - 1),
    F.TYPE_UINT64: st.integers(0, 2**64 - 1),
    F.TYPE_FIXED64: st.integers(0, 2**64 - 1),
}


def _value(field: FieldDescriptor, depth: int) -> st.SearchStrategy[Any]:
    if field.type == F.TYPE_MESSAGE:
        return messages(field.message_type, depth + 1)
    if field.type == F.TYPE_ENUM and field.enum_type is not None:
        known = st.sampled_from([v.number for v in field.enum_type.values])
        return known if field.enum_type.is_closed else st.one_of(known, st.integers(-5, 1000))
    return _SCALARS[field.type]


@cache
def messages(descriptor: Descriptor, depth: int = 0) -> st.SearchStrategy[Message]:
    """Random messages of `descriptor`: any subset of fields set (at most one per oneof), nested up to MAX_DEPTH."""
    cls = GetMessageClass(descriptor)
    if descriptor.full_name == "google.protobuf.Timestamp":
        return _timestamps
    if descriptor.file.name.startswith("google/protobuf/") or depth > MAX_DEPTH:
        return st.just(cls())
    choices: list[st.SearchStrategy[tuple[FieldDescriptor, Any] | None]] = []
    for field in descriptor.fields:
        oneof = _real_oneof(field)
        if oneof is not None and oneof.fields[0] is not field:
            continue  # a oneof gets one choice, made at its first member
        members = list(oneof.fields) if oneof is not None else [field]
        options = [st.tuples(st.just(m), _field_value(m, depth)) for m in members]
        choices.append(st.one_of(st.none(), *options))

    def build(chosen: list[tuple[FieldDescriptor, Any] | None]) -> Message:
        message = cls()
        for item in chosen:
            if item is not None:
                _set(message, *item)
        return message

    return st.tuples(*choices).map(lambda t: build(list(t))) if choices else st.just(cls())


def _real_oneof(field: FieldDescriptor) -> OneofDescriptor | None:
    """The oneof of `field`, unless it is the synthetic one of a proto3 `optional` field (just presence)."""
    oneof = field.containing_oneof
    if oneof is None or (len(oneof.fields) == 1 and oneof.name == "_" + field.name):
        return None
    return oneof


def _field_value(field: FieldDescriptor, depth: int) -> st.SearchStrategy[Any]:
    if field.message_type is not None and field.message_type.GetOptions().map_entry:
        key, value = field.message_type.fields_by_name["key"], field.message_type.fields_by_name["value"]
        return st.dictionaries(_value(key, depth), _value(value, depth), max_size=3)
    if field.is_repeated:
        return st.lists(_value(field, depth), max_size=3)
    return _value(field, depth)


def _set(message: Message, field: FieldDescriptor, value: Any) -> None:
    target = getattr(message, field.name)
    if field.message_type is not None and field.message_type.GetOptions().map_entry:
        for k, v in value.items():
            if isinstance(v, Message):
                target[k].CopyFrom(v)
            else:
                target[k] = v
    elif field.is_repeated:
        target.extend(value)
    elif field.type == F.TYPE_MESSAGE:
        target.SetInParent()  # an empty submessage is still present: json_format writes it as {}
        target.CopyFrom(value)
    else:
        setattr(message, field.name, value)


def test_every_contract_message_is_covered() -> None:
    names = {d.full_name for d in CONTRACT_MESSAGES}
    assert {"callstream.call.v1.CallEvent", "callstream.agent.v1.AgentEvent",
            "callstream.common.v1.Envelope"} <= names
    assert len(names) > 50


@pytest.mark.parametrize("descriptor", CONTRACT_MESSAGES, ids=lambda d: d.full_name)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_fast_json_is_json_format(descriptor: Descriptor, data: st.DataObject) -> None:
    message = data.draw(messages(descriptor))
    reference = json_format.MessageToJson(message, indent=None)
    fast = wire.encode_json(message)
    assert json.loads(fast) == json.loads(reference)
    assert fast == reference
    parsed = json_format.Parse(fast, GetMessageClass(descriptor)(), ignore_unknown_fields=False)
    assert json_format.MessageToJson(parsed, indent=None) == reference
    if "NaN" not in reference:  # NaN is never equal to itself, so neither is a message holding one
        assert parsed == message
    assert wire.decode(wire.encode(message), GetMessageClass(descriptor)) == parsed


def test_well_known_types_use_their_own_mapping() -> None:
    for message in (timestamp_pb2.Timestamp(seconds=1, nanos=5000), duration_pb2.Duration(seconds=-3, nanos=-1),
                    wrappers_pb2.DoubleValue(value=float("nan")),
                    struct_pb2.Struct(fields={"a": struct_pb2.Value(number_value=1.5)})):
        assert wire.encode_json(message) == json_format.MessageToJson(message, indent=None)


def test_unrepresentable_values_raise_json_formats_error() -> None:
    event = call_events_pb2.CallEvent(call_id="c-1")
    event.envelope.occurred_at.seconds = 253_402_300_800  # year 10000: beyond RFC 3339
    with pytest.raises(json_format.SerializeToJsonError, match="occurred_at"):
        wire.encode(event)
