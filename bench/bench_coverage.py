"""Coverage query time over a large ledger on PostgreSQL, with the plan of the main query.

Run: ``.venv/bin/python -m bench.bench_coverage [--rows 200000] [--repeats 3]``; prints JSON on stdout.

A scratch ledger (``migrate.upgrade``: the real tables and indexes) is filled with COPY: ``--rows`` encounters
completed over 181 days (01/01–30/06/2026), inserted in completion order as discovery does, in a realistic mix of states (92 % accepted, quarantined with issues,
rejected, dead, hidden, pending), one current version each plus a superseded older version for 5 % of them;
then VACUUM ANALYZE, as autovacuum would leave a long-lived table.

Timed (medians over repeats, wall and this process's CPU):
- ``ledger_per_day``: the ledger side of ``worker.reporting.coverage.compute`` — ``_ledger_rows`` for each day
  of the range, one connection per day, exactly as ``compute`` calls it (the HIS side, ``list_completed``,
  is the HIS's cost and is not included);
- ``aggregate_by_state``: ``SELECT state, count(*) … GROUP BY state`` over the whole range;
- ``aggregate_by_day_and_state``: the same per local day (what a daily coverage table needs from the ledger).
``explain`` holds ``EXPLAIN (ANALYZE, BUFFERS)`` of one day's ``_ledger_rows`` query (captured as executed)
and of the aggregate, with the indexes they use.
"""

from __future__ import annotations

import argparse
import re
import statistics
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from bench.common import FACILITY, emit, machine_description, measured, progress, scratch_database
from worker.domain import derive_ma_lk
from worker.ledger import migrate
from worker.ledger.db import create_ledger_engine
from worker.reporting import coverage

START = date(2026, 1, 1)
DAYS = 181
LOCAL_OFFSET = timedelta(hours=7)  # Asia/Ho_Chi_Minh has no daylight saving
CLAIM_RULES = '{"errors": [{"rule": "XML1.MA_THE_BHYT.format", "table": "XML1", "field": "MA_THE_BHYT"}]}'
ENCOUNTER_COLUMNS = (
    "ma_lk, his_key, completed_at, his_changed_at, visit_type, department, insured, state, "
    "current_version_id, accepted_at, first_seen_at, hidden_at"
)
VERSION_COLUMNS = (
    "id, ma_lk, content_hash, state, attempts, last_error_code, issues, tables, signed_sha256, "
    "ma_ket_qua, ma_giao_dich, his_changed_at, created_at, updated_at, accepted_at"
)
NULL = "\\N"


def _state(number: int) -> str:
    bucket = (number * 7919) % 1000
    if bucket < 920:
        return "accepted"
    if bucket < 950:
        return "quarantined"
    if bucket < 965:
        return "rejected"
    if bucket < 975:
        return "dead"
    if bucket < 978:
        return "hidden"
    return ("submitted", "signed", "built", "discovered")[bucket % 4]


def _ts(value: datetime) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S+00")


def _rows(count: int, first_seen: datetime) -> Iterator[tuple[str, str]]:
    """(encounter line, version lines) in COPY text format."""
    extra_id = count
    for number in range(count):
        # Chronological, as discovery inserts them: the table's physical order follows completed_at.
        day = START + timedelta(days=number * DAYS // count)
        minutes = 7 * 60 + (number * 37) % (11 * 60)
        completed = (
            datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(minutes=minutes) - LOCAL_OFFSET
        )
        his_key = f"V{number:08d}"
        ma_lk = derive_ma_lk(FACILITY, his_key)
        state = _state(number)
        version_id = number + 1
        accepted = _ts(completed + timedelta(minutes=90)) if state == "accepted" else NULL
        hidden = _ts(completed + timedelta(days=1)) if state == "hidden" else NULL
        encounter = "\t".join(
            (
                ma_lk,
                his_key,
                _ts(completed),
                _ts(completed + timedelta(minutes=5)),
                ("01", "02", "03", "04")[number % 4],
                f"K{number % 20:02d}",
                "f" if number % 10 == 0 else "t",
                state,
                str(version_id),
                accepted,
                _ts(first_seen),
                hidden,
            )
        )
        issues = CLAIM_RULES if state == "quarantined" else NULL
        error = {"rejected": "gateway:500", "dead": "transient:timeout"}.get(state, NULL)
        versions = [
            "\t".join(
                (
                    str(version_id),
                    ma_lk,
                    f"{number:064x}",
                    state,
                    "1",
                    error,
                    issues,
                    "XML1,XML2,XML3",
                    f"{number:064x}" if state in ("accepted", "rejected") else NULL,
                    "200" if state == "accepted" else NULL,
                    f"GD{number}" if state == "accepted" else NULL,
                    _ts(completed),
                    _ts(first_seen),
                    _ts(first_seen),
                    accepted,
                )
            )
        ]
        if number % 20 == 0:
            extra_id += 1
            versions.append(
                "\t".join(
                    (
                        str(extra_id),
                        ma_lk,
                        f"{number + 1:064x}",
                        "superseded",
                        "0",
                        NULL,
                        NULL,
                        "XML1",
                        NULL,
                        NULL,
                        NULL,
                        _ts(completed - timedelta(minutes=30)),
                        _ts(first_seen),
                        _ts(first_seen),
                        NULL,
                    )
                )
            )
        yield encounter, "\n".join(versions)


def fill(engine: sa.Engine, count: int, chunk: int = 50_000) -> float:
    """COPY ``count`` encounters (+ versions) in chunks; returns seconds."""
    first_seen = datetime(2026, 7, 1, tzinfo=UTC)
    with measured() as span:
        raw = engine.raw_connection()
        try:
            driver: Any = raw.driver_connection
            with driver.cursor() as cursor:
                encounter_lines: list[str] = []
                version_lines: list[str] = []
                for encounter, versions in _rows(count, first_seen):
                    encounter_lines.append(encounter)
                    version_lines.append(versions)
                    if len(encounter_lines) >= chunk:
                        _copy(cursor, encounter_lines, version_lines)
                if encounter_lines:
                    _copy(cursor, encounter_lines, version_lines)
            driver.commit()
        finally:
            raw.close()
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM ANALYZE encounters")
            conn.exec_driver_sql("VACUUM ANALYZE versions")
    return span.wall_s


def _copy(cursor: Any, encounter_lines: list[str], version_lines: list[str]) -> None:
    with cursor.copy(f"COPY encounters ({ENCOUNTER_COLUMNS}) FROM STDIN") as copy:
        copy.write("\n".join(encounter_lines) + "\n")
    with cursor.copy(f"COPY versions ({VERSION_COLUMNS}) FROM STDIN") as copy:
        copy.write("\n".join(version_lines) + "\n")
    encounter_lines.clear()
    version_lines.clear()


def local_midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC) - LOCAL_OFFSET


def ledger_per_day(engine: sa.Engine) -> int:
    """The ledger part of ``coverage.compute`` over the whole range: one query per day."""
    rows = 0
    for offset in range(DAYS):
        day = START + timedelta(days=offset)
        with engine.connect() as conn:
            rows += len(
                coverage._ledger_rows(conn, local_midnight(day), local_midnight(day + timedelta(days=1)))
            )
    return rows


AGGREGATE_BY_STATE = (
    "SELECT state, count(*) FROM encounters WHERE completed_at >= %(start)s AND completed_at < %(end)s "
    "GROUP BY state"
)
AGGREGATE_BY_DAY = (
    "SELECT (completed_at AT TIME ZONE 'Asia/Ho_Chi_Minh')::date AS day, state, count(*) FROM encounters "
    "WHERE completed_at >= %(start)s AND completed_at < %(end)s GROUP BY 1, 2"
)


def range_parameters() -> dict[str, datetime]:
    return {"start": local_midnight(START), "end": local_midnight(START + timedelta(days=DAYS))}


def aggregate(engine: sa.Engine, sql: str) -> int:
    with engine.connect() as conn:
        return len(conn.exec_driver_sql(sql, range_parameters()).all())


def captured_day_query(engine: sa.Engine) -> tuple[str, Any]:
    """The statement and parameters ``_ledger_rows`` sends for one day (so EXPLAIN sees the real query)."""
    captured: list[tuple[str, Any]] = []

    def capture(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        captured.append((statement, parameters))

    sa.event.listen(engine, "before_cursor_execute", capture)
    try:
        with engine.connect() as conn:
            day = START + timedelta(days=45)
            coverage._ledger_rows(conn, local_midnight(day), local_midnight(day + timedelta(days=1)))
    finally:
        sa.event.remove(engine, "before_cursor_execute", capture)
    return next(item for item in captured if "FROM encounters" in item[0])


def explain(engine: sa.Engine, statement: str, parameters: Any) -> dict[str, Any]:
    with engine.connect() as conn:
        lines = [
            row[0] for row in conn.exec_driver_sql(f"EXPLAIN (ANALYZE, BUFFERS) {statement}", parameters)
        ]
    text = "\n".join(lines)
    indexes = sorted(
        set(
            re.findall(
                r"(?:Index Scan|Index Only Scan|Bitmap Index Scan)(?: Backward)? (?:using|on) (\w+)", text
            )
        )
    )
    return {
        "plan": lines,
        "indexes_used": indexes,
        "sequential_scans": sorted(set(re.findall(r"Seq Scan on (\w+)", text))),
    }


def timed(action: Any, repeats: int) -> dict[str, Any]:
    samples = []
    result = None
    for _ in range(repeats):
        with measured() as span:
            result = action()
        samples.append(span)
    return {
        "wall_s": round(statistics.median(s.wall_s for s in samples), 3),
        "cpu_s_this_process": round(statistics.median(s.cpu_s for s in samples), 3),
        "wall_s_each": [round(s.wall_s, 3) for s in samples],
        "result_rows": result,
    }


def run(rows: int, repeats: int) -> dict[str, Any]:
    with scratch_database("coverage") as (url, kind):
        engine = create_ledger_engine(url)
        migrate.upgrade(engine)
        progress(f"coverage: COPY {rows} encounters (+ versions)")
        fill_seconds = fill(engine, rows)
        progress(f"coverage: filled in {fill_seconds:.1f} s; timing queries")
        with engine.connect() as conn:
            counts = {
                "encounters": conn.exec_driver_sql("SELECT count(*) FROM encounters").scalar(),
                "versions": conn.exec_driver_sql("SELECT count(*) FROM versions").scalar(),
            }
        ledger_per_day(engine)  # warm the statement cache and the pool
        per_day = timed(lambda: ledger_per_day(engine), repeats)
        by_state = timed(lambda: aggregate(engine, AGGREGATE_BY_STATE), repeats)
        by_day = timed(lambda: aggregate(engine, AGGREGATE_BY_DAY), repeats)
        statement, parameters = captured_day_query(engine)
        plans = {
            "ledger_rows_one_day": {
                "statement": " ".join(statement.split()),
                **explain(engine, statement, parameters),
            },
            "aggregate_by_state": {
                "statement": AGGREGATE_BY_STATE,
                **explain(engine, AGGREGATE_BY_STATE, range_parameters()),
            },
        }
        engine.dispose()
    per_day_s = per_day["wall_s"]
    estimate_1m = per_day_s * 1_000_000 / rows
    return {
        "benchmark": "coverage",
        "machine": machine_description(),
        "database": kind,
        "rows": counts,
        "days": DAYS,
        "fill_seconds": round(fill_seconds, 1),
        "fill_rows_per_s": round(rows / fill_seconds),
        "ledger_per_day": per_day,
        "aggregate_by_state": by_state,
        "aggregate_by_day_and_state": by_day,
        "explain": plans,
        "target": "coverage over 1M ledger rows < 2 s",
        "ledger_side_s_at_this_size": per_day_s,
        "ledger_side_s_at_1m_linear_estimate": round(estimate_1m, 2),
        "target_met": (per_day_s < 2.0) if rows >= 1_000_000 else None,
        "target_met_estimate": estimate_1m < 2.0,
        "aggregate_target_met": by_state["wall_s"] * (1_000_000 / rows if rows < 1_000_000 else 1) < 2.0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    emit(run(args.rows, args.repeats))


if __name__ == "__main__":
    main()
