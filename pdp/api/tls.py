"""The PDP's own TLS listener: the client certificate of each connection, for the app.

ASGI defines a ``tls`` scope extension carrying the client's certificate chain
(``client_cert_chain``, PEM strings, leaf first), but uvicorn does not fill it
in. :func:`http_protocol_class` returns uvicorn's HTTP/1.1 protocol with that
extension added: the chain is read once per connection from the TLS object
(the certificates the client sent, leaf first) and put into the scope of
every request on that connection. The app then verifies it itself as an
X.509-SVID (``pdp.api.pep``): uvicorn's ``ssl_ca_certs`` check only decides
whether the handshake succeeds.
Ref: https://asgi.readthedocs.io/en/latest/specs/tls.html

Example::

    uvicorn.run(app, host=..., port=..., **uvicorn_tls_options(settings))
"""

from __future__ import annotations

import asyncio
import ssl
from typing import TYPE_CHECKING, Any

from pdp.api.drain import draining_protocol_class

if TYPE_CHECKING:
    from pdp.config import Settings


def tls_extension(transport: asyncio.BaseTransport) -> dict[str, Any] | None:
    """The ASGI ``tls`` extension for a connection, or None when it is not TLS."""
    ssl_object = transport.get_extra_info("ssl_object")
    if ssl_object is None:
        return None
    chain = client_chain_pem(ssl_object)
    version = ssl_object.version()
    return {
        "server_cert": None,
        "client_cert_chain": chain,
        "client_cert_name": None,
        "client_cert_error": None,
        "tls_version": {"TLSv1.2": 0x0303, "TLSv1.3": 0x0304}.get(version or ""),
        "cipher_suite": None,
    }


def client_chain_pem(ssl_object: Any) -> list[str]:
    """The certificates the client presented, leaf first, as PEM (empty if none).

    ``get_unverified_chain`` is public from Python 3.13 and present (private, on
    ``_sslobj``) since 3.10; without it only the leaf is available.
    """
    getter = getattr(ssl_object, "get_unverified_chain", None) or getattr(
        getattr(ssl_object, "_sslobj", None), "get_unverified_chain", None)
    if getter is not None:
        try:
            chain = getter() or []
            return [_pem(cert) for cert in chain]
        except (ssl.SSLError, ValueError, AttributeError):
            pass
    der = ssl_object.getpeercert(binary_form=True)
    return [ssl.DER_cert_to_PEM_cert(der)] if der else []


def _pem(cert: Any) -> str:
    if isinstance(cert, bytes):  # DER
        return ssl.DER_cert_to_PEM_cert(cert)
    # ssl's C module: its PEM constant is not in typeshed.
    return str(cert.public_bytes(ssl._ssl.ENCODING_PEM))  # type: ignore[attr-defined]


class _TlsScopeMixin:
    """Adds the ``tls`` extension to each request scope the protocol builds."""

    _tls: dict[str, Any] | None = None
    _scope: Any = None

    def connection_made(self, transport: asyncio.Transport) -> None:
        self._tls = tls_extension(transport)
        # A mixin: uvicorn's protocol class follows it in the MRO (http_protocol_class).
        super().connection_made(transport)  # type: ignore[misc]

    # uvicorn's protocols assign ``self.scope = {...}`` for every request.
    @property
    def scope(self) -> Any:
        return self._scope

    @scope.setter
    def scope(self, value: Any) -> None:
        if isinstance(value, dict) and self._tls is not None:
            value.setdefault("extensions", {})["tls"] = self._tls
        self._scope = value


def http_protocol_class() -> type[asyncio.Protocol]:
    """uvicorn's HTTP/1.1 protocol (httptools, able to drain: :mod:`pdp.api.drain`) with
    the ``tls`` extension in every scope."""
    return type("TlsScopeHttpProtocol", (_TlsScopeMixin, draining_protocol_class()), {})


def uvicorn_tls_options(settings: Settings) -> dict[str, Any]:
    """The ``uvicorn.run`` keyword arguments for ``settings``' TLS listener ({} without TLS).

    With ``client_ca_bundle`` the listener asks each client for a certificate
    (required with ``client_cert_required``) and hands its chain to the app.
    Raises ``ValueError`` for an incomplete configuration.
    """
    if settings.tls_cert is None and settings.tls_key is None:
        if settings.client_ca_bundle is not None:
            raise ValueError("client_ca_bundle needs tls_cert and tls_key")
        return {}
    if settings.tls_cert is None or settings.tls_key is None:
        raise ValueError("give both tls_cert and tls_key")
    options: dict[str, Any] = {"ssl_certfile": str(settings.tls_cert),
                               "ssl_keyfile": str(settings.tls_key)}
    if settings.client_ca_bundle is not None:
        options["ssl_ca_certs"] = str(settings.client_ca_bundle)
        options["ssl_cert_reqs"] = (ssl.CERT_REQUIRED if settings.client_cert_required
                                    else ssl.CERT_OPTIONAL)
        options["http"] = http_protocol_class()
    return options


HTTP_PROTOCOL_IMPORT = "pdp.api.tls:TlsScopeHttpProtocol"
"""The protocol of :func:`http_protocol_class` as an import string: uvicorn pickles its
configuration for worker processes (``pdp serve --workers N``), and a class made at run
time does not pickle."""


def __getattr__(name: str) -> Any:
    if name == "TlsScopeHttpProtocol":  # HTTP_PROTOCOL_IMPORT, resolved in each worker
        return http_protocol_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["HTTP_PROTOCOL_IMPORT", "client_chain_pem", "http_protocol_class", "tls_extension",
           "uvicorn_tls_options"]
