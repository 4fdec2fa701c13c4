"""The credential broker: task-scoped, short-lived credentials issued only after a
policy decision (RFC 8693 token exchange). docs/agents.md is the guide.

- :mod:`pdp.broker.issuance`: the rules no policy can loosen (never wider, never longer);
- :mod:`pdp.broker.exchange`: one exchange, from verification to the signed token;
- :mod:`pdp.broker.minting`: the issued RFC 9068 access token;
- :mod:`pdp.broker.keys`: the ES256 signing key, rotation with an overlap, the JWKS;
- :mod:`pdp.broker.tasks`: tasks and their credentials, in the durable admin state;
- :mod:`pdp.broker.trust`: the PDP trusting its own broker as an issuer.

The HTTP side is ``pdp.api.broker``.
"""

from __future__ import annotations

from context.clock import Clock
from context.durable import DurableState
from context.revocations import RevocationStore
from pdp.broker.exchange import Broker, Issued, Refused
from pdp.broker.issuance import BrokerRules
from pdp.broker.keys import BrokerKey, BrokerKeyring
from pdp.broker.tasks import TaskRegistry
from pdp.broker.trust import broker_audiences
from pdp.config import Settings
from pdp.decision.service import DecisionService


def build_broker(settings: Settings, keyring: BrokerKeyring, *, service: DecisionService,
                 durable: DurableState, revocations: RevocationStore, clock: Clock) -> Broker:
    """The broker of ``settings`` around already-built parts (``pdp.components``)."""
    config = settings.broker
    rules = BrokerRules(issuer=config.issuer, audiences=broker_audiences(settings),
                        max_lifetime_s=config.max_lifetime_s,
                        max_lifetime_by_issuer=dict(config.max_lifetime_by_issuer),
                        max_delegation_depth=config.max_delegation_depth)
    tasks = TaskRegistry(durable, revocations, issuer=config.issuer,
                         leeway_s=settings.leeway_s)
    return Broker(rules=rules, keyring=keyring, tasks=tasks, service=service, clock=clock)


__all__ = ["Broker", "BrokerKey", "BrokerKeyring", "BrokerRules", "Issued", "Refused",
           "TaskRegistry", "build_broker"]
