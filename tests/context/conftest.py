"""Fixtures for live-context tests: a private redis-server, a clock tests can move."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from tests.conftest import MONDAY_10
from tests.context.redis_server import RedisServer, require_redis_server


class MovableClock:
    """A clock that stands still until a test moves it."""

    def __init__(self, at: datetime = MONDAY_10) -> None:
        self.at = at

    def now(self) -> datetime:
        return self.at

    def advance(self, seconds: float) -> datetime:
        self.at += timedelta(seconds=seconds)
        return self.at


@pytest.fixture
def clock() -> MovableClock:
    return MovableClock()


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(require_redis_server(), tmp_path / "redis").start()
    yield server
    server.kill()
