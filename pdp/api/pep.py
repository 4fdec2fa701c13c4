"""Who may ask: the PEP calling a decision endpoint, and the allowlist it must be on.

The subject's credential travels in the body; the *caller's* identity comes
from the connection or the ``Authorization`` header, verified like any other
credential (never asserted):

1. the PDP's own TLS listener (``pdp serve --tls-cert --tls-key
   --client-ca-bundle``): the client certificate is the PEP's X.509-SVID,
   verified against its trust domain's bundle;
2. ``Authorization: Bearer <token>``: the PEP workload's own JWT-SVID or access
   token. On ``/v1/authorize`` this header is always the PEP's, never the subject's.

``pep_allowlist`` lists who may call: exact principal ids (SPIFFE IDs, or an
issuer's principal claim) and ``spiffe://<td>/<path>/*`` patterns (every ID
under that path). It is **secure by default**: outside ``--dev`` an empty list
refuses to start (:func:`check_pep_allowlist`), and opening the endpoints to
any caller takes the explicit ``pep_allowlist = ["*"]``, as ``--dev`` does.
When it is enforced, a caller without a valid PEP credential gets **401** and
one not on the list **403** (``application/problem+json``), each a denied
decision with its ``decision_id`` and record. Either way the PEP's identity,
when it has one, is recorded with each decision (``pep``).

Other routers reuse the dependency::

    @router.post("/access/v1/evaluation", dependencies=[Depends(require_pep)])
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import lru_cache
from typing import Annotated, Literal

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from pdp.api.bearer import Bearer, PepBearerDep, bearer_token
from pdp.api.deps import ComponentsDep
from pdp.api.problems import PROBLEM_JSON
from pdp.api.refusals import refuse
from pdp.components import Components
from pdp.config import Settings
from pdp.identity.errors import BadSpiffeId, IdentityError
from pdp.identity.model import Credential, VerifiedIdentity, X509Chain
from pdp.identity.spiffe_id import looks_like_spiffe_id, parse_spiffe_id
from pdp.reasons import ReasonCode

log = logging.getLogger("pdp.api")


@dataclass(frozen=True, slots=True)
class PepAllowlist:
    """Exact ids and ``/*`` path-prefix patterns.

    ``spiffe://example.org/peps/*`` allows ``spiffe://example.org/peps/envoy`` and
    ``spiffe://example.org/peps/eu/envoy``, not ``spiffe://example.org/peps`` itself
    nor ``spiffe://example.org/pepsi``. ``*`` alone (``anyone``) lets any caller ask,
    with a credential or without.
    """

    exact: frozenset[str]
    prefixes: tuple[str, ...]
    anyone: bool = False

    @classmethod
    def parse(cls, entries: tuple[str, ...] | list[str]) -> PepAllowlist:
        """Raise ``ValueError`` naming the first entry that is not an id or a pattern."""
        if "*" in entries:
            if len(entries) > 1:
                raise ValueError('pep_allowlist: "*" lets any caller ask; list it alone')
            return cls(frozenset(), (), anyone=True)
        exact: set[str] = set()
        prefixes: list[str] = []
        for entry in entries:
            if not isinstance(entry, str) or not entry.strip():
                raise ValueError(f"pep_allowlist: {entry!r} is not an identity")
            if entry.endswith("/*"):
                base = entry[:-2]
                _check_spiffe(base, entry)
                prefixes.append(base + "/")
            else:
                if looks_like_spiffe_id(entry):
                    _check_spiffe(entry, entry)
                elif "*" in entry:
                    raise ValueError(f"pep_allowlist: {entry!r}: only a trailing /* is a pattern")
                exact.add(entry)
        return cls(frozenset(exact), tuple(prefixes))

    def allows(self, principal_id: str) -> bool:
        return self.anyone or principal_id in self.exact or any(
            principal_id.startswith(p) for p in self.prefixes)

    def describe(self) -> str:
        """Who may ask, in a line: for the start-up banner."""
        if self.anyone:
            return 'any caller (pep_allowlist = ["*"])'
        names = sorted(self.exact) + [p + "*" for p in self.prefixes]
        return ", ".join(names) if names else "nobody (pep_allowlist is empty)"


@dataclass(frozen=True, slots=True)
class PepIdentity:
    """The verified caller of a decision endpoint."""

    name: str  # its principal id, recorded as the decision's `pep`
    via: Literal["tls", "bearer"]
    identity: VerifiedIdentity


class PepRefused(HTTPException):
    """The caller may not use the decision endpoints (401 or 403)."""

    def __init__(self, status: int, detail: str, reason_code: str | None = None, *,
                 pep: str | None = None) -> None:
        super().__init__(status_code=status, detail=detail)
        self.reason_code = reason_code
        self.pep = pep  # the verified caller, when it is one but not on the allowlist
        self.decision_id: str | None = None  # set once the refusal is recorded


def enforced(settings: Settings) -> bool:
    """The allowlist applies outside ``--dev`` unless it is the explicit ``["*"]``; an
    empty one (which :func:`check_pep_allowlist` refuses at start) admits nobody."""
    return not settings.dev and not _allowlist(tuple(settings.pep_allowlist)).anyone


def tls_client_chain(request: Request) -> Credential | None:
    """The TLS client certificate chain of the connection (ASGI ``tls`` extension), if any."""
    tls = (request.scope.get("extensions") or {}).get("tls") or {}
    chain = tls.get("client_cert_chain") or []
    if not chain:
        return None
    return X509Chain("".join(c if c.endswith("\n") else c + "\n" for c in chain))


def identify_pep(request: Request, components: Components,
                 bearer: Bearer) -> PepIdentity | None:
    """The PEP's verified identity: the TLS client certificate first, else the bearer
    token ``bearer`` (:data:`pdp.api.bearer.pep_bearer` read it); None if it presents
    neither. A presented credential that fails raises the ``IdentityError``
    (revocations included)."""
    now = components.clock.now()
    chain = tls_client_chain(request)
    if chain is not None:
        identity = components.service.verify(chain, now)
        return PepIdentity(identity.principal_id, "tls", identity)
    token = bearer_token(bearer)
    if token is not None:
        identity = components.service.verify(token, now)
        return PepIdentity(identity.principal_id, "bearer", identity)
    return None


async def require_pep(request: Request, components: ComponentsDep,
                      bearer: PepBearerDep) -> str | None:
    """Dependency of the decision endpoints: :func:`admit_pep`, then set
    ``request.state.pep`` (its principal id, or None) for the record."""
    name = await admit_pep(request, components, bearer)
    request.state.pep = name
    return name


async def admit_pep(request: Request, components: Components, bearer: Bearer) -> str | None:
    """Identify the PEP and enforce the allowlist: its principal id, or None (no
    credential, on open endpoints). The decision doors' one PEP check
    (``pdp.api.authorize``, ``pdp.api.authzen``), and :func:`require_pep`'s.

    A refused caller is a decision too: it is denied and recorded (``pdp.api.refusals``)
    and :class:`PepRefused` carries its ``decision_id`` into the 401/403 problem."""
    try:
        return allowed_pep(request, components, bearer)
    except PepRefused as e:
        decision = await refuse(request, components,
                                code=e.reason_code or ReasonCode.IDENTITY_MISSING,
                                message=str(e.detail), pep=e.pep,
                                credential=tls_client_chain(request) or bearer_token(bearer))
        e.decision_id = decision.decision_id
        raise


def allowed_pep(request: Request, components: Components, bearer: Bearer) -> str | None:
    """The PEP's principal id (None: it presented nothing, on open endpoints), or
    :class:`PepRefused` (401/403); nothing recorded, nothing set on the request."""
    settings = components.settings
    try:
        pep = identify_pep(request, components, bearer)
    except IdentityError as e:
        if enforced(settings):
            raise PepRefused(401, f"the caller's credential was refused: {e.message}",
                             str(e.code)) from e
        pep = None  # open endpoints: an unusable credential identifies nobody
    if enforced(settings):
        if pep is None:
            raise PepRefused(401, "this PDP answers only known PEPs: present a client "
                                  "certificate or `Authorization: Bearer <PEP token>`",
                             ReasonCode.IDENTITY_MISSING)
        if not _allowlist(tuple(settings.pep_allowlist)).allows(pep.name):
            raise PepRefused(403, f"{pep.name} is not on this PDP's PEP allowlist",
                             ReasonCode.IDENTITY_PEP_NOT_ALLOWED, pep=pep.name)
    return pep.name if pep is not None else None


def refused_problem(exc: PepRefused) -> JSONResponse:
    """The 401/403 problem for a refused PEP (a Bearer challenge with the 401)."""
    body: dict[str, object] = {
        "type": "about:blank", "status": exc.status_code,
        "title": "PEP authentication required" if exc.status_code == 401 else "PEP not allowed",
        "detail": exc.detail}
    if exc.reason_code:
        body["reason_codes"] = [exc.reason_code]
    if exc.decision_id:
        body["decision_id"] = exc.decision_id
    headers = {"www-authenticate": 'Bearer realm="pdp"'} if exc.status_code == 401 else {}
    return JSONResponse(body, status_code=exc.status_code, media_type=PROBLEM_JSON,
                        headers=headers)


PepDep = Annotated[str | None, Depends(require_pep)]


def install_pep_handler(app: FastAPI) -> None:
    """Render :class:`PepRefused` as problem details (401 with a Bearer challenge)."""

    @app.exception_handler(PepRefused)
    async def _refused(_: Request, exc: PepRefused) -> JSONResponse:
        return refused_problem(exc)


def check_pep_allowlist(settings: Settings) -> str:
    """Validate ``pep_allowlist`` and say who may ask; ``ValueError`` for a bad entry, or
    for an empty list outside ``--dev`` (secure by default: no open endpoints by omission)."""
    allowlist = _allowlist(tuple(settings.pep_allowlist))
    if settings.dev:
        log.warning("DEVELOPMENT MODE (--dev): the dev issuer is trusted and any caller may "
                    "use the decision endpoints; never in production")
        return "any caller (--dev)"
    if not settings.pep_allowlist:
        raise ValueError(
            "pep_allowlist is empty: list the PEPs that may ask for decisions (their SPIFFE "
            'IDs, or spiffe://<td>/<path>/* patterns), or write pep_allowlist = ["*"] to let '
            "any caller ask")
    if allowlist.anyone:
        log.warning('pep_allowlist = ["*"]: any caller may use the decision endpoints')
    return allowlist.describe()


@lru_cache(maxsize=8)
def _allowlist(entries: tuple[str, ...]) -> PepAllowlist:
    return PepAllowlist.parse(entries)


def _check_spiffe(value: str, entry: str) -> None:
    try:
        parse_spiffe_id(value)
    except BadSpiffeId as e:
        raise ValueError(f"pep_allowlist: {entry!r} is not a SPIFFE ID or "
                         f"spiffe://<td>/<path>/* pattern ({e.reason})") from e


def pep_name(request: Request) -> str | None:
    """The authenticated PEP that asked, for the record: ``request.state.pep`` when PEP
    authentication set it (a name, or an object with ``name``/``id``), else None."""
    pep = getattr(request.state, "pep", None)
    if pep is None or isinstance(pep, str):
        return pep
    name = getattr(pep, "name", None) or getattr(pep, "id", None)
    return str(name) if name is not None else str(pep)


__all__ = [
    "PepAllowlist", "PepDep", "PepIdentity", "PepRefused", "admit_pep", "allowed_pep",
    "check_pep_allowlist",
    "enforced", "identify_pep", "install_pep_handler", "pep_name", "refused_problem",
    "require_pep",
    "tls_client_chain",
]
