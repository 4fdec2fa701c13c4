"""Shared fixtures: repo paths, the example bundle, a frozen clock, real services."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import NoReturn

import httpx
import pytest
from hypothesis import HealthCheck, settings

REPO = Path(__file__).resolve().parents[1]
POLICIES = REPO / "policies"


def _shared_testdata() -> Path:
    """The project's shared test vectors (``../shared/testdata``), read in place, never
    copied: beside this checkout, or, for a clone made elsewhere (``git clone . $(mktemp
    -d)``), beside the checkout it was cloned from; ``PDP_SHARED_TESTDATA`` names them
    outright. Missing, the tests that read them fail on this path."""
    if named := os.environ.get("PDP_SHARED_TESTDATA"):
        return Path(named)
    beside = REPO.parent / "shared" / "testdata"
    origin = subprocess.run(["git", "-C", str(REPO), "config", "--get", "remote.origin.url"],
                            capture_output=True, text=True, check=False).stdout.strip()
    if not beside.is_dir() and origin and "://" not in origin and ":" not in origin:
        cloned_from = Path(origin).resolve().parent / "shared" / "testdata"
        if cloned_from.is_dir():
            return cloned_from
    return beside


SHARED_TESTDATA = _shared_testdata()
# A Monday morning: inside the default business hours.
MONDAY_10 = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)

# Hypothesis profiles. Hypothesis itself loads `default`, or `ci` (derandomized) when it
# sees a CI variable such as CI=true. HYPOTHESIS_PROFILE=fast (`make test-fast`) gives a
# quarter of the examples: to properties that keep hypothesis's count, and through
# ``examples()`` to those that ask for more. No profile checks time: the suite runs on two
# workers of a shared 2-core machine, where a per-example deadline or a "data generation is
# slow" health check fails on the machine's load, not on the code (speed is measured in
# bench/, never asserted in tests).
for _name in ("default", "ci"):
    settings.register_profile(_name, settings.get_profile(_name), deadline=None,
                              suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("fast", settings.get_profile("default"), max_examples=25)
if "HYPOTHESIS_PROFILE" in os.environ:
    settings.load_profile(os.environ["HYPOTHESIS_PROFILE"])


def examples(n: int) -> int:
    """``n`` hypothesis examples in `make test`, scaled like the active profile's own count:
    a quarter under `fast`. For properties that ask for more than hypothesis's 100,
    ``@settings(max_examples=examples(1500))``, so `make test-fast` stays a quick loop."""
    return max(10, n * settings.default.max_examples // 100)


def unavailable(message: str) -> NoReturn:
    """A real service or tool the test needs is missing: skip with ``message``, but fail
    under PDP_REQUIRE_SERVICES=1 (CI), where a skipped suite would pass unseen."""
    if os.environ.get("PDP_REQUIRE_SERVICES") == "1":
        pytest.fail(f"{message}; PDP_REQUIRE_SERVICES=1 requires it")
    pytest.skip(message)


def require_service(name: str, host: str, port: int) -> None:
    """Skip when a real service is missing, but fail under PDP_REQUIRE_SERVICES=1 (CI)."""
    try:
        with socket.create_connection((host, port), timeout=1):
            return
    except OSError as e:
        unavailable(f"{name} is not reachable on {host}:{port} ({e}); start it to run this test")


@pytest.fixture
def bundle_copy(tmp_path: Path) -> Callable[[], Path]:
    """A fresh, writable copy of the example bundle."""

    def make() -> Path:
        target = tmp_path / "policies"
        shutil.copytree(POLICIES, target)
        return target

    return make


@pytest.fixture(scope="session")
def example_bundle():
    from pdp.engine import load_bundle

    return load_bundle(POLICIES)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@asynccontextmanager
async def asgi_client(components) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client driving the real app around ``components`` (lifespan included)."""
    from pdp.server import create_app

    app = create_app(components, watch=False)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="http://pdp") as client:
            yield client


@pytest.fixture
async def client(components) -> AsyncIterator[httpx.AsyncClient]:
    """The app around the test package's own ``components`` fixture."""
    async with asgi_client(components) as c:
        yield c


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The slow-marked modules first, each module's tests kept together and in order.

    ``make test`` hands whole modules to two workers in collection order (``--dist
    loadfile``); a long module drawn last leaves one worker idle while the other runs it.
    Longest first is the usual remedy; "slow" is the marker the suite already has."""
    def slow(item: pytest.Item) -> bool:
        return item.get_closest_marker("slow") is not None

    slow_modules = {item.nodeid.split("::", 1)[0] for item in items if slow(item)}
    items.sort(key=lambda item: item.nodeid.split("::", 1)[0] not in slow_modules)
