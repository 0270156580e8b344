"""``ledger``: each test of this folder that asks for it runs on a migrated SQLite ledger and on the session's
PostgreSQL ledger (emptied first); a module defining its own ``ledger`` keeps its own."""

from __future__ import annotations

import pytest
from sqlalchemy.engine import Engine


@pytest.fixture(params=["sqlite_ledger", "pg_ledger"])
def ledger(request: pytest.FixtureRequest) -> Engine:
    engine: Engine = request.getfixturevalue(request.param)
    return engine
