"""pdp-client: ask the PDP — may this workload do this action on this resource, right now?

The flat public API (httpx is the only dependency)::

    PDPClient, AsyncPDPClient   sync and async HTTP clients (pooling, timeouts,
                                retries of connection errors, fail-closed denies)
    DecisionCache               bounded, honours valid_until and the context version
    Decision, Resource, Reason  wire types;  Item  a batch question
    PDPError, PDPUnreachable, PDPResponseError   raised only with on_failure="raise"
    TaskCredentials, AsyncTaskCredentials, TaskToken, ExchangeRefused
                                task credentials from the PDP's broker (RFC 8693),
                                ``client.exchange(...)`` for one exchange

Optional modules: ``pdp_client.fastapi`` (``PDP(...).require(...)``, extra
``fastapi``), ``pdp_client.middleware`` (ASGI, route table),
``pdp_client.embedded`` (in-process engine, extra ``embedded``),
``pdp_client.workload_api`` (this service's JWT-SVID from the SPIFFE Workload API as
``pep_token``, extra ``spiffe``).
"""

from importlib import metadata as _metadata

from pdp_client.cache import DecisionCache
from pdp_client.client import AsyncPDPClient, Item, PDPClient
from pdp_client.errors import (
    CredentialUnavailable,
    ExchangeRefused,
    PDPError,
    PDPResponseError,
    PDPUnreachable,
)
from pdp_client.models import (
    IDENTITY_MISSING,
    PDP_CREDENTIAL_UNAVAILABLE,
    PDP_ERROR,
    PDP_REJECTED,
    PDP_UNREACHABLE,
    Decision,
    Reason,
    Resource,
)
from pdp_client.routes import Route
from pdp_client.tasks import AsyncTaskCredentials, TaskCredentials, TaskToken

try:  # the one place the version is written is sdk/python/pyproject.toml
    __version__ = _metadata.version("pdp-client")
except _metadata.PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"

__all__ = [
    "AsyncPDPClient", "AsyncTaskCredentials", "CredentialUnavailable", "Decision",
    "DecisionCache", "ExchangeRefused", "IDENTITY_MISSING", "Item", "PDPClient",
    "PDPError", "PDPResponseError", "PDPUnreachable", "PDP_CREDENTIAL_UNAVAILABLE",
    "PDP_ERROR", "PDP_REJECTED", "PDP_UNREACHABLE", "Reason", "Resource", "Route",
    "TaskCredentials", "TaskToken",
]
