"""Issue 7 acceptance: backfill since 01/01/2026 survives a kill -9, and coverage proves the result.

One stack for the module (demo HIS on SQLite, ledger on PostgreSQL, remote signer, gateway simulator with a
few faults). The demo HIS gets 80 encounters spread over 2026 (some deliberately bad); a first watermark
discovery registers them without delivering anything (the worker is "down"); then late-committed rows are
written straight into the HIS tables with a change time far below the watermark, so discovery cannot see them.
``vneid-sync backfill --since 2026-01-01 --process-here`` runs as a real process, is killed with SIGKILL once
its checkpoint has passed the end of May, and is run again to completion. Every number the coverage report
prints is then checked against direct SQL on the HIS tables and the ledger tables.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time as clock
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import lxml.html
import pytest
import sqlalchemy as sa

from adapters.gateway.simulator.admin import SimulatorAdmin
from adapters.his.demo.seed import DemoWriter, generate_with_defects, writer_engine
from adapters.his.demo.synthetic import Defect, Kind, make_encounter
from schemas.domain import derive_ma_lk
from schemas.domain.values import VIETNAM_TZ
from tests.conftest import REPO_ROOT
from tests.services import PG_ADMIN_URL, require_binary, scratch_database
from worker.demo import DemoPlan, DemoStack
from worker.pipeline import discovery

pytestmark = [pytest.mark.slow]

SINCE = date(2026, 1, 1)
SEED_UNTIL = date(2026, 11, 15)  # fixed: the same 80 encounters whatever day the test runs
ENCOUNTERS = 80
BAD_SHARE = 0.1
KILL_AFTER = date(2026, 5, 31)  # SIGKILL once the backfill checkpoint has passed this day
LATE_CHANGED_AT = datetime(2026, 3, 10, 12, 0, tzinfo=VIETNAM_TZ)  # far below the discovery watermark
FACILITY = "79999"
DELIVERY = {
    "batch_size": 5,
    "stuck_after_s": 5,
    "backoff_base_s": 0.5,
    "backoff_cap_s": 2.0,
    "max_attempts": 30,
}
FAULTS = {"seed": 17, "http_5xx": 0.05, "lost_response": 0.05, "slow": 0.3, "slow_s": 0.15}
#: The rule each deliberate defect must be reported under (the coverage reason names it).
DEFECT_RULES = {
    Defect.BAD_CCCD: "XML1.SO_CCCD.format",
    Defect.TOTALS_MISMATCH: "XML1.T_TONGCHI_BV.total",
    Defect.DISCHARGE_BEFORE_ADMISSION: "XML1.NGAY_RA.order",
    Defect.UNKNOWN_VISIT_TYPE: "XML1.MA_LOAI_KCB.code",
    Defect.BAD_ICD: "XML1.MA_BENH_CHINH.format",
    Defect.NEWBORN_WITHOUT_BIRTH_TIME: "XML1.NGAY_SINH.",
}
COMPLETED_IN_HIS = "deleted_at IS NULL AND status <> 'CANCELLED' AND discharged_at IS NOT NULL"


@dataclass
class World:
    stack: DemoStack
    env: dict[str, str]
    defects: dict[str, Defect | None]  # his_key -> deliberate defect (None: valid)
    late_keys: set[str]
    missed_by_discovery: set[str]
    killed_returncode: int
    done_through_at_kill: date
    active_at_kill: int  # versions left active (never sent, or mid-delivery) by the killed run
    rerun_output: str
    rerun_returncode: int
    today: date

    @property
    def his(self) -> sa.Engine:
        return sa.create_engine(self.stack.settings.his_url)

    @property
    def ledger(self) -> sa.Engine:
        return self.stack.pipeline.engine


def cli(env: dict[str, str], *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # our own interpreter and CLI
        [sys.executable, "-m", "worker.cli.app", *args], env=env, cwd=REPO_ROOT, capture_output=True,
        text=True, timeout=timeout, check=False,
    )  # fmt: skip


def _seed(stack: DemoStack) -> tuple[dict[str, Defect | None], list[Any]]:
    """80 encounters spread over 2026 (written like `demo seed`), and the late batch (not written yet)."""
    rng = random.Random(20260107)  # synthetic data
    engine = writer_engine(stack.settings.his_url)
    with engine.begin() as conn:
        writer = DemoWriter(conn, facility_code=FACILITY)
        batch = list(generate_with_defects(ENCOUNTERS, rng=rng, first_number=writer.next_visit_number(),
                                           since=SINCE, until=SEED_UNTIL, bad_share=BAD_SHARE))  # fmt: skip
        writer.write(encounter for encounter, _ in batch)
        number = writer.next_visit_number()
    engine.dispose()
    defects: dict[str, Defect | None] = {encounter.his_key: defect for encounter, defect in batch}
    late = [
        encounter
        for encounter, _ in generate_with_defects(
            5, rng=rng, first_number=number, since=date(2026, 3, 2), until=date(2026, 3, 5), bad_share=0.0
        )
    ]
    late.append(make_encounter(rng, his_key=f"V{number + 5:07d}", kind=Kind.OUTPATIENT_EXAM,
                               start=datetime(2026, 3, 6, 9, 0, tzinfo=VIETNAM_TZ), defect=Defect.BAD_ICD))  # fmt: skip
    defects.update({encounter.his_key: None for encounter in late[:-1]})
    defects[late[-1].his_key] = Defect.BAD_ICD
    return defects, late


def _checkpoint(ledger: sa.Engine) -> date | None:
    with ledger.connect() as conn:
        payload = conn.execute(sa.text("SELECT payload FROM checkpoints WHERE name = 'backfill'")).scalar()
    if not payload:
        return None
    done = (payload if isinstance(payload, dict) else json.loads(payload)).get("done_through")
    return date.fromisoformat(done) if done else None


def _active_versions(ledger: sa.Engine) -> int:
    with ledger.connect() as conn:
        return int(conn.execute(sa.text("SELECT count(*) FROM versions WHERE state IN "
                                        "('discovered', 'built', 'signed', 'submitted')")).scalar_one())  # fmt: skip


def _backfill_until_killed(stack: DemoStack, env: dict[str, str]) -> tuple[int, date]:
    log = (stack.directory / "backfill-killed.log").open("wb")
    process = subprocess.Popen(  # our own interpreter and CLI
        [sys.executable, "-m", "worker.cli.app", "backfill", "--since", SINCE.isoformat(), "--process-here"],
        env=env, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    log.close()
    deadline = clock.monotonic() + 90
    try:
        while clock.monotonic() < deadline and process.poll() is None:
            done = _checkpoint(stack.pipeline.engine)
            if done is not None and done > KILL_AFTER:
                process.send_signal(signal.SIGKILL)
                break
            clock.sleep(0.05)
    finally:
        if process.poll() is None and clock.monotonic() >= deadline:
            process.kill()
        process.wait(30)
    done_through = _checkpoint(stack.pipeline.engine)
    assert done_through is not None
    return process.returncode, done_through


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    saved = os.environ.get("VNEID_CONFIG")
    directory = tmp_path_factory.mktemp("coverage")
    with scratch_database(PG_ADMIN_URL, "PostgreSQL") as ledger_url:
        plan = DemoPlan(encounters=0, faults=dict(FAULTS), directory=directory / "stack",
                        settings={"ledger": {"database_url": ledger_url}, "delivery": DELIVERY})  # fmt: skip
        with DemoStack(plan, progress=lambda _message: None) as stack:
            env = dict(os.environ, VNEID_CONFIG=str(stack.config))
            defects, late = _seed(stack)
            # The worker ran discovery once and then went down: every seeded visit is registered, none sent.
            found = discovery.discover(stack.pipeline)
            assert found.seen == ENCOUNTERS
            # Late commits: rows dated in March whose change time is months below the watermark.
            engine = writer_engine(stack.settings.his_url)
            with engine.begin() as conn:
                DemoWriter(conn, facility_code=FACILITY).write(late, changed_at=LATE_CHANGED_AT)
            engine.dispose()
            again = discovery.discover(stack.pipeline)
            with stack.pipeline.engine.connect() as conn:
                registered = {row[0] for row in conn.execute(sa.text("SELECT his_key FROM encounters"))}
            late_keys = {encounter.his_key for encounter in late}
            missed = late_keys - registered
            assert again.new == 0
            killed, done_through = _backfill_until_killed(stack, env)
            active_at_kill = _active_versions(stack.pipeline.engine)
            rerun = cli(env, "backfill", "--since", SINCE.isoformat(), "--process-here", timeout=180)
            yield World(stack=stack, env=env, defects=defects, late_keys=late_keys, missed_by_discovery=missed,
                        killed_returncode=killed, done_through_at_kill=done_through, active_at_kill=active_at_kill,
                        rerun_output=rerun.stdout + rerun.stderr, rerun_returncode=rerun.returncode,
                        today=datetime.now(VIETNAM_TZ).date())  # fmt: skip
    if saved is None:
        os.environ.pop("VNEID_CONFIG", None)
    else:
        os.environ["VNEID_CONFIG"] = saved


# ------------------------------------------------------------------------------------------ SQL truth


def his_completed(world: World, start: date, end: date) -> list[sa.Row[Any]]:
    """Visits the HIS shows completed in [start, end) local time, straight from its tables."""
    engine = world.his
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(f"SELECT v.visit_code, substr(v.discharged_at, 1, 10) AS day, v.visit_type, "  # constant SQL
                    f"v.card_number IS NOT NULL AS insured, d.code AS department FROM visits v "
                    f"LEFT JOIN departments d ON d.id = v.department_id WHERE {COMPLETED_IN_HIS} "
                    f"AND v.discharged_at >= :lo AND v.discharged_at < :hi ORDER BY v.visit_code"),
            {"lo": start.isoformat(), "hi": end.isoformat()},
        ).all()  # fmt: skip
    engine.dispose()
    return list(rows)


def ledger_encounters(world: World, start: date, end: date) -> list[sa.Row[Any]]:
    lo = datetime.combine(start, time(0), tzinfo=VIETNAM_TZ)
    hi = datetime.combine(end, time(0), tzinfo=VIETNAM_TZ)
    with world.ledger.connect() as conn:
        return list(
            conn.execute(
                sa.text("SELECT ma_lk, his_key, state, completed_at, accepted_at FROM encounters "
                        "WHERE completed_at >= :lo AND completed_at < :hi"),
                {"lo": lo, "hi": hi},
            ).all()
        )  # fmt: skip


def _days(first: date, last: date) -> list[date]:
    return [first + timedelta(days=offset) for offset in range((last - first).days + 1)]


def claim_deadline_passed(completed_at: datetime, now: datetime, working_days: int = 7) -> bool:
    """TT 48 Đ7 k1, computed apart from worker.reporting: end of the 7th working day (Mon-Fri) after."""
    day, counted = completed_at.astimezone(VIETNAM_TZ).date(), 0
    while counted < working_days:
        day += timedelta(days=1)
        counted += day.weekday() < 5
    return now > datetime.combine(day, time(23, 59, 59), tzinfo=VIETNAM_TZ)


def coverage_json(world: World, *args: str) -> tuple[int, dict[str, Any]]:
    result = cli(world.env, "coverage", "--format", "json", *args)
    assert result.returncode in (0, 3), result.stderr
    return result.returncode, json.loads(result.stdout)


# ------------------------------------------------------------------------------------------ tests


def test_backfill_resumes_after_kill_9_and_opens_no_version_twice(world: World) -> None:
    assert world.missed_by_discovery == world.late_keys, "late commits must be invisible to the watermark"
    assert world.killed_returncode == -signal.SIGKILL, "the backfill finished before it could be killed"
    assert world.done_through_at_kill > KILL_AFTER
    assert world.active_at_kill > 0, "the killed run left nothing for the re-run to finish"
    assert world.rerun_returncode == 0, world.rerun_output
    # The re-run resumed the day after the checkpoint instead of walking 2026 again.
    resumed_days = (world.today - world.done_through_at_kill).days
    assert f"backfill registered: {resumed_days} day(s)" in " ".join(world.rerun_output.split())
    with world.ledger.connect() as conn:
        per_visit = dict(conn.execute(sa.text("SELECT ma_lk, count(*) FROM versions GROUP BY ma_lk")).all())
        hashed = conn.execute(
            sa.text("SELECT count(*) FROM versions WHERE content_hash IS NOT NULL")
        ).scalar()
        quarantined = dict(conn.execute(sa.text("SELECT his_key, state FROM encounters")).all())
    assert _active_versions(world.ledger) == 0
    assert set(per_visit) == {derive_ma_lk(FACILITY, key) for key in world.defects}
    assert max(per_visit.values()) == 1, {k: v for k, v in per_visit.items() if v > 1}
    assert hashed == len(world.defects)
    assert {key for key, state in quarantined.items() if state == "quarantined"} == {
        key for key, defect in world.defects.items() if defect is not None
    }
    with SimulatorAdmin(world.stack.simulator.url) as admin:
        records = admin.accepted(loai_ho_so="130")
    at_gateway = Counter(record["ma_lk"] for record in records)
    valid = {derive_ma_lk(FACILITY, key) for key, defect in world.defects.items() if defect is None}
    assert set(at_gateway) == valid
    assert max(at_gateway.values()) == 1, "a visit was recorded twice at the gateway"


def test_coverage_json_numbers_match_his_and_ledger_sql(world: World) -> None:
    end = world.today + timedelta(days=1)
    before = datetime.now(UTC)
    code, report = coverage_json(world, "--since", SINCE.isoformat())
    after = datetime.now(UTC)
    his_rows = his_completed(world, SINCE, end)
    ledger_rows = ledger_encounters(world, SINCE, end)
    his_keys = {row.visit_code for row in his_rows}
    bad = {key for key in his_keys if world.defects[key] is not None}
    assert bad
    assert world.late_keys <= his_keys
    states = Counter(row.state for row in ledger_rows)
    assert {row.his_key for row in ledger_rows} == his_keys
    totals = report["totals"]
    assert totals["completed"] == len(his_rows) == len(his_keys)
    assert totals["accepted"] == states["accepted"] == len(his_keys - bad)
    assert totals["quarantined"] == states["quarantined"] == len(bad)
    assert totals["pending"] == totals["rejected"] == totals["dead"] == 0
    assert totals["hidden"] == totals["missing"] == 0
    assert report["ratio"] == pytest.approx(len(his_keys - bad) / len(his_keys))
    # Per day: the HIS count per discharge day, the ledger's accepted per local completion day.
    his_per_day = Counter(row.day for row in his_rows)
    accepted_per_day = Counter(
        row.completed_at.astimezone(VIETNAM_TZ).date().isoformat()
        for row in ledger_rows
        if row.state == "accepted"
    )
    assert {day: counts["completed"] for day, counts in report["buckets"].items()} == dict(his_per_day)
    assert {
        day: counts["accepted"] for day, counts in report["buckets"].items() if counts["accepted"]
    } == dict(accepted_per_day)
    # Accepted after the 3 h target: every backfilled visit (they are months old).
    late = sum(1 for row in ledger_rows if row.state == "accepted"
               and row.accepted_at > row.completed_at + timedelta(hours=3))  # fmt: skip
    assert report["accepted_late"] == late == len(his_keys - bad)
    # The gap list is exactly the bad visits, each with the rule its defect breaks.
    gaps = {gap["his_key"]: gap for gap in report["gaps"]}
    assert set(gaps) == bad
    for key, gap in gaps.items():
        assert gap["state"] == "quarantined"
        assert gap["ma_lk"] == derive_ma_lk(FACILITY, key)
        assert gap["reason"].startswith("validation: ")
        rules = gap["reason"].removeprefix("validation: ").split(", ")
        expected = DEFECT_RULES[world.defects[key]]  # type: ignore[index]
        assert any(rule.startswith(expected) for rule in rules), (key, gap["reason"])
        completed = datetime.fromisoformat(gap["completed_at"])
        assert gap["target_breached"] is True
        if claim_deadline_passed(completed, before) == claim_deadline_passed(completed, after):
            assert gap["claim_breached"] is claim_deadline_passed(completed, before)
    breaches = sum(1 for gap in report["gaps"] if gap["claim_breached"])
    assert report["claim_breaches"] == breaches
    assert breaches >= 1  # the late bad visit of March is long past its 7 working days
    assert code == 3


def test_coverage_exits_0_on_a_range_of_valid_visits_only(world: World) -> None:
    days = Counter(row.day for row in his_completed(world, SINCE, world.today + timedelta(days=1)))
    bad_days = {row.day for row in his_completed(world, SINCE, world.today + timedelta(days=1))
                if world.defects[row.visit_code] is not None}  # fmt: skip
    clean = sorted(day for day in days if day not in bad_days and days[day] >= 2) or sorted(
        day for day in days if day not in bad_days
    )
    day = clean[0]
    code, report = coverage_json(world, "--since", day, "--until", day)
    assert code == 0
    assert report["totals"]["completed"] == report["totals"]["accepted"] == days[day]
    assert report["gaps"] == []
    assert report["ratio"] == 1.0


def test_coverage_html_renders_in_headless_chromium(
    world: World, artifacts_dir: Path, tmp_path: Path
) -> None:
    chromium = require_binary("chromium")
    page = tmp_path / "coverage.html"
    result = cli(world.env, "coverage", "--since", SINCE.isoformat(), "--format", "html", "--out", str(page))
    assert result.returncode == 3, result.stderr
    flags = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
             f"--user-data-dir={tmp_path / 'chromium-profile'}"]  # fmt: skip
    dom = subprocess.run([*flags, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120,
                         check=True).stdout  # fmt: skip
    tree = lxml.html.fromstring(dom)
    # The chart: one bar per month of the range (a year of daily bars is unreadable), adding up to the HIS.
    his_rows = his_completed(world, SINCE, world.today + timedelta(days=1))
    chart = tree.get_element_by_id("daily-chart")
    assert chart.get("data-unit") == "tháng / month"
    bars = chart.find_class("bar")
    months = sorted({f"{day.year}-{day.month:02d}" for day in _days(SINCE, world.today)})
    assert [bar.get("data-period") for bar in bars] == months
    assert len(chart.findall(".//rect")) == 2 * len(months)
    per_month = Counter(row.day[:7] for row in his_rows)
    assert {bar.get("data-period"): int(bar.get("data-completed")) for bar in bars} == {
        month: per_month.get(month, 0) for month in months
    }
    valid = {key for key, defect in world.defects.items() if defect is None}
    accepted_per_month = Counter(row.day[:7] for row in his_rows if row.visit_code in valid)
    assert {bar.get("data-period"): int(bar.get("data-accepted")) for bar in bars} == {
        month: accepted_per_month.get(month, 0) for month in months
    }
    # The gap table lists exactly the bad visits; the verdict says the report fails and why.
    gap_rows = tree.get_element_by_id("gap-table").findall("./tbody/tr")
    bad = [key for key, defect in world.defects.items() if defect is not None]
    assert len(gap_rows) == len(bad)
    assert {row.findall("td")[0].text_content() for row in gap_rows} == {
        derive_ma_lk(FACILITY, k) for k in bad
    }
    verdict = tree.get_element_by_id("verdict").text_content()
    assert verdict.startswith(f"CHƯA ĐẠT — {len(bad)} lượt khám")
    screenshot = artifacts_dir / "coverage.png"
    screenshot.unlink(missing_ok=True)
    subprocess.run([*flags, f"--screenshot={screenshot}", "--window-size=1280,1600", page.as_uri()],
                   capture_output=True, timeout=120, check=True)  # fmt: skip
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_half_year_report_counts_visits_and_linked_by_visit_type_and_insurance(world: World) -> None:
    result = cli(world.env, "coverage", "report", "--half", "2026H2", "--format", "json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    start, end = date(2026, 7, 1), min(date(2027, 1, 1), world.today + timedelta(days=1))
    assert (report["start"], report["end_exclusive"]) == (start.isoformat(), end.isoformat())
    his_rows = his_completed(world, start, end)
    visits = Counter((row.visit_type, "BHYT" if row.insured else "non-BHYT") for row in his_rows)
    with world.ledger.connect() as conn:
        linked = Counter(
            (row.visit_type, "BHYT" if row.insured else "non-BHYT")
            for row in conn.execute(
                sa.text("SELECT visit_type, insured FROM encounters WHERE state = 'accepted' "
                        "AND completed_at >= :lo AND completed_at < :hi"),
                {"lo": datetime.combine(start, time(0), tzinfo=VIETNAM_TZ),
                 "hi": datetime.combine(end, time(0), tzinfo=VIETNAM_TZ)},
            )
        )  # fmt: skip
    assert {key: counts["completed"] for key, counts in report["buckets"].items()} == {
        f"{visit_type} / {insurance}": count for (visit_type, insurance), count in visits.items()
    }
    assert {key: counts["accepted"] for key, counts in report["buckets"].items() if counts["accepted"]} == {
        f"{visit_type} / {insurance}": count for (visit_type, insurance), count in linked.items()
    }
    assert report["totals"]["completed"] == len(his_rows)
    # The QĐ 2733 cross table: per visit type, visits and linked visits for BHYT and non-BHYT patients.
    rows = {row["visit_type"]: row for row in report["rows"]}
    assert set(rows) == {visit_type for visit_type, _ in visits} | {"TOTAL"}
    for visit_type, row in rows.items():
        if visit_type == "TOTAL":
            continue
        assert row == {
            "visit_type": visit_type,
            "bhyt_visits": visits[(visit_type, "BHYT")], "bhyt_linked": linked[(visit_type, "BHYT")],
            "non_bhyt_visits": visits[(visit_type, "non-BHYT")], "non_bhyt_linked": linked[(visit_type, "non-BHYT")],
            "visits": visits[(visit_type, "BHYT")] + visits[(visit_type, "non-BHYT")],
            "linked": linked[(visit_type, "BHYT")] + linked[(visit_type, "non-BHYT")],
        }  # fmt: skip
    assert (rows["TOTAL"]["visits"], rows["TOTAL"]["linked"]) == (len(his_rows), sum(linked.values()))
