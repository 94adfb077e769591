"""When a standby takes over and when a leader snapshots: pure rules over times and counts (clock passed in)."""

from __future__ import annotations


class Lease:
    """A standby's view of the leader: alive while its records (commands or heartbeats) keep coming.

    The times are the standby's own (monotonic) clock at receipt, never the leader's timestamps, so clock skew
    between machines cannot make a live leader look dead."""

    def __init__(self, timeout_s: float, now: float) -> None:
        self.timeout_s = timeout_s
        self.last_seen = now
        self.resigned = False

    def seen(self, now: float, *, resigning: bool = False) -> None:
        self.last_seen = max(self.last_seen, now)
        self.resigned = resigning

    def expired(self, now: float) -> bool:
        return self.resigned or now - self.last_seen > self.timeout_s

    def remaining(self, now: float) -> float:
        return 0.0 if self.resigned else max(0.0, self.timeout_s - (now - self.last_seen))


class SnapshotSchedule:
    """Every `every_commands` commands, or every `every_s` seconds if anything changed since the last one."""

    def __init__(self, every_commands: int, every_s: float, *, commands: int, now: float) -> None:
        self.every_commands = every_commands
        self.every_s = every_s
        self.last_commands = commands
        self.last_at = now

    def due(self, commands: int, now: float) -> bool:
        since = commands - self.last_commands
        return since >= self.every_commands or (since > 0 and now - self.last_at >= self.every_s)

    def taken(self, commands: int, now: float) -> None:
        self.last_commands = commands
        self.last_at = now
