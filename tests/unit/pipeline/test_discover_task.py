"""The discovery task: one at a time, and one longer than its time budget goes on in a task of its own."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from cryptography import x509
from sqlalchemy.engine import Engine

from adapters.his.demo.synthetic import Kind
from tests.factories import encounter
from tests.fakes import FakeGateway, FakeSigner, FakeSource
from tests.unit.pipeline.conftest import fake_pipeline
from worker import tasks
from worker.config import load_settings
from worker.ledger.schema import encounters
from worker.pipeline import discovery
from worker.single_instance import single_instance

T0 = datetime(2026, 3, 4, 12, 0, tzinfo=UTC)


@pytest.fixture
def in_process(
    sqlite_ledger: Engine, certificate: x509.Certificate, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[FakeSource]:
    """The worker's tasks over a fake HIS of 25 visits, pages of 10, tasks run in this process (eager)."""
    monkeypatch.setattr(discovery, "_FLUSH_EVERY", 10)
    source = FakeSource()
    for index in range(25):
        source.put(encounter(Kind.OUTPATIENT_EXAM, his_key=f"{8000 + index}"), T0 + timedelta(seconds=index))
    settings = load_settings(data_dir=tmp_path)
    monkeypatch.setattr(
        tasks,
        "_pipeline",
        fake_pipeline(sqlite_ledger, settings, source, FakeSigner(certificate), FakeGateway()),
    )
    eager = tasks.app.conf.task_always_eager
    tasks.app.conf.task_always_eager = True  # the continuation's apply_async runs here, not on a broker
    yield source
    tasks.app.conf.task_always_eager = eager


def registered(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(encounters)).scalar_one())


def test_a_discovery_past_its_budget_sends_its_own_continuation(
    in_process: FakeSource, sqlite_ledger: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tasks, "DISCOVERY_BUDGET_SHARE", 0.0)  # every task stops after its first page
    first = tasks.discover.apply().get()
    assert (first["seen"], first["continued"]) == (10, 1)
    assert registered(sqlite_ledger) == 25  # the continuations (run eagerly here) read the rest


def test_a_second_discovery_while_one_runs_is_skipped(
    in_process: FakeSource, sqlite_ledger: Engine, tmp_path: Path
) -> None:
    with single_instance(sqlite_ledger, "discovery", tmp_path):
        assert tasks.discover.apply().get()["skipped"] == 1
    assert registered(sqlite_ledger) == 0
    done = tasks.discover.apply().get()
    assert (done["seen"], done["continued"]) == (25, 0)
    assert registered(sqlite_ledger) == 25
