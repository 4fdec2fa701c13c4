"""The PDP's TLS listener on its own X.509-SVID from the SPIFFE Workload API, rotated in place.

With ``tls_workload_api = true`` (and ``workload_api_socket``) the listener needs no
certificate files from an operator: the agent's X.509-SVID (leaf and intermediates) and
its key are written to ``<state_dir>/tls/`` (the key ``0600``) for uvicorn to start with,
and every time the agent streams a new SVID the files are rewritten and the running
server's ``ssl.SSLContext`` loads them again (``load_cert_chain``): OpenSSL gives each
new handshake the context's current certificate, so connections made after a rotation
see the new SVID and open ones keep theirs — no restart, no dropped connection.

Client certificates (the PEP's identity, :mod:`pdp.api.pep`) are asked for from the
agent's X.509 authorities (own and federated domains) unless ``client_ca_bundle`` is
given; new authorities are added to the context as they arrive. An authority the agent
retires cannot be taken out of a live ``SSLContext``, but that only decides whether the
handshake succeeds: the app verifies every client chain itself against the current trust
bundles, so a retired CA's certificate is refused there at once.

One serving process only: ``pdp serve --workers N`` builds its contexts in worker
processes this module does not reach, and refuses ``tls_workload_api``.
"""

from __future__ import annotations

import logging
import os
import socket
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography.hazmat.primitives import serialization

from pdp.api.tls import http_protocol_class

if TYPE_CHECKING:
    from pdp.config import Settings
    from pdp.identity.workload_api import WorkloadApiBundles

log = logging.getLogger("pdp.api")


@dataclass
class SvidTls:
    """Keeps ``directory``'s SVID files and a server's SSL context current."""

    bundles: WorkloadApiBundles
    directory: Path
    ask_client_ca: bool = True
    context: ssl.SSLContext | None = None
    serial: int | None = None  # of the SVID now served
    rotations: int = 0
    _roots: set[bytes] = field(default_factory=set)

    @property
    def cert_path(self) -> Path:
        return self.directory / "svid.pem"

    @property
    def key_path(self) -> Path:
        return self.directory / "svid.key"

    @property
    def ca_path(self) -> Path:
        return self.directory / "client-ca.pem"

    def write(self) -> None:
        """Write the current SVID (and the agent's CAs); raise ``ValueError`` without one."""
        svid = self.bundles.svid
        if svid is None:
            raise ValueError(f"tls_workload_api: no X.509-SVID from the Workload API at "
                             f"{self.bundles.location} (is the agent up, the PDP registered?)")
        self.directory.mkdir(parents=True, exist_ok=True)
        chain = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in svid.cert_chain)
        key = svid.private_key.private_bytes(serialization.Encoding.PEM,
                                             serialization.PrivateFormat.PKCS8,
                                             serialization.NoEncryption())
        _replace(self.cert_path, chain, 0o644)
        _replace(self.key_path, key, 0o600)
        roots = self.bundles.x509_authorities()
        _replace(self.ca_path, b"".join(r.public_bytes(serialization.Encoding.PEM)
                                        for r in roots), 0o644)
        self._roots |= {r.public_bytes(serialization.Encoding.DER) for r in roots}
        self.serial = svid.leaf.serial_number

    def uvicorn_options(self, settings: Settings) -> dict[str, Any]:
        """The ``uvicorn.Config`` keyword arguments for the listener (after :meth:`write`)."""
        options: dict[str, Any] = {"ssl_certfile": str(self.cert_path),
                                   "ssl_keyfile": str(self.key_path)}
        if self.ask_client_ca or settings.client_ca_bundle is not None:
            options["ssl_ca_certs"] = str(settings.client_ca_bundle or self.ca_path)
            options["ssl_cert_reqs"] = (ssl.CERT_REQUIRED if settings.client_cert_required
                                        else ssl.CERT_OPTIONAL)
            options["http"] = http_protocol_class()
        return options

    def attach(self, context: ssl.SSLContext) -> None:
        """Follow SVID updates into ``context`` (the running server's) from now on."""
        self.context = context
        self.bundles.listeners.append(self._on_update)

    def serve(self, app: Any, host: str, port: int, sockets: list[socket.socket] | None = None,
              **options: Any) -> None:
        """``uvicorn.run(app, ...)`` (on ``sockets`` when already bound), holding on to the
        server's SSL context: built here (``Config.load``), then updated in place by every
        SVID rotation."""
        import sys

        import uvicorn
        from uvicorn.config import STARTUP_FAILURE

        config = uvicorn.Config(app, host=host, port=port, **options)
        config.load()
        assert config.ssl is not None  # uvicorn_options() gave it a certificate
        self.attach(config.ssl)
        server = uvicorn.Server(config)
        try:
            server.run(sockets=sockets)
        except KeyboardInterrupt:  # as uvicorn.run
            pass
        if not server.started:
            sys.exit(STARTUP_FAILURE)

    def _on_update(self) -> None:
        svid = self.bundles.svid
        if svid is None or self.context is None:
            return
        new_roots = {r.public_bytes(serialization.Encoding.DER)
                     for r in self.bundles.x509_authorities()} - self._roots
        if svid.leaf.serial_number == self.serial and not new_roots:
            return
        self.write()
        self.context.load_cert_chain(str(self.cert_path), str(self.key_path))
        if self.ask_client_ca and new_roots:
            self.context.load_verify_locations(cadata=b"".join(new_roots))
        self.rotations += 1
        log.info("TLS listener: now serving X.509-SVID serial %x", svid.leaf.serial_number)


def svid_tls_for(settings: Settings, bundles: WorkloadApiBundles | None) -> SvidTls:
    """The listener's SVID files for ``settings`` (``tls_workload_api``), written now."""
    if settings.tls_cert is not None or settings.tls_key is not None:
        raise ValueError("tls_workload_api takes the certificate from the Workload API: "
                         "give no tls_cert or tls_key")
    if bundles is None:
        raise ValueError("tls_workload_api needs a trust domain with workload_api = true "
                         "(the PDP follows the Workload API for it)")
    tls = SvidTls(bundles, settings.state_dir / "tls",
                  ask_client_ca=settings.client_ca_bundle is None)
    tls.write()
    return tls


def _replace(path: Path, data: bytes, mode: int) -> None:
    """Write ``data`` to a new file and rename it over ``path``: a reader never sees half."""
    partial = path.with_name(path.name + ".tmp")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    os.replace(partial, path)


__all__ = ["SvidTls", "svid_tls_for"]
