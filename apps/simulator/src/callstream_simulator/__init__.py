"""The virtual PBX: a discrete-event contact-center simulation driven by a scenario file (docs/simulator.md)."""

from callstream_simulator.engine import Engine, Summary
from callstream_simulator.router import InProcessRouter, Router, queue_configs
from callstream_simulator.scenario import Scenario, ScenarioError, load_scenario, parse_scenario
from callstream_simulator.sinks import CountingSink, EventSink, KafkaSink, ListSink

__all__ = [
    "CountingSink", "Engine", "EventSink", "InProcessRouter", "KafkaSink", "ListSink", "Router", "Scenario",
    "ScenarioError", "Summary", "load_scenario", "parse_scenario", "queue_configs",
]
