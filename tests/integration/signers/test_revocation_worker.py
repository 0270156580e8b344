"""The worker as wired by ``worker.bootstrap``, on PostgreSQL, with a real file key whose certificate names a
test CA's OCSP responder and CRL on 127.0.0.1: a revoked certificate signs and sends nothing and raises the
alert; a good one costs one OCSP request however many files are signed; "require" stops on an unknown status.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509

from adapters.signers.revocation import CertificateRevokedError, CertificateStatusUnknownError
from tests.integration.signers.worker_support import MakeWorker
from tests.unit.signers.revocation_support import OCSP_PATH, CaServices, key_naming
from worker.ledger.states import State
from worker.monitoring import alert_machine


def test_revoked_certificate_signs_and_sends_nothing_and_raises_the_alert(
    make_worker: MakeWorker, ca_services: CaServices, tmp_path: Path
) -> None:
    files = key_naming(ca_services, tmp_path / "pki")
    ca_services.revoke(files.hospital.certificate, x509.ReasonFlags.key_compromise, at=ca_services.clock.now)
    worker = make_worker(files)
    with pytest.raises(CertificateRevokedError, match="keyCompromise"):
        worker.run("1001", "1002")
    assert worker.gateway.calls == []
    assert worker.kept_files() == 0
    assert worker.states() == {State.BUILT}  # built, never signed: picked up again once the key is replaced

    transitions = alert_machine.evaluate_and_notify(
        worker.pipeline.engine, worker.pipeline.settings, [], datetime.now(UTC) + timedelta(minutes=1)
    )
    certificate_alerts = [
        (t.condition, t.firing) for t in transitions if t.condition.startswith("certificate")
    ]
    assert certificate_alerts == [("certificate_revoked", True)]
    assert ca_services.requests[OCSP_PATH] == 1  # the alert check reused the worker's answer


def test_good_certificate_costs_one_ocsp_request_for_many_files(
    make_worker: MakeWorker, ca_services: CaServices, tmp_path: Path
) -> None:
    worker = make_worker(key_naming(ca_services, tmp_path / "pki"))
    worker.run(*(str(2000 + n) for n in range(5)))
    worker.run(*(str(3000 + n) for n in range(5)))  # the next batch
    assert worker.states() == {State.ACCEPTED}
    assert len(worker.gateway.calls) == worker.kept_files() == 10
    assert ca_services.requests == {OCSP_PATH: 1}


@pytest.mark.parametrize("policy", ["warn", "require"])
def test_unreachable_ca_signs_under_warn_and_stops_under_require(
    make_worker: MakeWorker, ca_services: CaServices, tmp_path: Path, policy: str
) -> None:
    worker = make_worker(key_naming(ca_services, tmp_path / "pki", reachable=False), revocation=policy)
    if policy == "warn":
        worker.run("4001")
        assert worker.states() == {State.ACCEPTED}
        return
    with pytest.raises(CertificateStatusUnknownError):
        worker.run("4001")
    assert worker.gateway.calls == []
    assert worker.states() == {State.BUILT}
