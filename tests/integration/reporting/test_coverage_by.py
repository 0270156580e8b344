"""`vneid-sync coverage --by department|visit-type|insurance` on a small real ledger (PostgreSQL) and the
demo HIS: every bucket and every column checked against SQL on the HIS tables and the ledger tables."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, date, datetime
from typing import Any

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner, Result

from adapters.his.demo.source import DEMO_MAPPING_FILE
from adapters.his.demo.synthetic import Defect
from adapters.his.sql_mapping.mapping import load_mapping
from schemas.domain import derive_ma_lk
from schemas.domain.values import VIETNAM_TZ
from schemas.ports import CompletedKeyLister, EncounterRef, EncounterSource, Outcome
from tests.integration.reporting.conftest import FACILITY, World, bad_encounter, encounters_between, local
from worker.cli.app import app
from worker.ledger.states import ACTIVE
from worker.logging import configure_logging
from worker.pipeline import delivery, discovery
from worker.reporting.coverage import COLUMNS, CoverageReport, GroupBy, compute
from worker.reporting.deadlines import DeadlineCalendar

MARCH = (date(2026, 3, 1), date(2026, 4, 1))
DEPARTMENTS = {
    str(local): str(code)
    for local, code in load_mapping(DEMO_MAPPING_FILE).value_maps["department"].values.items()
}


def _ledger_ids(world: World) -> dict[str, int]:
    with world.pipeline.engine.connect() as conn:
        rows = conn.execute(
            sa.text("SELECT e.his_key, v.id FROM versions v JOIN encounters e ON e.ma_lk = v.ma_lk")
        )
        return {row.his_key: row.id for row in rows}


def _build_march(world: World) -> dict[str, str]:
    """14 visits in March, one per coverage state; returns his_key -> what happened to it."""
    good = encounters_between(10, date(2026, 3, 2), date(2026, 3, 20), first_number=1, seed=31)
    bad = [bad_encounter(11, datetime(2026, 3, 10, 9, 0, tzinfo=VIETNAM_TZ), Defect.BAD_CCCD),
           bad_encounter(12, datetime(2026, 3, 11, 9, 0, tzinfo=VIETNAM_TZ), Defect.TOTALS_MISMATCH)]  # fmt: skip
    world.write([*good, *bad])
    discovery.sweep(world.pipeline, local(MARCH[0]), local(MARCH[1]))
    ids = _ledger_ids(world)
    fate = {e.his_key: "accepted" for e in good} | {e.his_key: "quarantined" for e in bad}
    delivery.process_versions(world.pipeline, [ids[e.his_key] for e in bad], owner="test")
    world.gateway.script = [Outcome.DATA_ERROR]
    delivery.process_versions(world.pipeline, [ids[good[0].his_key]], owner="test")
    fate[good[0].his_key] = "rejected"
    world.gateway.script = [Outcome.TRANSIENT]  # max_attempts = 1: the first transient failure is final
    delivery.process_versions(world.pipeline, [ids[good[1].his_key]], owner="test")
    fate[good[1].his_key] = "dead"
    fate[good[2].his_key] = fate[good[3].his_key] = "pending"  # registered, never built
    delivery.process_versions(world.pipeline, [ids[e.his_key] for e in good[4:]], owner="test")
    # The HIS soft-deletes an accepted visit, and two visits appear that nothing registered yet.
    engine = world.his()
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE visits SET deleted_at = updated_at WHERE visit_code = :key"),
                     {"key": good[4].his_key})  # fmt: skip
    engine.dispose()
    fate[good[4].his_key] = "hidden"
    late = encounters_between(
        2, date(2026, 3, 22), date(2026, 3, 24), first_number=world.next_number(), seed=32
    )
    world.write(late)
    fate.update({e.his_key: "missing" for e in late})
    return fate


def _expected(world: World, by: str) -> dict[str, dict[str, int]]:
    """Buckets computed from SQL alone: HIS rows for what is completed, ledger rows for what happened."""
    engine = world.his()
    with engine.connect() as conn:
        his = conn.execute(sa.text(
            "SELECT v.visit_code, v.visit_type, v.card_number IS NOT NULL AS insured, d.code AS department "
            "FROM visits v LEFT JOIN departments d ON d.id = v.department_id "
            "WHERE v.deleted_at IS NULL AND v.status <> 'CANCELLED' AND v.discharged_at >= :lo "
            "AND v.discharged_at < :hi"), {"lo": MARCH[0].isoformat(), "hi": MARCH[1].isoformat()}).all()  # fmt: skip
    engine.dispose()
    with world.pipeline.engine.connect() as conn:
        ledger = {row.his_key: row for row in conn.execute(
            sa.text("SELECT his_key, state, visit_type, insured, department FROM encounters "
                    "WHERE completed_at >= :lo AND completed_at < :hi"),
            {"lo": local(MARCH[0]), "hi": local(MARCH[1])})}  # fmt: skip

    def key(visit_type: str | None, insured: bool | None, department: str | None) -> str:
        if by == "department":
            return department or "(none)"
        if by == "visit-type":
            return visit_type or "(none)"
        return "(unknown)" if insured is None else ("BHYT" if insured else "non-BHYT")

    buckets: dict[str, Counter[str]] = {}
    listed = set()
    for row in his:
        listed.add(row.visit_code)
        counts = buckets.setdefault(
            key(row.visit_type, bool(row.insured), DEPARTMENTS.get(row.department)), Counter()
        )
        counts["completed"] += 1
        found = ledger.get(row.visit_code)
        counts["missing" if found is None else ("pending" if found.state in ACTIVE else found.state)] += 1
    for his_key, row in ledger.items():
        if his_key not in listed:
            buckets.setdefault(key(row.visit_type, row.insured, row.department), Counter())["hidden"] += 1
    return {name: {column: counts[column] for column in COLUMNS} for name, counts in sorted(buckets.items())}


def _invoke(args: list[str]) -> Result:
    """Run the real CLI in-process; then point logging back at the real stderr (the runner's is closed)."""
    try:
        return CliRunner().invoke(app, args, env={"COLUMNS": "200"})
    finally:
        configure_logging("WARNING", "json")


def _coverage(world: World, *args: str) -> tuple[int, str]:
    result = _invoke(["--config", str(world.config), "coverage", "--since", "2026-03-01",
                      "--until", "2026-03-31", *args])  # fmt: skip
    assert result.exit_code in (0, 3), result.output
    return result.exit_code, result.stdout


@pytest.mark.parametrize("by", ["department", "visit-type", "insurance"])
def test_coverage_by_bucket_matches_sql_on_his_and_ledger(world: World, by: str) -> None:
    fate = _build_march(world)
    code, output = _coverage(world, "--by", by, "--format", "json")
    report: dict[str, Any] = json.loads(output)
    expected = _expected(world, by)
    assert len(expected) >= 2, "a grouping with a single bucket would prove nothing"
    assert report["buckets"] == expected
    assert report["totals"] == {column: sum(b[column] for b in expected.values()) for column in COLUMNS}
    outcomes = Counter(fate.values())
    assert {column: n for column, n in report["totals"].items() if n and column != "completed"} == dict(
        outcomes
    )
    assert report["totals"]["completed"] == len(fate) - outcomes["hidden"]
    # Every visit that is not accepted is listed once, with the reason a person acts on.
    reasons = {gap["his_key"]: (gap["state"], gap["reason"]) for gap in report["gaps"]}
    assert set(reasons) == {key for key, what in fate.items() if what != "accepted"}
    by_fate = {what: reasons[key] for key, what in fate.items() if what not in ("accepted", "quarantined")}
    assert by_fate["rejected"] == ("rejected", "gateway:422")
    assert by_fate["dead"] == ("dead", "transient:500")
    assert by_fate["pending"] == ("discovered", "waiting to be built")
    assert by_fate["missing"] == ("missing", "never discovered")
    assert by_fate["hidden"] == ("hidden", "no longer completed in the HIS")
    quarantined = sorted(reason for state, reason in reasons.values() if state == "quarantined")
    assert quarantined == ["validation: XML1.SO_CCCD.format", "validation: XML1.T_TONGCHI_BV.total"]
    # March is long past its claim deadline: every gap but the hidden visit breaks it, hence exit 3.
    now = datetime.now(UTC)
    assert now > datetime(2026, 4, 10, tzinfo=UTC)
    assert report["claim_breaches"] == len(reasons) - 1
    assert code == 3
    assert {gap["ma_lk"] for gap in report["gaps"]} == {derive_ma_lk(FACILITY, key) for key in reasons}


def test_coverage_csv_and_table_show_the_same_buckets(world: World) -> None:
    _build_march(world)
    _, output = _coverage(world, "--by", "insurance", "--format", "csv")
    rows = [line.split(",") for line in output.splitlines()]
    expected = _expected(world, "insurance")
    body = {
        row[0]: dict(zip(COLUMNS, map(int, row[1:9]), strict=True)) for row in rows[1 : 1 + len(expected)]
    }
    assert body == expected
    _, table = _coverage(world, "--by", "insurance")
    assert "Not accepted: 9" in table  # rejected, dead, 2 pending, 2 missing, hidden, 2 quarantined
    assert "CLAIM LIMIT PASSED: 8 encounter(s)" in table  # all but the hidden visit


def test_half_year_report_table_lists_visit_type_by_insurance(world: World) -> None:
    _build_march(world)
    result = _invoke(
        ["--config", str(world.config), "coverage", "report", "--half", "2026H1", "--format", "json"]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert (report["start"], report["end_exclusive"]) == ("2026-01-01", "2026-07-01")
    visit_type = _expected(world, "visit-type")
    insurance = _expected(world, "insurance")
    assert all(" / " in key for key in report["buckets"])
    for column in ("completed", "accepted"):
        assert {vt: sum(c[column] for k, c in report["buckets"].items() if k.split(" / ")[0] == vt)
                for vt in visit_type} == {vt: counts[column] for vt, counts in visit_type.items()}  # fmt: skip
        assert {ins: sum(c[column] for k, c in report["buckets"].items() if k.split(" / ")[1] == ins)
                for ins in insurance} == {ins: counts[column] for ins, counts in insurance.items()}  # fmt: skip
    rows = {row["visit_type"]: row for row in report["rows"]}
    assert set(rows) == {*visit_type, "TOTAL"}
    for vt, counts in visit_type.items():
        assert (rows[vt]["visits"], rows[vt]["linked"]) == (counts["completed"], counts["accepted"])
    assert (rows["TOTAL"]["bhyt_visits"], rows["TOTAL"]["bhyt_linked"]) == (
        insurance["BHYT"]["completed"], insurance["BHYT"]["accepted"])  # fmt: skip
    assert (rows["TOTAL"]["non_bhyt_visits"], rows["TOTAL"]["non_bhyt_linked"]) == (
        insurance["non-BHYT"]["completed"], insurance["non-BHYT"]["accepted"])  # fmt: skip
    table = _invoke(["--config", str(world.config), "coverage", "report", "--half", "2026H1"])
    assert table.exit_code == 0
    total = next(line for line in table.stdout.splitlines() if "TOTAL" in line)
    assert total.split("│")[6].strip() == str(rows["TOTAL"]["visits"])
    bad = _invoke(["--config", str(world.config), "coverage", "report", "--half", "2026H3"])
    assert bad.exit_code != 0
    assert "--half must look like 2026H1" in str(bad.exception)


class _ListingOnly:
    """The same HIS seen only through ``list_completed``: how coverage reads a source without key listing."""

    def __init__(self, source: EncounterSource) -> None:
        self.source = source

    def list_completed(self, start: datetime, end: datetime) -> Iterator[EncounterRef]:
        return self.source.list_completed(start, end)


def _report(world: World, source: object, group_by: GroupBy) -> CoverageReport:
    return compute(
        source,  # type: ignore[arg-type]  # coverage reads list_completed, or completed_keys and refs
        world.pipeline.engine, facility_code=FACILITY, start=MARCH[0], end=MARCH[1], group_by=group_by,
        calendar=DeadlineCalendar(world.settings.deadlines), now=datetime.now(UTC),
    )  # fmt: skip


def _gaps(report: CoverageReport) -> list[tuple[str, str, str, str, datetime, bool, bool]]:
    return [(g.ma_lk, g.his_key, g.state, g.reason, g.completed_at, g.target_breached, g.claim_breached)
            for g in report.gaps]  # fmt: skip


@pytest.mark.parametrize("group_by", [GroupBy.DAY, GroupBy.DEPARTMENT])
def test_the_keys_alone_give_the_report_that_full_listing_gives(world: World, group_by: GroupBy) -> None:
    fate = _build_march(world)
    source = world.pipeline.source()
    assert isinstance(source, CompletedKeyLister)
    assert not isinstance(_ListingOnly(source), CompletedKeyLister)
    keyed, listed = _report(world, source, group_by), _report(world, _ListingOnly(source), group_by)
    assert keyed.buckets == listed.buckets
    assert keyed.daily == listed.daily
    assert keyed.accepted_late == listed.accepted_late
    assert _gaps(keyed) == _gaps(listed)
    assert {gap.his_key: gap.state for gap in keyed.gaps} == {
        key: "discovered" if what == "pending" else what for key, what in fate.items() if what != "accepted"
    }
    assert keyed.totals["completed"] == len(fate) - 1  # all but the hidden visit
