"""The decision log's housekeeping in a running PDP: checkpoints and retention.

One daemon thread, started by ``build_components`` when the store keeps
checkpoints (SQLite, PostgreSQL): it signs a checkpoint every
``checkpoint_every_records`` records or ``checkpoint_every_s`` seconds (see
:class:`pdp.audit.chain.checkpoint.Checkpointer`), and, with ``retention_days``
set, applies retention once at start and then every ``retention_every_s``.
:meth:`AuditMaintenance.close` signs the final head (``shutdown``); call it
after the log itself was closed.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from pdp.audit.chain.checkpoint import Checkpointer, CheckpointStore, checkpoint_private_key
from pdp.audit.upkeep.retention import RetentionResult, apply_retention, cutoff_for

log = logging.getLogger(__name__)


class AuditMaintenance:
    """Checkpoints and retention for one store, on one thread."""

    def __init__(self, store: Any, *, key: Ed25519PrivateKey | None,
                 checkpoint_every_records: int = 1000, checkpoint_every_s: float = 60.0,
                 retention_days: int | None = None, retention_every_s: float = 3600.0,
                 poll_s: float = 1.0) -> None:
        self.store = store
        self.key = key
        self.retention_days = retention_days
        self.retention_every_s = retention_every_s
        self.poll_s = poll_s
        self.last_retention: RetentionResult | None = None
        self.checkpointer = Checkpointer(
            store, key, every_records=checkpoint_every_records, every_s=checkpoint_every_s,
            poll_s=poll_s) if key is not None else None
        self._next_retention = time.monotonic()  # first run at start
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pdp-audit-maintenance",
                                        daemon=True)

    def start(self) -> AuditMaintenance:
        self._thread.start()
        return self

    def run_retention(self) -> RetentionResult | None:
        if self.retention_days is None:
            return None
        self.last_retention = apply_retention(
            self.store, older_than=cutoff_for(self.retention_days), key=self.key)
        return self.last_retention

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        if self.checkpointer is not None:
            self.checkpointer.close()

    def _run(self) -> None:
        while not self._stop.wait(self.poll_s):
            if getattr(self.store, "closed", False):
                return  # the log was closed; close() signs the last head
            try:
                if self.checkpointer is not None:
                    self.checkpointer.maybe_checkpoint()
                if self.retention_days is not None and time.monotonic() >= self._next_retention:
                    self._next_retention = time.monotonic() + self.retention_every_s
                    self.run_retention()
            except Exception as exc:  # the store is down, or retention refused: say so, go on
                log.warning("decision log maintenance: %s", exc)


def start_maintenance(settings: Any, store: Any) -> AuditMaintenance | None:
    """Start checkpoints and retention for ``store`` as ``settings.audit`` asks, or None.

    None when the store keeps no checkpoints (in memory) or when there is
    neither a checkpoint key nor retention to run.
    """
    if not isinstance(store, CheckpointStore):
        return None
    audit = settings.audit
    key = checkpoint_private_key(settings)
    if key is None and audit.retention_days is None:
        return None
    return AuditMaintenance(
        store, key=key, checkpoint_every_records=audit.checkpoint_every_records,
        checkpoint_every_s=audit.checkpoint_every_s,
        retention_days=audit.retention_days).start()


__all__ = ["AuditMaintenance", "start_maintenance"]
