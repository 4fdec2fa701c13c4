"""The naive peer (issue 16): the authorization service a team writes in an afternoon.

FastAPI, pyjwt and cedarpy: verify the JWT-SVID (ES256, the dev issuer's key, a cache of
verified tokens), evaluate the bundle's Cedar policies and ``entities.json`` with the
request's principal, action and resource, answer ``{"decision": ...}``. It keeps no log,
reads no live context, explains nothing and checks no PEP: the work ours does and it
does not is what the comparison in :mod:`bench.cerbos_peer` prices.

    PEER_POLICIES=policies PEER_KEY=.pdp/dev/issuer-key.pem uvicorn bench.peers.naive_app:app
"""

import json
import os
import time
from pathlib import Path

import cedarpy
import jwt
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from fastapi import FastAPI, HTTPException
from pydantic import BaseModel

POLICIES = Path(os.environ["PEER_POLICIES"])
# Parsed once, as cedarpy's docstring advises (a handle, not the text, on every call).
POLICY_SET = cedarpy.PolicySet.from_str(
    "\n".join(p.read_text() for p in sorted(POLICIES.glob("*.cedar"))))
ENTITIES = cedarpy.Entities.from_json_str(json.dumps(
    [{"attrs": {}, **e} for e in json.loads((POLICIES / "entities.json").read_text())]))
KEY = load_pem_private_key(Path(os.environ["PEER_KEY"]).read_bytes(), None).public_key()
TOKENS: dict[str, dict[str, object]] = {}  # verified token -> claims, until it expires

app = FastAPI()


class Ref(BaseModel):
    type: str
    id: str


class Subject(BaseModel):
    token: str


class Question(BaseModel):
    subject: Subject
    action: str
    resource: Ref


def claims_of(token: str) -> dict[str, object]:
    claims = TOKENS.get(token)
    if claims is None or int(claims["exp"]) <= time.time():  # type: ignore[call-overload]
        try:
            claims = jwt.decode(token, KEY, algorithms=["ES256"], audience="pdp")
        except jwt.InvalidTokenError as e:
            raise HTTPException(401, str(e)) from e
        TOKENS[token] = claims
    return claims


@app.post("/v1/authorize")
async def authorize(q: Question) -> dict[str, str]:
    principal = f'Pdp::Workload::"{claims_of(q.subject.token)["sub"]}"'
    result = cedarpy.is_authorized(
        {"principal": principal, "action": f'App::Action::"{q.action}"',
         "resource": f'{q.resource.type}::"{q.resource.id}"', "context": {}},
        POLICY_SET, ENTITIES)
    return {"decision": "allow" if result.allowed else "deny"}
