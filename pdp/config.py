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

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

ALL_ASYMMETRIC_ALGORITHMS = [
    "RS256", "RS384", "RS512", "ES256", "ES384", "ES512", "PS256", "PS384", "PS512",
]


class IssuerConfig(BaseModel):
    """An OAuth/OIDC issuer whose JWTs are trusted (not a SPIFFE trust domain)."""

    name: str = Field(description="Label used in logs and metrics.")
    issuer: str = Field(description="Exact `iss` value of its tokens.")
    jwks_file: Path = Field(description="JWK Set file with the issuer's public keys.")
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


class TrustDomainConfig(BaseModel):
    """A SPIFFE trust domain whose SVIDs are trusted, with its bundle."""

    name: str = Field(description="Trust domain name, e.g. `example.org`.")
    bundle_file: Path = Field(description="SPIFFE bundle (JWK Set with `use` members).")
    max_lifetime_s: int = Field(default=3600, description="Maximum JWT-SVID `exp - iat`.")
    lifetime_policy: Literal["deny", "flag"] = "deny"
    algorithms: list[str] = Field(default_factory=lambda: list(ALL_ASYMMETRIC_ALGORITHMS))


class AuditConfig(BaseModel):
    backend: Literal["sqlite", "memory"] = Field(
        default="sqlite", description="Decision log store.")
    sqlite_path: Path | None = Field(
        default=None, description="SQLite file; default `<state_dir>/decisions.db`.")
    batch_max: int = Field(default=512, description="Most records in one group commit.")


class BusinessHoursConfig(BaseModel):
    timezone: str = Field(default="UTC", description="IANA time zone of the weekly calendar.")
    start: str = Field(default="09:00", description="Start of business hours (local time).")
    end: str = Field(default="17:00", description="End of business hours (local, exclusive).")
    days: list[int] = Field(
        default_factory=lambda: [0, 1, 2, 3, 4],
        description="Business days, 0 = Monday ... 6 = Sunday.")


class LiveDefaultsConfig(BaseModel):
    incident: bool = Field(default=False, description="Incident mode when nothing set it.")
    risk_level: int = Field(default=0, ge=0, le=3, description="0 low ... 3 critical.")
    business_hours: BusinessHoursConfig = Field(default_factory=BusinessHoursConfig)


class Settings(BaseSettings):
    """All of the PDP's configuration."""

    model_config = SettingsConfigDict(
        env_prefix="PDP_", env_nested_delimiter="__", extra="forbid")

    host: str = Field(default="127.0.0.1", description="Listen address.")
    port: int = Field(default=8181, description="Listen port.")
    dev: bool = Field(
        default=False,
        description="Development mode: create and trust a local issuer for `example.org`.")
    policies: Path = Field(default=Path("policies"), description="Policy bundle directory.")
    watch_policies: bool = Field(
        default=True, description="Reload the bundle when its files change.")
    state_dir: Path = Field(default=Path(".pdp"), description="Local state (keys, SQLite log).")
    audience: str = Field(
        default="pdp", description="This PDP's audience: tokens must name it in `aud`.")
    allow_multiple_audiences: bool = Field(
        default=False,
        description="Accept tokens whose `aud` lists several audiences (replayable elsewhere).")
    leeway_s: int = Field(default=30, ge=0, le=60, description="Clock skew allowed on exp/nbf/iat.")
    max_body_bytes: int = Field(default=65536, description="Largest request body accepted.")
    issuers: list[IssuerConfig] = Field(default_factory=list)
    trust_domains: list[TrustDomainConfig] = Field(default_factory=list)
    audit: AuditConfig = Field(default_factory=AuditConfig)
    live: LiveDefaultsConfig = Field(default_factory=LiveDefaultsConfig)
    max_decision_ttl_s: int = Field(
        default=300, description="Upper bound of a decision's `valid_until` from now.")
    trusted_proxies: list[str] = Field(
        default_factory=list,
        description="IP addresses or CIDRs of proxies (Envoy, nginx) whose forwarded client "
                    "certificates are accepted. Empty: forwarded certificates are ignored.")
    pep_allowlist: list[str] = Field(
        default_factory=list,
        description="PEP identities allowed to call the decision endpoints: SPIFFE IDs, or "
                    "patterns ending in `/*` (a path prefix). Empty: any caller (always in --dev).")
    trusted_assertors: list[str] = Field(
        default_factory=list,
        description="PEP identities trusted to assert a subject without a credential "
                    "(AuthZEN style); such decisions are marked `asserted`.")
    verification_cache_size: int = Field(
        default=10000, ge=0, description="Verified credentials kept (LRU) until they expire.")
    identity_refresh_s: int = Field(
        default=30, ge=1, description="How often trust bundles and JWKS files are re-read.")

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
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls))

    @property
    def sqlite_path(self) -> Path:
        return self.audit.sqlite_path or self.state_dir / "decisions.db"


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
    return cls(**{k: v for k, v in overrides.items() if v is not None})


__all__ = [
    "AuditConfig", "BusinessHoursConfig", "IssuerConfig", "LiveDefaultsConfig",
    "Settings", "TrustDomainConfig", "load_settings",
]
