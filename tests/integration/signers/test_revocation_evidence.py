"""The certificate's revocation status is kept with each signed version (DOMAIN.md §10.5, NĐ 23/2025 Đ15):
the worker as wired by ``worker.bootstrap`` on PostgreSQL, a real file key whose certificate names a test CA's
OCSP responder and CRL on 127.0.0.1, and ``vneid-sync evidence show`` through the CLI entry point. The record
sits in the version's ``signed`` audit event, inside the hash chain."""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives import hashes

from adapters.signers.testpki import TestPkiFiles
from tests.integration.ledger.evidence_support import sent_version
from tests.integration.signers.worker_support import Cli, MakeWorker, SignedEvent, Worker
from tests.unit.signers.revocation_support import CRL_PATH, OCSP_PATH, CaServices, key_naming
from worker.ledger import audit


def fingerprint(files: TestPkiFiles) -> str:
    return files.hospital.certificate.fingerprint(hashes.SHA256()).hex()


def test_each_signed_version_keeps_the_ocsp_answer_it_was_signed_under(
    make_worker: MakeWorker, ca_services: CaServices, tmp_path: Path
) -> None:
    files = key_naming(ca_services, tmp_path / "pki")
    worker = make_worker(files)
    signed = worker.sign("5001", "5002", "5003")
    assert len(signed) == 3
    now = ca_services.clock.now
    for version in signed:
        assert version.detail["cert_serial"] == format(files.hospital.certificate.serial_number, "x")
        assert version.revocation == {
            "cert_sha256": fingerprint(files),
            "policy": "warn",
            "state": "good",
            "source": "ocsp",
            "url": ca_services.ocsp_url,
            "this_update": now.isoformat(),
            "next_update": (now + ca_services.ocsp_validity).isoformat(),
            "checked_at": version.revocation["checked_at"],
            # The CA's answer kept in the ledger (its bytes: test_revocation_answer_export.py).
            "answer_sha256": version.revocation["answer_sha256"],
        }
    # One answer for the batch: every version names the same fetch and the same kept answer.
    assert (
        len({(version.revocation["checked_at"], version.revocation["answer_sha256"]) for version in signed})
        == 1
    )
    assert ca_services.requests == {OCSP_PATH: 1}
    with worker.pipeline.engine.connect() as conn:
        assert audit.verify_chain(conn).ok  # the record is inside the hash chain, not beside it


def test_crl_fallback_and_unknown_under_warn_are_recorded_as_such(
    make_worker: MakeWorker, ca_services: CaServices, tmp_path: Path
) -> None:
    ca_services.ocsp_http_status = 503
    crl_files = key_naming(ca_services, tmp_path / "crl")
    [by_crl] = make_worker(crl_files, "crl-data").sign("6001")
    assert by_crl.revocation["state"] == "good"
    assert (by_crl.revocation["source"], by_crl.revocation["url"]) == ("crl", ca_services.crl_url)
    assert by_crl.revocation["next_update"] == (ca_services.clock.now + ca_services.crl_validity).isoformat()
    assert ca_services.requests[CRL_PATH] == 1

    unreachable = key_naming(ca_services, tmp_path / "down", reachable=False)
    [unknown] = make_worker(unreachable, "down-data").sign("6002")
    record = unknown.revocation
    assert (record["state"], record["source"], record["policy"]) == ("unknown", "none", "warn")
    assert "url" not in record
    assert "next_update" not in record
    assert len(record["problems"]) == 2
    assert all("unreachable" in problem for problem in record["problems"])


def test_revocation_off_records_that_nothing_was_checked(
    make_worker: MakeWorker, ca_services: CaServices, tmp_path: Path
) -> None:
    worker = make_worker(key_naming(ca_services, tmp_path / "pki"), revocation="off")
    [version] = worker.sign("7001")
    assert version.revocation == {"policy": "off", "state": "not_checked"}
    assert ca_services.requests == {}


def show(cli: Cli, worker: Worker, version: SignedEvent, out: Path) -> str:
    """``vneid-sync evidence show`` of one version, as an inspector would run it; returns what it printed."""
    code, printed, _ = cli(
        worker, "evidence", "show", version.ma_lk, "--version", str(version.version_id), "--out", str(out)
    )
    assert code == 0
    assert out.is_file()
    return printed


def test_evidence_show_prints_the_status_the_file_was_signed_under(
    make_worker: MakeWorker, ca_services: CaServices, cli: Cli, tmp_path: Path
) -> None:
    files = key_naming(ca_services, tmp_path / "pki")
    worker = make_worker(files)
    [version] = worker.sign("8001")
    assert worker.gateway.calls  # sent, then shown
    printed = show(cli, worker, version, tmp_path / "shown.xml")
    [line] = [line for line in printed.splitlines() if "revocation status when signed" in line]
    assert line.startswith(
        f"certificate serial {version.detail['cert_serial']} (SHA-256 {fingerprint(files)})"
    )
    assert f"when signed: good (OCSP {ca_services.ocsp_url}; this update " in line
    assert "signer.revocation = warn" in line

    off = make_worker(files, revocation="off")  # same ledger and evidence key, checking off
    [unchecked] = off.sign("8002")
    printed = show(cli, off, unchecked, tmp_path / "unchecked.xml")
    assert "revocation status when signed: not checked (signer.revocation = off)" in printed


def test_versions_signed_before_the_record_existed_say_so(
    make_worker: MakeWorker, ca_services: CaServices, cli: Cli, tmp_path: Path
) -> None:
    worker = make_worker(key_naming(ca_services, tmp_path / "pki"))
    # Signed through the repository without a status, as every version signed before this record existed.
    item = sent_version(worker.pipeline.engine, worker.pipeline.evidence_keys, "9001")
    printed = show(cli, worker, SignedEvent(item.ma_lk, item.version_id, {}), tmp_path / "old.xml")
    assert "certificate serial ab; revocation status when signed: not recorded" in printed
