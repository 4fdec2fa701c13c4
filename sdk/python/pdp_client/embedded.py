"""Embedded mode: the clients' interface, deciding in-process with the PDP engine.

For services that cannot afford a network hop. It runs the very same
``DecisionService`` as ``pdp serve`` (credential verification, live context,
Cedar, the decision log — written before the answer, as always), built from
the same configuration: the local policy bundle (reloaded when its files
change), the trust domains and issuers, and the shared live-context backend
and decision log the configuration names, so an incident flipped on the
central PDP reaches embedded deciders too.

Needs the ``embedded`` extra (the ``pdp`` server package).

## Example

    from pdp_client.embedded import EmbeddedPDP

    pdp = EmbeddedPDP(config="pdp.toml")          # or EmbeddedPDP(policies="policies", dev=True)
    d = pdp.authorize(token=svid, action="read", resource=("App::Dataset", "sales-daily"))
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from pdp_client.cache import DecisionCache
from pdp_client.client import ItemLike, item_of, subject_of
from pdp_client.models import Decision, Resource, ResourceLike

try:  # the optional extra
    from pdp.components import Components, build_components
    from pdp.config import load_settings
    from pdp.decision.model import AuthorizeInput, ResourceRef
    from pdp.identity.model import BearerToken, Credential, X509Chain
except ImportError as e:  # pragma: no cover - depends on the installation
    raise ImportError("embedded mode needs the PDP engine: install the `pdp` package "
                      "(pip install -e . at the PDP repository, or pdp-client[embedded])") from e


class _Embedded:
    def __init__(self, *, config: str | Path | None = None, components: Components | None = None,
                 cache: DecisionCache | None = None, watch: bool | None = None,
                 pep: str = "embedded", **settings: Any) -> None:
        if components is None:
            components = build_components(load_settings(
                Path(config) if config is not None else None, **settings))
            self._owned = True
        else:
            self._owned = False
        self.components, self.cache, self.pep = components, cache, pep
        watch = components.settings.watch_policies if watch is None else watch
        if watch and self._owned:
            components.bundles.start_watching()

    def _input(self, subject: dict[str, str], action: str, resource: Resource,
               context: Mapping[str, Any] | None, request_id: str | None) -> AuthorizeInput:
        credential: Credential = (BearerToken(subject["token"]) if "token" in subject
                                  else X509Chain(subject["x509"]))
        return AuthorizeInput(
            credential=credential, action=action,
            resource=ResourceRef(type=resource.type, id=resource.id, attrs=resource.attrs,
                                 parents=resource.parents),
            context=dict(context or {}), request_id=request_id, pep=self.pep)

    def _cached(self, key: str) -> Decision | None:
        """A cached decision, after reading the live-context version locally: in-process,
        an incident flip invalidates the cache before the very next lookup."""
        if self.cache is None:
            return None
        try:
            now = self.components.clock.now()
            self.cache.observe_version(self.components.live.snapshot(None, now).version)
        except Exception:  # noqa: BLE001 - cannot tell the version: do not trust the cache
            return None
        return self.cache.get(key)

    def _keep(self, key: str, decision: Decision) -> Decision:
        if self.cache is not None:
            self.cache.put(key, decision)
        return decision

    def close(self) -> None:
        if self._owned:
            self.components.close()


class EmbeddedPDP(_Embedded):
    """Blocking, in-process: the same ``authorize``/``authorize_batch`` as ``PDPClient``.

    Args:
        config: a ``pdp.toml`` (same keys and ``PDP_*`` overrides as ``pdp serve``).
        components: already-wired parts (tests), instead of ``config``.
        cache: an optional ``DecisionCache``.
        **settings: overrides, e.g. ``policies="policies"``, ``dev=True``.
    """

    def authorize(self, *, token: str | None = None, x509: str | None = None, action: str,
                  resource: ResourceLike, context: Mapping[str, Any] | None = None,
                  request_id: str | None = None) -> Decision:
        subject = subject_of(token, x509)
        target = Resource.of(resource)
        key = DecisionCache.key(subject, action, target, context)
        cached = self._cached(key)
        if cached is not None:
            return cached
        decided = self.components.service.authorize_sync(
            self._input(subject, action, target, context, request_id))
        return self._keep(key, Decision.from_json(decided.as_dict()))

    def authorize_batch(self, *, token: str | None = None, x509: str | None = None,
                        items: Iterable[ItemLike], request_id: str | None = None) -> list[Decision]:
        return [self.authorize(token=token, x509=x509, action=i.action, resource=i.resource,
                               context=i.context, request_id=request_id)
                for i in map(item_of, items)]

    def __enter__(self) -> EmbeddedPDP:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncEmbeddedPDP(_Embedded):
    """The same for asyncio: ``await pdp.authorize(...)``; batches share one group commit."""

    async def authorize(self, *, token: str | None = None, x509: str | None = None,
                        action: str, resource: ResourceLike,
                        context: Mapping[str, Any] | None = None,
                        request_id: str | None = None) -> Decision:
        return (await self.authorize_batch(token=token, x509=x509,
                                           items=[(action, resource, context or {})],
                                           request_id=request_id))[0]

    async def authorize_batch(self, *, token: str | None = None, x509: str | None = None,
                              items: Iterable[ItemLike],
                              request_id: str | None = None) -> list[Decision]:
        subject = subject_of(token, x509)
        planned = [(i, Resource.of(i.resource)) for i in map(item_of, items)]
        keys = [DecisionCache.key(subject, i.action, r, i.context) for i, r in planned]
        results: list[Decision | None] = [self._cached(k) for k in keys]
        missing = [n for n, d in enumerate(results) if d is None]
        if missing:
            decided = await self.components.service.authorize_batch([
                self._input(subject, planned[n][0].action, planned[n][1], planned[n][0].context,
                            request_id) for n in missing])
            for n, d in zip(missing, decided):
                results[n] = self._keep(keys[n], Decision.from_json(d.as_dict()))
        return [d for d in results if d is not None]

    async def aclose(self) -> None:
        self.close()

    async def __aenter__(self) -> AsyncEmbeddedPDP:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()


__all__ = ["AsyncEmbeddedPDP", "EmbeddedPDP"]
