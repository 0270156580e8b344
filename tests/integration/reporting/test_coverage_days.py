"""``map_days``: how a coverage report walks its days (several at once on PostgreSQL, in order, nothing leaked)."""

from __future__ import annotations

import threading
from datetime import date, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from worker.ledger import coverage_reads as coverage

DAYS = [date(2026, 3, 1) + timedelta(days=offset) for offset in range(12)]


def test_postgresql_days_run_at_once_on_their_own_connections_and_come_back_in_order(
    pg_ledger: Engine,
) -> None:
    # The first LEDGER_READERS days meet at a barrier: with fewer threads than that it would time out.
    barrier = threading.Barrier(coverage.LEDGER_READERS, timeout=30)
    connections: dict[date, int] = {}
    lock = threading.Lock()

    def work(conn: sa.Connection, day: date) -> date:
        with conn.begin():
            isolation = conn.exec_driver_sql("SHOW transaction_isolation").scalar_one()
        assert isolation == "repeatable read"
        if day in DAYS[: coverage.LEDGER_READERS]:
            barrier.wait()
        with lock:
            connections[day] = id(conn)
        return day

    assert list(coverage.map_days(pg_ledger, DAYS, work)) == DAYS
    assert len(set(connections.values())) == coverage.LEDGER_READERS
    assert pg_ledger.pool.checkedout() == 0  # type: ignore[attr-defined]  # QueuePool's counter


def test_a_failing_day_stops_the_report_and_returns_every_connection(pg_ledger: Engine) -> None:
    def work(conn: sa.Connection, day: date) -> date:
        if day == DAYS[3]:
            raise RuntimeError("day 4 is broken")
        return day

    seen: list[date] = []
    with pytest.raises(RuntimeError, match="day 4 is broken"):
        seen.extend(coverage.map_days(pg_ledger, DAYS, work))
    assert DAYS[3] not in seen
    assert pg_ledger.pool.checkedout() == 0  # type: ignore[attr-defined]  # QueuePool's counter


def test_sqlite_reads_one_day_at_a_time_on_one_connection(sqlite_ledger: Engine) -> None:
    threads: set[str] = set()
    connections: set[int] = set()

    def work(conn: sa.Connection, day: date) -> date:
        threads.add(threading.current_thread().name)
        connections.add(id(conn))
        return day

    assert list(coverage.map_days(sqlite_ledger, DAYS, work)) == DAYS
    assert threads == {threading.current_thread().name}
    assert len(connections) == 1
