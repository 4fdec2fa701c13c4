"""Settings: complete defaults, overridden by ``pdp.toml`` and then ``PDP_*`` variables.

Every key documents its default; the safe setting is the default. Nested keys
take ``__`` in the environment, e.g. ``PDP_AUDIT__BACKEND=postgres``.

Example ``pdp.toml``::

    audience = "spiffe://example.org/pdp"

    [[trust_domains]]
    name = "example.org"
    bundle_file = "/etc/pdp/example.org.bundle.json"

    [[issuers]]
    name = "corp-idp"
    issuer = "https://idp.example.com"
    jwks_file = "/etc/pdp/idp.jwks.json"
    token_type = "at+jwt"
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

# Both import nothing of the PDP: the configuration checks routes and redaction pointers
# with the very code that later uses them, so a bad one is refused when it loads.
from pdp.gateway.example_routes import EXAMPLE_ROUTES
from pdp.gateway.routes import compile_route
from pdp.pointers import check_redaction_pointer


class Section(BaseModel):
    """A table of ``pdp.toml``: an unknown key is an error naming it, as at the top level.

    pydantic ignores extra keys of nested models by default, so ``[audit] backnd = ...``
    would have been dropped silently and the default used.
    """

    model_config = ConfigDict(extra="forbid")


ALL_ASYMMETRIC_ALGORITHMS = [
    "RS256", "RS384", "RS512", "ES256", "ES384", "ES512", "PS256", "PS384", "PS512",
]


class IssuerConfig(Section):
    """An OAuth/OIDC issuer whose JWTs are trusted (not a SPIFFE trust domain)."""

    name: str = Field(description="Label used in logs and metrics.")
    issuer: str = Field(description="Exact `iss` value of its tokens.")
    jwks_file: Path | None = Field(
        default=None, description="JWK Set file with the issuer's public keys. Give exactly "
                                  "one of `jwks_file`, `jwks_uri` and `discovery_url`.")
    jwks_uri: str | None = Field(
        default=None, description="https (or loopback http) URL of the issuer's JWK Set.")
    discovery_url: str | None = Field(
        default=None, description="OpenID discovery document, e.g. "
                                  "`https://idp.example.com/.well-known/openid-configuration`; its "
                                  "`issuer` must equal `issuer` and its `jwks_uri` gives the keys.")
    refresh_s: int = Field(
        default=300, ge=1, description="How often `jwks_uri`/`discovery_url` are fetched again "
                                       "(files: `identity_refresh_s`). A failed fetch keeps the "
                                       "last good key set.")
    ca_file: Path | None = Field(
        default=None, description="CA bundle for https fetches; default: the system's.")
    max_age_s: int | None = Field(
        default=None, ge=1, description="Longest the last good key set is used when it cannot "
                                        "be refreshed; past it every token of this issuer is "
                                        "denied (`identity.trust_stale`) and /readyz is not "
                                        "ready. Default: 24 h, or 12 refresh intervals if longer.")
    audiences: list[str] | None = Field(
        default=None, description="Accepted `aud` values; default: the PDP's `audience`.")
    algorithms: list[str] = Field(
        default_factory=lambda: list(ALL_ASYMMETRIC_ALGORITHMS),
        description="Allowed `alg` values. Never derived from the token. HS*/none are refused.")
    token_type: Literal["jwt", "at+jwt"] = Field(
        default="jwt",
        description="`at+jwt`: RFC 9068 access tokens (typ must be at+jwt, required claims "
                    "iss exp aud sub client_id iat jti). `jwt`: typ absent, JWT or JOSE.")
    required_claims: list[str] = Field(
        default_factory=lambda: ["iss", "exp", "aud", "sub", "iat"],
        description="Claims that must be present (RFC 9068 adds client_id and jti).")
    principal_claim: str = Field(
        default="sub", description="Claim whose value becomes the Workload id "
                                   "(a SPIFFE ID in `sub` is always used as is).")
    scopes_claim: str = Field(default="scope", description="Space-separated string or list.")
    groups_claim: str | None = Field(
        default=None, description="Claim listing groups; each becomes a Pdp::Group parent.")
    max_lifetime_s: int = Field(default=3600, description="Maximum `exp - iat` in seconds.")
    lifetime_policy: Literal["deny", "flag"] = Field(
        default="deny", description="Over the maximum lifetime: deny, or accept and flag.")
    allow_trailing_slash: bool = Field(
        default=False, description="Accept `iss` with or without one trailing `/`.")

    @model_validator(mode="after")
    def _one_key_source(self) -> IssuerConfig:
        given = [n for n in ("jwks_file", "jwks_uri", "discovery_url") if getattr(self, n)]
        if len(given) != 1:
            raise ValueError(f"issuer {self.name!r}: give exactly one of jwks_file, jwks_uri "
                             f"and discovery_url (got {', '.join(given) or 'none'})")
        return self


class ConsoleOidcConfig(Section):
    """Sign-in to ``/console`` through an OpenID provider (authorization code + PKCE, public
    client). The provider must also be one of ``issuers`` whose ``audiences`` include
    ``client_id``: its ID tokens are verified and mapped like any JWT (``sub`` or
    ``principal_claim`` -> the principal, ``groups_claim`` -> ``Pdp::Group`` parents)."""

    issuer: str = Field(description="The provider's issuer; its discovery document is read "
                                    "from `<issuer>/.well-known/openid-configuration`.")
    client_id: str = Field(description="The console's client id (a public client: no secret).")
    scopes: list[str] = Field(default_factory=lambda: ["openid", "groups"],
                              description="Scopes asked for; `openid` is required.")
    redirect_uri: str | None = Field(
        default=None, description="Registered redirect URI; default: "
                                  "`<this server>/console/oidc/callback`.")


class TrustDomainConfig(Section):
    """A SPIFFE trust domain whose SVIDs are trusted, with its bundle."""

    name: str = Field(description="Trust domain name, e.g. `example.org`.")
    bundle_file: Path | None = Field(
        default=None, description="SPIFFE bundle (JWK Set with `use` members). Give exactly "
                                  "one of `bundle_file` and `bundle_url`.")
    bundle_url: str | None = Field(
        default=None, description="SPIFFE bundle endpoint (https_web profile; http only on "
                                  "loopback), fetched every `spiffe_refresh_hint` seconds "
                                  "(default 300).")
    workload_api: bool = Field(
        default=False, description="Take this domain's bundle from the SPIFFE Workload API "
                                   "(`workload_api_socket`): the PDP's own trust domain or a "
                                   "federated one, followed as the agent streams updates.")
    refresh_s: int | None = Field(
        default=None, ge=1, description="Fetch `bundle_url` this often instead of the bundle's "
                                        "`spiffe_refresh_hint`.")
    ca_file: Path | None = Field(
        default=None, description="CA bundle for an https `bundle_url`; default: the system's.")
    max_age_s: int | None = Field(
        default=None, ge=1, description="Longest the last good bundle is used when it cannot be "
                                        "refreshed; past it every SVID of this domain is denied "
                                        "(`identity.trust_stale`) and /readyz is not ready. "
                                        "Default: 24 h, or 12 refresh intervals (the bundle's "
                                        "`spiffe_refresh_hint`) if longer.")
    max_lifetime_s: int = Field(default=3600, description="Maximum JWT-SVID `exp - iat`.")
    lifetime_policy: Literal["deny", "flag"] = "deny"
    x509_max_lifetime_s: int | None = Field(
        default=None, ge=1, description="Maximum X.509-SVID leaf lifetime (notAfter - "
                                        "notBefore), under `lifetime_policy`; default: none.")
    algorithms: list[str] = Field(default_factory=lambda: list(ALL_ASYMMETRIC_ALGORITHMS))

    @model_validator(mode="after")
    def _one_bundle_source(self) -> TrustDomainConfig:
        given = [self.bundle_file is not None, self.bundle_url is not None, self.workload_api]
        if sum(given) != 1:
            raise ValueError(f"trust domain {self.name!r}: give exactly one of bundle_file, "
                             "bundle_url and workload_api = true")
        return self


class GitPoliciesConfig(Section):
    """Take the bundle from a git repository instead of the `policies` directory."""

    url: str = Field(description="Repository: a local path or a URL git can clone.")
    ref: str = Field(default="main", description="Branch, tag or commit to follow.")
    subdir: str = Field(default="", description="The bundle's directory inside the repository.")
    poll_s: float = Field(default=30, gt=0, description="How often to look for a new commit.")


class AuditConfig(Section):
    backend: Literal["sqlite", "memory", "postgres"] = Field(
        default="sqlite", description="Decision log store (see docs/audit-storage.md).")
    sqlite_path: Path | None = Field(
        default=None, description="SQLite file; default `<state_dir>/decisions.db`.")
    batch_max: int = Field(default=512, ge=1, description="Most records in one group commit.")
    durability: Literal["process", "power"] = Field(
        default="power", description="What an acknowledged decision survives "
                                     "(docs/audit-storage.md, \"Durability\"). `power`: a "
                                     "power cut of the machine holding the log (SQLite "
                                     "`synchronous=FULL`, PostgreSQL `synchronous_commit=on`). "
                                     "`process`: a crash or `kill -9` of the PDP, not a power "
                                     "cut or an OS crash (SQLite `NORMAL` in WAL mode, "
                                     "PostgreSQL `synchronous_commit=off`).")
    synchronous: Literal["OFF", "NORMAL", "FULL", "EXTRA"] = Field(
        default="FULL", description="SQLite `PRAGMA synchronous`; default: FULL for durability "
                                    "`power`, NORMAL for `process`. Set it only to go beyond "
                                    "them (EXTRA; OFF survives neither).")
    busy_timeout_ms: int = Field(
        default=5000, ge=0, description="SQLite: how long a commit waits for a lock held by "
                                        "another process before the log is unavailable.")
    commit_timeout_s: float = Field(
        default=2.0, gt=0, le=60, description="The longest a decision waits for its record to "
                                             "commit (one already being written waits for that "
                                             "write, capped at 1.25x this + 0.1 s more); past "
                                             "it the answer is a deny with "
                                             "`audit.unavailable` (or the record is spooled), "
                                             "and `/readyz` says not ready until the log "
                                             "commits again.")
    postgres_dsn: str | None = Field(
        default=None, description="PostgreSQL connection string for backend `postgres`, e.g. "
                                  "`postgresql://pdp@db/pdp?options=-csearch_path%3Dpdp`.")
    spool_path: Path | None = Field(
        default=None, description="Off by default (fail closed). When set, a record the store "
                                  "cannot take is appended and fsynced to this JSON Lines file, "
                                  "the decision is answered, and the spool is shipped to the "
                                  "store when it is back.")
    checkpoint_key: Path | None = Field(
        default=None, description="PEM Ed25519 private key that signs checkpoints. Default: "
                                  "none (no checkpoints, verify says `unsigned`); with `--dev`, "
                                  "`<state_dir>/dev/audit-checkpoint-key.pem`, created once.")
    checkpoint_public_key: Path | None = Field(
        default=None, description="PEM Ed25519 public key that checks checkpoints (auditors); "
                                  "default: the public half of `checkpoint_key`.")
    checkpoint_every_records: int = Field(
        default=1000, ge=1, description="Sign a checkpoint after this many new records...")
    checkpoint_every_s: float = Field(
        default=60.0, gt=0, description="...or this many seconds after the last one, if the "
                                        "log grew; and on a clean shutdown.")
    retention_days: int | None = Field(
        default=None, ge=1, description="Delete records older than this many days, keeping "
                                        "the chain verifiable from a signed anchor. Default: "
                                        "keep everything.")
    redact: list[str] = Field(
        default_factory=list,
        description="JSON Pointers (RFC 6901) into the request, erased before a decision is "
                    "logged and listed in its `redacted`; only under `/context/...` and "
                    "`/resource/attrs/...`, e.g. `/context/card_number`.")

    @model_validator(mode="after")
    def _synchronous_from_durability(self) -> AuditConfig:
        # One place decides the SQLite pragma: an explicit `synchronous` must not promise
        # less than `durability` says, and without one, `durability` chooses it.
        chosen: Literal["FULL", "NORMAL"] = "FULL" if self.durability == "power" else "NORMAL"
        if "synchronous" not in self.model_fields_set:
            self.synchronous = chosen
        elif self.durability == "power" and self.synchronous in ("OFF", "NORMAL"):
            raise ValueError(f"[audit] synchronous = {self.synchronous!r} does not survive "
                             "power loss, which durability = \"power\" promises; set "
                             "durability = \"process\" or synchronous = \"FULL\"")
        return self

    @field_validator("redact")
    @classmethod
    def _check_redact(cls, pointers: list[str]) -> list[str]:
        for pointer in pointers:
            check_redaction_pointer(pointer)  # BadPointer is a ValueError: a config error
        return pointers

    @model_validator(mode="after")
    def _check_postgres_dsn(self) -> AuditConfig:
        if self.backend == "postgres" and not self.postgres_dsn:
            raise ValueError("[audit] backend = \"postgres\" needs postgres_dsn "
                             "(or PDP_AUDIT__POSTGRES_DSN)")
        return self


class BusinessHoursConfig(Section):
    timezone: str = Field(default="UTC", description="IANA time zone of the weekly calendar.")
    start: str = Field(default="09:00", description="Start of business hours (local time).")
    end: str = Field(default="17:00", description="End of business hours (local, exclusive).")
    days: list[int] = Field(
        default_factory=lambda: [0, 1, 2, 3, 4],
        description="Business days, 0 = Monday ... 6 = Sunday.")
    holidays: list[str] = Field(
        default_factory=list, description="Dates (YYYY-MM-DD, local) that are not business days.")


class LiveDefaultsConfig(Section):
    incident: bool = Field(default=False, description="Incident mode when nothing set it.")
    risk_level: int = Field(default=0, ge=0, le=3, description="0 low ... 3 critical.")
    business_hours: BusinessHoursConfig = Field(default_factory=BusinessHoursConfig)


class ContextMaxAgeConfig(Section):
    """How long a value may go unconfirmed by its store before it is stale."""

    incident_s: float = Field(default=30.0, gt=0, description="Incidents.")
    risk_s: float = Field(default=30.0, gt=0, description="Global and per-principal risk.")
    revocations_s: float = Field(
        default=30.0, gt=0, description="Revocations, confirmed with the durable store; older: "
                                        "credentials are refused (identity.revocation_unknown).")


class ContextDegradedConfig(Section):
    """Conservative values used for stale or unreachable context (never below the last known)."""

    incident_level: int = Field(
        default=0, ge=0, le=3, description="Assume a global incident of this level (0: none).")
    global_risk_level: int = Field(default=2, ge=0, le=3, description="Global risk (2 high).")
    principal_risk_level: int = Field(default=0, ge=0, le=3, description="Each principal's risk.")
    decision_ttl_s: float = Field(
        default=5.0, gt=0, description="Most a PEP may cache a decision made on degraded context.")


class BehaviourConfig(Section):
    """Adaptive risk from the PDP's own decisions (see `context.behaviour`). Levels 0-3."""

    enabled: bool = Field(default=True, description="Watch decisions and raise risk.")
    window_s: float = Field(default=60.0, gt=0, description="Sliding window of the signals.")
    deny_burst: int = Field(default=20, ge=1, description="Denies in the window that raise risk.")
    deny_burst_level: int = Field(default=2, ge=0, le=3)
    deny_reasons: list[str] = Field(
        default_factory=lambda: ["policy.no_permit"],
        description="Reason codes counted as denies (guards' `policy.forbid` is not: an "
                    "incident or a risk raise must not feed on itself).")
    rate_factor: float = Field(default=5.0, gt=1, description="Rate / own baseline that raises.")
    rate_min_requests: int = Field(default=120, ge=1, description="Fewest requests in the window.")
    rate_level: int = Field(default=1, ge=0, le=3)
    baseline_s: float = Field(default=3600.0, gt=0, description="Time constant of the baseline.")
    baseline_warmup_s: float = Field(default=600.0, ge=0, description="History before rate counts.")
    new_source_level: int = Field(default=1, ge=0, le=3, description="First-seen source address.")
    new_pep_level: int = Field(default=1, ge=0, le=3, description="First-seen PEP.")
    new_source_min_history: int = Field(
        default=50, ge=0, description="Decisions before a new source or PEP counts.")
    source_keys: list[str] = Field(
        default_factory=lambda: ["source_address", "source_ip"],
        description="Keys of the PEP's context that carry the workload's source address.")
    revoked_uses: int = Field(default=1, ge=1, description="Uses of a revoked credential.")
    revoked_level: int = Field(default=3, ge=0, le=3)
    expired_uses: int = Field(default=5, ge=1, description="Uses of an expired credential.")
    expired_level: int = Field(default=1, ge=0, le=3)
    decay_s: float = Field(default=300.0, gt=0, description="An automatic raise drops one level "
                                                            "per this many seconds.")
    max_principals: int = Field(default=10000, ge=1, description="Principals tracked (LRU).")


class ContextConfig(Section):
    """Live context: where incidents and risk levels live, freshness, defaults, behaviour."""

    backend: Literal["memory", "redis"] = Field(
        default="memory", description="`memory`: this process only. `redis`: shared by replicas.")
    redis_url: str = Field(default="redis://127.0.0.1:6379/0", description="Redis for `redis`.")
    redis_prefix: str = Field(default="pdp", description="Prefix of every Redis key and channel.")
    redis_timeout_s: float = Field(default=0.5, gt=0, description="Redis socket timeout.")
    resync_s: float = Field(
        default=1.0, gt=0, description="How often the local copy is checked against Redis "
                                       "(changes arrive sooner, by pub/sub).")
    risk_ttl_s: float | None = Field(
        default=3600.0, gt=0, description="Lifetime of a risk level set without an expiry.")
    max_age: ContextMaxAgeConfig = Field(default_factory=ContextMaxAgeConfig)
    degraded: ContextDegradedConfig = Field(default_factory=ContextDegradedConfig)
    behaviour: BehaviourConfig = Field(default_factory=BehaviourConfig)


class RouteConfig(Section):
    """One gateway route: method + path pattern -> action on a resource (Envoy, nginx).

    ``{name}`` in ``path`` matches one path segment; ``resource_id`` and the
    ``context`` values may use ``{name}`` and ``{method}``. Routes are tried in
    order; a request no route matches is denied (403)::

        [[routes]]
        method = "GET"
        path = "/datasets/{name}"
        action = "read"
        resource_type = "App::Dataset"
        resource_id = "{name}"
    """

    model_config = {"extra": "forbid"}

    method: str = Field(default="*", description="HTTP method, or `*` for any.")
    path: str = Field(description="Path pattern, e.g. `/datasets/{name}`.")
    action: str = Field(description="Action id (`read`) or Cedar uid.")
    resource_type: str = Field(description="Cedar entity type of the resource.")
    resource_id: str = Field(description="Resource id template, e.g. `{name}`.")
    context: dict[str, str] = Field(
        default_factory=dict, description="Request context, values are templates.")

    @model_validator(mode="after")
    def _compiles(self) -> RouteConfig:
        compile_route(self)  # RouteError is a ValueError: a config error
        return self


class LogConfig(Section):
    """What ``pdp serve`` writes to standard error besides its start-up lines."""

    format: Literal["text", "json"] = Field(
        default="text", description="`text`: `pdp: request method=GET path=... status=200 "
                                    "ms=1.2` lines. `json`: one JSON object per line, for a "
                                    "log shipper.")
    requests: bool = Field(
        default=True, description="One line per HTTP request (method, path without the query, "
                                  "status, milliseconds, request id, decision id, client).")


class RetiredBrokerKey(BaseModel):
    """A broker key taken out of signing: still published (JWKS) and trusted until ``until``."""

    model_config = ConfigDict(extra="forbid")

    key_file: Path = Field(description="PEM private key (EC P-256) that signed until rotation.")
    until: datetime = Field(description="End of the overlap: after it, its tokens are refused.")


class BrokerConfig(Section):
    """The credential broker (RFC 8693 token exchange, ``POST /v1/token``; docs/agents.md)."""

    enabled: bool = Field(
        default=True, description="Serve the exchange when a key is available (`key_file`, "
                                  "or the dev key in --dev).")
    issuer: str = Field(
        default="urn:pdp:broker",
        description="`iss` of the credentials it issues; the PDP trusts it out of the box.")
    key_file: Path | None = Field(
        default=None, description="PEM private key (EC P-256, ES256) that signs credentials. "
                                  "None outside --dev: the broker is off.")
    retired_keys: list[RetiredBrokerKey] = Field(
        default_factory=list, description="Keys rotated out, each trusted until its `until`.")
    audiences: list[str] = Field(
        default_factory=list,
        description="Audiences it issues for; the PDP's own `audience` is always one. "
                    "Any other is refused with `invalid_target`.")
    max_lifetime_s: int = Field(
        default=900, ge=1, description="Longest lifetime of an issued credential (15 min).")
    max_lifetime_by_issuer: dict[str, int] = Field(
        default_factory=dict,
        description="Per subject-token issuer (`iss`, or `spiffe://<trust domain>`): a shorter "
                    "maximum for the credentials it can be exchanged for.")
    max_delegation_depth: int = Field(
        default=3, ge=1, le=10, description="Most `act` levels of an issued credential.")


class Settings(BaseSettings):
    """All of the PDP's configuration."""

    model_config = SettingsConfigDict(
        env_prefix="PDP_", env_nested_delimiter="__", extra="forbid")

    host: str = Field(default="127.0.0.1", description="Listen address.")
    port: int = Field(default=8181, description="Listen port.")
    dev: bool = Field(
        default=False,
        description="Development mode: create and trust a local issuer for `example.org`, "
                    "open the PEP allowlist, make a dev checkpoint key. Only the `--dev` flag "
                    "turns it on: `dev` in pdp.toml or `PDP_DEV` is refused (a leftover "
                    "variable must never trust a key anyone can mint with).")
    policies: Path = Field(default=Path("policies"), description="Policy bundle directory.")
    policies_git: GitPoliciesConfig | None = Field(
        default=None, description="Follow a git repository and ref instead of `policies`; each "
                                  "commit's SHA becomes the policy version.")
    watch_policies: bool = Field(
        default=True, description="Reload the bundle when its files change.")
    validation_cache: bool = Field(
        default=True,
        description="Remember in `<state_dir>/validated` which policy files Cedar's validator "
                    "passed (keyed by a SHA-256 of the text, the schema, cedarpy and the PDP), "
                    "so that a restart or a reload of the same policies skips validating them "
                    "again; and in `<state_dir>/scopes` what a load derived from each file's "
                    "parsed policies, so that a restart skips parsing them into nodes. Only "
                    "entries owned by the PDP's user and writable by no one else are believed "
                    "(README, \"Validation cache\"). `pdp validate` always validates.")
    state_dir: Path = Field(default=Path(".pdp"), description="Local state (keys, SQLite log).")
    audience: str = Field(
        default="pdp", description="This PDP's audience: tokens must name it in `aud`.")
    allow_multiple_audiences: bool = Field(
        default=False,
        description="Accept tokens whose `aud` lists several audiences (replayable elsewhere).")
    leeway_s: int = Field(default=30, ge=0, le=60, description="Clock skew allowed on exp/nbf/iat.")
    max_body_bytes: int = Field(default=65536, description="Largest request body accepted.")
    issuers: list[IssuerConfig] = Field(default_factory=list)
    console_oidc: ConsoleOidcConfig | None = Field(
        default=None, description="OpenID Connect sign-in to /console (see the README).")
    trust_domains: list[TrustDomainConfig] = Field(default_factory=list)
    audit: AuditConfig = Field(default_factory=AuditConfig)
    live: LiveDefaultsConfig = Field(default_factory=LiveDefaultsConfig)
    context: ContextConfig = Field(
        default_factory=ContextConfig,
        description="Live context backend (memory | redis), freshness, degraded defaults, "
                    "behaviour signals; e.g. `PDP_CONTEXT__BACKEND=redis`.")
    log: LogConfig = Field(default_factory=LogConfig)
    max_decision_ttl_s: int = Field(
        default=300, description="Upper bound of a decision's `valid_until` from now.")
    trusted_proxies: list[str] = Field(
        default_factory=list,
        description="IP addresses or CIDRs of proxies (Envoy, nginx) whose forwarded client "
                    "certificates are accepted. Empty: forwarded certificates are ignored.")
    pep_allowlist: list[str] = Field(
        default_factory=list,
        description="PEP identities allowed to call the decision endpoints: SPIFFE IDs, or "
                    "patterns ending in `/*` (a path prefix); `[\"*\"]`: any caller. Empty: "
                    "`pdp serve` refuses to start, except with --dev (any caller).")
    trusted_assertors: list[str] = Field(
        default_factory=list,
        description="PEP identities trusted to assert a subject without a credential "
                    "(AuthZEN style); such decisions are marked `asserted`.")
    routes: list[RouteConfig] = Field(
        default_factory=list,
        description="Gateway route table (Envoy ext_authz, nginx auth_request): method + path "
                    "-> action and resource, first match wins; unmatched requests are denied. "
                    "Not set and --dev: the example table of pdp/gateway/example_routes.py.")
    verification_cache_size: int = Field(
        default=10000, ge=0, description="Verified credentials kept (LRU) until they expire.")
    answer_memo_bytes: int = Field(
        default=8_000_000, ge=0,
        description="Memory per worker for Cedar's answers to questions already asked of "
                    "the current bundle: the same principal, action, resource, entities "
                    "and context (the part the policies read) is answered without Cedar, "
                    "exactly as Cedar answered it. 0 turns the memo off.")
    identity_refresh_s: int = Field(
        default=30, ge=1, description="How often trust bundles and JWKS files are re-read.")
    workload_api_socket: str | None = Field(
        default=None, description="The SPIFFE Workload API (`unix:///run/spire/agent.sock`) "
                                  "for `[[trust_domains]]` with `workload_api = true`; "
                                  "default: `SPIFFE_ENDPOINT_SOCKET`.")
    delegation_max_depth: int = Field(
        default=3, ge=1, le=10,
        description="Most RFC 8693 `act` levels in a token; a deeper chain is denied "
                    "(identity.claims).")
    tls_cert: Path | None = Field(
        default=None, description="Serve HTTPS with this certificate chain (PEM).")
    tls_key: Path | None = Field(default=None, description="Private key of `tls_cert` (PEM).")
    client_ca_bundle: Path | None = Field(
        default=None, description="Ask TLS clients (PEPs) for a certificate issued by these CAs; "
                                  "the certificate's X.509-SVID is the PEP's identity.")
    client_cert_required: bool = Field(
        default=False, description="With `client_ca_bundle`: refuse TLS clients without one.")
    tls_workload_api: bool = Field(
        default=False, description="Serve HTTPS with the PDP's own X.509-SVID from the SPIFFE "
                                   "Workload API (`workload_api_socket`), rotated without a "
                                   "restart; client certificates are asked for from the "
                                   "agent's CAs unless `client_ca_bundle` is given. Instead "
                                   "of `tls_cert`/`tls_key`; one worker only.")
    broker: BrokerConfig = Field(
        default_factory=BrokerConfig,
        description="The credential broker: task-scoped credentials after a policy decision.")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Flags (init) win over PDP_* variables, which win over the TOML file.
        # `dev` comes only from a flag: the file and the environment may not set it.
        return (init_settings, _EnvWithoutFlags(settings_cls),
                _TomlWithoutFlags(settings_cls))

    @model_validator(mode="after")
    def _dev_example_routes(self) -> Settings:
        # `make run` must make the gateway guides work as written (docs/integrations.md):
        # in --dev, a configuration that says nothing about routes gets the example table.
        if self.dev and "routes" not in self.model_fields_set:
            self.routes = [RouteConfig.model_validate(r) for r in EXAMPLE_ROUTES]
        return self

    @property
    def sqlite_path(self) -> Path:
        return self.audit.sqlite_path or self.state_dir / "decisions.db"


FLAG_ONLY = ("dev",)
"""Settings only a command-line flag may set (``pdp serve --dev``), never a file or variable."""


def _refuse_flag_only(values: dict[str, Any], where: str) -> dict[str, Any]:
    """``values`` from a file or the environment, refusing the keys of :data:`FLAG_ONLY`:
    an error, not a silent ignore, so the operator learns at once that what they wrote
    does nothing."""
    for key in FLAG_ONLY:
        if key in values:
            raise ValueError(f"{where} is not accepted: development mode (it trusts a local "
                             f"issuer anyone can mint with) is turned on only by the --{key} "
                             "flag of `pdp serve`")
    return values


class _EnvWithoutFlags(EnvSettingsSource):
    def __call__(self) -> dict[str, Any]:
        return _refuse_flag_only(super().__call__(), "PDP_DEV")


class _TomlWithoutFlags(TomlConfigSettingsSource):
    def __call__(self) -> dict[str, Any]:
        return _refuse_flag_only(super().__call__(), "`dev` in the config file")


def load_settings(config_file: Path | None = None, **overrides: object) -> Settings:
    """Build settings from defaults, ``config_file`` (TOML), ``PDP_*`` and ``overrides``.

    Overrides (e.g. CLI flags) win over the environment, which wins over the file.
    """
    cls: type[Settings] = Settings
    if config_file is not None:
        if not config_file.is_file():
            raise FileNotFoundError(f"config file not found: {config_file}")

        class FileSettings(Settings):
            model_config = SettingsConfigDict(**{**Settings.model_config, "toml_file": config_file})

        cls = FileSettings
    # Any: pydantic validates each override against its field, as it does the file's values.
    given: dict[str, Any] = {k: v for k, v in overrides.items() if v is not None}
    return cls(**given)


__all__ = [
    "AuditConfig", "BehaviourConfig", "BrokerConfig", "BusinessHoursConfig", "ContextConfig",
    "IssuerConfig", "LiveDefaultsConfig", "LogConfig",
    "RouteConfig", "Settings", "TrustDomainConfig", "load_settings",
]
