"""Fixtures of the HIS adapter tests: one fresh HIS database per test, on SQLite, PostgreSQL and MariaDB."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.his.databases import DIALECTS, mariadb_database, postgresql_schema


@pytest.fixture(params=DIALECTS)
def his_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty HIS database of each supported kind."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'his.sqlite3'}"
    elif request.param == "postgresql":
        with postgresql_schema(request.getfixturevalue("pg_url")) as url:
            yield url
    else:
        with mariadb_database(request.getfixturevalue("mariadb_url")) as url:
            yield url
