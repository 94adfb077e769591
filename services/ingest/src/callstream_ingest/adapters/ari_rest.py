"""Asterisk's REST Interface (ARI) for the bridge: the REST calls over httpx and the events WebSocket.

Only the requests the bridge makes (bridges, originate, hangup, music on hold, is a channel there, the channels
and the app's bridges after a reconnect, the agents' device states). A channel or bridge that is already gone
when the bridge hangs it up or destroys it (404) is what the bridge wanted: not an error.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import quote, urlencode

import httpx
import websockets


class AriError(RuntimeError):
    def __init__(self, method: str, path: str, status: int, message: str) -> None:
        super().__init__(f"ARI {method} {path}: {status} {message}")
        self.status = status


class AriRest:
    def __init__(self, base_url: str, username: str, password: str, app: str, *, timeout_s: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.app = app
        self._auth = (username, password)
        self._http = httpx.AsyncClient(base_url=f"{self.base_url}/ari", auth=self._auth, timeout=timeout_s)

    async def _call(self, method: str, path: str, params: dict[str, str] | None = None, *,
                    fine: tuple[int, ...] = ()) -> None:
        """Raise AriError unless Asterisk answered 2xx or one of the `fine` statuses."""
        response = await self._http.request(method, path, params=params)
        if response.status_code in fine:
            return
        if response.status_code >= 300:
            try:
                message = str(response.json().get("message", response.text))
            except ValueError:
                message = response.text
            raise AriError(method, path, response.status_code, message[:300])

    async def hold(self, bridge_id: str, channel_id: str, moh_class: str) -> None:
        """The caller's own bridge (mixing, so the agent joins it later) with music on hold while alone."""
        bridge = quote(bridge_id, safe="")
        await self._call("POST", f"/bridges/{bridge}", {"type": "mixing", "name": bridge_id})
        await self._call("POST", f"/bridges/{bridge}/addChannel", {"channel": channel_id})
        await self._call("POST", f"/bridges/{bridge}/moh", {"mohClass": moh_class})

    async def connect(self, bridge_id: str, channel_id: str) -> None:
        bridge = quote(bridge_id, safe="")
        # 409: no music is playing (the caller's bridge lost it, e.g. their channel is going away): nothing to stop.
        await self._call("DELETE", f"/bridges/{bridge}/moh", fine=(404, 409))
        await self._call("POST", f"/bridges/{bridge}/addChannel", {"channel": channel_id})

    async def originate(self, channel_id: str, endpoint: str, originator: str, app_args: str,
                        timeout_s: int) -> None:
        """Dial `endpoint` into the app (StasisStart with `app_args` once it answers). With the caller as
        originator the new channel inherits the caller's inheritable (`__`) variables, as app_queue's members do
        ("": no originator)."""
        params = {"endpoint": endpoint, "app": self.app, "appArgs": app_args, "timeout": str(timeout_s)}
        if originator:
            params["originator"] = originator
        await self._call("POST", f"/channels/{quote(channel_id, safe='')}", params)

    async def watch_devices(self, devices: tuple[str, ...]) -> list[tuple[str, str]]:
        """Subscribe the app to each device's state changes (DeviceStateChanged on the events WebSocket), then
        read each one's current state: subscribed first, so no change falls between the two."""
        for device in devices:
            await self._call("POST", f"/applications/{quote(self.app, safe='')}/subscription",
                             {"eventSource": f"deviceState:{device}"})
        states = []
        for device in devices:
            response = await self._http.get(f"/deviceStates/{quote(device, safe='')}")
            if response.status_code != 200:
                raise AriError("GET", f"/deviceStates/{device}", response.status_code, response.text[:300])
            states.append((device, str(response.json().get("state", ""))))
        return states

    async def channel_exists(self, channel_id: str) -> bool:
        response = await self._http.get(f"/channels/{quote(channel_id, safe='')}")
        if response.status_code not in (200, 404):
            raise AriError("GET", f"/channels/{channel_id}", response.status_code, response.text[:300])
        return response.status_code == 200

    async def _get(self, path: str) -> Any:
        response = await self._http.get(path)
        if response.status_code != 200:
            raise AriError("GET", path, response.status_code, response.text[:300])
        return response.json()

    async def channels(self) -> Any:
        """Every channel Asterisk has (JSON, ARI's Channel objects)."""
        return await self._get("/channels")

    async def app_bridges(self) -> set[str]:
        """The ids of the bridges the app holds."""
        app = await self._get(f"/applications/{quote(self.app, safe='')}")
        ids = app.get("bridge_ids", []) if isinstance(app, dict) else []
        return {b for b in ids if isinstance(b, str)}

    async def hangup(self, channel_id: str) -> None:
        await self._call("DELETE", f"/channels/{quote(channel_id, safe='')}", fine=(404,))

    async def destroy_bridge(self, bridge_id: str) -> None:
        await self._call("DELETE", f"/bridges/{quote(bridge_id, safe='')}", fine=(404,))

    def events_url(self) -> str:
        ws_base = "ws" + self.base_url.removeprefix("http")  # http -> ws, https -> wss
        query = urlencode({"app": self.app, "api_key": f"{self._auth[0]}:{self._auth[1]}"})
        return f"{ws_base}/ari/events?{query}"

    async def events(self, on_open: Callable[[], None]) -> AsyncIterator[str | bytes]:
        """The app's events until the connection closes (the caller reconnects). `on_open` runs once the
        WebSocket is up: from then on Asterisk hands the app's calls to this connection."""
        async with websockets.connect(self.events_url(), max_size=2**22) as ws:
            on_open()
            async for message in ws:
                yield message

    async def close(self) -> None:
        await self._http.aclose()
