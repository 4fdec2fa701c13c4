"""A SPIFFE Workload API server for tests: grpcio on a unix socket, SVIDs from a test CA.

No SPIRE agent can be installed where the tests run, so the tests start this one.
It speaks the published protocol (``workload.proto``, compiled by
:mod:`tests.workload_api.protocol`), so the real clients — the ``spiffe`` package in
the Python SDK and in ``pdp serve``'s trust source — talk to it as to an agent:

- ``FetchX509SVID`` / ``FetchX509Bundles`` / ``FetchJWTBundles`` stream the current
  state and a new message whenever it changes (an SVID rotated, a CA added or retired);
- ``FetchJWTSVID`` mints a JWT-SVID for the requested audience, signed by the newest
  JWT key of the trust domain;
- like SPIRE, every call must carry the ``workload.spiffe.io: true`` metadata.

One server serves one workload identity (a real agent attests the caller's process;
here each workload gets its own socket). The trust state is an :class:`Authority`
shared by every server of a trust domain, so rotating or retiring a CA reaches all of
them at once::

    authority = Authority("example.org")
    pdp_api = WorkloadApiServer(tmp / "pdp.sock", authority, "/pdp").start()
    svc_api = WorkloadApiServer(tmp / "svc.sock", authority, "/services/etl").start()
    authority.rotate()          # a new CA generation signs from now on (both trusted)
    authority.retire_oldest()   # the old CA leaves every bundle: its SVIDs are revoked
    svc_api.rotate_svid()       # a new X.509-SVID for this workload only
    pdp_api.send_garbage(True)  # bad bytes: bundles that are not DER / not JSON, a bad JWT
    pdp_api.stop()              # the socket goes away: clients see UNAVAILABLE
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
import jwt
from cryptography.hazmat.primitives import serialization
from jwt.algorithms import ECAlgorithm

from tests.identity.workloads import Issued, TrustDomain
from tests.workload_api.protocol import SERVICE, messages

SECURITY_HEADER = ("workload.spiffe.io", "true")


def _der(issued: Issued) -> bytes:
    return issued.cert.public_bytes(serialization.Encoding.DER)


class Authority:
    """The CAs and JWT keys of one trust domain, in generations.

    Generation 0 exists from the start. :meth:`rotate` adds a generation that signs
    everything issued from then on; every generation still present is in the bundles
    (so SVIDs of the previous CA keep verifying until it is retired). :meth:`retire_oldest`
    drops the oldest generation from the bundles: its CA and JWT key are no longer trusted.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.generations: list[TrustDomain] = [TrustDomain(name)]
        self._listeners: list[Callable[[], None]] = []
        self._lock = threading.Lock()

    @property
    def id(self) -> str:
        return f"spiffe://{self.name}"

    @property
    def signer(self) -> TrustDomain:
        return self.generations[-1]

    def rotate(self) -> TrustDomain:
        with self._lock:
            self.generations.append(TrustDomain(self.name))
        self._changed()
        return self.signer

    def retire_oldest(self) -> TrustDomain:
        with self._lock:
            if len(self.generations) < 2:
                raise ValueError("retiring the only CA would leave the trust domain empty")
            retired = self.generations.pop(0)
        self._changed()
        return retired

    def x509_bundle(self) -> bytes:
        """The roots of every generation, ASN.1 DER certificates back to back."""
        return b"".join(_der(g.root) for g in self.generations)

    def jwt_bundle(self) -> bytes:
        """A JWK Set of every generation's JWT-SVID key (as SPIRE sends: ``kid``, no ``use``)."""
        import json

        keys = [{"kid": g.kid, **ECAlgorithm.to_jwk(g.jwt_key.public_key(), as_dict=True)}
                for g in self.generations]
        return json.dumps({"keys": keys}).encode()

    def subscribe(self, listener: Callable[[], None]) -> None:
        self._listeners.append(listener)

    def _changed(self) -> None:
        for listener in list(self._listeners):
            listener()


class WorkloadApiServer:
    """The Workload API of one workload (``spiffe://<authority><path>``) on ``socket``.

    ``federated``: other trust domains' authorities whose bundles this workload gets
    (``federated_bundles`` and the bundle maps). ``jwt_ttl_s`` and ``x509_ttl_s`` set
    the SVIDs' lifetimes.
    """

    def __init__(self, socket: Path, authority: Authority, path: str, *,
                 federated: tuple[Authority, ...] = (), jwt_ttl_s: int = 300,
                 x509_ttl_s: int = 3600) -> None:
        self.socket, self.authority, self.path = socket, authority, path
        self.federated = federated
        self.jwt_ttl_s, self.x509_ttl_s = jwt_ttl_s, x509_ttl_s
        self.spiffe_id = f"{authority.id}{path}"
        self.svid = self._issue()
        self.jwt_svids_issued = 0
        self.garbage = False  # send_garbage(): what a broken or hostile agent would send
        self.version = 0
        self._changed = threading.Condition()
        self._server: grpc.Server | None = None
        self._stopping = False
        for a in (authority, *federated):
            a.subscribe(self._bump)

    # -- control --------------------------------------------------------------------
    @property
    def address(self) -> str:
        """What ``SPIFFE_ENDPOINT_SOCKET`` holds for this server."""
        return f"unix://{self.socket}"

    def start(self) -> WorkloadApiServer:
        m = messages()
        handlers = {
            "FetchX509SVID": grpc.unary_stream_rpc_method_handler(
                self._fetch_x509_svid, request_deserializer=m.X509SVIDRequest.FromString,
                response_serializer=m.X509SVIDResponse.SerializeToString),
            "FetchX509Bundles": grpc.unary_stream_rpc_method_handler(
                self._fetch_x509_bundles, request_deserializer=m.X509BundlesRequest.FromString,
                response_serializer=m.X509BundlesResponse.SerializeToString),
            "FetchJWTSVID": grpc.unary_unary_rpc_method_handler(
                self._fetch_jwt_svid, request_deserializer=m.JWTSVIDRequest.FromString,
                response_serializer=m.JWTSVIDResponse.SerializeToString),
            "FetchJWTBundles": grpc.unary_stream_rpc_method_handler(
                self._fetch_jwt_bundles, request_deserializer=m.JWTBundlesRequest.FromString,
                response_serializer=m.JWTBundlesResponse.SerializeToString),
        }
        self._stopping = False
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=16))
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
        server.add_insecure_port(self.address)
        server.start()
        self._server = server
        return self

    def stop(self) -> None:
        """Close the socket and end every stream (clients see the agent go away)."""
        self._stopping = True
        self._bump()
        if self._server is not None:
            self._server.stop(grace=None).wait(5)
            self._server = None
        self.socket.unlink(missing_ok=True)

    def rotate_svid(self) -> Issued:
        """Issue a new X.509-SVID for this workload and stream it to every watcher."""
        self.svid = self._issue()
        self._bump()
        return self.svid

    def send_garbage(self, on: bool) -> None:
        """From now on (until turned off) every bundle is bad bytes and every JWT-SVID is
        not a JWT; streamed to every watcher at once."""
        self.garbage = on
        self._bump()

    def _x509_bundle(self, authority: Authority) -> bytes:
        return b"\x30\x03not-der" if self.garbage else authority.x509_bundle()

    def _jwt_bundle(self, authority: Authority) -> bytes:
        return b'{"keys": [{"kty": "EC", "kid"' if self.garbage else authority.jwt_bundle()

    # -- the RPCs -------------------------------------------------------------------
    def _fetch_x509_svid(self, request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        self._check_header(context)
        m = messages()
        for _ in self._updates(context):
            response = m.X509SVIDResponse()
            entry = response.svids.add()
            entry.spiffe_id = self.spiffe_id
            entry.x509_svid = b"".join(c.public_bytes(serialization.Encoding.DER)
                                       for c in self._chain())
            entry.x509_svid_key = self.svid.key.private_bytes(
                serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption())
            entry.bundle = self._x509_bundle(self.authority)
            for f in self.federated:
                response.federated_bundles[f.id] = self._x509_bundle(f)
            yield response

    def _fetch_x509_bundles(self, request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        self._check_header(context)
        for _ in self._updates(context):
            response = messages().X509BundlesResponse()
            for a in (self.authority, *self.federated):
                response.bundles[a.id] = self._x509_bundle(a)
            yield response

    def _fetch_jwt_bundles(self, request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        self._check_header(context)
        for _ in self._updates(context):
            response = messages().JWTBundlesResponse()
            for a in (self.authority, *self.federated):
                response.bundles[a.id] = self._jwt_bundle(a)
            yield response

    def _fetch_jwt_svid(self, request: Any, context: grpc.ServicerContext) -> Any:
        self._check_header(context)
        audience = list(request.audience)
        if not audience:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "audience must be specified")
        if request.spiffe_id and request.spiffe_id != self.spiffe_id:
            context.abort(grpc.StatusCode.PERMISSION_DENIED, "no identity issued")
        signer = self.authority.signer
        now = int(time.time())
        token = jwt.encode(
            {"sub": self.spiffe_id, "aud": audience if len(audience) > 1 else audience[0],
             "iat": now, "exp": now + self.jwt_ttl_s},
            signer.jwt_key, algorithm="ES256", headers={"kid": signer.kid, "typ": "JWT"})
        self.jwt_svids_issued += 1
        if self.garbage:
            token = "not.a-jwt"
        response = messages().JWTSVIDResponse()
        svid = response.svids.add()
        svid.spiffe_id, svid.svid = self.spiffe_id, token
        return response

    # -- helpers --------------------------------------------------------------------
    def _issue(self) -> Issued:
        from datetime import UTC, datetime, timedelta

        return self.authority.signer.svid(
            self.path, server_ip="127.0.0.1",
            not_after=datetime.now(UTC) + timedelta(seconds=self.x509_ttl_s))

    def _chain(self) -> list[Any]:
        # The leaf, then the intermediate that signed it (the root is in the bundle).
        from cryptography import x509

        return x509.load_pem_x509_certificates(self.svid.chain_pem.encode())

    def _bump(self) -> None:
        with self._changed:
            self.version += 1
            self._changed.notify_all()

    def _updates(self, context: grpc.ServicerContext) -> Iterator[int]:
        """Yield now, then after every change, until the call or the server ends."""
        seen = -1
        while context.is_active() and not self._stopping:
            with self._changed:
                if self.version == seen:
                    self._changed.wait(0.2)
                    continue
                seen = self.version
            yield seen

    @staticmethod
    def _check_header(context: grpc.ServicerContext) -> None:
        if SECURITY_HEADER not in tuple(context.invocation_metadata()):
            context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                          "security header missing from request")


__all__ = ["Authority", "SECURITY_HEADER", "WorkloadApiServer"]
