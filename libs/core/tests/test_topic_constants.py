"""The topic-name constants in callstream_core.topics match the registry one to one, so code that imports a
constant always names a registered topic and no registered topic is left to be typed as a literal."""

from __future__ import annotations

from collections import Counter

from callstream_core import topics

# Upper-case string names of the module that are not topic names.
_NOT_TOPIC_NAMES = {"DLQ_SUFFIX"}


def _topic_constants() -> dict[str, str]:
    return {name: value for name, value in vars(topics).items()
            if name.isupper() and isinstance(value, str) and name not in _NOT_TOPIC_NAMES}


def test_every_constant_is_a_registered_topic() -> None:
    unregistered = {name: value for name, value in _topic_constants().items() if value not in topics.BY_NAME}
    assert unregistered == {}


def test_every_registered_topic_has_exactly_one_constant() -> None:
    per_topic = Counter(_topic_constants().values())
    assert {t.name: per_topic[t.name] for t in topics.TOPICS} == {t.name: 1 for t in topics.TOPICS}


def test_constants_name_their_topic() -> None:
    # CALL_EVENTS -> cc.call-events.v1: the constant's name is the topic's name, so a reader can tell them apart.
    for name, value in _topic_constants().items():
        assert value == "cc." + name.lower().replace("_", "-") + ".v1", name
