"""Task credentials from the PDP's broker (RFC 8693 token exchange), for agents.

An agent trades its own identity credential (a JWT-SVID) for a credential
scoped to one task: one audience, the scopes the task needs, a lifetime of
minutes. It hands a sub-task to another agent by exchanging *its task
credential* with the other agent's own credential as ``actor_token``: the other
agent gets a narrower credential naming both (``act``), never the first one.

- :func:`exchange` / :func:`aexchange`: one exchange over an ``httpx`` client.
- :class:`TaskCredentials` / :class:`AsyncTaskCredentials`: a credential source for
  the life of a task (a context manager). ``token()`` returns a credential that is
  valid for at least ``refresh_before_s`` more seconds, exchanging again when it is
  not; on exit the task is completed, so every credential issued for it (the
  delegated ones too) is refused from the next request on.

## Example

    import httpx
    from pdp_client.tasks import TaskCredentials

    with httpx.Client(base_url="http://127.0.0.1:8181") as http, TaskCredentials(
            http, identity=lambda: my_svid(), audience="pdp", scope=["datasets:read"],
            purpose="summarize yesterday's sales") as task:
        pdp.authorize(token=task.token(), action="read", resource=("App::Dataset", "sales-daily"))

A refused exchange raises :class:`~pdp_client.errors.ExchangeRefused` with the
PDP's ``error``, sentence and ``decision_id``: no credential means no work.
Ref: https://www.rfc-editor.org/rfc/rfc8693
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import httpx

from pdp_client.errors import ExchangeRefused, PDPResponseError, PDPUnreachable

GRANT_TYPE = "urn:ietf:params:oauth:grant-type:token-exchange"
JWT_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:jwt"
TASK_DETAILS_TYPE = "urn:pdp:task"
DEFAULT_REFRESH_BEFORE_S = 60.0

IdentitySource = str | Callable[[], str]


@dataclass(frozen=True, slots=True)
class TaskToken:
    """An issued task credential. ``expires_at`` is on this process's monotonic clock."""

    access_token: str
    expires_in: int
    scope: tuple[str, ...]
    task_id: str
    decision_id: str
    expires_at: float

    @classmethod
    def from_json(cls, data: dict[str, Any], *, received_at: float) -> TaskToken:
        return cls(access_token=data["access_token"], expires_in=int(data["expires_in"]),
                   scope=tuple(str(data.get("scope", "")).split()), task_id=data["task_id"],
                   decision_id=data.get("decision_id", ""),
                   expires_at=received_at + int(data["expires_in"]))

    def fresh_for(self, seconds: float) -> bool:
        """Still valid ``seconds`` from now?"""
        return time.monotonic() + seconds < self.expires_at


def exchange_form(*, subject_token: str, audience: str, scope: Sequence[str] | None = None,
                  actor_token: str | None = None, task_id: str | None = None,
                  purpose: str | None = None, lifetime_s: int | None = None) -> dict[str, str]:
    """The RFC 8693 form for one exchange (the task in RFC 9396 ``authorization_details``)."""
    form = {"grant_type": GRANT_TYPE, "subject_token": subject_token,
            "subject_token_type": JWT_TOKEN_TYPE, "audience": audience}
    if scope is not None:
        form["scope"] = " ".join(scope)
    if actor_token is not None:
        form.update(actor_token=actor_token, actor_token_type=JWT_TOKEN_TYPE)
    task: dict[str, Any] = {"type": TASK_DETAILS_TYPE}
    for name, value in (("task_id", task_id), ("purpose", purpose), ("lifetime_s", lifetime_s)):
        if value is not None:
            task[name] = value
    if len(task) > 1:
        form["authorization_details"] = json.dumps([task])
    return form


def _answer(response: httpx.Response, received_at: float) -> TaskToken:
    try:
        body = response.json()
    except ValueError:
        body = {}
    if response.status_code == 200 and isinstance(body, dict) and "access_token" in body:
        return TaskToken.from_json(body, received_at=received_at)
    if isinstance(body, dict) and "error" in body:
        raise ExchangeRefused(error=body["error"],
                              description=str(body.get("error_description", "")),
                              decision_id=body.get("decision_id"),
                              reason_codes=tuple(body.get("reason_codes", ())),
                              status=response.status_code)
    raise PDPResponseError(f"the PDP answered HTTP {response.status_code} to an exchange",
                           status=response.status_code)


def exchange(http: httpx.Client, **form: Any) -> TaskToken:
    """One exchange with a blocking ``httpx.Client`` whose ``base_url`` is the PDP
    (keyword arguments: :func:`exchange_form`). Raises ``ExchangeRefused``/``PDPError``."""
    try:
        response = http.post("/v1/token", data=exchange_form(**form))
    except httpx.TransportError as e:
        raise PDPUnreachable(f"the PDP could not be reached: {e}") from e
    return _answer(response, time.monotonic())


async def aexchange(http: httpx.AsyncClient, **form: Any) -> TaskToken:
    """The same as :func:`exchange` with an ``httpx.AsyncClient``."""
    try:
        response = await http.post("/v1/token", data=exchange_form(**form))
    except httpx.TransportError as e:
        raise PDPUnreachable(f"the PDP could not be reached: {e}") from e
    return _answer(response, time.monotonic())


def _complete_answer(response: httpx.Response, task_id: str) -> None:
    if response.status_code != 200:
        raise PDPResponseError(f"completing task {task_id}: HTTP {response.status_code}",
                               status=response.status_code)


_Http = TypeVar("_Http", httpx.Client, httpx.AsyncClient)


class _Source(Generic[_Http]):
    """What both credential sources share: the client, the form, the refresh rule.

    The constructor is theirs too (documented on :class:`TaskCredentials`); they differ
    only in the client (``_Http``) and in whether ``token()`` and ``complete()`` await it.
    """

    def __init__(self, http: _Http, *, identity: IdentitySource, audience: str,
                 scope: Sequence[str] | None = None, task_id: str | None = None,
                 purpose: str | None = None, lifetime_s: int | None = None,
                 actor: IdentitySource | None = None,
                 refresh_before_s: float = DEFAULT_REFRESH_BEFORE_S,
                 complete_on_exit: bool | None = None) -> None:
        self.http: _Http = http
        self.identity, self.actor = identity, actor
        self.audience, self.scope, self.lifetime_s = audience, scope, lifetime_s
        self.task_id, self.purpose = task_id, purpose
        self.refresh_before_s = refresh_before_s
        # A delegated agent does not own the task: its delegator completes it.
        self.complete_on_exit = actor is None if complete_on_exit is None else complete_on_exit
        self.current: TaskToken | None = None

    def form(self) -> dict[str, Any]:
        return {"subject_token": _read(self.identity), "audience": self.audience,
                "scope": self.scope, "task_id": self.task_id,
                "purpose": self.purpose if self.actor is None else None,
                "lifetime_s": self.lifetime_s,
                "actor_token": _read(self.actor) if self.actor is not None else None}

    def keep(self, token: TaskToken) -> str:
        self.current, self.task_id = token, token.task_id
        return token.access_token

    def due(self) -> bool:
        return self.current is None or not self.current.fresh_for(self.refresh_before_s)


class TaskCredentials(_Source[httpx.Client]):
    """A task credential for as long as the ``with`` block runs (blocking ``httpx.Client``).

    Args:
        http: a client whose ``base_url`` is the PDP.
        identity: the agent's own credential, or a callable returning a fresh one (a
            delegated agent passes its delegator's task credential here).
        audience, scope, task_id, purpose, lifetime_s: what to ask for (see docs/agents.md).
        actor: for a delegated agent, its own credential (``actor_token``).
        refresh_before_s: exchange again when less than this is left (default 60 s).
        complete_on_exit: complete the task on exit (default: unless delegated).
    """

    def token(self) -> str:
        """A task credential valid for at least ``refresh_before_s`` more seconds."""
        if self.due():
            return self.keep(exchange(self.http, **self.form()))
        assert self.current is not None
        return self.current.access_token

    def complete(self) -> None:
        """Complete the task now: every credential issued for it dies."""
        if self.task_id is None or self.current is None:
            return
        response = self.http.post(f"/v1/tasks/{self.task_id}/complete",
                                  headers={"authorization": f"Bearer {_read(self.identity)}"})
        _complete_answer(response, self.task_id)

    def __enter__(self) -> TaskCredentials:
        self.token()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.complete_on_exit:
            self.complete()


class AsyncTaskCredentials(_Source[httpx.AsyncClient]):
    """The same as :class:`TaskCredentials` for asyncio (``async with``, ``await token()``)."""

    async def token(self) -> str:
        if self.due():
            return self.keep(await aexchange(self.http, **self.form()))
        assert self.current is not None
        return self.current.access_token

    async def complete(self) -> None:
        if self.task_id is None or self.current is None:
            return
        response = await self.http.post(
            f"/v1/tasks/{self.task_id}/complete",
            headers={"authorization": f"Bearer {_read(self.identity)}"})
        _complete_answer(response, self.task_id)

    async def __aenter__(self) -> AsyncTaskCredentials:
        await self.token()
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.complete_on_exit:
            await self.complete()


def _read(source: IdentitySource) -> str:
    return source() if callable(source) else source


__all__ = ["AsyncTaskCredentials", "TaskCredentials", "TaskToken", "aexchange", "exchange",
           "exchange_form"]
