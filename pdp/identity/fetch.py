"""Where trust anchors come from: a file, a URL, or an issuer's discovery document.

Each :class:`KeyDocumentSource` returns the raw bytes of a SPIFFE bundle or
JWK Set; parsing and the "keep the last good copy" rule live in
:mod:`pdp.identity.trust_store`. Fetching is never triggered by a request:
only the scheduled refresh calls :meth:`KeyDocumentSource.read`.

- https is required, except on loopback addresses where http is accepted (a
  local SPIRE agent, tests). Certificates are verified against the system's
  trust store or a configured CA file; redirects are not followed.
- A response is read up to :data:`MAX_DOCUMENT_BYTES`; a larger one, a
  non-200 status or a timeout is a :class:`BundleError` ("keep the last good").
- :class:`DiscoverySource` follows OpenID Connect Discovery 1.0 §4: it fetches
  ``discovery_url``, requires its ``issuer`` to be the configured issuer
  (§4.3: otherwise a document could hand us another issuer's keys), and then
  fetches its ``jwks_uri``.

Refs: https://openid.net/specs/openid-connect-discovery-1_0.html#ProviderConfigurationValidation,
https://github.com/spiffe/spiffe/blob/main/standards/SPIFFE_Trust_Domain_and_Bundle.md#5-spiffe-bundle-endpoint
"""

from __future__ import annotations

import ipaddress
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

from pdp.identity.strict_json import loads_object
from pdp.identity.trust_bundle import MAX_BUNDLE_BYTES, BundleError, read_key_file

MAX_DOCUMENT_BYTES = MAX_BUNDLE_BYTES
DEFAULT_TIMEOUT_S = 5.0
USER_AGENT = "pdp-trust-refresh/1"


class KeyDocumentSource(Protocol):
    """Something that yields a key document (bundle or JWKS) when asked."""

    @property
    def location(self) -> str:
        """Where it reads from, for /readyz and logs (a path or URL)."""
        ...

    def read(self) -> bytes:
        """The document's bytes, or :class:`BundleError`."""
        ...


@dataclass(frozen=True, slots=True)
class FileSource:
    path: Path

    @property
    def location(self) -> str:
        return str(self.path)

    def read(self) -> bytes:
        return read_key_file(self.path)


@dataclass(frozen=True, slots=True)
class UrlSource:
    """A document served at ``url`` (a SPIFFE bundle endpoint or a ``jwks_uri``)."""

    url: str
    ca_file: Path | None = None
    timeout_s: float = DEFAULT_TIMEOUT_S

    def __post_init__(self) -> None:
        check_fetch_url(self.url)

    @property
    def location(self) -> str:
        return self.url

    def read(self) -> bytes:
        return fetch(self.url, ca_file=self.ca_file, timeout_s=self.timeout_s)


@dataclass(frozen=True, slots=True)
class DiscoverySource:
    """An OpenID provider's keys, found through its discovery document."""

    discovery_url: str
    issuer_matches: Callable[[object], bool]
    ca_file: Path | None = None
    timeout_s: float = DEFAULT_TIMEOUT_S

    def __post_init__(self) -> None:
        check_fetch_url(self.discovery_url)

    @property
    def location(self) -> str:
        return self.discovery_url

    def read(self) -> bytes:
        document = fetch(self.discovery_url, ca_file=self.ca_file, timeout_s=self.timeout_s)
        try:
            metadata = loads_object(document)
        except ValueError as e:
            raise BundleError(f"discovery document is not a JSON object: {e}") from e
        if not self.issuer_matches(metadata.get("issuer")):
            raise BundleError(
                f"discovery document names issuer {metadata.get('issuer')!r}, not the "
                "configured one")
        jwks_uri = metadata.get("jwks_uri")
        if not isinstance(jwks_uri, str) or not jwks_uri:
            raise BundleError("discovery document has no jwks_uri")
        try:
            check_fetch_url(jwks_uri)
        except ValueError as e:
            raise BundleError(f"jwks_uri: {e}") from e
        return fetch(jwks_uri, ca_file=self.ca_file, timeout_s=self.timeout_s)


def check_fetch_url(url: str) -> None:
    """Refuse (``ValueError``) a URL we would not fetch keys from: https, or http on loopback."""
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ValueError(f"{url!r} is not an http(s) URL")
    if parts.username or parts.password:
        raise ValueError(f"{url!r} carries credentials")
    if parts.scheme == "http" and not _is_loopback(parts.hostname):
        raise ValueError(f"{url!r}: keys are fetched over https (http only on loopback)")


def fetch(url: str, *, ca_file: Path | None = None,
          timeout_s: float = DEFAULT_TIMEOUT_S) -> bytes:
    """GET ``url`` and return at most :data:`MAX_DOCUMENT_BYTES`; any failure is a BundleError."""
    # Deferred: importing httpx imports its command-line client too (rich, pygments), ~0.1 s
    # of every `pdp serve` start, which may never fetch anything
    # (tests/cli/test_serve_imports.py).
    import httpx

    try:
        verify: ssl.SSLContext | bool = (
            ssl.create_default_context(cafile=str(ca_file)) if ca_file else True)
        timeout = httpx.Timeout(timeout_s, connect=min(3.0, timeout_s))
        with httpx.Client(timeout=timeout, verify=verify, follow_redirects=False,
                          headers={"user-agent": USER_AGENT, "accept": "application/json"},
                          # Proxy variables apply to remote endpoints, never to loopback.
                          trust_env=not _is_loopback(urlsplit(url).hostname or "")) as client:
            with client.stream("GET", url) as response:
                if response.status_code != 200:
                    raise BundleError(f"GET {url}: HTTP {response.status_code}")
                body = bytearray()
                for chunk in response.iter_bytes():
                    body += chunk
                    if len(body) > MAX_DOCUMENT_BYTES:
                        raise BundleError(f"GET {url}: document larger than "
                                          f"{MAX_DOCUMENT_BYTES} bytes")
                return bytes(body)
    except (httpx.HTTPError, OSError, ssl.SSLError) as e:
        raise BundleError(f"GET {url}: {type(e).__name__}: {e}") from e


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


__all__ = [
    "DiscoverySource", "FileSource", "KeyDocumentSource", "UrlSource", "check_fetch_url",
    "fetch",
]
