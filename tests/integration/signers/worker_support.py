"""The worker as wired by ``worker.bootstrap`` (signer and revocation guard included) on the test's PostgreSQL
ledger, for the revocation tests: only the HIS and the gateway are stand-ins. ``make_worker`` builds one per
key (the fixture, re-exported by the conftest); ``cli`` runs ``vneid-sync`` on a worker's ledger and key ring as
an inspector would."""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from adapters.his.demo.synthetic import Kind
from adapters.signers.testpki import TestPkiFiles
from tests.factories import encounter
from tests.fakes import FakeGateway, FakeSource
from tests.unit.signers.support import file_settings
from worker.bootstrap import build_pipeline
from worker.cli.app import main
from worker.config import load_settings
from worker.ledger.schema import audit_log, encounters, evidence, revocation_answers
from worker.pipeline import delivery, discovery
from worker.pipeline.context import Pipeline

T0 = datetime(2026, 3, 4, 12, 0, tzinfo=UTC)


@dataclasses.dataclass
class SignedEvent:
    """What the ledger kept about the signing of one version: its ``signed`` audit event."""

    ma_lk: str
    version_id: int
    detail: dict[str, Any]

    @property
    def revocation(self) -> dict[str, Any]:
        record: dict[str, Any] = self.detail["revocation"]
        return record


@dataclasses.dataclass
class Worker:
    pipeline: Pipeline
    source: FakeSource
    gateway: FakeGateway
    data_dir: Path  # the evidence key is generated there

    def run(self, *his_keys: str) -> list[int]:
        """Discover, build, sign and send these visits; returns their version ids."""
        for key in his_keys:
            self.source.put(encounter(Kind.OUTPATIENT_EXAM, his_key=key), T0)
        found = discovery.discover(self.pipeline)
        delivery.process_versions(self.pipeline, found.version_ids, owner="test")
        return found.version_ids

    def sign(self, *his_keys: str) -> list[SignedEvent]:
        """``run``, then the ``signed`` events of these visits' versions, in chain order."""
        version_ids = self.run(*his_keys)
        with self.pipeline.engine.connect() as conn:
            rows = conn.execute(
                sa.select(audit_log.c.ma_lk, audit_log.c.version_id, audit_log.c.detail)
                .where(audit_log.c.event == "signed", audit_log.c.version_id.in_(version_ids))
                .order_by(audit_log.c.id)
            ).all()
        return [SignedEvent(row.ma_lk, row.version_id, json.loads(row.detail)) for row in rows]

    def states(self) -> set[str]:
        with self.pipeline.engine.connect() as conn:
            return {str(state) for state in conn.execute(sa.select(encounters.c.state)).scalars()}

    def kept_files(self) -> int:
        with self.pipeline.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(evidence)).scalar_one())

    def kept_answers(self) -> list[str]:
        """The SHA-256 of every CA answer kept in ``revocation_answers``."""
        with self.pipeline.engine.connect() as conn:
            return list(conn.execute(sa.select(revocation_answers.c.sha256)).scalars())


MakeWorker = Callable[..., Worker]


@pytest.fixture
def make_worker(pg_ledger: Engine, tmp_path: Path) -> Iterator[MakeWorker]:
    """``make_worker(files, name="data", **signer)``: a worker signing with ``files`` (settings overridden by
    ``signer``), its data directory ``tmp_path / name``; workers of one test share the ledger."""
    built: list[Pipeline] = []

    def make(files: TestPkiFiles, name: str = "data", **signer: Any) -> Worker:
        data_dir = tmp_path / name
        settings = load_settings(
            data_dir=data_dir,
            ledger={"database_url": pg_ledger.url.render_as_string(hide_password=False)},
            signer=file_settings(files, **signer),
            delivery={"submit_concurrency": 1},
        )
        source, gateway = FakeSource(), FakeGateway()
        pipeline = dataclasses.replace(
            build_pipeline(settings),
            source_factory=lambda: source,
            gateways_factory=lambda: {"bhxh": gateway},
        )
        built.append(pipeline)
        return Worker(pipeline, source, gateway, data_dir)

    yield make
    for pipeline in built:
        pipeline.engine.dispose()


Cli = Callable[..., tuple[int, str, str]]


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Cli:
    """``cli(worker, *args)``: ``vneid-sync *args`` through its entry point on the worker's ledger and key
    ring, with no other ``VNEID_`` setting; returns (exit code, stdout, stderr)."""

    def run(worker: Worker, *args: str) -> tuple[int, str, str]:
        for name in list(os.environ):
            if name.startswith("VNEID_"):
                monkeypatch.delenv(name)
        monkeypatch.setenv("VNEID_DATA_DIR", str(worker.data_dir))
        monkeypatch.setenv(
            "VNEID_LEDGER__DATABASE_URL", worker.pipeline.engine.url.render_as_string(hide_password=False)
        )
        capsys.readouterr()
        code = main(list(args))
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run
