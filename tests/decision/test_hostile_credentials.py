"""Property: no credential, however mangled, makes the service raise or allow."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pdp.audit.memory import MemoryDecisionLog
from pdp.components import build_components
from pdp.config import load_settings
from pdp.decision.model import AuthorizeInput, ResourceRef
from pdp.identity.model import BearerToken, X509Chain
from tests.conftest import POLICIES, examples


@pytest.fixture(scope="module")
def parts(tmp_path_factory: pytest.TempPathFactory):
    state = tmp_path_factory.mktemp("state")
    components = build_components(load_settings(None, dev=True, policies=POLICIES,
                                                state_dir=Path(state)), log=MemoryDecisionLog())
    yield components
    components.close()


def _ask(parts, credential) -> None:
    decision = parts.service.authorize_sync(AuthorizeInput(
        credential=credential, action="read", resource=ResourceRef("App::Dataset", "sales-daily")))
    assert decision.decision == "deny"
    assert decision.reason_codes and decision.reason_codes[0].startswith("identity.")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


SETTINGS = settings(max_examples=examples(200), deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])


@SETTINGS
@given(st.binary(max_size=300))
def test_random_bytes_as_a_token_never_raise_and_never_allow(parts, raw: bytes) -> None:
    _ask(parts, BearerToken(raw.decode("utf-8", "surrogateescape")))


@SETTINGS
@given(st.text(max_size=300))
def test_random_text_as_an_x509_chain_never_raises_and_never_allows(parts, text: str) -> None:
    _ask(parts, X509Chain(text))


@SETTINGS
@given(data=st.data())
def test_mangled_valid_tokens_never_allow(parts, data) -> None:
    token = parts.dev_issuer.mint("spiffe://example.org/services/etl")
    header, payload, signature = token.split(".")
    mangle = data.draw(st.sampled_from(["flip", "swap", "header", "payload", "truncate", "sig"]))
    if mangle == "flip":
        i = data.draw(st.integers(0, len(token) - 1))
        ch = data.draw(st.sampled_from("AZaz09-_."))
        if token[i] == ch:
            ch = "B" if ch != "B" else "C"
        bad = token[:i] + ch + token[i + 1:]
    elif mangle == "swap":
        bad = ".".join([payload, header, signature])
    elif mangle == "header":
        bad = ".".join([_b64(data.draw(st.binary(max_size=80))), payload, signature])
    elif mangle == "payload":
        bad = ".".join([header, _b64(data.draw(st.binary(max_size=120))), signature])
    elif mangle == "truncate":
        bad = token[: data.draw(st.integers(0, len(token) - 1))]
    else:
        bad = ".".join([header, payload, _b64(data.draw(st.binary(max_size=80)))])
    _ask(parts, BearerToken(bad))
