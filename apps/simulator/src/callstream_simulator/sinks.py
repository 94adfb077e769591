"""Where the simulator's events go: Kafka (as a switch adapter would publish them) or a list (tests)."""

from __future__ import annotations

from typing import Protocol

from callstream.agent.v1 import agent_events_pb2
from callstream.call.v1 import call_events_pb2
from callstream_core.kafka import EventProducer
from callstream_core.topics import AGENT_EVENTS, CALL_EVENTS


class EventSink(Protocol):
    def call_event(self, event: call_events_pb2.CallEvent) -> None: ...

    def agent_event(self, event: agent_events_pb2.AgentEvent) -> None: ...

    def flush(self) -> None: ...


class ListSink:
    """Keeps every event in emission order (tests)."""

    def __init__(self) -> None:
        self.events: list[call_events_pb2.CallEvent | agent_events_pb2.AgentEvent] = []

    def call_event(self, event: call_events_pb2.CallEvent) -> None:
        self.events.append(event)

    def agent_event(self, event: agent_events_pb2.AgentEvent) -> None:
        self.events.append(event)

    def flush(self) -> None:
        return None

    @property
    def call_events(self) -> list[call_events_pb2.CallEvent]:
        return [e for e in self.events if isinstance(e, call_events_pb2.CallEvent)]

    @property
    def agent_events(self) -> list[agent_events_pb2.AgentEvent]:
        return [e for e in self.events if isinstance(e, agent_events_pb2.AgentEvent)]


class CountingSink:
    """Counts events and drops them (benchmarks)."""

    def __init__(self) -> None:
        self.calls = 0
        self.agents = 0

    def call_event(self, event: call_events_pb2.CallEvent) -> None:
        self.calls += 1

    def agent_event(self, event: agent_events_pb2.AgentEvent) -> None:
        self.agents += 1

    def flush(self) -> None:
        return None


class KafkaSink:
    """Call events to cc.call-events.v1 keyed by call_id, agent events to cc.agent-events.v1 keyed by agent_id.
    `EventProducer.produce` waits when librdkafka's local queue is full (back-pressure, never drops)."""

    def __init__(self, producer: EventProducer, *, call_topic: str = CALL_EVENTS,
                 agent_topic: str = AGENT_EVENTS) -> None:
        self.producer = producer
        self.call_topic = call_topic
        self.agent_topic = agent_topic

    @classmethod
    def connect(cls, bootstrap_servers: str, *, client_id: str = "callstream-simulator",
                wire_format: str = "json") -> KafkaSink:
        return cls(EventProducer(bootstrap_servers, client_id=client_id, wire_format=wire_format))

    def call_event(self, event: call_events_pb2.CallEvent) -> None:
        self.producer.produce(self.call_topic, event, key=event.call_id)

    def agent_event(self, event: agent_events_pb2.AgentEvent) -> None:
        self.producer.produce(self.agent_topic, event, key=event.agent_id)

    def flush(self) -> None:
        self.producer.flush()
