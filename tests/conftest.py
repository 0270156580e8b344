"""Shared fixtures: real PostgreSQL / MariaDB / Redis (fresh database per session), factories, paths."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.services import MARIADB_ADMIN_URL, PG_ADMIN_URL, REDIS_URL, scratch_database, unavailable

pytest_plugins = ["tests.ledger_fixtures"]

REPO_ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO_ROOT / "test-artifacts"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark tests by folder so `-m unit` / `-m integration` / `-m e2e` select them."""
    for item in items:
        parts = Path(str(item.fspath)).parts
        for marker in ("unit", "integration", "e2e"):
            if marker in parts:
                item.add_marker(getattr(pytest.mark, marker))


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """URL of a fresh PostgreSQL database for this test session (dropped at the end)."""
    with scratch_database(PG_ADMIN_URL, "PostgreSQL") as url:
        yield url


@pytest.fixture(scope="session")
def mariadb_url() -> Iterator[str]:
    """URL of a fresh MariaDB database for this test session (dropped at the end)."""
    with scratch_database(MARIADB_ADMIN_URL, "MariaDB") as url:
        yield url


@pytest.fixture(scope="session")
def redis_url() -> str:
    """A Redis database index of its own for this test session (flushed before use)."""
    import redis

    db = 9
    url = f"{REDIS_URL}/{db}"
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=2)
        client.flushdb()
    except redis.exceptions.ConnectionError as exc:
        unavailable("Redis", str(exc))
    return url


@pytest.fixture
def rng() -> random.Random:
    return random.Random(20260101)


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


@pytest.fixture
def fresh_pg_url() -> Iterator[str]:
    """A PostgreSQL database of this test's own (for stacks whose workers keep their own connections)."""
    with scratch_database(PG_ADMIN_URL, "PostgreSQL") as url:
        yield url


@pytest.fixture
def fresh_redis_url(redis_url: str) -> str:
    """The session's Redis database, emptied for this test: no message of an earlier test may be consumed."""
    import redis

    redis.Redis.from_url(redis_url).flushdb()
    return redis_url
