"""When the PDP cannot answer, the client denies (pdp.unreachable) instead of raising.

Connection errors are retried (the request never reached the PDP), by httpx's own
transport; read errors and HTTP errors are not.
"""

from __future__ import annotations

import json
import socketserver
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpcore
import httpx
import pytest
from pdp_client import (
    PDP_ERROR,
    PDP_UNREACHABLE,
    AsyncPDPClient,
    Decision,
    DecisionCache,
    PDPClient,
    PDPUnreachable,
)

from tests.server import free_port

DATASET = ("App::Dataset", "sales-daily")


def closed_port_url() -> str:
    return f"http://127.0.0.1:{free_port()}"  # nothing listens there


def test_an_unreachable_pdp_is_a_deny_not_an_exception() -> None:
    cache = DecisionCache()
    with PDPClient(closed_port_url(), retries=0, cache=cache) as pdp:
        d = pdp.authorize(token="t", action="read", resource=DATASET)
    assert d.decision == "deny" and not d.allowed
    assert d.reason_codes == (PDP_UNREACHABLE,) and d.decision_id is None and d.made_by_sdk
    assert "could not be reached" in d.explanation and "failing closed" in d.explanation
    assert len(cache) == 0  # a fail-closed deny is never cached


@pytest.mark.anyio
async def test_the_async_client_fails_closed_too() -> None:
    async with AsyncPDPClient(closed_port_url(), retries=0) as pdp:
        d = await pdp.authorize(token="t", action="read", resource=DATASET)
        batch = await pdp.authorize_batch(token="t", items=[("read", DATASET)] * 3)
    assert d.reason_codes == (PDP_UNREACHABLE,)
    assert [b.reason_codes for b in batch] == [(PDP_UNREACHABLE,)] * 3


def test_fail_closed_can_raise_or_be_your_own_decision() -> None:
    with PDPClient(closed_port_url(), retries=0, on_failure="raise") as pdp:
        with pytest.raises(PDPUnreachable) as e:
            pdp.authorize(token="t", action="read", resource=DATASET)
    assert e.value.code == PDP_UNREACHABLE

    def mine(error: Exception) -> Decision:
        return Decision.fail_closed("my.service.pdp_down", f"try later ({error})")

    with PDPClient(closed_port_url(), retries=0, on_failure=mine) as pdp:
        d = pdp.authorize(token="t", action="read", resource=DATASET)
    assert d.reason_codes == ("my.service.pdp_down",) and not d.allowed


def answering(allow: bool = True) -> dict:
    return {"decision": "allow" if allow else "deny", "decision_id": "d-1",
            "reason_codes": ["policy.permit"], "explanation": "ok", "reasons": [],
            "valid_until": "2026-01-05T10:05:00Z", "timestamp": "2026-01-05T10:00:00Z",
            "context": {"version": "v1"}}


def flaky(failures: list[Exception]) -> tuple[httpx.MockTransport, list[httpx.Request]]:
    """Raises each of ``failures`` in turn, then answers allow."""
    calls: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        if len(calls) <= len(failures):
            raise failures[len(calls) - 1]
        return httpx.Response(200, json=answering())

    return httpx.MockTransport(handler), calls


# -- retries: httpx's transport, on real loopback sockets ----------------------------

@dataclass
class Network:
    """httpcore's own network backend, counting connects, failing the first ``refuse`` of
    them as a refused connection would, and recording the pauses instead of sleeping."""

    refuse: int = 0
    connects: int = 0
    pauses: list[float] = field(default_factory=list)

    def connect(self) -> None:
        self.connects += 1
        if self.connects <= self.refuse:
            raise httpcore.ConnectError("refused (injected)")


@pytest.fixture
def network(monkeypatch: pytest.MonkeyPatch) -> Network:
    net = Network()
    sync_connect, async_connect = httpcore.SyncBackend.connect_tcp, httpcore.AnyIOBackend.connect_tcp

    def connect_tcp(self: Any, *args: Any, **kwargs: Any) -> Any:
        net.connect()
        return sync_connect(self, *args, **kwargs)

    async def aconnect_tcp(self: Any, *args: Any, **kwargs: Any) -> Any:
        net.connect()
        return await async_connect(self, *args, **kwargs)

    async def asleep(self: Any, seconds: float) -> None:
        net.pauses.append(seconds)

    monkeypatch.setattr(httpcore.SyncBackend, "connect_tcp", connect_tcp)
    monkeypatch.setattr(httpcore.SyncBackend, "sleep", lambda self, seconds: net.pauses.append(seconds))
    monkeypatch.setattr(httpcore.AnyIOBackend, "connect_tcp", aconnect_tcp)
    monkeypatch.setattr(httpcore.AnyIOBackend, "sleep", asleep)
    return net


class Peer(socketserver.ThreadingTCPServer):
    """A loopback HTTP peer: ``answer`` (200, a decision), ``hang-up`` after reading the
    request, or ``silent`` (reads, never answers). Counts the connections it accepted."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, mode: str) -> None:
        self.mode, self.accepted = mode, 0
        self.done = threading.Event()
        super().__init__(("127.0.0.1", 0), _PeerHandler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _PeerHandler(socketserver.StreamRequestHandler):
    server: Peer

    def handle(self) -> None:
        self.server.accepted += 1
        while self.rfile.readline() not in (b"\r\n", b""):
            pass  # the headers; the body is never needed
        if self.server.mode == "answer":
            body = json.dumps(answering()).encode()
            self.wfile.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                             b"content-length: %d\r\n\r\n%s" % (len(body), body))
        elif self.server.mode == "silent":
            self.server.done.wait(10)


@pytest.fixture
def peer() -> Iterator[Callable[[str], Peer]]:
    started: list[Peer] = []

    def start(mode: str) -> Peer:
        server = Peer(mode)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.done.set()
        server.shutdown()
        server.server_close()


def test_refused_connections_are_retried_then_fail_closed(network: Network) -> None:
    with PDPClient(closed_port_url(), retries=2) as pdp:
        d = pdp.authorize(token="t", action="read", resource=DATASET)
    assert d.reason_codes == (PDP_UNREACHABLE,)
    assert network.connects == 3  # really refused, three times


def test_a_connection_error_then_an_answer_is_the_answer(network: Network, peer) -> None:
    network.refuse = 2
    server = peer("answer")
    with PDPClient(server.url, retries=2) as pdp:
        assert pdp.authorize(token="t", action="read", resource=DATASET).allowed
    assert network.connects == 3 and server.accepted == 1
    assert network.pauses == [0, 0.5]  # httpx's pauses: at once, then 0.5 s, doubling


def test_retries_stop_at_the_configured_number(network: Network, peer) -> None:
    network.refuse = 3
    server = peer("answer")
    with PDPClient(server.url, retries=2) as pdp:
        d = pdp.authorize(token="t", action="read", resource=DATASET)
    assert d.reason_codes == (PDP_UNREACHABLE,) and network.connects == 3 and server.accepted == 0


@pytest.mark.parametrize("mode", ["hang-up", "silent"])
def test_errors_after_the_request_was_sent_are_not_retried(network: Network, peer,
                                                           mode: str) -> None:
    server = peer(mode)
    with PDPClient(server.url, retries=3, timeout=httpx.Timeout(0.5, connect=2.0)) as pdp:
        d = pdp.authorize(token="t", action="read", resource=DATASET)
    assert d.reason_codes == (PDP_UNREACHABLE,)
    assert network.connects == 1 and server.accepted == 1


@pytest.mark.parametrize("error", [httpx.ReadTimeout("slow answer"),
                                   httpx.RemoteProtocolError("hung up")])
def test_a_transport_error_is_a_deny(error: Exception) -> None:
    transport, calls = flaky([error])
    with PDPClient("http://pdp", retries=3, transport=transport) as pdp:
        d = pdp.authorize(token="t", action="read", resource=DATASET)
    assert d.reason_codes == (PDP_UNREACHABLE,) and len(calls) == 1


@pytest.mark.anyio
async def test_async_retries_connection_errors_only(network: Network, peer) -> None:
    network.refuse = 1
    server = peer("answer")
    async with AsyncPDPClient(server.url, retries=1) as pdp:
        assert (await pdp.authorize(token="t", action="read", resource=DATASET)).allowed
    assert network.connects == 2 and network.pauses == [0]


def test_your_own_transport_brings_its_own_retries(network: Network) -> None:
    transport = httpx.HTTPTransport(retries=1)
    with PDPClient(closed_port_url(), retries=5, transport=transport) as pdp:
        d = pdp.authorize(token="t", action="read", resource=DATASET)
    assert d.reason_codes == (PDP_UNREACHABLE,) and network.connects == 2


def test_backoff_s_is_ignored_and_says_so() -> None:
    with pytest.warns(DeprecationWarning, match="backoff_s is ignored"):
        PDPClient(closed_port_url(), backoff_s=0.1).close()


@pytest.mark.parametrize("response", [
    httpx.Response(500, json={"title": "boom"}),
    httpx.Response(200, text="not json"),
    httpx.Response(200, json={"decision": "maybe"}),
])
def test_an_answer_that_is_not_a_decision_is_a_deny(response: httpx.Response) -> None:
    calls: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return response

    with PDPClient("http://pdp", retries=3, transport=httpx.MockTransport(handler)) as pdp:
        d = pdp.authorize(token="t", action="read", resource=DATASET)
    assert d.reason_codes == (PDP_ERROR,) and not d.allowed and len(calls) == 1


def test_the_pep_token_and_request_id_are_sent() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=answering())

    tokens = iter(["pep-1", "pep-2"])
    with PDPClient("http://pdp", pep_token=lambda: next(tokens),
                   transport=httpx.MockTransport(handler)) as pdp:
        pdp.authorize(token="t", action="read", resource=DATASET, request_id="r-1")
        pdp.authorize(token="t", action="read", resource=DATASET)
    assert [r.headers.get("authorization") for r in seen] == ["Bearer pep-1", "Bearer pep-2"]
    assert seen[0].headers["x-request-id"] == "r-1" and "x-request-id" not in seen[1].headers
