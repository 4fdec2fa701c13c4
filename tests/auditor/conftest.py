"""An app wired from real parts (dev issuer, SQLite log, bundle archive) for the auditor tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from pdp.components import Components, build_components
from pdp.config import load_settings

AUDITOR = "spiffe://example.org/audit/auditor"
ETL = "spiffe://example.org/services/etl"


@pytest.fixture
def settings_for(tmp_path: Path, bundle_copy) -> Callable[..., Any]:
    def make(**overrides: Any) -> Any:
        return load_settings(None, dev=True, policies=bundle_copy(),
                             state_dir=tmp_path / "state", **overrides)

    return make


@pytest.fixture
def components(settings_for) -> Iterator[Components]:
    parts = build_components(settings_for())
    yield parts
    parts.close()



@pytest.fixture
def mint(components: Components) -> Callable[..., str]:
    assert components.dev_issuer is not None

    def make(spiffe_id: str = ETL, **kw: Any) -> str:
        return components.dev_issuer.mint(spiffe_id, **kw)

    return make


@pytest.fixture
def auditor(mint) -> dict[str, str]:
    """The bearer header of a member of the auditors group (policies/admin.cedar)."""
    return {"authorization": f"Bearer {mint(AUDITOR)}"}

