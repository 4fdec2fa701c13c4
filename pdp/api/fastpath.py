"""Decision requests answered before FastAPI's routing: the hot doors, without its overhead.

FastAPI's routing and dependency resolution cost about as much per request as
uvicorn itself. :class:`FastPath` (ASGI middleware, inside the body and header
limits) sends ``POST /v1/authorize`` straight to :func:`pdp.api.authorize.answer_authorize`
and AuthZEN's ``POST /access/v1/evaluation`` to :func:`pdp.api.authzen.answer_evaluation`
— the same functions the FastAPI routes call, so the two cannot answer differently:
every outcome, a refused PEP or a malformed body included, is that function's
response. The route stays for the OpenAPI document and for an app built without
this middleware.

The only FastAPI parts it replaces are the two dependencies each route declares:
the components (``app.state.components``, as :func:`pdp.api.deps.get_components`
reads them) and the PEP's bearer credential, which the shared function reads itself
from the :class:`pdp.api.door.DoorRequest` both ways build (as ``HTTPBearer`` does).
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from pdp.api.authorize import AUTHORIZE_PATH, answer_authorize
from pdp.api.authzen import EVALUATION_PATH, answer_evaluation
from pdp.api.door import Answer, DoorRequest

POST_PATHS: dict[str, Answer] = {AUTHORIZE_PATH: answer_authorize,
                                 EVALUATION_PATH: answer_evaluation}


class FastPath:
    """ASGI middleware: ``POST`` to a path of :data:`POST_PATHS` is answered by its
    shared function; everything else goes on to the app."""

    def __init__(self, app: ASGIApp, paths: dict[str, Answer] | None = None) -> None:
        self.app = app
        self.paths = POST_PATHS if paths is None else paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        answer = (self.paths.get(scope["path"])
                  if scope["type"] == "http" and scope["method"] == "POST" else None)
        if answer is None:
            await self.app(scope, receive, send)
            return
        response = await answer(DoorRequest(scope, receive), scope["app"].state.components)
        await response(scope, receive, send)


__all__ = ["POST_PATHS", "Answer", "FastPath"]
