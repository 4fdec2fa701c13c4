"""An app wired from real parts (dev issuer, SQLite log) in a temporary state dir."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from pdp.components import Components, build_components
from pdp.config import load_settings


@pytest.fixture
def components(tmp_path: Path, bundle_copy) -> Iterator[Components]:
    settings = load_settings(None, dev=True, policies=bundle_copy(), state_dir=tmp_path / "state",
                             max_body_bytes=4096)
    parts = build_components(settings)
    yield parts
    parts.close()



@pytest.fixture
def mint(components: Components):
    assert components.dev_issuer is not None

    def make(spiffe_id: str = "spiffe://example.org/services/etl", **kw) -> str:
        return components.dev_issuer.mint(spiffe_id, **kw)

    return make
