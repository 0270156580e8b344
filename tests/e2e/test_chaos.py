"""Chaos on real Redis + PostgreSQL + the simulator over HTTP + real Celery workers (issue: nothing lost,
nothing twice). Each scenario is bounded in time and count, traffic stays on loopback, and each ends with
every valid encounter accepted, one record per encounter at the simulator, and the audit chain intact."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
import redis

from adapters.gateway.simulator.admin import SimulatorAdmin
from worker.demo import DemoStack
from worker.ledger.states import State

pytestmark = [pytest.mark.slow]
ENCOUNTERS = 60
DELIVERY = {
    "batch_size": 10,
    "stuck_after_s": 10,
    "backoff_base_s": 0.5,
    "backoff_cap_s": 3.0,
    "max_attempts": 40,
}


def _real_services(pg_url: str, redis_url: str) -> dict[str, dict[str, object]]:
    return {"ledger": {"database_url": pg_url}, "broker": {"url": redis_url}, "delivery": DELIVERY}


def _assert_exactly_once(stack: DemoStack) -> None:
    outcome = stack.outcome()
    assert outcome.audit_ok, "audit chain broken"
    assert outcome.states.get(State.QUARANTINED, 0) == outcome.bad_expected
    assert outcome.states.get(State.ACCEPTED, 0) == outcome.seeded - outcome.bad_expected, outcome.states
    with SimulatorAdmin(stack.simulator.url) as admin:
        records = admin.accepted(loai_ho_so="130")
    per_visit = Counter(record["ma_lk"] for record in records)
    assert len(per_visit) == outcome.states[State.ACCEPTED]
    assert max(per_visit.values()) == 1, "a visit was recorded twice at the gateway"


@pytest.fixture
def chaos_stack(
    make_stack: Callable[..., DemoStack], fresh_pg_url: str, fresh_redis_url: str
) -> Callable[..., DemoStack]:
    def build(faults: dict[str, object] | None = None) -> DemoStack:
        stack = make_stack(
            encounters=ENCOUNTERS,
            bad_share=0.05,
            faults=faults or {"seed": 3},
            settings=_real_services(fresh_pg_url, fresh_redis_url),
        )
        stack.start_workers(2)
        return stack

    return build


def test_kill_9_workers_mid_submission(chaos_stack: Callable[..., DemoStack]) -> None:
    stack = chaos_stack({"seed": 5, "slow": 0.5, "slow_s": 0.3})  # slow answers: kills land mid-submission
    stack.kickoff()
    kills = iter((2, 4, 7, 10))
    next_kill = next(kills)

    def tick(round_number: int) -> None:
        nonlocal next_kill
        if round_number == next_kill:
            stack.kill_worker(round_number % len(stack.workers), signal.SIGKILL)
            next_kill = next(kills, -1)

    assert stack.deliver_until_done(240, tick=tick, respawn=True)
    _assert_exactly_once(stack)


def test_flushall_redis_mid_run(chaos_stack: Callable[..., DemoStack], fresh_redis_url: str) -> None:
    stack = chaos_stack({"seed": 6, "slow": 0.5, "slow_s": 0.2})
    stack.kickoff()
    client = redis.Redis.from_url(fresh_redis_url)

    def tick(round_number: int) -> None:
        if round_number in (2, 5):
            client.flushall()

    assert stack.deliver_until_done(240, tick=tick, respawn=True)
    _assert_exactly_once(stack)


def _redis_start_command() -> list[str]:
    return [
        "redis-server",
        "--daemonize",
        "yes",
        "--bind",
        "127.0.0.1",
        "-::1",
        "--port",
        "6379",
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        "/var/lib/redis",
        "--logfile",
        "/var/log/redis/ci.log",
    ]


def test_restart_redis(chaos_stack: Callable[..., DemoStack], fresh_redis_url: str) -> None:
    stack = chaos_stack({"seed": 7, "slow": 0.5, "slow_s": 0.2})
    stack.kickoff()
    client = redis.Redis.from_url(fresh_redis_url)

    def tick(round_number: int) -> None:
        if round_number == 3:
            with contextlib.suppress(redis.exceptions.ConnectionError):  # the server drops us as it stops
                client.shutdown(nosave=True)
            Path("/var/lib/redis").mkdir(parents=True, exist_ok=True)
            Path("/var/log/redis").mkdir(parents=True, exist_ok=True)
            subprocess.run(_redis_start_command(), check=True, timeout=30)

    assert stack.deliver_until_done(240, tick=tick, respawn=True)
    _assert_exactly_once(stack)


def test_restart_postgresql(chaos_stack: Callable[..., DemoStack]) -> None:
    clusters = sorted(os.listdir("/etc/postgresql")) if os.path.isdir("/etc/postgresql") else []
    if not clusters:
        pytest.fail("no local PostgreSQL cluster to restart (pg_ctlcluster)")
    stack = chaos_stack({"seed": 8, "slow": 0.5, "slow_s": 0.2})
    stack.kickoff()

    def tick(round_number: int) -> None:
        if round_number == 3:
            subprocess.run(
                ["pg_ctlcluster", "--skip-systemctl-redirect", clusters[-1], "main", "restart"],
                check=True,
                timeout=120,
            )

    assert stack.deliver_until_done(240, tick=tick, respawn=True)
    _assert_exactly_once(stack)


def test_simulator_storm_of_errors_timeouts_lost_answers_and_token_expiry(
    chaos_stack: Callable[..., DemoStack],
) -> None:
    faults = {
        "seed": 9,
        "http_5xx": 0.3,
        "timeout": 0.08,
        "timeout_s": 2.5,
        "lost_response": 0.1,
        "token_storm": 0.1,
    }
    stack = chaos_stack(faults)
    stack.kickoff()
    assert stack.deliver_until_done(300, respawn=True)
    _assert_exactly_once(stack)
    stats = stack.simulator_stats()
    assert stats["faults"].get("http_5xx", 0) > 0
    assert stats["faults"].get("lost_response", 0) > 0
    assert stats["faults"].get("token_storm", 0) > 0
