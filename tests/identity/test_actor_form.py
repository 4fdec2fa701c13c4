"""The current actor of a delegated token must be a workload identity we could verify."""

from __future__ import annotations

from typing import Any

import pytest

from pdp.identity.errors import BadSpiffeId, UntrustedIssuer
from pdp.identity.model import BearerToken


def test_a_spiffe_actor_of_a_trusted_domain_is_accepted(tk: Any) -> None:
    identity = tk.verifier().verify(
        BearerToken(tk.svid({"act": {"sub": "spiffe://other.org/gateway"}})), tk.now)
    assert identity.actor == "spiffe://other.org/gateway" and identity.chain_depth == 1


def test_an_opaque_actor_vouched_for_by_a_configured_issuer_is_accepted(tk: Any) -> None:
    token = tk.svid({"act": {"sub": "billing-app", "iss": tk.IDP}})
    identity = tk.verifier().verify(BearerToken(token), tk.now)
    assert (identity.actor, identity.actor_issuer) == ("billing-app", tk.IDP)


@pytest.mark.parametrize("act", [
    {"sub": "billing-app"},                                  # no act.iss
    {"sub": "billing-app", "iss": "https://nobody.example"},  # act.iss not configured
    {"sub": "spiffe://unknown.example/gateway"},             # trust domain not trusted
])
def test_an_actor_we_could_not_verify_is_refused(tk: Any, act: dict[str, str]) -> None:
    with pytest.raises(UntrustedIssuer) as refused:
        tk.verifier().verify(BearerToken(tk.svid({"act": act})), tk.now)
    assert refused.value.reason == "untrusted-actor"


def test_an_actor_naming_a_whole_trust_domain_is_refused(tk: Any) -> None:
    with pytest.raises(BadSpiffeId):
        tk.verifier().verify(BearerToken(tk.svid({"act": {"sub": "spiffe://example.org"}})),
                             tk.now)


def test_earlier_actors_are_recorded_whatever_their_form(tk: Any) -> None:
    act = {"sub": "spiffe://example.org/gateway", "act": {"sub": "user-7", "iss": "x"}}
    identity = tk.verifier().verify(BearerToken(tk.svid({"act": act})), tk.now)
    assert identity.actor_chain == ("user-7",)
