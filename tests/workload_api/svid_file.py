"""A stand-in for SPIRE's spiffe-helper: keep a JWT-SVID from the Workload API in a file.

Services without a Workload API client (the TypeScript SDK has no runtime dependency,
so no gRPC) read their JWT-SVID from a file that spiffe-helper rewrites before it
expires (``jwt_svids = [{jwt_audience = "...", jwt_svid_file_name = "..."}]``). This
does the same for tests, with the Python SDK's ``WorkloadApiToken``: every ``poll_s`` it
asks for the current token (cached, refreshed at half-life, dropped on a key rotation)
and, when it changed, writes it to a temporary file and renames it over the target, so a
reader never sees half a token.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

from pdp_client import CredentialUnavailable
from pdp_client.workload_api import WorkloadApiToken


class SvidFileWriter:
    def __init__(self, socket: str, audience: str, path: Path, *, poll_s: float = 0.1) -> None:
        self.source = WorkloadApiToken(audience, socket=socket, timeout_s=2)
        self.path, self.poll_s = path, poll_s
        self.writes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="svid-file")

    def start(self) -> SvidFileWriter:
        self._write_if_changed()  # the file exists once start() returns
        self._thread.start()
        return self

    def stop(self, *, remove: bool = False) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self.source.close()
        if remove:
            self.path.unlink(missing_ok=True)

    def _run(self) -> None:
        while not self._stop.wait(self.poll_s):
            try:
                self._write_if_changed()
            except CredentialUnavailable:
                pass  # as spiffe-helper: keep the last file, try again

    def _write_if_changed(self) -> None:
        token = self.source()
        if self.path.exists() and self.path.read_text() == token:
            return
        partial = self.path.with_suffix(".tmp")
        partial.write_text(token)
        os.replace(partial, self.path)
        self.writes += 1
