"""ARI WebSocket messages -> the bridge's inputs (pure).

Asterisk sends one JSON object per message, with a `type` (StasisStart, StasisEnd, ChannelDestroyed, ...;
"Asterisk REST Interface" in its documentation). These matter to the bridge: a channel entering the app (a
caller, with its queue as the first Stasis argument, or a channel the bridge originated: an agent's, argument
`agent`, or a callback to a caller, argument `callback`), a channel joining a bridge (ChannelEnteredBridge,
with the bridge's channels: Asterisk's word that caller and agent are connected), a channel leaving
(StasisEnd, ChannelDestroyed) and an agent's device state changing (DeviceStateChanged, `domain.ari_presence`). Every
other well-formed type is ignored; a message that is not JSON, has no type or lacks the channel of an event that
needs one is `Malformed`, with the reason: logged and counted by the service, never fatal.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeAlias

from callstream_ingest.domain.ari_routing import AGENT_ARG, CALLBACK_ARG


@dataclass(frozen=True, slots=True)
class CallerEntered:
    channel_id: str
    queue_id: str
    caller_number: str
    at: datetime


@dataclass(frozen=True, slots=True)
class AgentAnswered:
    channel_id: str
    at: datetime


@dataclass(frozen=True, slots=True)
class CallbackAnswered:
    """The caller answered the callback the bridge dialled (argument `callback`)."""

    channel_id: str
    at: datetime


@dataclass(frozen=True, slots=True)
class EnteredBridge:
    """A channel joined a bridge; `bridge_channels`: every channel in it then, as Asterisk tells it."""

    channel_id: str
    bridge_channels: tuple[str, ...]
    at: datetime


@dataclass(frozen=True, slots=True)
class ChannelLeft:
    channel_id: str
    at: datetime


@dataclass(frozen=True, slots=True)
class DeviceStateChanged:
    """A device state the app subscribed to changed (an agent's status at the switch: `domain.ari_presence`)."""

    device: str
    state: str
    at: datetime


@dataclass(frozen=True, slots=True)
class StasisChannel:
    """A channel in the app, as `GET /channels` describes it: its Stasis arguments and caller number."""

    channel_id: str
    args: tuple[str, ...]
    caller_number: str


@dataclass(frozen=True, slots=True)
class Ignored:
    type: str


@dataclass(frozen=True, slots=True)
class Malformed:
    reason: str
    excerpt: str


AriInput: TypeAlias = (CallerEntered | AgentAnswered | CallbackAnswered | EnteredBridge | ChannelLeft
                       | DeviceStateChanged | Ignored | Malformed)


def _time(value: Any, received_at: datetime) -> datetime:
    """ARI's `timestamp` (e.g. 2026-12-04T12:00:00.123+0000); the time of receipt when absent or unreadable."""
    if isinstance(value, str):
        try:
            return datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%f%z").astimezone(UTC)
        except ValueError:
            pass
    return received_at


def parse(raw: str | bytes, received_at: datetime) -> AriInput:
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    excerpt = text[:200]
    try:
        message = json.loads(text)
    except ValueError:
        return Malformed("not_json", excerpt)
    if not isinstance(message, dict) or not isinstance(message.get("type"), str):
        return Malformed("no_type", excerpt)
    kind = message["type"]
    if kind == "DeviceStateChanged":
        device = message.get("device_state")
        name, state = (device.get("name"), device.get("state")) if isinstance(device, dict) else (None, None)
        if not isinstance(name, str) or not name or not isinstance(state, str):
            return Malformed("no_device_state", excerpt)
        return DeviceStateChanged(name, state, _time(message.get("timestamp"), received_at))
    if kind not in ("StasisStart", "StasisEnd", "ChannelDestroyed", "ChannelEnteredBridge"):
        return Ignored(kind)
    channel = message.get("channel")
    channel_id = channel.get("id") if isinstance(channel, dict) else None
    if not isinstance(channel_id, str) or not channel_id:
        return Malformed("no_channel_id", excerpt)
    at = _time(message.get("timestamp"), received_at)
    if kind == "ChannelEnteredBridge":
        bridge = message.get("bridge")
        members = bridge.get("channels") if isinstance(bridge, dict) else None
        if not isinstance(members, list) or not all(isinstance(c, str) for c in members):
            return Malformed("no_bridge_channels", excerpt)
        return EnteredBridge(channel_id, tuple(members), at)
    if kind != "StasisStart":
        return ChannelLeft(channel_id, at)
    args = message.get("args")
    if not isinstance(args, list) or not args or not isinstance(args[0], str) or not args[0]:
        return Malformed("stasis_start_without_queue", excerpt)
    if args[0] == AGENT_ARG:
        return AgentAnswered(channel_id, at)
    if args[0] == CALLBACK_ARG:
        return CallbackAnswered(channel_id, at)
    caller = channel.get("caller") if isinstance(channel, dict) else None
    number = caller.get("number", "") if isinstance(caller, dict) else ""
    return CallerEntered(channel_id, args[0], number if isinstance(number, str) else "", at)


def stasis_channels(channels: Any, app: str) -> list[StasisChannel]:
    """`GET /channels`' answer -> the channels running `Stasis(<app>,...)`; a channel it cannot read is left out
    (it is in no call the bridge could resume)."""
    found: list[StasisChannel] = []
    for channel in channels if isinstance(channels, list) else []:
        if not isinstance(channel, dict) or not isinstance(channel.get("id"), str):
            continue
        dialplan = channel.get("dialplan")
        if not isinstance(dialplan, dict) or dialplan.get("app_name") != "Stasis":
            continue
        name, *args = str(dialplan.get("app_data", "")).split(",")
        if name != app:
            continue
        caller = channel.get("caller")
        number = caller.get("number", "") if isinstance(caller, dict) else ""
        found.append(StasisChannel(channel["id"], tuple(args), number if isinstance(number, str) else ""))
    return found
