"""Wire types of the HTTP API (pydantic at the edge; frozen dataclasses inside)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from pdp.decision.model import AuthorizeInput, ResourceRef
from pdp.engine.ids import printable
from pdp.identity.model import BearerToken, Credential, X509Chain

# Entity ids and action names: any string Cedar accepts (empty included), without
# control characters (pdp.engine.ids); the length bounds are on each field. The
# pattern says the same in the OpenAPI document, so clients and fuzzers know it.
Printable = Annotated[str, AfterValidator(printable),
                      Field(json_schema_extra={"pattern": "^[^\\x00-\\x1f\\x7f-\\x9f]*$"})]

_EXAMPLE_TOKEN = ("eyJhbGciOiJFUzI1NiIsImtpZCI6Ii4uLiIsInR5cCI6IkpXVCJ9"
                  ".eyJzdWIiOiJzcGlmZmU6Ly9leGFtcGxlLm9yZy9zZXJ2aWNlcy9ldGwiLCJhdWQiOiJwZHAifQ"
                  ".c2ln")


class Subject(BaseModel):
    """The caller's credential: a bearer JWT (JWT-SVID or OAuth JWT) or an X.509-SVID chain.

    Exactly one of ``token`` and ``x509``: the validator enforces it, and the JSON
    Schema says it (``oneOf``) so that clients and fuzzers know it too.
    """

    model_config = ConfigDict(extra="forbid", json_schema_extra={"oneOf": [
        {"required": ["token"], "properties": {"token": {"type": "string"},
                                               "x509": {"type": "null"}}},
        {"required": ["x509"], "properties": {"x509": {"type": "string"},
                                              "token": {"type": "null"}}},
    ]})

    token: str | None = Field(default=None, max_length=16384,
                              description="Compact JWT: a JWT-SVID or an issuer's access token.")
    x509: str | None = Field(
        default=None, max_length=65536,
        description="PEM chain: the X.509-SVID leaf first, then intermediates.")

    @model_validator(mode="after")
    def _exactly_one(self) -> Subject:
        if (self.token is None) == (self.x509 is None):
            raise ValueError("give exactly one of subject.token or subject.x509")
        return self

    def credential(self) -> Credential:
        return BearerToken(self.token) if self.token is not None else X509Chain(self.x509 or "")


# `live` and `credential` are the PDP's (pdp.engine.pdp_schema.RESERVED_CONTEXT_ATTRS): a
# context holding either is refused (400). Said in the schema too, for clients and fuzzers.
NO_RESERVED_KEYS: dict[str, Any] = {"not": {"anyOf": [{"required": ["live"]},
                                                      {"required": ["credential"]}]}}


class EntityRef(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: str = Field(min_length=1, max_length=256, description="Cedar entity type.")
    id: Printable = Field(max_length=1024, description="Entity id: any string Cedar accepts.")


class Resource(BaseModel):
    """The resource: a Cedar entity type and id, and optionally its attributes and parents."""

    model_config = ConfigDict(extra="forbid")

    type: str = Field(min_length=1, max_length=256, examples=["App::Dataset"],
                      description="Cedar entity type, namespaced as in the schema.")
    id: Printable = Field(max_length=1024, examples=["sales-daily"],
                          description="Entity id: any string Cedar accepts (even empty).")
    attrs: dict[str, Any] | None = Field(
        default=None, description="Attributes, for resources the bundle does not define.")
    parents: list[EntityRef] = Field(default_factory=list, max_length=64)

    def to_ref(self) -> ResourceRef:
        return ResourceRef(type=self.type, id=self.id, attrs=self.attrs,
                           parents=tuple((p.type, p.id) for p in self.parents))


class AuthorizeItem(BaseModel):
    model_config = ConfigDict(extra="forbid")

    action: Printable = Field(max_length=256, examples=["read"],
                        description='Action id (`read`) or Cedar uid (`App::Action::"read"`).')
    resource: Resource
    context: dict[str, Any] = Field(
        default_factory=dict, json_schema_extra=NO_RESERVED_KEYS,
        description="The PEP's request context, as the action's schema declares it. "
                    "`live` and `credential` are reserved: the PDP fills them in.")
    explain: bool = Field(
        default=False, strict=True,
        description="Also diagnose an allow (denies are always diagnosed): which policies "
                    "applied and which of their conditions held, computed by Cedar.")


class AuthorizeRequest(AuthorizeItem):
    """May ``subject`` do ``action`` on ``resource`` now?"""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "subject": {"token": _EXAMPLE_TOKEN},
        "action": "read",
        "resource": {"type": "App::Dataset", "id": "sales-daily"},
        "context": {"purpose": "daily report"},
    }]})

    subject: Subject

    def to_input(self, *, request_id: str | None, pep: str | None) -> AuthorizeInput:
        return to_input(self.subject, self, request_id=request_id, pep=pep)


class BatchRequest(BaseModel):
    """Several questions for one subject: its credential is verified once."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "subject": {"token": _EXAMPLE_TOKEN},
        "items": [
            {"action": "read", "resource": {"type": "App::Dataset", "id": "sales-daily"}},
            {"action": "write", "resource": {"type": "App::Dataset", "id": "ledger"}},
        ],
    }]})

    subject: Subject
    items: list[AuthorizeItem] = Field(min_length=1, max_length=100)


def to_input(subject: Subject, item: AuthorizeItem, *, request_id: str | None,
             pep: str | None) -> AuthorizeInput:
    return AuthorizeInput(credential=subject.credential(), action=item.action,
                          resource=item.resource.to_ref(), context=item.context,
                          request_id=request_id, pep=pep, explain=item.explain or None)


class ReasonOut(BaseModel):
    policy: str
    effect: Literal["permit", "forbid"]
    message: str
    advice: str | None = None


class ErrorOut(BaseModel):
    code: str
    message: str
    policy: str | None = None


class AuthorizeResponse(BaseModel):
    """The decision. A deny is still HTTP 200: read ``decision``, never the status."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "decision": "allow",
        "decision_id": "019ab0c2-7d3e-7b61-a1f2-5c9e8d7f6a41",
        "principal": 'Pdp::Workload::"spiffe://example.org/services/etl"',
        "action": 'App::Action::"read"',
        "resource": 'App::Dataset::"sales-daily"',
        "reasons": [{"policy": "dataset.pipelines.read-write", "effect": "permit",
                     "message": "Data pipelines may read and write datasets of the "
                                "analytics domain."}],
        "reason_codes": ["policy.permit"],
        "explanation": "Allowed by policy dataset.pipelines.read-write: Data pipelines may read "
                       "and write datasets of the analytics domain.",
        "errors": [],
        "policy_version": {"commit": "3f1c2e9a7b0d", "sha256": "58c6929b43c8", "dirty": False,
                           "label": "3f1c2e9a7b0d+58c6929b43c8"},
        "context": {"now": "2026-11-23T10:00:00.000Z", "incident": False, "risk_level": 0,
                    "business_hours": True},
        "valid_until": "2026-11-23T10:05:00Z",
        "timestamp": "2026-11-23T10:00:00Z",
    }]})

    decision: Literal["allow", "deny"]
    decision_id: str
    principal: str | None
    action: str | None
    resource: str | None
    reasons: list[ReasonOut]
    reason_codes: list[str]
    explanation: str
    errors: list[ErrorOut]
    policy_version: dict[str, Any] | None
    context: dict[str, Any] | None = Field(description="The live-context snapshot used.")
    valid_until: str = Field(description="Cache the answer until then, never longer.")
    timestamp: str
    diagnosis: list[dict[str, Any]] = Field(
        default_factory=list,
        description="For denies (or with `explain`): each policy worth explaining, whether its "
                    "scope matched, and each condition of its when/unless clauses with its "
                    "outcome (true/false/error), whether it blocked, and the values it read.")


class BatchResponse(BaseModel):
    results: list[AuthorizeResponse]


class Problem(BaseModel):
    """RFC 9457 problem details."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str | None = None
    errors: list[dict[str, Any]] | None = None
