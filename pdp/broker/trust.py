"""The PDP trusts its own broker out of the box: an issued credential works at once.

The broker is an ordinary OAuth issuer to the verifier (:mod:`pdp.identity.oauth_jwt`):
``iss`` is ``[broker] issuer``, tokens are RFC 9068 ``at+jwt``, and the keys come
from a :class:`BrokerJwksSource` that reads the keyring's JWK Set in process, on the
trust store's usual refresh schedule. A retired key therefore leaves the verifier's
keys on the first refresh after its overlap ends. The accepted audiences are the
broker's: the PDP's own and every ``[broker] audiences`` entry, since a PEP asks the
PDP about a credential that was issued for *its* service.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from pdp.broker.keys import ALGORITHM, BrokerKeyring
from pdp.config import Settings
from pdp.identity.claims import JwtRules
from pdp.identity.oauth_jwt import OAuthIssuer
from pdp.identity.trust_store import KeySource

ISSUER_NAME = "pdp-broker"
DEV_AUDIENCES = ("spiffe://example.org/services/reports",)
"""Added in ``--dev`` only: the example bundle's reporting service (policies/broker.cedar)."""
REFRESH_S = 1
"""Seconds between two reads of the in-process JWKS (a dict copy: cheap)."""


@dataclass(frozen=True, slots=True)
class BrokerJwksSource:
    """The keyring's JWK Set at the current time, as a trust source reads a file."""

    keyring: BrokerKeyring
    clock: Callable[[], datetime]

    @property
    def location(self) -> str:
        return "in-process:broker"

    def read(self) -> bytes:
        return json.dumps(self.keyring.jwks(self.clock())).encode()


def broker_audiences(settings: Settings) -> frozenset[str]:
    """Every audience the broker issues for: the PDP's own, ``[broker] audiences`` and, in
    ``--dev``, the example bundle's :data:`DEV_AUDIENCES`."""
    dev = DEV_AUDIENCES if settings.dev else ()
    return frozenset({settings.audience, *settings.broker.audiences, *dev})


def broker_issuer(settings: Settings) -> OAuthIssuer:
    """The broker as a trusted RFC 9068 issuer (its keys are filled in by its source)."""
    return OAuthIssuer(
        name=ISSUER_NAME, issuer=settings.broker.issuer, keys={},
        rules=JwtRules(audiences=broker_audiences(settings),
                       algorithms=frozenset({ALGORITHM}), leeway_s=settings.leeway_s,
                       max_lifetime_s=settings.broker.max_lifetime_s,
                       max_act_depth=settings.broker.max_delegation_depth),
        token_type="at+jwt")


def broker_key_source(keyring: BrokerKeyring, clock: Callable[[], datetime]) -> KeySource:
    return KeySource("jwks", ISSUER_NAME, BrokerJwksSource(keyring, clock),
                     interval_s=REFRESH_S, required=True)


__all__ = ["BrokerJwksSource", "broker_audiences", "broker_issuer", "broker_key_source"]
