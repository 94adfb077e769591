"""The fast JSON encoder writes exactly what json_format writes, for every contract message (property test).

Random messages of every message type in libs/contracts (nested, oneofs, maps, repeated, enums incl. numbers an
open enum does not know, 64-bit integers, NaN / infinities / -0.0, non-ASCII and control characters, timestamps
over the whole range and every fractional precision) are encoded both ways and compared byte for byte, as
parsed JSON, and after a round trip through json_format.Parse. A schema made for this test adds what the
contracts do not use yet: a oneof with another field between its members, proto3 `optional`, a field named
like a Python keyword, a recursive type, maps with bool keys and message values, float, bytes, sint/fixed,
repeated timestamps and enums, a Struct, and a proto2 message with a closed enum and extensions.
"""

from __future__ import annotations

import importlib
import json
import math
import pkgutil
from functools import cache
from typing import Any

import pytest
from google.protobuf import (
    descriptor_pb2,
    descriptor_pool,
    duration_pb2,
    json_format,
    struct_pb2,
    text_format,
    timestamp_pb2,
    wrappers_pb2,
)
from google.protobuf.descriptor import Descriptor, FieldDescriptor, OneofDescriptor
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import callstream
from callstream.call.v1 import call_events_pb2
from callstream_core import wire

MAX_DEPTH = 2  # every type is also drawn at the top, so deeper levels add little but time
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

_EDGE_SCHEMA = """
name: "callstream_test/wire_edge.proto" package: "wire_edge" syntax: "proto3"
dependency: "google/protobuf/timestamp.proto" dependency: "google/protobuf/struct.proto"
message_type {
  name: "Edge"
  field { name: "a" number: 1 label: LABEL_OPTIONAL type: TYPE_STRING oneof_index: 0 }
  field { name: "gap" number: 3 label: LABEL_OPTIONAL type: TYPE_DOUBLE }
  field { name: "maybe" number: 4 label: LABEL_OPTIONAL type: TYPE_INT64 oneof_index: 2 proto3_optional: true }
  field { name: "b" number: 5 label: LABEL_OPTIONAL type: TYPE_INT32 oneof_index: 0 }
  field { name: "from" number: 6 label: LABEL_OPTIONAL type: TYPE_STRING }
  field { name: "child" number: 7 label: LABEL_OPTIONAL type: TYPE_MESSAGE type_name: ".wire_edge.Edge" }
  field { name: "by_flag" number: 8 label: LABEL_REPEATED type: TYPE_MESSAGE
          type_name: ".wire_edge.Edge.ByFlagEntry" }
  field { name: "numbers" number: 9 label: LABEL_REPEATED type: TYPE_MESSAGE
          type_name: ".wire_edge.Edge.NumbersEntry" }
  field { name: "colors" number: 10 label: LABEL_REPEATED type: TYPE_ENUM type_name: ".wire_edge.Edge.Color" }
  field { name: "ratio" number: 11 label: LABEL_OPTIONAL type: TYPE_FLOAT }
  field { name: "blob" number: 12 label: LABEL_OPTIONAL type: TYPE_BYTES }
  field { name: "times" number: 13 label: LABEL_REPEATED type: TYPE_MESSAGE
          type_name: ".google.protobuf.Timestamp" }
  field { name: "extra" number: 14 label: LABEL_OPTIONAL type: TYPE_MESSAGE type_name: ".google.protobuf.Struct" }
  field { name: "s64" number: 15 label: LABEL_OPTIONAL type: TYPE_SINT64 }
  field { name: "f32" number: 16 label: LABEL_OPTIONAL type: TYPE_FIXED32 }
  field { name: "labels" number: 17 label: LABEL_REPEATED type: TYPE_STRING }
  field { name: "c" number: 18 label: LABEL_OPTIONAL type: TYPE_MESSAGE type_name: ".wire_edge.Edge"
          oneof_index: 1 }
  field { name: "d" number: 19 label: LABEL_OPTIONAL type: TYPE_BOOL oneof_index: 1 }
  nested_type {
    name: "ByFlagEntry" options { map_entry: true }
    field { name: "key" number: 1 label: LABEL_OPTIONAL type: TYPE_BOOL }
    field { name: "value" number: 2 label: LABEL_OPTIONAL type: TYPE_MESSAGE type_name: ".wire_edge.Edge" }
  }
  nested_type {
    name: "NumbersEntry" options { map_entry: true }
    field { name: "key" number: 1 label: LABEL_OPTIONAL type: TYPE_INT64 }
    field { name: "value" number: 2 label: LABEL_OPTIONAL type: TYPE_DOUBLE }
  }
  enum_type { name: "Color" value { name: "COLOR_UNSPECIFIED" number: 0 } value { name: "RED" number: 1 } }
  oneof_decl { name: "split" }
  oneof_decl { name: "pick" }
  oneof_decl { name: "_maybe" }
}
"""
_LEGACY_SCHEMA = """
name: "callstream_test/wire_legacy.proto" package: "wire_legacy" syntax: "proto2"
message_type {
  name: "Legacy"
  field { name: "x" number: 1 label: LABEL_OPTIONAL type: TYPE_INT32 }
  field { name: "mode" number: 2 label: LABEL_OPTIONAL type: TYPE_ENUM type_name: ".wire_legacy.Mode" }
  extension_range { start: 100 end: 200 }
}
enum_type { name: "Mode" value { name: "A" number: 1 } value { name: "B" number: 2 } }
extension { name: "note" number: 100 label: LABEL_OPTIONAL type: TYPE_STRING extendee: ".wire_legacy.Legacy" }
"""


def _test_pool() -> descriptor_pool.DescriptorPool:
    pool = descriptor_pool.DescriptorPool()
    for dependency in (timestamp_pb2, struct_pb2):
        pool.AddSerializedFile(dependency.DESCRIPTOR.serialized_pb)
    for schema in (_EDGE_SCHEMA, _LEGACY_SCHEMA):
        pool.Add(text_format.Parse(schema, descriptor_pb2.FileDescriptorProto()))
    return pool


TEST_POOL = _test_pool()
EDGE = TEST_POOL.FindMessageTypeByName("wire_edge.Edge")
LEGACY = TEST_POOL.FindMessageTypeByName("wire_legacy.Legacy")

_text = st.text(st.characters(exclude_categories=["Cs"]), max_size=12)  # proto strings are valid UTF-8
_timestamp_fields = st.fixed_dictionaries(dict(
    seconds=st.integers(-62_135_596_800, 253_402_300_799),
    nanos=st.one_of(st.just(0), st.integers(0, 999).map(lambda n: n * 1_000_000),
                    st.integers(0, 999_999).map(lambda n: n * 1_000), st.integers(0, 999_999_999)),
))
_SCALARS: dict[int, st.SearchStrategy[Any]] = {
    F.TYPE_STRING: _text,
    F.TYPE_BYTES: st.binary(max_size=12),
    F.TYPE_BOOL: st.booleans(),
    F.TYPE_DOUBLE: st.floats(allow_nan=True, allow_infinity=True),
    # json_format cannot read back what it writes for float32 subnormals and values near the float32 limit.
    F.TYPE_FLOAT: st.one_of(st.floats(-(2.0**127), 2.0**127, width=32, allow_subnormal=False),
                            st.sampled_from([math.nan, math.inf, -math.inf])),
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
        return _timestamp_fields.map(lambda fields: cls(**fields))
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


@pytest.mark.parametrize("descriptor", [*CONTRACT_MESSAGES, EDGE, LEGACY], ids=lambda d: d.full_name)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_fast_json_is_json_format(descriptor: Descriptor, data: st.DataObject) -> None:
    message = data.draw(messages(descriptor))
    reference = json_format.MessageToJson(message, indent=None)
    fast = wire.encode_json(message)
    assert json.loads(fast) == json.loads(reference)
    assert fast == reference
    parsed = json_format.Parse(fast, GetMessageClass(descriptor)(), ignore_unknown_fields=False)
    # (as parsed JSON: a parsed map may iterate its keys in another order)
    assert json.loads(wire.encode_json(parsed)) == json.loads(json_format.MessageToJson(parsed)) == json.loads(fast)
    if "NaN" not in reference:  # NaN is never equal to itself, so neither is a message holding one
        assert parsed == message
    assert wire.decode(wire.encode(message), GetMessageClass(descriptor)) == parsed


def test_well_known_types_use_their_own_mapping() -> None:
    for message in (timestamp_pb2.Timestamp(seconds=1, nanos=5000), duration_pb2.Duration(seconds=-3, nanos=-1),
                    wrappers_pb2.DoubleValue(value=float("nan")),
                    struct_pb2.Struct(fields={"a": struct_pb2.Value(number_value=1.5)})):
        assert wire.encode_json(message) == json_format.MessageToJson(message, indent=None)


def test_extensions_and_edge_cases_by_example() -> None:
    legacy = GetMessageClass(LEGACY)(x=0)
    legacy.Extensions[TEST_POOL.FindExtensionByName("wire_legacy.note")] = "n"
    edge = GetMessageClass(EDGE)(gap=-0.0, maybe=0, b=0, ratio=0.1, colors=[1, 7], **{"from": "é\n"})
    edge.by_flag[True].child.d = False
    edge.numbers[-(2**63)] = float("-inf")
    for message in (legacy, edge):
        assert wire.encode_json(message) == json_format.MessageToJson(message, indent=None)
    assert json.loads(wire.encode_json(edge))["from"] == "é\n"


def test_unrepresentable_values_raise_json_formats_error() -> None:
    event = call_events_pb2.CallEvent(call_id="c-1")
    event.envelope.occurred_at.seconds = 253_402_300_800  # year 10000: beyond RFC 3339
    with pytest.raises(json_format.SerializeToJsonError, match="occurred_at"):
        wire.encode(event)
