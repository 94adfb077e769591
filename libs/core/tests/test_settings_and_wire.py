from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from callstream.call.v1 import call_events_pb2
from callstream_core import wire
from callstream_core.envelope import EVENT_ID_NAMESPACE, deterministic_event_id, hash_caller, new_envelope
from callstream_core.settings import CoreSettings, parse_tokens
from callstream_core.topics import TOPICS


def test_settings_fail_fast_on_bad_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "localhost")
    with pytest.raises(ValidationError, match="host:port"):
        CoreSettings()
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    monkeypatch.setenv("CLICKHOUSE_URL", "chdb://relative/path")
    with pytest.raises(ValidationError, match="ABSOLUTE"):
        CoreSettings()
    monkeypatch.setenv("CLICKHOUSE_URL", "chdb:///var/lib/callstream")
    monkeypatch.setenv("WIRE_FORMAT", "xml")
    with pytest.raises(ValidationError):
        CoreSettings()


def test_tls_is_all_or_nothing(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A server is either HTTPS with both files or plain: half a configuration stops the process at start."""
    cert, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    cert.write_text("cert")
    monkeypatch.setenv("TLS_ENABLED", "true")
    with pytest.raises(ValidationError, match="TLS_ENABLED=true needs TLS_CERT_FILE"):
        CoreSettings()
    monkeypatch.setenv("TLS_CERT_FILE", str(cert))
    monkeypatch.setenv("TLS_KEY_FILE", str(key))
    with pytest.raises(ValidationError, match=f"TLS_KEY_FILE={key}: no such file"):
        CoreSettings()
    key.write_text("key")
    assert CoreSettings().uvicorn_tls() == {"ssl_certfile": str(cert), "ssl_keyfile": str(key)}
    monkeypatch.setenv("TLS_ENABLED", "false")
    with pytest.raises(ValidationError, match="TLS_CERT_FILE and TLS_KEY_FILE set but TLS_ENABLED is not true"):
        CoreSettings()
    monkeypatch.delenv("TLS_CERT_FILE")
    monkeypatch.delenv("TLS_KEY_FILE")
    assert CoreSettings().uvicorn_tls() == {}


def test_tokens_need_a_known_role() -> None:
    assert parse_tokens("secret-token-1:manager, other-token-2:qa") == {
        "secret-token-1": "manager", "other-token-2": "qa"}
    with pytest.raises(ValueError, match="ROLE"):
        parse_tokens("secret-token-1:janitor")
    with pytest.raises(ValueError, match="8 characters"):
        parse_tokens("short:qa")


def _event() -> call_events_pb2.CallEvent:
    event = call_events_pb2.CallEvent(call_id="c-1", envelope=new_envelope(
        "test", datetime(2026, 11, 2, 9, 30, 12, 250000, tzinfo=UTC), deterministic_event_id("t", "1")))
    event.answered.agent_id = "a-1"
    return event


@pytest.mark.parametrize("fmt", ["json", "protobuf"])
def test_wire_round_trip(fmt: str) -> None:
    data = wire.encode(_event(), fmt)
    assert wire.decode(data, call_events_pb2.CallEvent, wire.content_type(fmt)) == _event()


def test_json_wire_is_the_protobuf_json_mapping() -> None:
    text = wire.encode(_event()).decode()
    assert '"occurredAt": "2026-11-02T09:30:12.250Z"' in text
    assert '"callId": "c-1"' in text


def test_decode_refuses_unknown_fields_and_garbage() -> None:
    with pytest.raises(wire.WireError, match="callIdd"):
        wire.decode(b'{"callIdd": "x"}', call_events_pb2.CallEvent)
    with pytest.raises(wire.WireError):
        wire.decode(b"\xff\xfe", call_events_pb2.CallEvent)
    with pytest.raises(wire.WireError, match="tombstone"):
        wire.decode(None, call_events_pb2.CallEvent)


def test_envelope_rules() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        new_envelope("x", datetime(2026, 1, 1))
    local = datetime(2026, 1, 1, 12, 0, tzinfo=timezone(timedelta(hours=2)))
    assert new_envelope("x", local).occurred_at.ToDatetime(tzinfo=UTC).hour == 10
    assert deterministic_event_id("a", "b") == deterministic_event_id("a", "b") != deterministic_event_id("a", "c")
    assert hash_caller("", "s") == ""
    assert hash_caller("0722", "s") != hash_caller("0722", "t")


@given(st.lists(st.text(), min_size=1, max_size=4))
def test_deterministic_event_id_is_uuid5(parts: list[str]) -> None:
    assert deterministic_event_id(*parts) == str(uuid.uuid5(EVENT_ID_NAMESPACE, "\x1f".join(parts)))


def test_registry_is_consistent() -> None:
    names = [t.name for t in TOPICS]
    assert len(names) == len(set(names))
    for t in TOPICS:
        assert t.name.startswith("cc.") and t.name.endswith(".v1")
        example = t.example()
        assert isinstance(example, t.message_type)
        assert example.envelope.event_id, t.name  # type: ignore[attr-defined]
        assert t.partitions >= 1 and t.retention_ms > 0
