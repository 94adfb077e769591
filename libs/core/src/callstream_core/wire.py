"""The wire format of every topic: protobuf JSON mapping by default, binary protobuf on request.

The producer says which in the `content-type` header, so one topic may carry both and every consumer
decodes either (architecture.md, "Contracts").

JSON is written by an encoder built once per message type from its descriptor (`json_encoder`). It gives
byte for byte what `json_format.MessageToJson(message, indent=None)` gives (a property test over every
contract message pins that), in about a tenth of the time: `MessageToJson` builds a dict through generic
per-field dispatch and then runs `json.dumps`, which capped every producer at ~40k events/s.
"""

from __future__ import annotations

import base64
import json
import keyword
import math
import threading
import time
from collections.abc import Callable
from functools import partial
from json.encoder import encode_basestring_ascii
from typing import Any, TypeVar

from google.protobuf import json_format
from google.protobuf.descriptor import Descriptor, EnumDescriptor, FieldDescriptor, OneofDescriptor
from google.protobuf.internal import type_checkers
from google.protobuf.message import DecodeError, Message

JSON = "application/json"
PROTOBUF = "application/x-protobuf"
CONTENT_TYPE = "content-type"

M = TypeVar("M", bound=Message)
JsonEncoder = Callable[[Any], str]


class WireError(ValueError):
    """A message that cannot be decoded into its contract; it goes to the topic's DLQ with this reason."""


def content_type(wire_format: str) -> str:
    return PROTOBUF if wire_format == "protobuf" else JSON


def encode(message: Message, wire_format: str = "json") -> bytes:
    if wire_format == "protobuf":
        return message.SerializeToString()
    return encode_json(message).encode("ascii")  # ensure_ascii escaping: the text is ASCII


def encode_json(message: Message) -> str:
    """The protobuf JSON mapping of `message` on one line (lowerCamelCase names, fields with default values
    left out), exactly as `json_format.MessageToJson(message, indent=None)` writes it."""
    try:
        return json_encoder(message.DESCRIPTOR)(message)
    except (ValueError, json_format.SerializeToJsonError):
        # A value the mapping cannot represent (a Timestamp out of range, an unknown closed-enum number):
        # the reference implementation raises its own, precise error.
        return json_format.MessageToJson(message, indent=None)


def decode(data: bytes | None, message_type: type[M], ctype: str | None = None) -> M:
    """Decode `data` as `message_type`; unknown JSON fields are refused (a typo must not pass silently)."""
    if data is None:
        raise WireError("empty message value (tombstone) on an event topic")
    message = message_type()
    try:
        if ctype == PROTOBUF:
            message.ParseFromString(data)
        else:
            text = data.decode("utf-8")
            # json_format.Parse takes `[]` for an empty message (it iterates any JSON value): a message is
            # a JSON object, anything else is refused here.
            if not text.lstrip().startswith("{"):
                raise WireError(f"cannot decode {message_type.DESCRIPTOR.full_name}: the JSON value is not an object")
            json_format.Parse(text, message, ignore_unknown_fields=False)
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


# -- the JSON encoder ------------------------------------------------------------------------------------
# json.dumps(indent=None) separates with ", " and ": "; the same separators keep the bytes identical.
_ITEM_SEPARATOR = ", "
_KEY_SEPARATOR = ": "
_TIMESTAMP = "google.protobuf.Timestamp"
# Range of google.protobuf.Timestamp (0001-01-01T00:00:00Z .. 9999-12-31T23:59:59.999999999Z).
_TIMESTAMP_SECONDS_MIN = -62_135_596_800
_TIMESTAMP_SECONDS_MAX = 253_402_300_799
_INT64_TYPES = frozenset({FieldDescriptor.CPPTYPE_INT64, FieldDescriptor.CPPTYPE_UINT64})
_INT32_TYPES = frozenset({FieldDescriptor.CPPTYPE_INT32, FieldDescriptor.CPPTYPE_UINT32})
_FLOAT_TYPES = frozenset({FieldDescriptor.CPPTYPE_DOUBLE, FieldDescriptor.CPPTYPE_FLOAT})
# JSON has no NaN or infinities: the mapping writes them as these strings (repr() gives the keys).
_FLOAT_SPECIALS = {"nan": '"NaN"', "inf": '"Infinity"', "-inf": '"-Infinity"'}

_encoders: dict[Descriptor, JsonEncoder] = {}
_building: dict[Descriptor, JsonEncoder] = {}
_building_lock = threading.RLock()
# The date part of timestamps by day since the epoch (formatting a date costs more than the rest).
_dates: dict[int, str] = {}
_DATES_KEPT = 4096
# Tables instead of string formatting, which is most of the remaining cost of a timestamp.
_CLOCK = [f"{m // 60:02d}:{m % 60:02d}:" for m in range(24 * 60)]
_SECONDS = [f"{s:02d}" for s in range(60)]
_MILLIS = [f'.{ms:03d}Z"' for ms in range(1000)]


def json_encoder(descriptor: Any) -> JsonEncoder:
    """The JSON encoder of one message type (its Descriptor, pure-Python or upb), built on first use and kept."""
    encoder = _encoders.get(descriptor)
    if encoder is not None:
        return encoder
    with _building_lock:  # producers encode in several threads: each type is built once, and used whole
        encoder = _encoders.get(descriptor) or _building.get(descriptor)
        if encoder is None:
            outermost = not _building
            try:
                if descriptor.file.name.startswith("google/protobuf/") or descriptor.extension_ranges:
                    encoder = _building[descriptor] = _reference_encoder(descriptor)
                else:
                    encoder, bind = _generate_encoder(descriptor)
                    _building[descriptor] = encoder
                    bind()  # builds the nested types; a type that contains itself finds its own encoder here
                if outermost:  # published together, once every encoder they call is bound
                    _encoders.update(_building)
            finally:
                if outermost:
                    _building.clear()
    return encoder


def _generate_encoder(descriptor: Descriptor) -> tuple[JsonEncoder, Callable[[], None]]:
    """Python source for one message type, reading each field directly (no ListFields(), no per-field
    dispatch: this is what makes the encoder fast), compiled once. It writes the fields json_format writes
    (the ones ListFields() returns: set or non-default) in field-number order. Returns the function and a
    `bind()` that supplies the encoders of the field values it calls (message types are resolved then)."""
    namespace: dict[str, Any] = {"_ITEM_SEPARATOR": _ITEM_SEPARATOR, "_copysign": math.copysign}
    deferred: dict[str, Callable[[], Any]] = {}  # names of value encoders the source calls -> how to make them
    lines = ["def encode(m):", "    parts = []", "    add = parts.append"]
    fields = sorted(descriptor.fields, key=lambda f: f.number)
    place = {f.number: i for i, f in enumerate(fields)}
    # Oneofs whose members follow each other in field-number order, with no other field in between.
    adjacent = {o.index for o in descriptor.oneofs
                if max(place[f.number] for f in o.fields) - min(place[f.number] for f in o.fields) == len(o.fields) - 1}
    for i, field in enumerate(fields):
        prefix, value = f"_p{i}", f"_v{i}"
        namespace[prefix] = encode_basestring_ascii(field.json_name) + _KEY_SEPARATOR
        access = f"m.{field.name}" if field.name.isidentifier() and not keyword.iskeyword(field.name) \
            else f"getattr(m, {field.name!r})"
        entry_type = field.message_type
        oneof = field.containing_oneof
        if entry_type is not None and entry_type.GetOptions().map_entry:
            deferred[value] = partial(_map_encoder, entry_type)
            lines += [f"    v = {access}", "    if v:", f"        add({prefix} + {value}(v))"]
            continue
        deferred[value] = partial(_value_encoder, field)
        if field.is_repeated:
            lines += [f"    v = {access}", "    if v:",
                      f'        add({prefix} + "[" + _ITEM_SEPARATOR.join(map({value}, v)) + "]")']
        elif oneof is not None and len(oneof.fields) > 1:
            # One member at most is set: ask which, once, before the first member.
            which = f"w{oneof.index}"
            first = min(oneof.fields, key=lambda f: f.number)
            if field is first:
                lines.append(f"    {which} = m.WhichOneof({oneof.name!r})")
            if oneof.index in adjacent:  # the usual case: one lookup writes whichever member is set
                if field is first:
                    members = f"_o{oneof.index}"
                    deferred[members] = partial(_member_encoders, oneof)
                    lines += [f"    if {which} is not None:", f"        add({members}[{which}](getattr(m, {which})))"]
            else:  # other fields between the members: each member at its own place
                lines += [f"    if {which} == {field.name!r}:", f"        add({prefix} + {value}({access}))"]
        elif field.has_presence:  # message fields, proto3 `optional`, proto2 scalars: set or not
            lines += [f"    if m.HasField({field.name!r}):", f"        add({prefix} + {value}({access}))"]
        elif field.cpp_type in _FLOAT_TYPES:  # implicit presence: non-zero bits, so -0.0 is written too
            lines += [f"    v = {access}", "    if v or _copysign(1.0, v) < 0:", f"        add({prefix} + {value}(v))"]
        else:  # implicit presence: written unless it is the zero value
            lines += [f"    v = {access}", "    if v:", f"        add({prefix} + {value}(v))"]
    lines.append('    return "{" + _ITEM_SEPARATOR.join(parts) + "}"')
    exec(compile("\n".join(lines), f"<JSON encoder of {descriptor.full_name}>", "exec"), namespace)

    def bind() -> None:
        namespace.update({key: make() for key, make in deferred.items()})

    return namespace["encode"], bind


def _member_encoders(oneof: OneofDescriptor) -> dict[str, JsonEncoder]:
    """`"jsonName": value` writers of the members of a oneof, by member name (what WhichOneof returns)."""

    def member(field: FieldDescriptor) -> JsonEncoder:
        prefix = encode_basestring_ascii(field.json_name) + _KEY_SEPARATOR
        encode_value = _value_encoder(field)
        return lambda value: prefix + encode_value(value)

    return {field.name: member(field) for field in oneof.fields}


def _map_encoder(entry_type: Descriptor) -> JsonEncoder:
    key_field = entry_type.fields_by_name["key"]
    encode_value = _value_encoder(entry_type.fields_by_name["value"])
    bool_keys = key_field.cpp_type == FieldDescriptor.CPPTYPE_BOOL

    def encode_map(mapping: Any) -> str:
        parts = []
        for key in mapping:
            text = ("true" if key else "false") if bool_keys else str(key)
            parts.append(encode_basestring_ascii(text) + _KEY_SEPARATOR + encode_value(mapping[key]))
        return "{" + _ITEM_SEPARATOR.join(parts) + "}"

    return encode_map


def _value_encoder(field: FieldDescriptor) -> JsonEncoder:
    """Encoder of one value of `field` (an element, for repeated fields)."""
    cpp_type = field.cpp_type
    if cpp_type == FieldDescriptor.CPPTYPE_MESSAGE and field.message_type is not None:
        return json_encoder(field.message_type)
    if cpp_type == FieldDescriptor.CPPTYPE_STRING:
        if field.type == FieldDescriptor.TYPE_BYTES:
            return lambda value: '"' + base64.b64encode(value).decode("ascii") + '"'
        return encode_basestring_ascii
    if cpp_type == FieldDescriptor.CPPTYPE_BOOL:
        return lambda value: "true" if value else "false"
    if cpp_type in _INT32_TYPES:
        return int.__repr__
    if cpp_type in _INT64_TYPES:
        return lambda value: f'"{value}"'  # 64-bit integers are strings: JavaScript numbers lose digits
    if cpp_type == FieldDescriptor.CPPTYPE_DOUBLE:
        return _encode_double
    if cpp_type == FieldDescriptor.CPPTYPE_FLOAT:
        return _encode_float
    if cpp_type == FieldDescriptor.CPPTYPE_ENUM and field.enum_type is not None:
        return _enum_encoder(field.enum_type)
    raise TypeError(f"no JSON mapping for field {field.full_name} of C++ type {cpp_type}")


def _encode_double(value: float) -> str:
    text = repr(value)
    return _FLOAT_SPECIALS.get(text, text)


def _encode_float(value: float) -> str:
    text = repr(value)
    special = _FLOAT_SPECIALS.get(text)
    # A 32-bit float is written with the fewest digits that read back as the same float32.
    return special if special is not None else repr(type_checkers.ToShortestFloat(value))


def _enum_encoder(enum_type: EnumDescriptor) -> JsonEncoder:
    if enum_type.full_name == "google.protobuf.NullValue":
        return lambda _value: "null"
    names = {number: encode_basestring_ascii(value.name) for number, value in enum_type.values_by_number.items()}
    closed = enum_type.is_closed

    def encode_enum(number: int) -> str:
        name = names.get(number)
        if name is not None:
            return name
        if closed:
            raise json_format.SerializeToJsonError("Enum field contains an integer value which can not mapped "
                                                   "to an enum value.")
        return int.__repr__(number)  # an open enum keeps numbers it does not know (a newer producer)

    return encode_enum


def _reference_encoder(descriptor: Descriptor) -> JsonEncoder:
    """Timestamp (in every event envelope) written directly; the other well-known types, whose mappings are
    special (Struct, Any, wrappers, Duration, FieldMask...), and messages with extensions through json_format's
    own converter (json.dumps with its defaults is what MessageToJson runs on the converted dict)."""
    if descriptor.full_name == _TIMESTAMP:
        return _encode_timestamp
    return lambda message: json.dumps(json_format.MessageToDict(message))


def _encode_timestamp(timestamp: Any) -> str:
    """RFC 3339 in UTC with "Z" and 0, 3, 6 or 9 fractional digits, as Timestamp.ToJsonString writes it."""
    seconds, nanos = timestamp.seconds, timestamp.nanos
    if not (_TIMESTAMP_SECONDS_MIN <= seconds <= _TIMESTAMP_SECONDS_MAX and 0 <= nanos < 1_000_000_000):
        raise ValueError(f"Timestamp is not valid: seconds {seconds}, nanos {nanos}")
    days, second_of_day = divmod(seconds, 86_400)
    date = _dates.get(days)
    if date is None:
        if len(_dates) >= _DATES_KEPT:
            _dates.clear()
        year, month, day, *_ = time.gmtime(days * 86_400)
        date = _dates[days] = f'"{year:04d}-{month:02d}-{day:02d}T'
    minute, second = divmod(second_of_day, 60)
    if nanos == 0:
        return date + _CLOCK[minute] + _SECONDS[second] + 'Z"'
    if nanos % 1_000_000 == 0:
        return date + _CLOCK[minute] + _SECONDS[second] + _MILLIS[nanos // 1_000_000]
    text = date + _CLOCK[minute] + _SECONDS[second]
    if nanos % 1_000 == 0:
        return f'{text}.{nanos // 1_000:06d}Z"'
    return f'{text}.{nanos:09d}Z"'
