from __future__ import annotations

import importlib.util
from pathlib import Path

from google.protobuf import descriptor_pb2

ROOT = Path(__file__).resolve().parents[3]
_spec = importlib.util.spec_from_file_location("protogen", ROOT / "proto" / "tools" / "protogen.py")
assert _spec and _spec.loader
protogen = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(protogen)

T = descriptor_pb2.FieldDescriptorProto


def _set(fields: list[tuple[str, int, int]], reserved: list[int] = ()) -> descriptor_pb2.FileDescriptorSet:  # type: ignore[assignment]
    fds = descriptor_pb2.FileDescriptorSet()
    f = fds.file.add(name="x.proto", package="callstream.x.v1")
    msg = f.message_type.add(name="Event")
    for name, number, type_ in fields:
        msg.field.add(name=name, number=number, type=type_, label=T.LABEL_OPTIONAL)
    for number in reserved:
        msg.reserved_range.add(start=number, end=number + 1)
    return fds


BASE = [("call_id", 1, T.TYPE_STRING), ("queue", 2, T.TYPE_STRING)]


def test_adding_a_field_is_not_breaking() -> None:
    assert protogen.breaking_changes(_set(BASE), _set([*BASE, ("agent", 3, T.TYPE_STRING)])) == []


def test_removed_field_must_be_reserved() -> None:
    problems = protogen.breaking_changes(_set(BASE), _set(BASE[:1]))
    assert problems == ["callstream.x.v1.Event.queue (2) was removed without `reserved`"]
    assert protogen.breaking_changes(_set(BASE), _set(BASE[:1], reserved=[2])) == []


def test_renumbered_and_retyped_fields_are_breaking() -> None:
    renumbered = protogen.breaking_changes(_set(BASE), _set([BASE[0], ("queue", 5, T.TYPE_STRING)]))
    assert renumbered == ["callstream.x.v1.Event.queue was renumbered 2 -> 5"]
    retyped = protogen.breaking_changes(_set(BASE), _set([BASE[0], ("queue", 2, T.TYPE_INT64)]))
    assert retyped == ["callstream.x.v1.Event.queue (2) changed type"]


def test_committed_code_is_fresh() -> None:
    assert protogen.check() == 0
