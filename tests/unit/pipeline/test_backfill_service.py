"""The backfill service owns its pipeline: closed however the run ends (here: refused on an old schema)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from cryptography import x509

from tests.fakes import FakeGateway, FakeSigner, FakeSource
from tests.unit.pipeline.conftest import fake_pipeline
from worker.config import load_settings
from worker.ledger.db import create_ledger_engine
from worker.pipeline import backfill


def test_a_refused_backfill_still_closes_its_pipeline(tmp_path: Path, certificate: x509.Certificate) -> None:
    engine = create_ledger_engine(f"sqlite:///{tmp_path / 'never-migrated.sqlite3'}")
    pipeline = fake_pipeline(engine, load_settings(), FakeSource(), FakeSigner(certificate), FakeGateway())
    closed: list[bool] = []
    pipeline.close = lambda: closed.append(True)  # type: ignore[method-assign]
    request = backfill.BackfillRequest(since=date(2026, 3, 1), until=date(2026, 3, 2))
    with pytest.raises(backfill.LedgerNotMigratedError):
        backfill.run_backfill(pipeline, request, handover=None, waiting_in_broker=None)
    assert closed == [True]
