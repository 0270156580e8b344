"""The backfill service on the demo HIS and a PostgreSQL ledger: what a day hands over, the checkpoint, and
how ``--process-here`` finishes work left by a killed run (leases) and by transient failures (retries)."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime, timedelta

import sqlalchemy as sa
from typer.testing import CliRunner

from schemas.domain.values import VIETNAM_TZ
from schemas.ports import Outcome
from tests.integration.reporting.conftest import World, encounters_between, local
from worker.cli.app import app
from worker.config import load_settings
from worker.ledger import repository as repo
from worker.ledger.db import utcnow
from worker.logging import configure_logging
from worker.pipeline import backfill, delivery, discovery
from worker.pipeline.context import Pipeline

MARCH = (date(2026, 3, 1), date(2026, 4, 1))


def _states(world: World) -> dict[str, str]:
    with world.pipeline.engine.connect() as conn:
        return dict(conn.execute(sa.text("SELECT his_key, state FROM encounters")).all())


def _version_ids(world: World) -> dict[str, int]:
    with world.pipeline.engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT e.his_key, v.id FROM versions v JOIN encounters e USING (ma_lk)"))
        return {row.his_key: row.id for row in rows}


def _retrying(world: World) -> Pipeline:
    """The world's pipeline with retries allowed (the fixture's gives up after one attempt)."""
    settings = load_settings(world.config, delivery={"max_attempts": 5, "batch_size": 50, "backoff_base_s": 0.2,
                                                     "backoff_cap_s": 0.4, "stuck_after_s": 5})  # fmt: skip
    return replace(world.pipeline, settings=settings)


def test_each_day_hands_over_what_discovery_registered_but_nobody_sent(world: World) -> None:
    visits = encounters_between(6, date(2026, 3, 2), date(2026, 3, 12), first_number=1, seed=41)
    world.write(visits)
    found = discovery.discover(world.pipeline)  # registered while no worker ran
    assert found.new == 6
    ids = _version_ids(world)
    with world.pipeline.engine.begin() as conn:  # one of them is already waiting in the broker
        repo.mark_enqueued(conn, [ids[visits[0].his_key]])
    days = list(backfill.backfill_days(world.pipeline, since=MARCH[0], until=MARCH[1],
                                       waiting_in_broker=timedelta(minutes=15)))  # fmt: skip
    assert [day.opened for day in days if day.opened] == []
    handed = sorted(version_id for day in days for version_id in day.pending)
    assert handed == sorted(ids[visit.his_key] for visit in visits[1:])
    # --process-here takes them all, the one in the broker too (the lease keeps a worker from doubling it).
    again = [day for day in backfill.backfill_days(world.pipeline, since=MARCH[0] - timedelta(days=1),
                                                    until=MARCH[1]) if day.pending]  # fmt: skip
    assert sorted(version_id for day in again for version_id in day.pending) == sorted(ids.values())
    for day in again:
        delivery.process_versions(world.pipeline, day.pending, owner="backfill")
    assert set(_states(world).values()) == {"accepted"}
    assert len(world.gateway.calls) == 6


def test_the_checkpoint_never_covers_a_day_that_is_not_over(world: World) -> None:
    today = datetime.now(VIETNAM_TZ).date()
    walked = [day.day for day in backfill.backfill_days(world.pipeline, since=today - timedelta(days=2),
                                                        until=today + timedelta(days=1))]  # fmt: skip
    assert walked == [today - timedelta(days=2), today - timedelta(days=1), today]
    with world.pipeline.engine.connect() as conn:
        _, payload = repo.read_checkpoint(conn, backfill.CHECKPOINT)
    assert payload == {"since": (today - timedelta(days=2)).isoformat(),
                       "done_through": (today - timedelta(days=1)).isoformat()}  # fmt: skip
    assert backfill.resume_day(world.pipeline, today - timedelta(days=2)) == today
    assert backfill.resume_day(world.pipeline, today - timedelta(days=5)) == today - timedelta(days=5)


def test_finish_here_waits_for_a_killed_runs_lease_and_for_retries(world: World) -> None:
    visits = encounters_between(3, date(2026, 3, 2), date(2026, 3, 6), first_number=1, seed=42)
    world.write(visits)
    pipeline = _retrying(world)
    for _ in backfill.backfill_days(pipeline, since=MARCH[0], until=MARCH[1]):
        pass  # registered, not processed: as after a kill -9 right after the sweep
    ids = _version_ids(world)
    with pipeline.engine.begin() as conn:  # the killed run still holds a lease on one of them
        repo.claim(conn, [ids[visits[0].his_key]], owner="killed-run", lease=timedelta(seconds=1))
    world.gateway.script = [Outcome.TRANSIENT]  # the first send fails and is retried after the backoff
    left = backfill.finish_here(pipeline, local(MARCH[0]), local(MARCH[1]), owner="backfill", wait_s=30)
    assert left == 0
    assert set(_states(world).values()) == {"accepted"}
    assert len(world.gateway.calls) == 4  # 3 visits + 1 retry
    assert len(world.gateway.received) == 3


def test_finish_here_gives_up_after_the_wait_and_the_cli_exits_4(world: World) -> None:
    visits = encounters_between(1, date(2026, 3, 2), date(2026, 3, 2), first_number=1, seed=43)
    world.write(visits)
    discovery.discover(world.pipeline)
    with world.pipeline.engine.begin() as conn:
        repo.claim(conn, list(_version_ids(world).values()), owner="killed-run", lease=timedelta(hours=1))
    assert (
        backfill.finish_here(world.pipeline, local(MARCH[0]), local(MARCH[1]), owner="backfill", wait_s=0.1)
        == 1
    )
    try:
        result = CliRunner().invoke(app, ["--config", str(world.config), "backfill", "--since", "2026-03-01",
                                          "--until", "2026-03-31", "--process-here", "--wait", "0"])  # fmt: skip
    finally:
        configure_logging("WARNING", "json")  # the runner's stderr is closed now
    assert result.exit_code == 4, result.output
    assert "1 version(s) still active after waiting 0 s" in " ".join(result.stdout.split())
    with world.pipeline.engine.connect() as conn:
        lease = conn.execute(sa.text("SELECT lease_owner, lease_until FROM versions")).one()
    assert lease.lease_owner == "killed-run"
    assert lease.lease_until > utcnow()
