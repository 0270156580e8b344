"""The services a pipeline benchmark needs, started on loopback and stopped afterwards.

``BenchStack`` creates a throwaway test PKI (RSA-2048), a scratch demo HIS and a scratch ledger (PostgreSQL;
SQLite files when PostgreSQL is unreachable), seeds the HIS, spawns the gateway simulator as a child process
(in-memory record, no faults, signatures required but not verified: the receiving side's cost stays out of the
way) and wires ``worker.bootstrap.build_pipeline`` with the file signer. The gateway's client-side rate limit
is lifted (``rate_per_s``): it is a politeness setting towards BHXH, not work, and would cap the wall clock.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
from contextlib import ExitStack
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa

from adapters.gateway.simulator.process import spawn_simulator
from adapters.his.demo.seed import seed_demo_his
from adapters.signers.testpki import create_test_pki
from bench.common import FACILITY, scratch_database
from bench.replicate import replicate_demo_his
from worker.bootstrap import build_pipeline
from worker.config import Settings
from worker.ledger import migrate
from worker.ledger.schema import metadata as ledger_metadata
from worker.logging import configure_logging
from worker.pipeline.context import Pipeline

SEED_SINCE = date(2026, 1, 1)
SEED_UNTIL = date(2026, 6, 30)


class BenchStack:
    """Context manager; after ``__enter__``: ``settings``, ``pki``, ``simulator``, ``his_url``, ``ledger_url``."""

    def __init__(
        self,
        *,
        encounters: int,
        bad_share: float = 0.0,
        seed: int = 2026,
        log_level: str = "INFO",
        sqlite_only: bool = False,
        keep_files: bool = True,
        simulator_checks: str = "auto",
        seed_base: int = 0,
    ) -> None:
        self.encounters = encounters
        # With seed_base > 0 (PostgreSQL only): the seeder writes that many encounters and SQL copies them up
        # to ``encounters`` (bench.replicate), minutes instead of half an hour for a million.
        self.seed_base = seed_base
        self.bad_share = bad_share
        self.seed = seed
        self.log_level = log_level
        self.sqlite_only = sqlite_only
        # The simulator keeps every accepted file in memory by default: ~20 KB each, 20 GB for a million.
        self.keep_files = keep_files
        # "minimal" skips the simulator's XSD check of every file (~6 ms of its CPU per file on a slow
        # machine): in scale runs it would be the bottleneck, and it is not what those runs measure.
        self.simulator_checks = simulator_checks
        self._stack = ExitStack()
        self.database_kind = ""
        self.seed_seconds = 0.0
        self._log_stream: Any = None

    def __enter__(self) -> BenchStack:
        try:
            self._start()
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(self, *_: object) -> None:
        self._stack.close()

    def _start(self) -> None:
        self.directory = Path(self._stack.enter_context(tempfile.TemporaryDirectory(prefix="vneid-bench-")))
        # INFO, as in production, rendered to /dev/null: the cost of logging is counted, the output is not.
        self._log_stream = self._stack.enter_context(open(os.devnull, "w", encoding="utf-8"))  # noqa: SIM115
        configure_logging(self.log_level, "json", stream=self._log_stream)
        logging.getLogger("adapters.gateway.simulator").setLevel(logging.WARNING)
        self.pki = create_test_pki(self.directory / "pki", key_size=2048, ca_key_size=2048)
        if self.sqlite_only:
            self.his_url = f"sqlite:///{self.directory / 'his.sqlite3'}"
            self.ledger_url = f"sqlite:///{self.directory / 'ledger.sqlite3'}"
            self.database_kind = "sqlite (requested)"
        else:
            self.his_url, self.database_kind = self._stack.enter_context(
                scratch_database("his", self.directory)
            )
            self.ledger_url, _ = self._stack.enter_context(scratch_database("ledger", self.directory))
        replicate = 0 < self.seed_base < self.encounters and self.his_url.startswith("postgresql")
        started = time.perf_counter()
        report = seed_demo_his(
            self.his_url,
            encounters=self.seed_base if replicate else self.encounters,
            bad_share=self.bad_share,
            since=SEED_SINCE,
            until=SEED_UNTIL,
            random_seed=self.seed,
            facility_code=FACILITY,
        )
        self.seeded_bad = report.bad
        if replicate:
            self.encounters = replicate_demo_his(self.his_url, self.encounters)
            self.seeded_bad = report.bad * (self.encounters // self.seed_base)
        self.seed_seconds = time.perf_counter() - started
        simulator_config = self.directory / "simulator.json"
        simulator_config.write_text(
            json.dumps({"keep_files": self.keep_files, "structure_check": self.simulator_checks}),
            encoding="utf-8",
        )
        self.simulator = self._stack.enter_context(
            spawn_simulator(
                config_file=simulator_config,
                state_dir=None,
                startup_timeout_s=90,
                extra_args=["--token-lifetime", "86400"],
            )
        )
        self.settings = self.make_settings()

    def make_settings(self, **changes: Any) -> Settings:
        return Settings(**self.sections(**changes))

    def sections(self, **changes: Any) -> dict[str, Any]:
        """The settings as plain data (``data_dir`` and one dict per section); ``changes`` replace sections."""
        sections: dict[str, Any] = {
            "data_dir": self.directory,
            "his": {"adapter": "demo", "url": self.his_url},
            "ledger": {"database_url": self.ledger_url},
            "signer": {"source": "file", "key_file": self.pki.pkcs12, "passphrase": self.pki.passphrase},
            "destinations": {"bhxh": {"base_url": self.simulator.url, "rate_per_s": 1e6, "timeout_s": 30.0}},
            "delivery": {"batch_size": 50},
            "logging": {"level": self.log_level, "format": "json"},
            "metrics": {"enabled": False, "worker_port": 0},
        }
        sections.update(changes)
        return sections

    def pipeline(self) -> Pipeline:
        pipeline = build_pipeline(self.settings)
        migrate.upgrade(pipeline.engine)
        return pipeline

    def reset(self, pipeline: Pipeline) -> None:
        """A fresh start for the next repeat: empty ledger, simulator record and counters cleared."""
        names = [table.name for table in reversed(ledger_metadata.sorted_tables)]
        with pipeline.engine.begin() as conn:
            if pipeline.engine.dialect.name == "postgresql":
                conn.exec_driver_sql(f"TRUNCATE {', '.join(names)} RESTART IDENTITY CASCADE")
            else:
                for name in names:
                    conn.execute(sa.text(f"DELETE FROM {name}"))
        self.reset_simulator()

    def reset_simulator(self) -> None:
        httpx.post(f"{self.simulator.url}/_sim/reset", timeout=10).raise_for_status()

    def simulator_stats(self) -> dict[str, Any]:
        """The simulator's counters; an error instead of the counters when it does not answer in time (at 1M
        stored files it took more than 10 s, and that timeout lost a whole scale run's summary)."""
        try:
            return dict(httpx.get(f"{self.simulator.url}/_sim/stats", timeout=120).json())
        except httpx.HTTPError as exc:
            return {"error": f"{type(exc).__name__}: {exc}"}

    @property
    def simulator_pid(self) -> int:
        return int(self.simulator.process.pid)
