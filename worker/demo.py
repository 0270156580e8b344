"""The whole job in one command, on embedded defaults: ``vneid-sync demo run``.

It generates a throwaway test CA and hospital certificate, seeds the demo HIS (SQLite) with encounters since
01/01/2026 (a few deliberately bad), starts the gateway simulator (with faults) and the reference remote signer
on loopback, runs real Celery worker processes on the embedded broker, discovers and delivers everything,
prints the coverage table, verifies the audit chain, and stops what it started. With ``VNEID_BROKER__URL`` /
``VNEID_LEDGER__DATABASE_URL`` (or ``VNEID_BROKER_URL`` / ``VNEID_DATABASE_URL``) it runs on real services.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa

from worker.config import Settings, load_settings
from worker.domain.values import VIETNAM_TZ
from worker.ledger import audit, migrate
from worker.ledger.schema import encounters, versions
from worker.ledger.states import ACTIVE, State
from worker.reporting.coverage import CoverageReport, GroupBy, compute
from worker.reporting.deadlines import DeadlineCalendar

DEMO_FAULTS: dict[str, Any] = {"seed": 7, "http_5xx": 0.05, "timeout": 0.02, "lost_response": 0.03,
                               "timeout_s": 3.0, "token_storm": 0.01}  # fmt: skip


@dataclass
class DemoPlan:
    encounters: int = 300
    bad_share: float = 0.04
    workers: int = 2
    since: date = date(2026, 1, 1)
    faults: dict[str, Any] = field(default_factory=lambda: dict(DEMO_FAULTS))
    timeout_s: float = 150.0
    keep: bool = False
    directory: Path = Path("var/demo")


@dataclass
class DemoOutcome:
    coverage: CoverageReport
    states: dict[str, int]
    audit_ok: bool
    audit_rows: int
    simulator_stats: dict[str, Any]
    seeded: int
    bad_expected: int
    elapsed_s: float
    settings: Settings

    @property
    def ok(self) -> bool:
        quarantined = self.states.get(State.QUARANTINED, 0)
        accepted = self.states.get(State.ACCEPTED, 0)
        return (
            self.audit_ok
            and quarantined == self.bad_expected
            and accepted + quarantined == self.seeded
            and self.simulator_stats.get("accepted") == accepted
        )


def _write_config(plan: DemoPlan, pki: Any, signer_url: str, signer_token: str, simulator_url: str) -> Path:
    directory = plan.directory.resolve()
    lines = [
        f'data_dir = "{directory}"',
        "[his]",
        'adapter = "demo"',
        f'url = "sqlite:///{directory / "demo-his.sqlite3"}"',
        "[ledger]",
        f'database_url = "sqlite:///{directory / "ledger.sqlite3"}"',
        "[broker]",
        f'url = "sqla+sqlite:///{directory / "broker.sqlite3"}"',
        "[signer]",
        'source = "remote"',
        f'remote_url = "{signer_url}"',
        f'remote_token = "{signer_token}"',
        f'trust_store = "{pki.ca_certificate}"',
        "[destinations.bhxh]",
        f'base_url = "{simulator_url}"',
        "timeout_s = 2.0",
        "[delivery]",
        "batch_size = 20",
        "stuck_after_s = 15",
        "backoff_base_s = 1.0",
        "backoff_cap_s = 4.0",
        "max_attempts = 12",
        "[logging]",
        'level = "WARNING"',
        'format = "json"',
    ]
    path = directory / "config.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@contextmanager
def _workers(plan: DemoPlan, config: Path, env: dict[str, str]) -> Iterator[list[subprocess.Popen[bytes]]]:
    log = (plan.directory / "worker.log").open("ab")
    processes = [
        subprocess.Popen(  # noqa: S603  # our own interpreter and CLI
            [
                sys.executable,
                "-m",
                "worker.cli.app",
                "--config",
                str(config),
                "worker",
                "-c",
                "1",
                "--pool",
                "prefork",
                "-Q",
                "submission",
                "-Q",
                "discovery",
                "-Q",
                "backfill",
                "--hostname",
                f"demo{index}@%h",
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        for index in range(plan.workers)
    ]
    try:
        yield processes
    finally:
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 15
        for process in processes:
            try:
                process.wait(max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        log.close()


def _states(engine: sa.Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return dict(
            conn.execute(sa.select(encounters.c.state, sa.func.count()).group_by(encounters.c.state))
            .tuples()
            .all()
        )


def _active_versions(engine: sa.Engine) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(
                sa.select(sa.func.count()).where(versions.c.state.in_([s.value for s in ACTIVE]))
            ).scalar_one()
        )


def run_demo(plan: DemoPlan, progress: Any = print) -> DemoOutcome:
    """Run the demo end to end; every process and thread it starts is stopped before it returns."""
    from adapters.gateway.simulator.process import spawn_simulator  # noqa: PLC0415  # demo-only tooling
    from adapters.his.demo.seed import seed_demo_his  # noqa: PLC0415  # demo-only tooling
    from adapters.signers.keyfiles import load_key_material  # noqa: PLC0415  # demo-only tooling
    from adapters.signers.remote.reference_server import start_reference_server  # noqa: PLC0415  # demo-only
    from adapters.signers.testpki import create_test_pki  # noqa: PLC0415  # demo-only tooling

    started = time.monotonic()
    if plan.directory.exists():
        shutil.rmtree(plan.directory)
    plan.directory.mkdir(parents=True)
    with ExitStack() as stack:
        progress("generating a throwaway test CA and hospital certificate")
        pki = create_test_pki(plan.directory / "pki")
        token = secrets.token_urlsafe(24)
        material = load_key_material(pki.pkcs12, passphrase=pki.passphrase)
        signer = stack.enter_context(start_reference_server(material, token))
        progress(f"reference remote signer on {signer.url}")
        faults = plan.directory / "faults.json"
        faults.write_text(json.dumps(plan.faults), encoding="utf-8")
        simulator = stack.enter_context(
            spawn_simulator(
                trust_store=pki.ca_certificate,
                faults_file=faults,
                state_dir=plan.directory / "sim",
                startup_timeout_s=90,
            )
        )
        progress(
            f"gateway simulator on {simulator.url} (faults: {', '.join(f'{k}={v}' for k, v in plan.faults.items() if k != 'seed')})"
        )
        config = _write_config(plan, pki, signer.url, token, simulator.url)
        os.environ["VNEID_CONFIG"] = str(config)
        settings = load_settings(config)
        until = datetime.now(VIETNAM_TZ).date()
        seeded = seed_demo_his(settings.his_url, encounters=plan.encounters, bad_share=plan.bad_share,
                               since=plan.since, until=until)  # fmt: skip
        progress(
            f"demo HIS seeded: {seeded.total} encounters since {plan.since}, {seeded.bad} deliberately bad"
        )
        from worker.bootstrap import build_pipeline  # noqa: PLC0415  # after VNEID_CONFIG is set
        from worker.pipeline import discovery  # noqa: PLC0415  # see above

        pipeline = build_pipeline(settings)
        migrate.upgrade(pipeline.engine)
        env = dict(os.environ, VNEID_CONFIG=str(config))
        workers = stack.enter_context(_workers(plan, config, env))
        progress(
            f"{plan.workers} Celery worker process(es) started on {settings.broker_url.split(':', 1)[0]}"
        )
        from worker.tasks import enqueue_batches, process_batch  # noqa: PLC0415  # broker from VNEID_CONFIG

        found = discovery.discover(pipeline)
        enqueue_batches(pipeline, found.version_ids)
        progress(f"discovered {found.seen} completed encounters; delivering…")
        deadline = time.monotonic() + plan.timeout_s
        while time.monotonic() < deadline:
            time.sleep(1.0)
            if any(process.poll() is not None for process in workers):
                raise RuntimeError(f"a worker process exited early; see {plan.directory / 'worker.log'}")
            for batch in discovery.due_batches(pipeline):  # the beat's job, done here
                process_batch.delay(batch)
            if _active_versions(pipeline.engine) == 0:
                break
        states = _states(pipeline.engine)
        report = compute(pipeline.source(), pipeline.engine, facility_code=settings.payload.facility_code,
                         start=plan.since, end=until + timedelta(days=1), group_by=GroupBy.VISIT_TYPE,
                         calendar=DeadlineCalendar(settings.deadlines), now=datetime.now(UTC))  # fmt: skip
        with pipeline.engine.connect() as conn:
            chain = audit.verify_chain(conn)
        stats = httpx.get(f"{simulator.url}/_sim/stats", timeout=10).json()
        pipeline.close()
        if plan.keep:
            progress("--keep: everything stays up; press Ctrl-C to stop")
            try:
                while True:
                    time.sleep(3600)
            except KeyboardInterrupt:
                pass
    return DemoOutcome(coverage=report, states=states, audit_ok=chain.ok, audit_rows=chain.rows_checked,
                       simulator_stats=stats, seeded=seeded.total, bad_expected=seeded.bad,
                       elapsed_s=time.monotonic() - started, settings=settings)  # fmt: skip
