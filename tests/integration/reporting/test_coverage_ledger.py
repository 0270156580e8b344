"""``coverage.compute`` against a ledger written row by row, on SQLite and on PostgreSQL.

The ledger side reads a day as counts and joined MA_LKs, and only the encounters that are not accepted, or
that the HIS no longer lists, row by row. These tests pin every bucket, gap, reason and the accepted-late
count of a few days that hold each case: accepted on time and late, quarantined with issues, rejected,
pending with and without an error, listed but never registered (missing), registered but no longer listed
(hidden, accepted or not), hidden in the ledger but listed again, the local-day boundaries, the send target
to the millisecond, more unlisted encounters than one detail query takes, and a state coverage does not know.
The migration that adds the covering index is checked against ``schema.py``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import Engine

from schemas.domain import derive_ma_lk
from schemas.domain.values import VIETNAM_TZ
from schemas.ports import EncounterRef
from worker.config import DeadlineSettings
from worker.ledger import migrate
from worker.ledger.coverage_reads import LedgerStateError
from worker.ledger.schema import encounters, metadata, versions
from worker.reporting.coverage import COLUMNS, CoverageReport, GroupBy, compute
from worker.reporting.deadlines import DeadlineCalendar

FACILITY = "79999"
FIRST_SEEN = datetime(2026, 3, 12, tzinfo=UTC)
NOW = datetime(2026, 3, 12, 12, 0, tzinfo=VIETNAM_TZ)
COVERING_INDEX = "ix_encounters_completed_at_ma_lk_state_accepted_at"


def local(day: date, hour: int = 0, minute: int = 0, second: int = 0, microsecond: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, second, microsecond, tzinfo=VIETNAM_TZ)


@pytest.fixture(params=["sqlite", "postgresql"])
def ledger(request: pytest.FixtureRequest) -> Engine:
    engine: Engine = request.getfixturevalue("sqlite_ledger" if request.param == "sqlite" else "pg_ledger")
    return engine


@dataclass
class ListedHis:
    """The HIS side: the completed encounters it lists (a fake of ``EncounterSource.list_completed``)."""

    refs: list[EncounterRef] = field(default_factory=list)

    def list(self, his_key: str, completed_at: datetime, department: str) -> None:
        self.refs.append(EncounterRef(his_key=his_key, completed_at=completed_at, changed_at=completed_at,
                                      visit_type="01", department=department, insured=True))  # fmt: skip

    def list_completed(self, start: datetime, end: datetime) -> Iterator[EncounterRef]:
        listed = [ref for ref in self.refs if start <= ref.completed_at < end]
        return iter(sorted(listed, key=lambda ref: (ref.completed_at, ref.his_key)))


def register(
    conn: sa.Connection,
    his_key: str,
    completed_at: datetime,
    state: str,
    *,
    department: str,
    accepted_after: timedelta | None = None,
    error: str | None = None,
    issues: dict[str, Any] | None = None,
    version: bool = True,
) -> None:
    """One encounter as the pipeline leaves it: the encounter row and its current version."""
    ma_lk = derive_ma_lk(FACILITY, his_key)
    completed_at = completed_at.astimezone(
        UTC
    )  # SQLite keeps the wall time it is given: UTC, as the pipeline
    accepted_at = completed_at + accepted_after if accepted_after is not None else None
    conn.execute(sa.insert(encounters).values(
        ma_lk=ma_lk, his_key=his_key, completed_at=completed_at, his_changed_at=completed_at,
        visit_type="01", department=department, insured=True, state=state, accepted_at=accepted_at,
        first_seen_at=FIRST_SEEN,
    ))  # fmt: skip
    if not version:
        return
    version_id = conn.execute(
        sa.insert(versions).values(ma_lk=ma_lk, state=state, last_error_code=error, issues=issues,
                                   created_at=FIRST_SEEN, updated_at=FIRST_SEEN, accepted_at=accepted_at)
        .returning(versions.c.id)
    ).scalar_one()  # fmt: skip
    conn.execute(
        sa.update(encounters).where(encounters.c.ma_lk == ma_lk).values(current_version_id=version_id)
    )


def report_of(ledger: Engine, his: ListedHis, start: date, end: date, *, group_by: GroupBy = GroupBy.DAY,
              target_hours: float = 3.0) -> CoverageReport:  # fmt: skip
    return compute(his, ledger, facility_code=FACILITY, start=start, end=end, group_by=group_by,  # type: ignore[arg-type]  # list_completed only
                   calendar=DeadlineCalendar(DeadlineSettings(target_hours=target_hours)), now=NOW)  # fmt: skip


def table(buckets: dict[str, Any]) -> dict[str, dict[str, int]]:
    return {
        key: {column: counts[column] for column in COLUMNS if counts[column]}
        for key, counts in buckets.items()
    }


FEB_2, MAR_10, MAR_11 = date(2026, 2, 2), date(2026, 3, 10), date(2026, 3, 11)
CCCD_AND_DISCHARGE = {"errors": [{"rule": "XML1.SO_CCCD.format", "table": "XML1", "field": "SO_CCCD"},
                                 {"rule": "XML1.NGAY_RA.order", "table": "XML1", "field": "NGAY_RA"}]}  # fmt: skip


@pytest.fixture
def three_days(ledger: Engine) -> ListedHis:
    """A quarantined visit in February, every case on 10/03, two visits just after midnight on 11/03.

    The HIS lists each visit under the department shown; visit A is registered under a stale department."""
    his = ListedHis()
    with ledger.begin() as conn:
        on = {"department": "K01"}
        icd = {"errors": [{"rule": "XML1.MA_BENH_CHINH.format", "table": "XML1", "field": "MA_BENH_CHINH"}]}
        register(conn, "Z", local(FEB_2, 9), "quarantined", issues=icd, **on)
        his.list("Z", local(FEB_2, 9), "K01")
        register(conn, "A", local(MAR_10, 9), "accepted", accepted_after=timedelta(hours=1), department="K99")
        his.list("A", local(MAR_10, 9), "K01")
        register(conn, "B", local(MAR_10, 9, 10), "accepted", accepted_after=timedelta(hours=5), **on)
        his.list("B", local(MAR_10, 9, 10), "K01")
        register(conn, "C", local(MAR_10, 9, 20), "quarantined", issues=CCCD_AND_DISCHARGE, **on)
        his.list("C", local(MAR_10, 9, 20), "K01")
        on = {"department": "K02"}
        register(conn, "D", local(MAR_10, 9, 30), "rejected", error="gateway:422", **on)
        his.list("D", local(MAR_10, 9, 30), "K02")
        register(conn, "E", local(MAR_10, 9, 40), "discovered", version=False, **on)
        his.list("E", local(MAR_10, 9, 40), "K02")
        his.list("F", local(MAR_10, 9, 50), "K02")  # never registered: missing
        # Registered, no longer listed by the HIS: hidden, whether accepted or not.
        register(
            conn, "G", local(MAR_10, 10), "accepted", accepted_after=timedelta(hours=1), department="K03"
        )
        register(conn, "H", local(MAR_10, 10, 10), "dead", error="transient:timeout", department="K01")
        # Hidden in the ledger, listed again by the HIS (not rediscovered yet): counted hidden, and completed.
        register(conn, "I", local(MAR_10, 10, 20), "hidden", **on)
        his.list("I", local(MAR_10, 10, 20), "K02")
        # The last microsecond of 10/03, accepted exactly at the 3 h target: on time.
        last = local(MAR_10, 23, 59, 59, 999_999)
        register(conn, "J", last, "accepted", accepted_after=timedelta(hours=3), **on)
        his.list("J", last, "K02")
        # Midnight opens 11/03; accepted a millisecond after the target: late.
        register(
            conn, "K", local(MAR_11), "accepted", accepted_after=timedelta(hours=3, milliseconds=1), **on
        )
        his.list("K", local(MAR_11), "K02")
        register(conn, "L", local(MAR_11, 0, 5), "submitted", error="transient:500", **on)
        his.list("L", local(MAR_11, 0, 5), "K02")
    return his


def test_every_case_of_a_day_by_day(ledger: Engine, three_days: ListedHis) -> None:
    report = report_of(ledger, three_days, FEB_2, date(2026, 3, 13))
    assert table(report.buckets) == {
        "2026-02-02": {"completed": 1, "quarantined": 1},
        "2026-03-10": {"completed": 8, "accepted": 3, "quarantined": 1, "rejected": 1, "pending": 1, "missing": 1,
                       "hidden": 3},
        "2026-03-11": {"completed": 2, "accepted": 1, "pending": 1},
    }  # fmt: skip
    assert {day: counts for day, counts in table(report.daily).items() if counts} == table(report.buckets)
    assert set(report.daily) == {(FEB_2 + timedelta(days=n)).isoformat() for n in range(39)}
    assert report.accepted_late == 2  # B (5 h) and K (3 h + 1 ms); J at exactly 3 h is on time
    gaps = [
        (gap.his_key, gap.state, gap.reason, gap.target_breached, gap.claim_breached) for gap in report.gaps
    ]
    assert gaps == [
        ("Z", "quarantined", "validation: XML1.MA_BENH_CHINH.format", True, True),
        ("C", "quarantined", "validation: XML1.NGAY_RA.order, XML1.SO_CCCD.format", True, False),
        ("D", "rejected", "gateway:422", True, False),
        ("E", "discovered", "waiting to be built", True, False),
        ("F", "missing", "never discovered", True, False),
        ("G", "hidden", "no longer completed in the HIS", False, False),
        ("H", "hidden", "no longer completed in the HIS", False, False),
        ("I", "hidden", "no longer completed in the HIS", True, False),
        ("L", "submitted", "transient:500", True, False),
    ]
    assert [gap.ma_lk for gap in report.gaps] == [derive_ma_lk(FACILITY, key) for key, *_ in gaps]
    # A listed gap carries the HIS's completion time; a hidden one the time the ledger registered.
    by_key = {gap.his_key: gap for gap in report.gaps}
    assert by_key["C"].completed_at == local(MAR_10, 9, 20)
    assert by_key["H"].completed_at == local(MAR_10, 10, 10)
    assert by_key["H"].age_hours == pytest.approx((NOW - local(MAR_10, 10, 10)).total_seconds() / 3600)


def test_listed_visits_count_under_the_his_bucket_hidden_ones_under_the_ledger_bucket(
    ledger: Engine, three_days: ListedHis
) -> None:
    report = report_of(ledger, three_days, FEB_2, date(2026, 3, 13), group_by=GroupBy.DEPARTMENT)
    assert table(report.buckets) == {
        "K01": {"completed": 4, "accepted": 2, "quarantined": 2, "hidden": 1},
        "K02": {"completed": 7, "accepted": 2, "rejected": 1, "pending": 2, "missing": 1, "hidden": 1},
        "K03": {"hidden": 1},
    }
    assert report.totals == sum(report.daily.values(), Counter())
    assert report.accepted_late == 2
    assert len(report.gaps) == 9


@pytest.mark.parametrize("target_hours", [2.5, 1.7])
def test_accepted_late_is_strictly_after_a_target_that_is_no_round_fraction_of_a_day(
    ledger: Engine, target_hours: float
) -> None:
    target = timedelta(hours=target_hours)
    his = ListedHis()
    delays = {"on-time": target, "late": target + timedelta(milliseconds=1), "early": target / 2}
    with ledger.begin() as conn:
        for minute, (his_key, delay) in enumerate(delays.items()):
            completed = local(MAR_10, 8, minute, 7, 123_000)
            register(conn, his_key, completed, "accepted", accepted_after=delay, department="K01")
            his.list(his_key, completed, "K01")
    report = report_of(ledger, his, MAR_10, MAR_11, target_hours=target_hours)
    assert table(report.buckets) == {"2026-03-10": {"completed": 3, "accepted": 3}}
    assert report.accepted_late == 1


def test_more_unlisted_visits_than_one_detail_query_takes(ledger: Engine) -> None:
    his = ListedHis()
    with ledger.begin() as conn:
        for number in range(1_203):
            completed = local(MAR_10, 8) + timedelta(seconds=number)
            if number % 3:
                register(conn, f"V{number:05d}", completed, "accepted", accepted_after=timedelta(hours=1),
                         department="K01")  # fmt: skip
            else:
                register(conn, f"V{number:05d}", completed, "rejected", error="gateway:422", department="K01")
            if number % 100 == 0:
                his.list(f"V{number:05d}", completed, "K01")
    report = report_of(ledger, his, MAR_10, MAR_11)
    listed = 13  # V00000, V00100, … V01200: every third one rejected
    rejected_listed = sum(1 for number in range(0, 1_203, 100) if number % 3 == 0)
    assert table(report.buckets) == {
        "2026-03-10": {"completed": listed, "accepted": listed - rejected_listed, "rejected": rejected_listed,
                       "hidden": 1_203 - listed}
    }  # fmt: skip
    hidden = [gap for gap in report.gaps if gap.state == "hidden"]
    assert len(hidden) == len({gap.ma_lk for gap in hidden}) == 1_203 - listed
    assert [gap.completed_at for gap in report.gaps] == sorted(gap.completed_at for gap in report.gaps)


def test_a_state_coverage_does_not_know_stops_the_report(ledger: Engine) -> None:
    """Counted but neither accepted nor read with the other states: reporting it missing would be a lie."""
    his = ListedHis()
    with ledger.begin() as conn:
        register(conn, "A", local(MAR_10, 9), "accepted", accepted_after=timedelta(hours=1), department="K01")
        register(conn, "B", local(MAR_10, 10), "archived", department="K01")
    his.list("A", local(MAR_10, 9), "K01")
    his.list("B", local(MAR_10, 10), "K01")
    with pytest.raises(LedgerStateError, match="2 encounter"):
        report_of(ledger, his, MAR_10, MAR_11)


def test_migrations_build_exactly_the_schema_module(ledger: Engine) -> None:
    with ledger.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), metadata) == []
        indexes = {
            index["name"]: index["column_names"] for index in sa.inspect(conn).get_indexes("encounters")
        }
    assert indexes[COVERING_INDEX] == ["completed_at", "ma_lk", "state", "accepted_at"]
    assert "ix_encounters_completed_at" not in indexes


def test_revision_0002_downgrades_to_the_plain_completed_at_index(sqlite_ledger: Engine) -> None:
    config = migrate.alembic_config(sqlite_ledger.url.render_as_string(hide_password=False))
    with sqlite_ledger.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "0001")
    names = {index["name"] for index in sa.inspect(sqlite_ledger).get_indexes("encounters")}
    assert "ix_encounters_completed_at" in names
    assert COVERING_INDEX not in names
    migrate.upgrade(sqlite_ledger)
    assert migrate.is_up_to_date(sqlite_ledger)


def test_sqlite_reads_the_day_summary_from_the_covering_index_alone(sqlite_ledger: Engine) -> None:
    statements: list[tuple[str, Any]] = []

    def capture(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if "group_concat" in statement and "json_each" not in statement:  # the day summary, not the gap rows
            statements.append((statement, parameters))

    sa.event.listen(sqlite_ledger, "before_cursor_execute", capture)
    try:
        report_of(sqlite_ledger, ListedHis(), MAR_10, MAR_11)
    finally:
        sa.event.remove(sqlite_ledger, "before_cursor_execute", capture)
    [(statement, parameters)] = statements
    with sqlite_ledger.connect() as conn:
        plan = " ".join(
            str(row[-1]) for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters)
        )
    assert f"USING COVERING INDEX {COVERING_INDEX}" in plan, plan
