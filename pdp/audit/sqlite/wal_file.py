"""The log's own descriptor on the ``-wal`` file, fdatasynced after the writer's turn.

At ``durability = "power"``, while another process appends to the same file
(:mod:`pdp.audit.sqlite.sync_regime`), the writer connection commits at
``synchronous=NORMAL`` inside its turn (:mod:`pdp.audit.sqlite.writer_turns`) and the log
fdatasyncs the ``-wal`` file through this descriptor once the turn is let go, before any
caller hears "stored" (:meth:`pdp.audit.sqlite.log.SqliteDecisionLog._made_durable`). With
``FULL`` SQLite syncs inside the turn, so the other worker waits for our sync (~0.2 ms)
before it can commit. The descriptor stays open in SQLite's regime too, so a switch costs
nothing.

The sync must reach the file SQLite wrote the frames to. SQLite deletes ``-wal`` only when
the last connection to the database closes (it must get an EXCLUSIVE lock on the database
file, which the SHARED lock every open WAL connection holds prevents), and a WAL that starts
over after a copy-back is rewritten from offset 0 in the same file. So this descriptor is
opened after the writer connection has opened the WAL, once per connection, and stays
valid while that connection is open; :meth:`WalFile.sync` still checks after each sync
that the file is linked (``st_nlink``), so a file deleted or renamed over behind the
log's back refuses the batch instead of answering "stored" for frames that a restart
would not find.

Opening also fsyncs the directory once: the ``-wal`` may have been created by a connection
that never synced it (a reader), and frames in a file whose name is not durable are lost
with it. (SQLite itself syncs the directory only from the connection that created the file.)
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path


class WalGone(OSError):
    """The ``-wal`` file this descriptor syncs is no longer the one at its path."""


class WalFile:
    """A read-only descriptor on ``<db>-wal``, for :meth:`sync` (the writer thread's)."""

    def __init__(self, db: Path) -> None:
        self.path = db.with_name(db.name + "-wal")
        fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)  # no O_CREAT: SQLite made it
        try:
            if os.fstat(fd).st_nlink == 0:
                raise WalGone(f"{self.path} was deleted as it was opened")
            directory = os.open(self.path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                os.fsync(directory)
            finally:
                os.close(directory)
        except BaseException:
            os.close(fd)
            raise
        self.fd = fd

    def sync(self, fdatasync: Callable[[int], None]) -> None:
        """``fdatasync`` the file (``os.fdatasync``, or a test's), then check it is still
        linked. Raises ``OSError`` if the sync failed, :class:`WalGone` if the file was
        deleted (what was synced is then no longer where a restart looks)."""
        fdatasync(self.fd)
        self.check_linked()

    def check_linked(self) -> None:
        """Raise :class:`WalGone` if the file was deleted (or renamed over): what SQLite
        wrote or synced there is no longer where a restart looks."""
        if os.fstat(self.fd).st_nlink == 0:
            raise WalGone(f"{self.path} was deleted or replaced while the log wrote to it")

    def identity(self) -> tuple[int, int]:
        """``(st_dev, st_ino)`` of the file this descriptor syncs."""
        st = os.fstat(self.fd)
        return st.st_dev, st.st_ino

    def close(self) -> None:
        os.close(self.fd)


__all__ = ["WalFile", "WalGone"]
