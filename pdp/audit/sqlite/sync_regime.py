"""Where the ``-wal`` is synced at ``durability = "power"``: in SQLite's commit, or after
the writers' turn, chosen per batch by whether another process appends to the same file.

Measured (bench/RESULTS.md, issue 16, round 10: pipe): with two workers appending, an
fdatasync after the turn (the commit at ``synchronous=NORMAL``) lets the other worker commit
while ours reaches the disk, 1.08-1.20x the rate at 64 connections; with one appender
nobody waits for the turn, and SQLite's own sync inside its commit (``FULL``) is the cheaper
one (a Python-level sync after it measured ~0.95x the rate). So a log starts in SQLite's
regime, goes to the pipelined one at the first turn that finds another process appended
since its own last turn, and goes back after ``quiet_turns`` consecutive turns in which
nobody else did (so two workers taking turns unevenly do not flip at every batch).

Either regime acknowledges only what is on disk: at ``FULL`` SQLite's commit synced it;
at ``NORMAL`` the log fdatasyncs the ``-wal`` before answering
(:meth:`pdp.audit.sqlite.log.SqliteDecisionLog._made_durable`).
"""

from __future__ import annotations

QUIET_TURNS = 256  # turns alone before SQLite syncs in its commit again


class SyncRegime:
    """The writer thread's choice, turn by turn: ``pipelined`` (NORMAL, synced after the
    turn) while another process appends, SQLite's ``FULL`` otherwise."""

    def __init__(self, quiet_turns: int = QUIET_TURNS) -> None:
        if quiet_turns < 1:
            raise ValueError("quiet_turns must be at least 1")
        self.quiet_turns = quiet_turns
        self.pipelined = False
        self._quiet = 0  # consecutive turns, while pipelined, in which nobody else appended

    def turn(self, others_appended: bool) -> bool:
        """Record one turn (``others_appended``: another process appended since our last
        one); return whether this turn's batch is to be committed pipelined."""
        if others_appended:
            self.pipelined, self._quiet = True, 0
        elif self.pipelined:
            self._quiet += 1
            if self._quiet >= self.quiet_turns:
                self.pipelined, self._quiet = False, 0
        return self.pipelined


__all__ = ["QUIET_TURNS", "SyncRegime"]
