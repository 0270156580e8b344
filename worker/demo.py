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
from collections.abc import Callable
from contextlib import ExitStack, suppress
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from schemas.domain.values import VIETNAM_TZ
from worker.bootstrap import build_pipeline
from worker.celery_app import (
    BACKFILL_QUEUE,
    DISCOVERY_QUEUE,
    SUBMISSION_QUEUE,
    create_celery,
    queued_messages,
)
from worker.config import load_settings
from worker.ledger import audit, migrate, queries
from worker.ledger import repository as repo
from worker.ledger.states import State
from worker.pipeline import discovery
from worker.reporting.coverage import CoverageReport, GroupBy, compute
from worker.reporting.deadlines import DeadlineCalendar

DEMO_FAULTS: dict[str, Any] = {
    "seed": 7,
    "http_5xx": 0.05,
    "timeout": 0.02,
    "lost_response": 0.03,
    "timeout_s": 3.0,
    "token_storm": 0.01,
}


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
    seed: int = 2026
    #: Extra settings (section -> key -> value) written into the generated config, e.g. a PostgreSQL ledger.
    settings: dict[str, dict[str, Any]] = field(default_factory=dict)


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


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(item) for item in value) + "]"
    return json.dumps(str(value))


def render_config(sections: dict[str, dict[str, Any]], top: dict[str, Any]) -> str:
    lines = [f"{key} = {_toml_value(value)}" for key, value in top.items()]
    for name, values in sections.items():
        lines.append(f"[{name}]")
        lines.extend(f"{key} = {_toml_value(value)}" for key, value in values.items())
    return "\n".join(lines) + "\n"


class DemoStack:
    """Everything the demo runs, as one context manager; e2e and chaos tests drive it step by step."""

    def __init__(self, plan: DemoPlan, progress: Callable[[str], None] = print) -> None:
        self.plan = plan
        self.progress = progress
        self.directory = plan.directory.resolve()
        self._stack = ExitStack()
        self.workers: list[subprocess.Popen[bytes]] = []
        self.started = time.monotonic()

    # -- lifecycle -------------------------------------------------------------------------------------
    def __enter__(self) -> DemoStack:
        try:
            self._start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        self.stop_workers()
        if getattr(self, "pipeline", None) is not None:
            self.pipeline.close()
        self._stack.close()

    def _start(self) -> None:
        from adapters.gateway.simulator.process import spawn_simulator  # noqa: PLC0415  # demo-only tooling
        from adapters.his.demo.seed import seed_demo_his  # noqa: PLC0415  # demo-only tooling
        from adapters.signers.keyfiles import load_key_material  # noqa: PLC0415  # demo-only tooling
        from adapters.signers.reference_signer.server import start_reference_server  # noqa: PLC0415  # demo-only
        from adapters.signers.testpki import create_test_pki  # noqa: PLC0415  # demo-only tooling

        if self.directory.exists():
            shutil.rmtree(self.directory)
        self.directory.mkdir(parents=True)
        self.progress("generating a throwaway test CA and hospital certificate")
        self.pki = create_test_pki(self.directory / "pki")
        token = secrets.token_urlsafe(24)
        material = load_key_material(self.pki.pkcs12, passphrase=self.pki.passphrase)
        self.signer = self._stack.enter_context(start_reference_server(material, token))
        self.progress(f"reference remote signer on {self.signer.url}")
        faults = self.directory / "faults.json"
        faults.write_text(json.dumps(self.plan.faults), encoding="utf-8")
        self.simulator = self._stack.enter_context(
            spawn_simulator(
                trust_store=self.pki.ca_certificate,
                faults_file=faults,
                state_dir=self.directory / "sim",
                startup_timeout_s=90,
            )
        )
        described = ", ".join(f"{k}={v}" for k, v in self.plan.faults.items() if k != "seed") or "none"
        self.progress(f"gateway simulator on {self.simulator.url} (faults: {described})")
        self.config = self._write_config(token)
        previous = os.environ.get("VNEID_CONFIG")
        self._stack.callback(_restore_env, "VNEID_CONFIG", previous)
        os.environ["VNEID_CONFIG"] = str(self.config)
        self.settings = load_settings(self.config)
        self.until = datetime.now(VIETNAM_TZ).date()
        self.seeded = seed_demo_his(
            self.settings.his_url,
            encounters=self.plan.encounters,
            bad_share=self.plan.bad_share,
            since=self.plan.since,
            until=self.until,
            random_seed=self.plan.seed,
        )
        self.progress(
            f"demo HIS seeded: {self.seeded.total} encounters since {self.plan.since}, "
            f"{self.seeded.bad} deliberately bad"
        )
        self.pipeline = build_pipeline(self.settings)
        migrate.upgrade(self.pipeline.engine)
        self.celery = create_celery(self.settings)
        self._stack.callback(self.celery.close)

    def _write_config(self, token: str) -> Path:
        directory = self.directory
        sections: dict[str, dict[str, Any]] = {
            "his": {"adapter": "demo", "url": f"sqlite:///{directory / 'demo-his.sqlite3'}"},
            "ledger": {"database_url": f"sqlite:///{directory / 'ledger.sqlite3'}"},
            "broker": {"url": f"sqla+sqlite:///{directory / 'broker.sqlite3'}"},
            "signer": {
                "source": "remote",
                "remote_url": self.signer.url,
                "remote_token": token,
                "trust_store": str(self.pki.ca_certificate),
                "verify_before_send": True,
            },
            "destinations.bhxh": {"base_url": self.simulator.url, "timeout_s": 2.0},
            "delivery": {
                "batch_size": 20,
                "stuck_after_s": 15,
                "backoff_base_s": 1.0,
                "backoff_cap_s": 4.0,
                "max_attempts": 15,
            },
            "logging": {"level": "WARNING", "format": "json"},
        }
        for name, values in self.plan.settings.items():
            sections.setdefault(name, {}).update(values)
        path = directory / "config.toml"
        path.write_text(render_config(sections, {"data_dir": str(directory)}), encoding="utf-8")
        return path

    # -- workers ---------------------------------------------------------------------------------------
    def start_worker(self) -> subprocess.Popen[bytes]:
        index = len(self.workers)
        log = (self.directory / f"worker{index}.log").open("ab")
        process = subprocess.Popen(  # noqa: S603  # our own interpreter and CLI
            worker_command_line(self.config, f"demo{index}-{os.getpid()}@%h"),
            env=dict(os.environ, VNEID_CONFIG=str(self.config)),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        self.workers.append(process)
        return process

    def declare_queues(self) -> None:
        """Create the queues before any worker starts: workers racing to create them on the embedded SQLite
        broker hit kombu's UNIQUE(kombu_queue.name) and die."""
        with self.celery.connection_for_write() as connection:
            channel = connection.default_channel
            for name in (SUBMISSION_QUEUE, DISCOVERY_QUEUE, BACKFILL_QUEUE):
                self.celery.amqp.queues.select_add(name)
                self.celery.amqp.queues[name].bind(channel).declare()

    def start_workers(self, count: int) -> None:
        self.declare_queues()
        for _ in range(count):
            self.start_worker()
        self.progress(f"{count} Celery worker process(es) on {self.settings.broker_url.split(':', 1)[0]}")

    def kill_worker(self, index: int, sig: int = signal.SIGKILL) -> None:
        """Kill a worker's whole process group (main process and its prefork child)."""
        process = self.workers[index]
        if process.poll() is None:
            for pid in [*_children(process.pid), process.pid]:
                with suppress(ProcessLookupError):
                    os.kill(pid, sig)
            process.wait(30)

    def stop_workers(self) -> None:
        for process in self.workers:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 15
        for process in self.workers:
            try:
                process.wait(max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    # -- delivery --------------------------------------------------------------------------------------
    def send(self, batch: list[int]) -> None:
        """Hand a batch to the workers through this stack's own broker (not the module-level app's)."""
        with self.pipeline.engine.begin() as conn:
            repo.mark_enqueued(conn, batch)
        self.celery.send_task("vneid.process_batch", args=(batch,))

    def kickoff(self) -> int:
        found = discovery.discover(self.pipeline)
        for batch in discovery.chunked(found.version_ids, self.settings.delivery.batch_size):
            self.send(batch)
        self.progress(f"discovered {found.seen} completed encounters; delivering…")
        return found.seen

    def active_versions(self) -> int:
        with self.pipeline.engine.connect() as conn:
            return queries.active_version_count(conn)

    def dispatch_due(self) -> int:
        """The beat's job: hand due work (including what lost messages left behind) to the workers."""
        batches = discovery.due_batches(self.pipeline, queued_messages=queued_messages(self.celery))
        for batch in batches:
            self.celery.send_task("vneid.process_batch", args=(batch,))
        return len(batches)

    def deliver_until_done(
        self, timeout_s: float, *, tick: Callable[[int], None] | None = None, respawn: bool = False
    ) -> bool:
        """Dispatch every second until no version is active; ``tick(n)`` lets chaos tests interfere."""
        deadline = time.monotonic() + timeout_s
        round_number = 0
        while time.monotonic() < deadline:
            time.sleep(1.0)
            round_number += 1
            for index, process in enumerate(self.workers):
                if process.poll() is not None:
                    if not respawn:
                        raise RuntimeError(f"worker {index} exited; see {self.directory}/worker{index}.log")
                    self.workers[index] = self._respawn(index)
            if tick is not None:
                tick(round_number)
            with suppress(Exception):  # a broker or ledger outage in a chaos test: try again next round
                self.dispatch_due()
            with suppress(Exception):
                if self.active_versions() == 0:
                    return True
        return False

    def _respawn(self, index: int) -> subprocess.Popen[bytes]:
        process = self.start_worker()
        self.workers.pop()
        return process

    def simulator_stats(self) -> dict[str, Any]:
        return dict(httpx.get(f"{self.simulator.url}/_sim/stats", timeout=10).json())

    def outcome(self) -> DemoOutcome:
        with self.pipeline.engine.connect() as conn:
            states = queries.counts_by_state(conn)
            chain = audit.verify_chain(conn)
        report = compute(
            self.pipeline.source(),
            self.pipeline.engine,
            facility_code=self.settings.payload.facility_code,
            start=self.plan.since,
            end=self.until + timedelta(days=1),
            group_by=GroupBy.VISIT_TYPE,
            calendar=DeadlineCalendar(self.settings.deadlines),
            now=datetime.now(UTC),
        )
        return DemoOutcome(
            coverage=report,
            states=states,
            audit_ok=chain.ok,
            audit_rows=chain.rows_checked,
            simulator_stats=self.simulator_stats(),
            seeded=self.seeded.total,
            bad_expected=self.seeded.bad,
            elapsed_s=time.monotonic() - self.started,
        )


def worker_command_line(
    config: Path, hostname: str, queues: tuple[str, ...] = (SUBMISSION_QUEUE, DISCOVERY_QUEUE, BACKFILL_QUEUE)
) -> list[str]:
    """One single-process prefork worker consuming ``queues``, as the demo, tests and benchmarks start it."""
    queue_args = [arg for queue in queues for arg in ("-Q", queue)]
    return [
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
        *queue_args,
        "--hostname",
        hostname,
    ]


def _restore_env(name: str, value: str | None) -> None:
    if value is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = value


def _children(pid: int) -> list[int]:
    """Child pids from /proc (Linux), so a kill -9 also takes the prefork pool child."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with suppress(OSError):
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                if int(fields[1]) == pid:
                    found.append(int(entry.name))
    return found


def run_demo(plan: DemoPlan, progress: Callable[[str], None] = print) -> DemoOutcome:
    """Run the demo end to end; every process and thread it starts is stopped before it returns."""
    with DemoStack(plan, progress) as stack:
        stack.start_workers(plan.workers)
        stack.kickoff()
        if not stack.deliver_until_done(plan.timeout_s):
            progress(f"timed out after {plan.timeout_s:.0f} s with work still active")
        outcome = stack.outcome()
        if plan.keep:
            flower = subprocess.Popen(  # noqa: S603  # our own interpreter and CLI
                [sys.executable, "-m", "worker.cli.app", "--config", str(stack.config), "flower"],
                env=dict(os.environ, VNEID_CONFIG=str(stack.config)),
            )
            progress(
                f"--keep: Flower on http://127.0.0.1:{stack.settings.flower.port}, simulator on "
                f"{stack.simulator.url}/_sim/stats, config {stack.config}; press Ctrl-C to stop"
            )
            with suppress(KeyboardInterrupt):
                while True:
                    time.sleep(3600)
            flower.terminate()
            flower.wait(15)
    return outcome
