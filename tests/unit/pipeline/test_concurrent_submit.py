"""A batch keeps several gateway requests in flight; each answer lands on its own version, and an
AUTH/CONFIG answer stops new requests while those in flight finish and are recorded."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
import structlog
from cryptography import x509
from sqlalchemy.engine import Engine

from adapters.his.demo.synthetic import Kind
from schemas.ports import DocumentKind, GatewayReceipt, Outcome
from tests.factories import encounter
from tests.fakes import FakeGateway, FakeSigner, FakeSource
from tests.unit.pipeline.conftest import fake_pipeline
from worker.config import load_settings
from worker.ledger import repository as repo
from worker.ledger.schema import encounters, evidence, versions
from worker.ledger.states import State
from worker.pipeline import delivery, discovery
from worker.pipeline.context import Pipeline

T0 = datetime(2026, 3, 4, 12, 0, tzinfo=UTC)


@dataclass
class CountingGateway(FakeGateway):
    """Records how many calls are in flight at once and the log context each call saw."""

    hold_s: float = 0.05
    in_flight: int = 0
    most_in_flight: int = 0
    contexts: list[dict[str, object]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def submit(self, signed: bytes, kind: DocumentKind) -> GatewayReceipt:
        with self.lock:
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
            self.contexts.append(structlog.contextvars.get_contextvars())
        time.sleep(self.hold_s)  # a gateway answers slowly: that is why requests overlap
        with self.lock:
            self.in_flight -= 1
            return super().submit(signed, kind)


def make_pipeline(engine: Engine, cert: x509.Certificate, gateway: FakeGateway, concurrency: int) -> Pipeline:
    settings = load_settings(delivery={"submit_concurrency": concurrency, "max_attempts": 3})
    source, signer = FakeSource(), FakeSigner(cert)
    for index in range(12):
        source.put(encounter(Kind.OUTPATIENT_EXAM, his_key=f"{7100 + index}"), T0 + timedelta(seconds=index))
    return fake_pipeline(engine, settings, source, signer, gateway)


@pytest.mark.parametrize("concurrency", [1, 4])
def test_requests_overlap_and_each_receipt_lands_on_its_version(
    sqlite_ledger: Engine,
    certificate: x509.Certificate,
    concurrency: int,
) -> None:
    gateway = CountingGateway()
    pipeline = make_pipeline(sqlite_ledger, certificate, gateway, concurrency)
    found = discovery.discover(pipeline)
    structlog.contextvars.bind_contextvars(task_id="task-1")
    try:
        result = delivery.process_versions(pipeline, found.version_ids, owner="test")
    finally:
        structlog.contextvars.clear_contextvars()
    assert result.accepted == 12
    assert gateway.most_in_flight == concurrency
    with sqlite_ledger.connect() as conn:
        rows = conn.execute(
            sa.select(versions.c.id, versions.c.ma_lk, versions.c.ma_giao_dich, versions.c.signed_sha256)
            .join(evidence, evidence.c.version_id == versions.c.id)
        ).all()  # fmt: skip
        receipts = repo.receipts(conn, [row.id for row in rows], pipeline.evidence_keys)
    assert len(rows) == 12
    for row in rows:
        # The gateway numbered transactions by the bytes it got: the version's receipt is its own.
        assert gateway.received[row.signed_sha256] == row.ma_giao_dich == receipts[row.id]["maGiaoDich"]
    # Every request kept the task id and carried its own encounter id in the log context.
    assert {ctx.get("task_id") for ctx in gateway.contexts} == {"task-1"}
    assert {ctx.get("ma_lk") for ctx in gateway.contexts} == {row.ma_lk for row in rows}


@dataclass
class HaltingGateway(FakeGateway):
    """Two requests in flight together; the first gets 403 (account locked), the other is answered after."""

    both_started: threading.Barrier = field(default_factory=lambda: threading.Barrier(2, timeout=5))
    first_answered: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    sent: int = 0

    def submit(self, signed: bytes, kind: DocumentKind) -> GatewayReceipt:
        with self.lock:
            self.sent += 1
            first = self.sent == 1
        if self.sent <= 2:
            self.both_started.wait()
        if first:
            self.calls.append(signed)
            self.first_answered.set()
            return GatewayReceipt(Outcome.CONFIG, 200, "403", None, None, "locked", "x", 1.0)
        assert self.first_answered.wait(5)
        time.sleep(0.2)  # the 403 has reached the sender before this answer comes back
        return super().submit(signed, kind)


def test_a_config_error_stops_new_requests_and_keeps_the_one_in_flight(
    sqlite_ledger: Engine,
    certificate: x509.Certificate,
) -> None:
    gateway = HaltingGateway()
    pipeline = make_pipeline(sqlite_ledger, certificate, gateway, concurrency=2)
    found = discovery.discover(pipeline)
    result = delivery.process_versions(pipeline, found.version_ids, owner="test")
    assert len(gateway.calls) == 2  # the 403 and the request already in flight; nothing started after
    assert (result.accepted, result.deferred) == (1, 11)
    with sqlite_ledger.connect() as conn:
        states = conn.execute(
            sa.select(encounters.c.state, sa.func.count()).group_by(encounters.c.state)
        ).all()
        assert dict(states) == {State.ACCEPTED: 1, State.SIGNED: 11}
        assert "bhxh" in repo.stopped_destinations(conn)
