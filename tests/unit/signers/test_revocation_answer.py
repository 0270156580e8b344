"""The CA's signed answer behind each signature's revocation status, as the guard hands it to the ledger: the
exact bytes the test CA served over real HTTP on 127.0.0.1 (OCSP, CRL fallback), the same bytes when the
status comes from the cache file after a restart or is kept after a failed refresh, DER for a PEM CRL file,
and nothing when no source answered."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509 import ocsp

from adapters.signers.revocation import RevocationSource
from tests.unit.signers.revocation_support import CRL_PATH, OCSP_PATH, UNSIGNED, CaServices, dead_url, guarded
from tests.unit.signers.served_answers import Served
from tests.unit.signers.support import PkiSet


def test_the_ocsp_response_the_signature_relied_on_is_the_one_the_ca_served(
    ca_services: CaServices, served: Served, pki: PkiSet, tmp_path: Path
) -> None:
    signer = guarded(ca_services, pki, tmp_path / "cache", ca_services.issue().certificate)
    assert signer.revocation_answer() is None  # nothing signed yet
    signer.sign(UNSIGNED)
    signer.sign(UNSIGNED)
    answer = signer.revocation_answer()
    assert answer is not None
    assert served.ocsp == [answer.der]  # one request, and the bytes kept are exactly those
    assert answer.sha256 == hashlib.sha256(answer.der).hexdigest()
    assert (answer.source, answer.url) == (RevocationSource.OCSP, ca_services.ocsp_url)
    assert answer.this_update == ca_services.clock.now
    assert answer.next_update == ca_services.clock.now + ca_services.ocsp_validity
    response = ocsp.load_der_ocsp_response(answer.der)
    assert response.serial_number == signer.certificate.serial_number
    record = signer.revocation_record()
    assert record is not None
    assert record["this_update"] == answer.this_update.isoformat()  # the status and the answer agree


def test_a_restarted_worker_keeps_the_same_answer_from_the_cache_file(
    ca_services: CaServices, served: Served, pki: PkiSet, tmp_path: Path
) -> None:
    certificate = ca_services.issue().certificate
    first = guarded(ca_services, pki, tmp_path / "cache", certificate)
    first.sign(UNSIGNED)
    before = first.revocation_answer()
    ca_services.clock.advance(timedelta(minutes=10))
    restarted = guarded(ca_services, pki, tmp_path / "cache", certificate)  # a new process: memory is empty
    restarted.sign(UNSIGNED)
    after = restarted.revocation_answer()
    assert ca_services.requests == {OCSP_PATH: 1}  # read back from the cache file, not asked again
    assert before is not None
    assert after is not None
    assert (after.sha256, after.der) == (before.sha256, served.ocsp[0])


def test_an_answer_kept_after_a_failed_refresh_is_still_the_one_relied_on(
    ca_services: CaServices, served: Served, pki: PkiSet, tmp_path: Path
) -> None:
    signer = guarded(
        ca_services, pki, tmp_path / "cache", ca_services.issue().certificate, refresh=timedelta(hours=1)
    )
    signer.sign(UNSIGNED)
    ca_services.ocsp_http_status = ca_services.crl_http_status = 503
    ca_services.clock.advance(timedelta(minutes=61))  # refresh due; the CA is down; the answer holds 1 day
    signer.sign(UNSIGNED)
    assert ca_services.requests == {OCSP_PATH: 2, CRL_PATH: 1}
    answer = signer.revocation_answer()
    assert answer is not None
    assert answer.der == served.ocsp[0]


def test_crl_fallback_keeps_the_crl_that_was_used(
    ca_services: CaServices, served: Served, pki: PkiSet, tmp_path: Path
) -> None:
    ca_services.ocsp_http_status = 503
    signer = guarded(ca_services, pki, tmp_path / "cache", ca_services.issue().certificate)
    signer.sign(UNSIGNED)
    answer = signer.revocation_answer()
    assert answer is not None
    assert (answer.source, answer.url) == (RevocationSource.CRL, ca_services.crl_url)
    assert served.crl == [answer.der]
    assert answer.next_update == ca_services.clock.now + ca_services.crl_validity


def test_a_pem_crl_file_is_kept_as_the_der_the_ca_signed(
    ca_services: CaServices, pki: PkiSet, tmp_path: Path
) -> None:
    certificate = ca_services.issue(ocsp_url=dead_url(OCSP_PATH), crl_url=dead_url(CRL_PATH)).certificate
    der = ca_services.crl()
    crl_file = tmp_path / "ca.crl.pem"
    crl_file.write_bytes(x509.load_der_x509_crl(der).public_bytes(serialization.Encoding.PEM))
    signer = guarded(ca_services, pki, tmp_path / "cache", certificate, crl_file=crl_file)
    signer.sign(UNSIGNED)
    answer = signer.revocation_answer()
    assert answer is not None
    assert (answer.source, answer.url) == (RevocationSource.CRL, str(crl_file))
    assert answer.der == der  # `openssl crl -inform DER` reads what is kept
    assert x509.load_der_x509_crl(answer.der).is_signature_valid(pki.ca.certificate.public_key())  # type: ignore[arg-type]


def test_no_answer_when_no_source_answered(ca_services: CaServices, pki: PkiSet, tmp_path: Path) -> None:
    ca_services.ocsp_http_status = ca_services.crl_http_status = 503
    signer = guarded(ca_services, pki, tmp_path / "cache", ca_services.issue().certificate)
    signer.sign(UNSIGNED)  # unknown under warn: signed, with nothing from the CA to keep
    record = signer.revocation_record()
    assert record is not None
    assert record["state"] == "unknown"
    assert signer.revocation_answer() is None
