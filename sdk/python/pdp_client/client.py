"""Sync and async clients for the PDP's ``/v1/authorize`` API, on httpx.

Both share one pool of keep-alive connections per client (``limits``), a
timeout per request (``timeout``), retries of **connection errors only** (the
request never reached the PDP, so repeating it is safe: connect refused or
timed out) by httpx's own transport (``httpx.HTTPTransport(retries=N)``,
https://www.python-httpx.org/advanced/transports/#http-transport), an
optional ``DecisionCache``, and one rule for failure: when the
PDP cannot give a decision the client returns a **deny** with reason code
``pdp.unreachable`` (or ``pdp.error`` / ``pdp.rejected``) instead of raising.
``on_failure="raise"`` raises ``PDPError`` instead; a callable builds your own
fail-closed ``Decision``.

## Example

    from pdp_client import PDPClient, DecisionCache

    with PDPClient("http://127.0.0.1:8181", cache=DecisionCache()) as pdp:
        d = pdp.authorize(token=svid, action="read", resource=("App::Dataset", "sales-daily"))
        if not d.allowed:
            print(d.explanation)

Tests hand the client an httpx transport (``httpx.ASGITransport(app)`` drives
the real PDP app in-process; ``httpx.MockTransport`` fakes failures).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import httpx

from pdp_client.cache import DecisionCache
from pdp_client.errors import PDPError, PDPResponseError, PDPUnreachable
from pdp_client.models import Decision, Resource, ResourceLike
from pdp_client.tasks import TaskToken, aexchange, exchange

DEFAULT_URL = "http://127.0.0.1:8181"
DEFAULT_TIMEOUT = httpx.Timeout(2.0, connect=1.0)
DEFAULT_LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=20)
MAX_BATCH = 100  # the PDP's limit per /v1/authorize/batch call

OnFailure = Literal["deny", "raise"] | Callable[[PDPError], Decision]
TokenSource = str | Callable[[], str] | None


@dataclass(frozen=True, slots=True)
class Item:
    """One question of a batch: ``action`` on ``resource`` (with optional ``context``)."""

    action: str
    resource: ResourceLike
    context: Mapping[str, Any] | None = None


ItemLike = Item | tuple[str, ResourceLike] | tuple[str, ResourceLike, Mapping[str, Any]]


def subject_of(token: str | None, x509: str | None) -> dict[str, str]:
    """The ``subject`` member: a bearer JWT (JWT-SVID, OAuth JWT) or an X.509-SVID PEM chain."""
    if token is not None and x509 is None:
        return {"token": token}
    if x509 is not None and token is None:
        return {"x509": x509}
    raise ValueError("give exactly one of token= or x509=")


def item_of(value: ItemLike) -> Item:
    if isinstance(value, Item):
        return value
    if isinstance(value, tuple) and len(value) in (2, 3):
        return Item(*value)
    raise TypeError(f"not a batch item: {value!r}; give Item(action, resource) or a tuple")


def item_json(action: str, resource: Resource, context: Mapping[str, Any] | None) -> dict[str, Any]:
    return {"action": action, "resource": resource.as_json(), "context": dict(context or {})}


class _Core:
    """What both clients share: request bodies, answers, cache, failure policy."""

    def __init__(self, *, base_url: str, cache: DecisionCache | None, on_failure: OnFailure,
                 pep_token: TokenSource) -> None:
        self.base_url = base_url
        self.cache, self.on_failure, self.pep_token = cache, on_failure, pep_token

    def headers(self, request_id: str | None) -> dict[str, str]:
        out = {}
        token = self.pep_token() if callable(self.pep_token) else self.pep_token
        if token:
            out["authorization"] = f"Bearer {token}"
        if request_id:
            out["x-request-id"] = request_id
        return out

    def unreachable(self, error: Exception) -> PDPUnreachable:
        return PDPUnreachable(f"the PDP at {self.base_url} could not be reached "
                              f"({type(error).__name__}: {error})")

    def parse(self, response: httpx.Response, key: str) -> Any:
        """The JSON member ``key`` of a 200 answer, else ``PDPResponseError``."""
        if response.status_code != 200:
            raise PDPResponseError(f"the PDP answered HTTP {response.status_code}: "
                                   f"{_problem_detail(response)}", status=response.status_code)
        try:
            body = response.json()
            return body if key == "" else body[key]
        except (ValueError, KeyError, TypeError) as e:
            raise PDPResponseError(f"the PDP's answer is not a decision: {e}",
                                   status=response.status_code) from e

    def failed(self, error: PDPError) -> Decision:
        """Fail closed: a deny with the error's reason code (or raise, or the caller's own)."""
        if self.on_failure == "raise":
            raise error
        if callable(self.on_failure):
            return self.on_failure(error)
        return Decision.fail_closed(error.code, f"Denied ({error.code}): {error.message}; "
                                                "failing closed.")

    def lookup(self, key: str) -> Decision | None:
        return self.cache.get(key) if self.cache is not None else None

    def store(self, key: str, decision: Decision) -> None:
        if self.cache is not None:
            self.cache.put(key, decision)


def _check_retries(retries: int, backoff_s: float | None) -> None:
    if retries < 0:
        raise ValueError("retries must be >= 0")
    if backoff_s is not None:
        warnings.warn("backoff_s is ignored: httpx's transport pauses between connection "
                      "retries (at once, then 0.5 s, doubling)", DeprecationWarning, stacklevel=3)


def _problem_detail(response: httpx.Response) -> str:
    try:
        body = response.json()
        return str(body.get("detail") or body.get("title") or body)
    except ValueError:
        return response.text[:200]


class PDPClient:
    """Blocking client. Keyword-only options; ``transport`` swaps the network (tests).

    Args:
        base_url: the PDP, e.g. ``http://127.0.0.1:8181``.
        timeout: per-request timeout (default 2 s, connect 1 s).
        retries: extra attempts after a connection error (never after a read error), made
            by httpx's transport: the first at once, then after 0.5 s, 1 s, ... With your
            own ``transport``, retries are that transport's: build it with
            ``httpx.HTTPTransport(retries=N)``.
        backoff_s: ignored (deprecated): httpx's transport sets the pauses.
        cache: a ``DecisionCache`` shared by this client's calls, or None.
        on_failure: ``"deny"`` (default: fail closed with ``pdp.unreachable``/...),
            ``"raise"`` (``PDPError``), or a callable building the ``Decision``.
        pep_token: this service's own credential (or a callable returning a fresh
            one), sent as ``Authorization: Bearer`` when the PDP checks its PEPs.
        limits: connection pool limits. transport: an httpx transport (tests, a proxy).
    """

    def __init__(self, base_url: str = DEFAULT_URL, *,
                 timeout: httpx.Timeout | float = DEFAULT_TIMEOUT, retries: int = 2,
                 backoff_s: float | None = None, cache: DecisionCache | None = None,
                 on_failure: OnFailure = "deny", pep_token: TokenSource = None,
                 headers: Mapping[str, str] | None = None,
                 limits: httpx.Limits = DEFAULT_LIMITS,
                 transport: httpx.BaseTransport | None = None,
                 verify: Any = True) -> None:
        _check_retries(retries, backoff_s)
        self._core = _Core(base_url=base_url, cache=cache, on_failure=on_failure,
                           pep_token=pep_token)
        if transport is None:  # httpx retries connection errors only, in its connection pool
            transport = httpx.HTTPTransport(retries=retries, limits=limits, verify=verify)
        self._http = httpx.Client(base_url=base_url, timeout=timeout, limits=limits,
                                  headers=dict(headers or {}), transport=transport, verify=verify)

    @property
    def cache(self) -> DecisionCache | None:
        return self._core.cache

    def authorize(self, *, token: str | None = None, x509: str | None = None, action: str,
                  resource: ResourceLike, context: Mapping[str, Any] | None = None,
                  request_id: str | None = None) -> Decision:
        """May the holder of ``token`` (or ``x509``) do ``action`` on ``resource`` now?"""
        subject = subject_of(token, x509)
        target = Resource.of(resource)
        key = DecisionCache.key(subject, action, target, context)
        cached = self._core.lookup(key)
        if cached is not None:
            return cached
        body = {"subject": subject, **item_json(action, target, context)}
        try:
            data = self._core.parse(self._post("/v1/authorize", body, request_id), "")
            decision = Decision.from_json(data)
        except PDPError as e:
            return self._core.failed(e)
        except ValueError as e:
            return self._core.failed(PDPResponseError(str(e), status=200))
        self._core.store(key, decision)
        return decision

    def authorize_batch(self, *, token: str | None = None, x509: str | None = None,
                        items: Iterable[ItemLike], request_id: str | None = None) -> list[Decision]:
        """Several questions for one subject, in order; the credential is verified once."""
        subject = subject_of(token, x509)
        plan = _Plan(subject, [item_of(i) for i in items], self._core)
        for chunk in plan.chunks():
            try:
                results = self._core.parse(
                    self._post("/v1/authorize/batch", plan.body(chunk), request_id), "results")
                plan.fill(chunk, results)
            except PDPError as e:
                plan.fail(chunk, e)
        return plan.decisions()

    def exchange(self, *, subject_token: str, audience: str, **options: Any) -> TaskToken:
        """Exchange ``subject_token`` for a task credential (RFC 8693; options: ``scope``,
        ``actor_token``, ``task_id``, ``purpose``, ``lifetime_s``). Raises ``ExchangeRefused``
        with the PDP's sentence and decision id when refused (``pdp_client.tasks``)."""
        return exchange(self._http, subject_token=subject_token, audience=audience, **options)

    def _post(self, path: str, body: dict[str, Any], request_id: str | None) -> httpx.Response:
        try:
            return self._http.post(path, json=body, headers=self._core.headers(request_id))
        except httpx.TransportError as e:  # connection errors already retried by the transport
            raise self._core.unreachable(e) from e

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> PDPClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncPDPClient:
    """The same as ``PDPClient`` for asyncio (``await client.authorize(...)``)."""

    def __init__(self, base_url: str = DEFAULT_URL, *,
                 timeout: httpx.Timeout | float = DEFAULT_TIMEOUT, retries: int = 2,
                 backoff_s: float | None = None, cache: DecisionCache | None = None,
                 on_failure: OnFailure = "deny", pep_token: TokenSource = None,
                 headers: Mapping[str, str] | None = None,
                 limits: httpx.Limits = DEFAULT_LIMITS,
                 transport: httpx.AsyncBaseTransport | None = None,
                 verify: Any = True) -> None:
        _check_retries(retries, backoff_s)
        self._core = _Core(base_url=base_url, cache=cache, on_failure=on_failure,
                           pep_token=pep_token)
        if transport is None:
            transport = httpx.AsyncHTTPTransport(retries=retries, limits=limits, verify=verify)
        self._http = httpx.AsyncClient(base_url=base_url, timeout=timeout, limits=limits,
                                       headers=dict(headers or {}), transport=transport,
                                       verify=verify)

    @property
    def cache(self) -> DecisionCache | None:
        return self._core.cache

    async def authorize(self, *, token: str | None = None, x509: str | None = None,
                        action: str, resource: ResourceLike,
                        context: Mapping[str, Any] | None = None,
                        request_id: str | None = None) -> Decision:
        """May the holder of ``token`` (or ``x509``) do ``action`` on ``resource`` now?"""
        subject = subject_of(token, x509)
        target = Resource.of(resource)
        key = DecisionCache.key(subject, action, target, context)
        cached = self._core.lookup(key)
        if cached is not None:
            return cached
        body = {"subject": subject, **item_json(action, target, context)}
        try:
            data = self._core.parse(await self._post("/v1/authorize", body, request_id), "")
            decision = Decision.from_json(data)
        except PDPError as e:
            return self._core.failed(e)
        except ValueError as e:
            return self._core.failed(PDPResponseError(str(e), status=200))
        self._core.store(key, decision)
        return decision

    async def authorize_batch(self, *, token: str | None = None, x509: str | None = None,
                              items: Iterable[ItemLike],
                              request_id: str | None = None) -> list[Decision]:
        """Several questions for one subject, in order; the credential is verified once."""
        subject = subject_of(token, x509)
        plan = _Plan(subject, [item_of(i) for i in items], self._core)
        for chunk in plan.chunks():
            try:
                results = self._core.parse(
                    await self._post("/v1/authorize/batch", plan.body(chunk), request_id),
                    "results")
                plan.fill(chunk, results)
            except PDPError as e:
                plan.fail(chunk, e)
        return plan.decisions()

    async def exchange(self, *, subject_token: str, audience: str,
                       **options: Any) -> TaskToken:
        """The same as ``PDPClient.exchange``."""
        return await aexchange(self._http, subject_token=subject_token, audience=audience,
                               **options)

    async def _post(self, path: str, body: dict[str, Any],
                    request_id: str | None) -> httpx.Response:
        try:
            return await self._http.post(path, json=body, headers=self._core.headers(request_id))
        except httpx.TransportError as e:  # connection errors already retried by the transport
            raise self._core.unreachable(e) from e

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncPDPClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


class _Plan:
    """A batch: which items the cache answers, which go to the PDP (in chunks), in order."""

    def __init__(self, subject: dict[str, str], items: Sequence[Item], core: _Core) -> None:
        self.subject, self.core = subject, core
        self.targets = [Resource.of(i.resource) for i in items]
        self.items = list(items)
        self.keys = [DecisionCache.key(subject, i.action, r, i.context)
                     for i, r in zip(items, self.targets)]
        self.results: list[Decision | None] = [core.lookup(k) for k in self.keys]

    def chunks(self) -> list[list[int]]:
        missing = [i for i, d in enumerate(self.results) if d is None]
        return [missing[n:n + MAX_BATCH] for n in range(0, len(missing), MAX_BATCH)]

    def body(self, chunk: list[int]) -> dict[str, Any]:
        return {"subject": self.subject, "items": [
            item_json(self.items[i].action, self.targets[i], self.items[i].context)
            for i in chunk]}

    def fill(self, chunk: list[int], results: Any) -> None:
        if not isinstance(results, list) or len(results) != len(chunk):
            raise PDPResponseError("the PDP's batch answer does not match the request",
                                   status=200)
        try:
            decisions = [Decision.from_json(r) for r in results]
        except (ValueError, AttributeError) as e:
            raise PDPResponseError(f"the PDP's answer is not a decision: {e}", status=200) from e
        for i, decision in zip(chunk, decisions):
            self.results[i] = decision
            self.core.store(self.keys[i], decision)

    def fail(self, chunk: list[int], error: PDPError) -> None:
        for i in chunk:
            self.results[i] = self.core.failed(error)

    def decisions(self) -> list[Decision]:
        return [d for d in self.results if d is not None]


__all__ = ["AsyncPDPClient", "DEFAULT_LIMITS", "DEFAULT_TIMEOUT", "DEFAULT_URL", "Item",
           "PDPClient"]
