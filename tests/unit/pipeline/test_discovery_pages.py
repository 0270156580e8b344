"""Discovery hands the versions of each committed page on at once instead of holding them all: a first
discovery of a million visits must not keep a million ids in the worker's memory."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from cryptography import x509
from sqlalchemy.engine import Engine

from adapters.his.demo.synthetic import Kind
from tests.factories import encounter
from tests.fakes import FakeGateway, FakeSigner, FakeSource
from tests.unit.pipeline.conftest import fake_pipeline
from worker.config import load_settings
from worker.ledger import repository as repo
from worker.ledger.schema import versions
from worker.pipeline import discovery

T0 = datetime(2026, 3, 4, 12, 0, tzinfo=UTC)


def test_each_committed_page_is_handed_on_and_nothing_is_kept(
    sqlite_ledger: Engine, certificate: x509.Certificate, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(discovery, "_FLUSH_EVERY", 10)
    settings = load_settings()
    source = FakeSource()
    for index in range(25):
        source.put(encounter(Kind.OUTPATIENT_EXAM, his_key=f"{5000 + index}"), T0 + timedelta(seconds=index))
    pipeline = fake_pipeline(sqlite_ledger, settings, source, FakeSigner(certificate), FakeGateway())
    pages: list[list[int]] = []

    def on_opened(version_ids: list[int]) -> None:
        # Called after the page committed: its versions and the watermark are already in the ledger.
        with sqlite_ledger.connect() as conn:
            stored = conn.execute(
                sa.select(sa.func.count()).where(versions.c.id.in_(version_ids))
            ).scalar_one()
            cursor, _ = repo.read_checkpoint(conn, discovery.WATERMARK)
        assert stored == len(version_ids)
        assert cursor is not None
        pages.append(version_ids)

    found = discovery.discover(pipeline, on_opened=on_opened)
    assert [len(page) for page in pages] == [10, 10, 5]
    assert (found.seen, found.opened, found.version_ids) == (25, 25, [])
    assert len({vid for page in pages for vid in page}) == 25
    again = discovery.discover(pipeline, on_opened=on_opened)  # nothing new: no call, nothing opened
    assert (again.opened, len(pages)) == (0, 3)


def test_a_spent_time_budget_stops_at_a_page_boundary_and_the_next_call_goes_on(
    sqlite_ledger: Engine, certificate: x509.Certificate, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(discovery, "_FLUSH_EVERY", 10)
    source = FakeSource()
    for index in range(25):
        source.put(encounter(Kind.OUTPATIENT_EXAM, his_key=f"{7000 + index}"), T0 + timedelta(seconds=index))
    pipeline = fake_pipeline(sqlite_ledger, load_settings(), source, FakeSigner(certificate), FakeGateway())
    pages: list[list[int]] = []
    runs = []
    while True:
        # budget 0: every call commits exactly one page, then stops
        found = discovery.discover(pipeline, on_opened=pages.append, budget_s=0)
        runs.append((found.seen, found.complete))
        if found.complete:
            break
    assert runs == [(10, False), (10, False), (5, True)]
    assert len({vid for page in pages for vid in page}) == 25  # every visit once, none read twice
    assert discovery.discover(pipeline, on_opened=pages.append, budget_s=0).opened == 0
