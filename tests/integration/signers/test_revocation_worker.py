"""The worker as wired by ``worker.bootstrap``, on PostgreSQL, with a real file key whose certificate names a
test CA's OCSP responder and CRL on 127.0.0.1: a revoked certificate signs and sends nothing and raises the
alert; a good one costs one OCSP request however many files are signed; "require" stops on an unknown status.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from cryptography import x509
from sqlalchemy.engine import Engine

from adapters.signers.revocation import CertificateRevokedError, CertificateStatusUnknownError
from adapters.signers.testpki import TestPkiFiles
from tests.factories import encounter
from tests.fakes import FakeGateway, FakeSource
from tests.unit.signers.revocation_support import OCSP_PATH, CaServices, Clock, key_naming, serve_ca
from tests.unit.signers.support import PkiSet, file_settings
from worker import alerts
from worker.bootstrap import build_pipeline
from worker.config import load_settings
from worker.ledger.schema import encounters, evidence
from worker.ledger.states import State
from worker.pipeline import delivery, discovery
from worker.pipeline.context import Pipeline
from worker.synthetic import Kind

T0 = datetime(2026, 3, 4, 12, 0, tzinfo=UTC)


@pytest.fixture
def ca_services(pki: PkiSet) -> Iterator[CaServices]:
    with serve_ca(pki.ca, Clock()) as services:
        yield services


@dataclasses.dataclass
class Worker:
    pipeline: Pipeline
    source: FakeSource
    gateway: FakeGateway

    def run(self, *his_keys: str) -> list[int]:
        for key in his_keys:
            self.source.put(encounter(Kind.OUTPATIENT_EXAM, his_key=key), T0)
        found = discovery.discover(self.pipeline)
        delivery.process_versions(self.pipeline, found.version_ids, owner="test")
        return found.version_ids

    def states(self) -> set[str]:
        with self.pipeline.engine.connect() as conn:
            return {str(state) for state in conn.execute(sa.select(encounters.c.state)).scalars()}

    def kept_files(self) -> int:
        with self.pipeline.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(evidence)).scalar_one())


@pytest.fixture
def make_worker(pg_ledger: Engine, tmp_path: Path) -> Iterator[Any]:
    built: list[Pipeline] = []

    def make(files: TestPkiFiles, **signer: Any) -> Worker:
        settings = load_settings(
            data_dir=tmp_path / "data",
            ledger={"database_url": pg_ledger.url.render_as_string(hide_password=False)},
            signer=file_settings(files, **signer),
            delivery={"submit_concurrency": 1},
        )
        source, gateway = FakeSource(), FakeGateway()
        # The production wiring, signer included; only the HIS and the gateway are stand-ins.
        pipeline = dataclasses.replace(
            build_pipeline(settings),
            source_factory=lambda: source,
            gateways_factory=lambda: {"bhxh": gateway},
        )
        built.append(pipeline)
        return Worker(pipeline, source, gateway)

    yield make
    for pipeline in built:
        pipeline.engine.dispose()


def test_revoked_certificate_signs_and_sends_nothing_and_raises_the_alert(
    make_worker: Any, ca_services: CaServices, tmp_path: Path
) -> None:
    files = key_naming(ca_services, tmp_path / "pki")
    ca_services.revoke(files.hospital.certificate, x509.ReasonFlags.key_compromise, at=ca_services.clock.now)
    worker: Worker = make_worker(files)
    with pytest.raises(CertificateRevokedError, match="keyCompromise"):
        worker.run("1001", "1002")
    assert worker.gateway.calls == []
    assert worker.kept_files() == 0
    assert worker.states() == {State.BUILT}  # built, never signed: picked up again once the key is replaced

    transitions = alerts.evaluate_and_notify(
        worker.pipeline.engine, worker.pipeline.settings, [], datetime.now(UTC) + timedelta(minutes=1)
    )
    certificate_alerts = [
        (t.condition, t.firing) for t in transitions if t.condition.startswith("certificate")
    ]
    assert certificate_alerts == [("certificate_revoked", True)]
    assert ca_services.requests[OCSP_PATH] == 1  # the alert check reused the worker's answer


def test_good_certificate_costs_one_ocsp_request_for_many_files(
    make_worker: Any, ca_services: CaServices, tmp_path: Path
) -> None:
    worker: Worker = make_worker(key_naming(ca_services, tmp_path / "pki"))
    worker.run(*(str(2000 + n) for n in range(5)))
    worker.run(*(str(3000 + n) for n in range(5)))  # the next batch
    assert worker.states() == {State.ACCEPTED}
    assert len(worker.gateway.calls) == worker.kept_files() == 10
    assert ca_services.requests == {OCSP_PATH: 1}


@pytest.mark.parametrize("policy", ["warn", "require"])
def test_unreachable_ca_signs_under_warn_and_stops_under_require(
    make_worker: Any, ca_services: CaServices, tmp_path: Path, policy: str
) -> None:
    worker: Worker = make_worker(
        key_naming(ca_services, tmp_path / "pki", reachable=False), revocation=policy
    )
    if policy == "warn":
        worker.run("4001")
        assert worker.states() == {State.ACCEPTED}
        return
    with pytest.raises(CertificateStatusUnknownError):
        worker.run("4001")
    assert worker.gateway.calls == []
    assert worker.states() == {State.BUILT}
