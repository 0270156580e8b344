"""The CA's signed answer each signed version relied on is kept in the ledger and can be handed to an inspector
(DOMAIN.md §10.5, NĐ 23/2025 Đ15–Đ17): the worker as wired by ``worker.bootstrap`` on PostgreSQL, a real file
key whose certificate names a test CA's OCSP responder and CRL on 127.0.0.1, and ``vneid-sync evidence show``
/ ``evidence revocation-answer`` / ``audit verify`` through the CLI entry point. The exported file is the exact
bytes the CA served; ``cryptography`` and ``openssl`` read it and verify the CA's signature on it."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from cryptography import x509
from cryptography.x509 import ocsp

from adapters.signers.testpki import ocsp_response
from schemas.ports import EncounterRef
from tests.integration.ledger.append_only import append_only_lifted
from tests.integration.signers.worker_support import T0, Cli, MakeWorker, SignedEvent, Worker
from tests.unit.signers.revocation_support import (
    CRL_PATH,
    OCSP_PATH,
    CaServices,
    key_naming,
    ocsp_request_for_serial,
)
from tests.unit.signers.served_answers import Served
from worker.ledger import repository as repo
from worker.ledger.revocation_answers import RevocationAnswer
from worker.ledger.schema import audit_log, revocation_answers


def revocation_of(signed: list[SignedEvent]) -> dict[str, dict[str, Any]]:
    """MA_LK → the revocation part of its signed event."""
    return {event.ma_lk: event.revocation for event in signed}


def openssl() -> str:
    """The openssl binary: an inspector's tool, so the export is proven against it, never skipped."""
    path = shutil.which("openssl")
    if path is None:
        pytest.fail("openssl is not on PATH (apt-get install openssl): the export must be checked with it")
    return path


def run_openssl(*args: str) -> str:
    done = subprocess.run([openssl(), *args], capture_output=True, text=True, check=False)
    assert done.returncode == 0, f"openssl {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout + done.stderr


def test_the_exported_ocsp_response_is_the_one_the_responder_served(
    make_worker: MakeWorker, ca_services: CaServices, served: Served, cli: Cli, tmp_path: Path
) -> None:
    files = key_naming(ca_services, tmp_path / "pki")
    worker = make_worker(files)
    first = revocation_of(worker.sign("5101", "5102", "5103"))
    second = revocation_of(worker.sign("5104", "5105"))  # the next batch: the cached answer, not asked again
    assert ca_services.requests == {OCSP_PATH: 1}
    [der] = served.ocsp
    sha256 = hashlib.sha256(der).hexdigest()
    assert {record["answer_sha256"] for record in (first | second).values()} == {sha256}
    assert worker.kept_answers() == [sha256]  # one row for five versions and two batches

    ma_lk = next(iter(first))
    code, out, _ = cli(worker, "evidence", "show", ma_lk, "--out", str(tmp_path / "signed.xml"))
    assert code == 0
    assert f"CA's signed answer: OCSP response sha256 {sha256} ({len(der)} bytes)" in out
    assert f"vneid-sync evidence revocation-answer {sha256} --out FILE" in out
    # The export line names the time this version was signed and its certificate: run as printed, it judges
    # the answer at that time.
    [printed] = [line for line in out.splitlines() if "export: vneid-sync evidence revocation-answer" in line]
    words = printed.split("export: vneid-sync ", 1)[1].replace("FILE", str(tmp_path / "judged.der")).split()
    assert words[-2:] == ["--serial", f"{files.hospital.certificate.serial_number:x}"]
    code, judged, _ = cli(worker, *words)
    assert code == 0
    assert " (--at): valid at the time of use: thisUpdate " in judged

    exported = tmp_path / "answer.der"
    code, out, err = cli(worker, "evidence", "revocation-answer", sha256, "--out", str(exported))
    assert (code, err) == (0, "")
    assert f"OCSP response from {ca_services.ocsp_url}" in out
    assert exported.read_bytes() == der
    response = ocsp.load_der_ocsp_response(exported.read_bytes())
    assert response.response_status is ocsp.OCSPResponseStatus.SUCCESSFUL
    assert response.serial_number == files.hospital.certificate.serial_number
    assert response.certificate_status is ocsp.OCSPCertStatus.GOOD
    assert response.this_update_utc.isoformat() == first[ma_lk]["this_update"]

    text = run_openssl("ocsp", "-respin", str(exported), "-text", "-noverify")
    assert "OCSP Response Status: successful" in text
    assert "Cert Status: good" in text
    serial = f"0x{files.hospital.certificate.serial_number:x}"  # cert_serial of the signed event (the docs)
    ca = str(files.ca_certificate)
    # -no_nonce: the nonce was the worker's request's; openssl would compare it with one of its own.
    checked = run_openssl(
        "ocsp", "-respin", str(exported), "-issuer", ca, "-CAfile", ca, "-serial", serial, "-no_nonce"
    )
    assert "Response verify OK" in checked  # the CA's signature, checked by the inspector's own tool
    assert f"{serial}: good" in checked

    code, _, err = cli(worker, "evidence", "revocation-answer", sha256, "--out", str(exported))
    assert code == 1
    assert "exists: evidence is never written over a file" in err


def test_the_exported_crl_is_the_one_the_ca_published(
    make_worker: MakeWorker, ca_services: CaServices, served: Served, cli: Cli, tmp_path: Path
) -> None:
    ca_services.ocsp_http_status = 503  # the responder is down: the status comes from the CRL
    files = key_naming(ca_services, tmp_path / "pki")
    worker = make_worker(files)
    [record] = revocation_of(worker.sign("5201")).values()
    [der] = served.crl
    assert (record["source"], record["answer_sha256"]) == ("crl", hashlib.sha256(der).hexdigest())
    assert ca_services.requests[CRL_PATH] == 1

    exported = tmp_path / "ca.crl"
    code, out, _ = cli(
        worker, "evidence", "revocation-answer", record["answer_sha256"], "--out", str(exported)
    )
    assert code == 0
    assert f"read it: openssl crl -inform DER -in {exported} -text -noout" in out
    assert exported.read_bytes() == der
    assert x509.load_der_x509_crl(der).is_signature_valid(files.ca.certificate.public_key())  # type: ignore[arg-type]
    ca = str(files.ca_certificate)
    assert "verify OK" in run_openssl("crl", "-inform", "DER", "-in", str(exported), "-CAfile", ca, "-noout")


def test_nothing_to_export_when_no_source_answered_or_the_hash_is_unknown(
    make_worker: MakeWorker, ca_services: CaServices, cli: Cli, tmp_path: Path
) -> None:
    worker = make_worker(key_naming(ca_services, tmp_path / "down", reachable=False))
    [(ma_lk, record)] = revocation_of(worker.sign("5301")).items()
    assert record["state"] == "unknown"
    assert "answer_sha256" not in record
    assert worker.kept_answers() == []
    code, out, _ = cli(worker, "evidence", "show", ma_lk, "--out", str(tmp_path / "signed.xml"))
    assert code == 0
    assert "revocation status when signed: unknown" in out
    assert "CA's signed answer" not in out  # nothing was answered, so nothing is claimed to be kept

    code, _, err = cli(worker, "evidence", "revocation-answer", "ab" * 32, "--out", str(tmp_path / "x.der"))
    assert (code, err.strip()) == (1, f"error: no revocation answer with SHA-256 {'ab' * 32} in the ledger")
    code, _, err = cli(
        worker, "evidence", "revocation-answer", "not-a-hash", "--out", str(tmp_path / "y.der")
    )
    assert code == 1
    assert "is not a SHA-256" in err
    assert not (tmp_path / "x.der").exists()


def signed_with(worker: Worker, his_key: str, answer: RevocationAnswer | None) -> repo.WorkItem:
    """A version recorded as signed under a good OCSP status, through the repository."""
    document = f"<GIAMDINHHS><MA_LK>{his_key}</MA_LK></GIAMDINHHS>".encode()
    digest = hashlib.sha256(document).hexdigest()
    with worker.pipeline.engine.begin() as conn:
        ref = EncounterRef(his_key=his_key, completed_at=T0, changed_at=T0)
        [item] = repo.read_items(conn, repo.register_refs(conn, [ref], facility_code="79999").version_ids)
        repo.record_built(conn, item, content_hash=digest, tables=["XML1"], warnings=[])
        [item] = repo.read_items(conn, [item.version_id])
        status: dict[str, object] = {
            "policy": "warn",
            "state": "good",
            "source": "ocsp",
            "url": "http://ca/ocsp",
        }
        signed = repo.Signed(item, document, digest, revocation=status, revocation_answer=answer)
        repo.record_signed_many(conn, [signed], cert_serial="ab", keys=worker.pipeline.evidence_keys)
    return item


def test_show_and_audit_verify_say_when_the_answer_was_not_kept_or_has_gone_missing(
    make_worker: MakeWorker, ca_services: CaServices, cli: Cli, tmp_path: Path
) -> None:
    worker = make_worker(key_naming(ca_services, tmp_path / "pki"))
    before = signed_with(worker, "5401", None)  # as every version signed before revision 0004
    # A real answer about the certificate the signed event names ("ab"), holding when it is recorded:
    # `audit verify` judges it at that time.
    now, until = ca_services.clock.now, ca_services.clock.now + timedelta(days=1)
    request = ocsp_request_for_serial(ca_services.ca.certificate, 0xAB)
    der = ocsp_response(request, signer=ca_services.ca, this_update=now, next_update=until)
    answer = RevocationAnswer(sha256=hashlib.sha256(der).hexdigest(), kind="ocsp", der=der,
                              url="http://ca/ocsp", this_update=now, next_update=until)  # fmt: skip
    lost = signed_with(worker, "5402", answer)
    code, out, _ = cli(worker, "audit", "verify")
    assert code == 0
    assert "revocation answers intact: 1 kept, named by 1 signed event" in out
    with worker.pipeline.engine.begin() as conn, append_only_lifted(conn, "revocation_answers"):
        conn.execute(sa.delete(revocation_answers))  # a table restored from an older dump, say
    code, out, _ = cli(worker, "evidence", "show", before.ma_lk, "--out", str(tmp_path / "before.xml"))
    assert code == 0
    assert "CA's signed answer: not kept (signed before revocation answers were kept, revision 0004)" in out
    code, out, _ = cli(worker, "evidence", "show", lost.ma_lk, "--out", str(tmp_path / "lost.xml"))
    assert code == 0
    assert f"CA's signed answer sha256 {answer.sha256}: MISSING from the ledger" in out

    with worker.pipeline.engine.connect() as conn:
        [event_id] = conn.execute(
            sa.select(audit_log.c.id).where(
                audit_log.c.event == "signed", audit_log.c.version_id == lost.version_id
            )
        ).scalars()
        rows = conn.execute(sa.select(sa.func.count()).select_from(audit_log)).scalar_one()
    code, out, err = cli(worker, "audit", "verify")
    assert (code, out) == (1, "")
    assert err.splitlines() == [
        f"revocation answer {answer.sha256} MISSING from the ledger: named by 1 signed event: "
        f"event {event_id} (version {lost.version_id})",
        "error: 1 of 1 revocation answers named by signed events are missing or altered "
        f"(audit chain intact: {rows} rows)",
    ]
