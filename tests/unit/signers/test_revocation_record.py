"""What the revocation guard hands the audit of each signature: the status that signature was allowed on, per
thread, against a test CA served over real HTTP on 127.0.0.1 (the delivery tests show it in the ledger)."""

from __future__ import annotations

import threading
from pathlib import Path

from cryptography.hazmat.primitives import hashes

from adapters.signers.revocation import RevocationGuardedSigner, RevocationPolicy
from adapters.signers.revocation.checker import UNKNOWN_RECHECK
from tests.unit.signers import revocation_support
from tests.unit.signers.revocation_support import OCSP_PATH, UNSIGNED, CaServices
from tests.unit.signers.support import PkiSet


def guarded(
    ca_services: CaServices, pki: PkiSet, tmp_path: Path, policy: RevocationPolicy
) -> RevocationGuardedSigner:
    """A signer of a fresh certificate of the CA, behind the guard under ``policy``."""
    certificate = ca_services.issue().certificate
    return revocation_support.guarded(ca_services, pki, tmp_path / "cache", certificate, policy)


def test_no_record_before_a_signature_then_the_status_it_was_signed_under(
    ca_services: CaServices, pki: PkiSet, tmp_path: Path
) -> None:
    signer = guarded(ca_services, pki, tmp_path, RevocationPolicy.REQUIRE)
    assert signer.revocation_record() is None
    signer.sign(UNSIGNED)
    record = signer.revocation_record()
    assert record is not None
    assert record["cert_sha256"] == signer.certificate.fingerprint(hashes.SHA256()).hex()
    assert (record["policy"], record["state"], record["source"]) == ("require", "good", "ocsp")
    assert record["checked_at"] == ca_services.clock.now.isoformat()
    record["state"] = "edited"  # a caller's copy: the next record is not affected
    assert signer.revocation_record() == {**record, "state": "good"}


def test_each_thread_reads_the_status_its_own_signature_was_allowed_on(
    ca_services: CaServices, pki: PkiSet, tmp_path: Path
) -> None:
    ca_services.ocsp_http_status = ca_services.crl_http_status = (
        503  # the CA is down: unknown, signed under warn
    )
    signer = guarded(ca_services, pki, tmp_path, RevocationPolicy.WARN)
    first_signed, other_signed = threading.Event(), threading.Event()
    records: dict[str, dict[str, object] | None] = {}

    def during_outage() -> None:
        signer.sign(UNSIGNED)
        first_signed.set()
        other_signed.wait(timeout=30)  # another thread signs under a newer answer meanwhile
        records["outage"] = signer.revocation_record()

    def after_recovery() -> None:
        signer.sign(UNSIGNED)
        records["recovered"] = signer.revocation_record()
        other_signed.set()

    first = threading.Thread(target=during_outage)
    first.start()
    assert first_signed.wait(timeout=30)
    ca_services.ocsp_http_status = ca_services.crl_http_status = 200
    ca_services.clock.advance(UNKNOWN_RECHECK)  # the guard asks again: the CA is back
    second = threading.Thread(target=after_recovery)
    second.start()
    second.join()
    first.join()
    outage, recovered = records["outage"], records["recovered"]
    assert outage is not None
    assert recovered is not None
    assert (outage["state"], outage["source"]) == ("unknown", "none")
    problems = outage["problems"]
    assert isinstance(problems, list)
    assert len(problems) == 2  # OCSP and CRL, each unreachable
    assert (recovered["state"], recovered["source"]) == ("good", "ocsp")
    assert signer.revocation_record() is None  # this thread signed nothing
    assert ca_services.requests[OCSP_PATH] == 2
