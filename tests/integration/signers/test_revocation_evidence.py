"""The certificate's revocation status is kept with each signed version (DOMAIN.md §10.5, NĐ 23/2025 Đ15):
the worker as wired by ``worker.bootstrap`` on PostgreSQL, a real file key whose certificate names a test CA's
OCSP responder and CRL on 127.0.0.1, and ``vneid-sync evidence show`` through the CLI entry point. The record
sits in the version's ``signed`` audit event, inside the hash chain."""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives import hashes
from sqlalchemy.engine import Engine

from adapters.signers.testpki import TestPkiFiles
from tests.factories import encounter
from tests.fakes import FakeGateway, FakeSource
from tests.integration.ledger.evidence_support import sent_version
from tests.unit.signers.revocation_support import CRL_PATH, OCSP_PATH, CaServices, Clock, key_naming, serve_ca
from tests.unit.signers.support import PkiSet, file_settings
from worker.bootstrap import build_pipeline
from worker.cli.app import main
from worker.config import load_settings
from worker.ledger import audit
from worker.ledger.schema import audit_log
from worker.pipeline import delivery, discovery
from worker.pipeline.context import Pipeline
from worker.synthetic import Kind

T0 = datetime(2026, 3, 4, 12, 0, tzinfo=UTC)


@dataclasses.dataclass
class Signed:
    """What the ledger kept about the signing of one version."""

    ma_lk: str
    version_id: int
    detail: dict[str, Any]

    @property
    def revocation(self) -> dict[str, Any]:
        record: dict[str, Any] = self.detail["revocation"]
        return record


@dataclasses.dataclass
class Worker:
    pipeline: Pipeline
    source: FakeSource
    gateway: FakeGateway
    data_dir: Path

    def run(self, *his_keys: str) -> list[Signed]:
        for key in his_keys:
            self.source.put(encounter(Kind.OUTPATIENT_EXAM, his_key=key), T0)
        found = discovery.discover(self.pipeline)
        delivery.process_versions(self.pipeline, found.version_ids, owner="test")
        with self.pipeline.engine.connect() as conn:
            rows = conn.execute(
                sa.select(audit_log.c.ma_lk, audit_log.c.version_id, audit_log.c.detail)
                .where(audit_log.c.event == "signed", audit_log.c.version_id.in_(found.version_ids))
                .order_by(audit_log.c.id)
            ).all()
        return [Signed(row.ma_lk, row.version_id, json.loads(row.detail)) for row in rows]


@pytest.fixture
def ca_services(pki: PkiSet) -> Iterator[CaServices]:
    with serve_ca(pki.ca, Clock()) as services:
        yield services


@pytest.fixture
def make_worker(pg_ledger: Engine, tmp_path: Path) -> Iterator[Any]:
    built: list[Pipeline] = []

    def make(files: TestPkiFiles, name: str = "data", **signer: Any) -> Worker:
        data_dir = tmp_path / name
        settings = load_settings(
            data_dir=data_dir,
            ledger={"database_url": pg_ledger.url.render_as_string(hide_password=False)},
            signer=file_settings(files, **signer),
            delivery={"submit_concurrency": 1},
        )
        source, gateway = FakeSource(), FakeGateway()
        # The production wiring, signer and its revocation guard included; the HIS and gateway are stand-ins.
        pipeline = dataclasses.replace(
            build_pipeline(settings),
            source_factory=lambda: source,
            gateways_factory=lambda: {"bhxh": gateway},
        )
        built.append(pipeline)
        return Worker(pipeline, source, gateway, data_dir)

    yield make
    for pipeline in built:
        pipeline.engine.dispose()


def fingerprint(files: TestPkiFiles) -> str:
    return files.hospital.certificate.fingerprint(hashes.SHA256()).hex()


def test_each_signed_version_keeps_the_ocsp_answer_it_was_signed_under(
    make_worker: Any, ca_services: CaServices, tmp_path: Path
) -> None:
    files = key_naming(ca_services, tmp_path / "pki")
    worker: Worker = make_worker(files)
    signed = worker.run("5001", "5002", "5003")
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
    make_worker: Any, ca_services: CaServices, tmp_path: Path
) -> None:
    ca_services.ocsp_http_status = 503
    crl_files = key_naming(ca_services, tmp_path / "crl")
    [by_crl] = make_worker(crl_files, "crl-data").run("6001")
    assert by_crl.revocation["state"] == "good"
    assert (by_crl.revocation["source"], by_crl.revocation["url"]) == ("crl", ca_services.crl_url)
    assert by_crl.revocation["next_update"] == (ca_services.clock.now + ca_services.crl_validity).isoformat()
    assert ca_services.requests[CRL_PATH] == 1

    unreachable = key_naming(ca_services, tmp_path / "down", reachable=False)
    [unknown] = make_worker(unreachable, "down-data").run("6002")
    record = unknown.revocation
    assert (record["state"], record["source"], record["policy"]) == ("unknown", "none", "warn")
    assert "url" not in record
    assert "next_update" not in record
    assert len(record["problems"]) == 2
    assert all("unreachable" in problem for problem in record["problems"])


def test_revocation_off_records_that_nothing_was_checked(
    make_worker: Any, ca_services: CaServices, tmp_path: Path
) -> None:
    worker: Worker = make_worker(key_naming(ca_services, tmp_path / "pki"), revocation="off")
    [version] = worker.run("7001")
    assert version.revocation == {"policy": "off", "state": "not_checked"}
    assert ca_services.requests == {}


def _show(worker: Worker, version: Signed, out: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """``vneid-sync evidence show`` on the worker's ledger and key ring, as an inspector would run it."""
    for name in list(os.environ):
        if name.startswith("VNEID_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("VNEID_DATA_DIR", str(worker.data_dir))  # the evidence key generated there
    monkeypatch.setenv(
        "VNEID_LEDGER__DATABASE_URL", worker.pipeline.engine.url.render_as_string(hide_password=False)
    )
    code = main(["evidence", "show", version.ma_lk, "--version", str(version.version_id), "--out", str(out)])
    assert code == 0
    return out.read_bytes().decode("utf-8")


def test_evidence_show_prints_the_status_the_file_was_signed_under(
    make_worker: Any,
    ca_services: CaServices,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    files = key_naming(ca_services, tmp_path / "pki")
    worker: Worker = make_worker(files)
    [version] = worker.run("8001")
    assert worker.gateway.calls  # sent, then shown
    capsys.readouterr()
    _show(worker, version, tmp_path / "shown.xml", monkeypatch)
    [line] = [
        line for line in capsys.readouterr().out.splitlines() if "revocation status when signed" in line
    ]
    assert line.startswith(
        f"certificate serial {version.detail['cert_serial']} (SHA-256 {fingerprint(files)})"
    )
    assert f"when signed: good (OCSP {ca_services.ocsp_url}; this update " in line
    assert "signer.revocation = warn" in line

    off: Worker = make_worker(files, revocation="off")  # same ledger and evidence key, checking off
    [unchecked] = off.run("8002")
    capsys.readouterr()
    _show(off, unchecked, tmp_path / "unchecked.xml", monkeypatch)
    assert "revocation status when signed: not checked (signer.revocation = off)" in capsys.readouterr().out


def test_versions_signed_before_the_record_existed_say_so(
    make_worker: Any,
    ca_services: CaServices,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    worker: Worker = make_worker(key_naming(ca_services, tmp_path / "pki"))
    # Signed through the repository without a status, as every version signed before this record existed.
    item = sent_version(worker.pipeline.engine, worker.pipeline.evidence_keys, "9001")
    capsys.readouterr()
    _show(worker, Signed(item.ma_lk, item.version_id, {}), tmp_path / "old.xml", monkeypatch)
    assert "certificate serial ab; revocation status when signed: not recorded" in capsys.readouterr().out
