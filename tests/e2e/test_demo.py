"""The README's `make run` job, smaller: real workers, simulator with faults, coverage at the end."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from worker.demo import DemoPlan, DemoStack, run_demo
from worker.ledger.states import State


@pytest.mark.slow
def test_demo_on_embedded_defaults_accepts_every_valid_encounter_once(tmp_path) -> None:  # type: ignore[no-untyped-def]
    outcome = run_demo(
        DemoPlan(encounters=40, bad_share=0.1, workers=2, directory=tmp_path / "demo"),
        progress=lambda _m: None,
    )
    assert outcome.audit_ok
    assert outcome.states.get(State.QUARANTINED, 0) == outcome.bad_expected
    assert outcome.states.get(State.ACCEPTED, 0) == outcome.seeded - outcome.bad_expected
    assert outcome.simulator_stats["accepted"] == outcome.states[State.ACCEPTED]
    quarantined = [gap for gap in outcome.coverage.gaps if gap.state == State.QUARANTINED]
    assert len(quarantined) == outcome.bad_expected
    assert all(gap.reason.startswith("validation: ") for gap in quarantined)
    assert outcome.ok


@pytest.mark.slow
def test_demo_on_postgresql_and_redis(
    make_stack: Callable[..., DemoStack], pg_url: str, redis_url: str
) -> None:
    stack = make_stack(
        encounters=30,
        bad_share=0.1,
        settings={"ledger": {"database_url": pg_url}, "broker": {"url": redis_url}},
    )
    assert stack.settings.ledger_url.startswith("postgresql")
    assert stack.settings.broker_url.startswith("redis")
    stack.start_workers(2)
    stack.kickoff()
    assert stack.deliver_until_done(120)
    outcome = stack.outcome()
    assert outcome.ok, (outcome.states, outcome.simulator_stats)
