"""The OIDC client's pieces that need no provider: PKCE, one-time states, forged callbacks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from pdp.console.oidc import OidcError, PendingLogins, pkce_challenge

NOW = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)


def test_pkce_s256_matches_rfc_7636_appendix_b():
    assert pkce_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk") == \
        "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"


def test_a_state_finishes_once_and_only_while_fresh():
    pending = PendingLogins()
    login = pending.start(redirect_uri="http://127.0.0.1/cb", next="/console/decisions", now=NOW)
    assert pending.finish(login.state, NOW + timedelta(seconds=5)) == login
    with pytest.raises(OidcError):  # replayed callback
        pending.finish(login.state, NOW + timedelta(seconds=6))
    stale = pending.start(redirect_uri="http://127.0.0.1/cb", next="/console/decisions", now=NOW)
    with pytest.raises(OidcError):
        pending.finish(stale.state, NOW + timedelta(minutes=11))
    for forged in (None, "", "not-a-state-we-issued"):
        with pytest.raises(OidcError):
            pending.finish(forged, NOW)


def test_states_nonces_and_verifiers_are_fresh_and_long():
    pending = PendingLogins()
    logins = [pending.start(redirect_uri="x", next="y", now=NOW) for _ in range(50)]
    values = [v for p in logins for v in (p.state, p.nonce, p.verifier)]
    assert len(set(values)) == len(values)
    assert all(len(p.verifier) >= 43 for p in logins)  # RFC 7636: 43..128 characters
