"""Agents' status from the switch (pure): an agent logs out, pauses and is ready again at Asterisk, and the bridge
tells the router and the KPIs.

A call routed through `Stasis()` never enters app_queue, so its member events (QueuePause, QueueMemberStatus)
say nothing about Callstream's agents. What the switch does have for every agent is a custom device state,
`Custom:agent-<switch id>` (the prefix is the bridge's `AGENT_DEVICE_PREFIX`): the agent's phone dials a feature
code whose dialplan sets it (`Set(DEVICE_STATE(Custom:agent-${CALLERID(num)})=BUSY)`), BLF keys on the phones
can show it, and Asterisk keeps it across its restarts (astdb). The bridge subscribes its Stasis application to
each agent's device (ARI `deviceState:` event source), reads the current states at every (re)connection, and
maps each `DeviceStateChanged`:

    NOT_INUSE    ready       (logged in first if logged out)
    BUSY         paused      (the router's not_ready; logged in first if logged out)
    UNAVAILABLE  logged out
    anything else (UNKNOWN: never set; INUSE, RINGING, ...): not a status, ignored

The switch id in the device name is mapped to the Callstream agent id through the agent directory
(`AGENT_MAP`, `callstream_ingest.domain.identity`), as the other adapters map queue_log's and AMI's names. Each
change becomes router commands (`SetAgentState`, command ids derived from the device, its state and the time
Asterisk reported it, so a retried one is applied once) and agent events (`logged_in`, `ready`, `not_ready`,
`logged_out`) for the KPIs. An agent the bridge has no endpoint for is not watched; a device that maps to none
of its agents is counted in `unknown`.
"""

from __future__ import annotations

import enum
from collections import Counter
from datetime import datetime

from callstream.agent.v1 import agent_events_pb2 as ae
from callstream_ingest.domain.ari_routing import Agent, Effect, Publish, Route, WatchDevices
from callstream_ingest.domain.events import agent_event
from callstream_ingest.domain.identity import AgentDirectory
from callstream_routing import domain as d


class Status(enum.StrEnum):
    READY = "ready"
    PAUSED = "paused"
    LOGGED_OUT = "logged_out"


DEVICE_STATUS = {"NOT_INUSE": Status.READY, "BUSY": Status.PAUSED, "UNAVAILABLE": Status.LOGGED_OUT}


class AgentPresence:
    """The switch-side status of the bridge's agents; every agent starts ready (the bridge logs them in and
    ready at its start), and the switch's device states move them from there."""

    def __init__(self, agents: list[Agent], directory: AgentDirectory, *, device_prefix: str,
                 source: str = "asterisk-ari") -> None:
        self.agents = {a.agent_id: a for a in agents}
        self.source = source
        self.status = dict.fromkeys(self.agents, Status.READY)
        self.unknown: Counter[str] = Counter()
        self._directory = directory
        self._prefix = device_prefix
        # The switch's names of each agent: the directory's entries for it, or its own id when it has none.
        switch_ids = {agent_id: [s for s, a in directory.mapping.items() if a == agent_id] or [agent_id]
                      for agent_id in self.agents}
        self.devices = tuple(sorted(device_prefix + s for names in switch_ids.values() for s in names))

    def watch(self) -> list[Effect]:
        """Subscribe to the agents' devices and apply their current states (at each connection to Asterisk)."""
        return [WatchDevices(self.devices)] if self.devices else []

    def changed(self, device: str, state: str, at: datetime) -> list[Effect]:
        agent = self.agents.get(self._directory.agent_id(device.removeprefix(self._prefix)))
        if device not in self.devices or agent is None:
            self.unknown[device] += 1
            return []
        status = DEVICE_STATUS.get(state)
        if status is None or status is self.status[agent.agent_id]:
            return []
        before, self.status[agent.agent_id] = self.status[agent.agent_id], status
        stamp = at.strftime("%Y%m%dT%H%M%S.%f")

        def command(action: d.AgentAction) -> Route:
            command_id = f"ari:{agent.agent_id}:device:{action.value}:{stamp}"
            if action is d.AgentAction.LOGIN:
                return Route(agent.login(command_id))
            return Route(d.SetAgentState(command_id=command_id, agent_id=agent.agent_id, action=action))

        def event(kind: str, payload: object) -> Publish:
            return Publish(agent_event(self.source, f"{agent.agent_id}|{kind}|device|{stamp}", agent.agent_id, at,
                                       kind, payload))

        if status is Status.LOGGED_OUT:
            return [command(d.AgentAction.LOGOUT), event("logged_out", ae.LoggedOut())]
        effects: list[Effect] = []
        if before is Status.LOGGED_OUT:
            effects += [command(d.AgentAction.LOGIN),
                        event("logged_in", ae.LoggedIn(extension=agent.endpoint))]
        if status is Status.READY:
            return [*effects, command(d.AgentAction.READY), event("ready", ae.Ready())]
        return [*effects, command(d.AgentAction.NOT_READY),
                event("not_ready", ae.NotReady(detail=f"{device} {state}"))]
