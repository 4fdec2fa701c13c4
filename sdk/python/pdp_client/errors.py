"""Exceptions, raised only when a client is built with ``on_failure="raise"``.

By default the SDK never raises for a PDP that cannot answer: it fails closed
with a deny ``Decision`` carrying the same reason code. The hierarchy::

    PDPError                    the PDP did not give a decision
    ├── PDPUnreachable          pdp.unreachable: connect/read failed or timed out
    ├── PDPResponseError        pdp.error (5xx, not a decision) or pdp.rejected (4xx)
    │   └── ExchangeRefused     the broker refused a token exchange (always raised)
    └── CredentialUnavailable   pdp.credential_unavailable: this service's own credential
                                (``pep_token``) could not be had, e.g. no Workload API
"""

from __future__ import annotations

from pdp_client.models import (
    PDP_CREDENTIAL_UNAVAILABLE,
    PDP_ERROR,
    PDP_REJECTED,
    PDP_UNREACHABLE,
)


class PDPError(Exception):
    """The PDP did not give a decision; ``code`` is the fail-closed reason code."""

    code = PDP_ERROR

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class PDPUnreachable(PDPError):
    """No answer from the PDP (after retrying connection errors)."""

    code = PDP_UNREACHABLE


class PDPResponseError(PDPError):
    """The PDP answered, but not with a decision (``status`` is the HTTP status)."""

    def __init__(self, message: str, *, status: int | None) -> None:
        super().__init__(message)
        self.status = status
        self.code = PDP_REJECTED if status is not None and 400 <= status < 500 else PDP_ERROR


class CredentialUnavailable(PDPError):
    """The token source given as ``pep_token`` has no credential (the request was not sent)."""

    code = PDP_CREDENTIAL_UNAVAILABLE


__all__ = [
    "CredentialUnavailable", "ExchangeRefused", "PDPError", "PDPResponseError", "PDPUnreachable",
]


class ExchangeRefused(PDPResponseError):
    """The broker refused a token exchange (RFC 6749 ``error``): raised whatever
    ``on_failure`` says, since there is no credential to fail closed with.

    ``description`` is the PDP's sentence; ``decision_id`` finds the refusal in the
    decision log; ``reason_codes`` say which rule refused (``broker.scope_widened``...).
    """

    def __init__(self, *, error: str, description: str, decision_id: str | None,
                 reason_codes: tuple[str, ...], status: int) -> None:
        super().__init__(f"{error}: {description}", status=status)
        self.error, self.description = error, description
        self.decision_id, self.reason_codes = decision_id, reason_codes
