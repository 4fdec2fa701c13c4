"""Identity verification: who is asking, proven by a credential we trust.

Three credentials are accepted, each checked against its own trust anchors:
X.509-SVIDs and JWT-SVIDs against the SPIFFE bundle of their trust domain,
OAuth JWT access tokens against the JWKS of an explicitly configured issuer.
:class:`IdentityVerifier` is the one way in; every refusal is an
:class:`IdentityError` subclass whose ``code`` is the decision's reason code.
Ref: https://spiffe.io/docs/latest/spiffe-about/spiffe-concepts/
"""

from pdp.identity.dev_issuer import DevIssuer
from pdp.identity.errors import IdentityError
from pdp.identity.model import (
    BearerToken,
    Credential,
    CredentialKind,
    VerifiedIdentity,
    X509Chain,
)
from pdp.identity.revocation import DenyList
from pdp.identity.spiffe_id import SpiffeId, parse_spiffe_id
from pdp.identity.trust_bundle import BundleError, TrustBundle, parse_spiffe_bundle
from pdp.identity.verifier import IdentityVerifier

__all__ = [
    "BearerToken", "BundleError", "Credential", "CredentialKind", "DenyList", "DevIssuer",
    "IdentityError", "IdentityVerifier", "SpiffeId", "TrustBundle", "VerifiedIdentity",
    "X509Chain", "parse_spiffe_bundle", "parse_spiffe_id",
]
