"""`vneid-sync evidence` on a real ledger: audited export of the exact bytes, a missing key stops every command
with one line naming it, rotation + rekey, the retention purge, and key files that are never overwritten."""

from __future__ import annotations

import hashlib
import json
import os
import pwd
import stat
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from tests.integration.ledger.evidence_support import THONG_DIEP, sent_version, signed_file
from worker.cli.app import main
from worker.ledger.evidence_crypto import EvidenceKeys, decode_keys, encode_key, key_id, new_key
from worker.ledger.schema import audit_log, evidence

OPERATOR = pwd.getpwuid(os.geteuid()).pw_name


def said(capsys: pytest.CaptureFixture[str]) -> str:
    """What the command printed on stdout, with the terminal's line wrapping undone."""
    return " ".join(capsys.readouterr().out.split())


@dataclass
class Site:
    """A configured installation: the ledger, the key files the environment names, a scratch directory."""

    ledger: Engine
    directory: Path
    monkeypatch: pytest.MonkeyPatch

    def key_file(self, name: str, *keys: bytes) -> Path:
        path = self.directory / name
        path.write_text("".join(encode_key(key) + "\n" for key in keys), encoding="ascii")
        return path

    def use_keys(self, active: bytes, *retired: bytes) -> EvidenceKeys:
        self.monkeypatch.setenv(
            "VNEID_EVIDENCE__KEY_FILE", str(self.key_file(f"key-{key_id(active)}", active))
        )
        if retired:
            self.monkeypatch.setenv(
                "VNEID_EVIDENCE__RETIRED_KEYS_FILE", str(self.key_file("retired", *retired))
            )
        else:
            self.monkeypatch.delenv("VNEID_EVIDENCE__RETIRED_KEYS_FILE", raising=False)
        return EvidenceKeys(active, retired)

    def events(self, event: str) -> list[sa.Row[tuple[object, ...]]]:
        with self.ledger.connect() as conn:
            return list(conn.execute(sa.select(audit_log).where(audit_log.c.event == event)))


@pytest.fixture(params=["sqlite_ledger", "pg_ledger"])
def site(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Site:
    ledger: Engine = request.getfixturevalue(request.param)
    for name in list(os.environ):
        if name.startswith("VNEID_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("VNEID_LEDGER__DATABASE_URL", ledger.url.render_as_string(hide_password=False))
    monkeypatch.setenv("VNEID_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("VNEID_EVIDENCE__GENERATE_KEY", "false")
    monkeypatch.setenv("VNEID_LOGGING__LEVEL", "WARNING")
    return Site(ledger, tmp_path, monkeypatch)


def test_show_writes_the_exact_signed_bytes_and_records_who_read_them(
    site: Site, capsys: pytest.CaptureFixture[str]
) -> None:
    keys = site.use_keys(new_key())
    item = sent_version(site.ledger, keys, "2001")
    out, receipt = site.directory / "2001.xml", site.directory / "2001-receipt.json"
    assert main(["evidence", "show", item.ma_lk, "--out", str(out), "--receipt", str(receipt)]) == 0
    assert out.read_bytes() == signed_file("2001")
    assert stat.S_IMODE(out.stat().st_mode) == stat.S_IMODE(receipt.stat().st_mode) == 0o600
    assert json.loads(receipt.read_text(encoding="utf-8"))["thongDiep"] == THONG_DIEP
    printed = said(capsys)
    assert hashlib.sha256(signed_file("2001")).hexdigest() in printed
    assert THONG_DIEP not in printed, "the receipt goes to its file, not the terminal"
    [event] = site.events("evidence_read")
    assert str(event.actor).startswith(f"{OPERATOR}")
    assert (event.ma_lk, event.version_id) == (item.ma_lk, item.version_id)
    assert json.loads(str(event.detail))["parts"] == ["signed_document", "receipt"]
    # An existing file is never written over, and nothing is read (or recorded) for it.
    assert main(["evidence", "show", item.ma_lk, "--out", str(out)]) == 1
    assert "exists" in capsys.readouterr().err
    assert len(site.events("evidence_read")) == 1
    assert main(["evidence", "show", "79999-nobody", "--out", str(site.directory / "none.xml")]) == 1
    assert "no stored evidence for MA_LK 79999-nobody" in capsys.readouterr().err


def test_a_missing_key_stops_every_command_until_it_is_back_then_rekey_retires_it(
    site: Site, capsys: pytest.CaptureFixture[str]
) -> None:
    old, new = new_key(), new_key()
    item = sent_version(site.ledger, site.use_keys(old), "2101")
    site.use_keys(new)  # rotated, but the old key was not kept
    for command in (["evidence", "status"], ["evidence", "rekey"],
                    ["evidence", "show", item.ma_lk, "--out", str(site.directory / "x.xml")]):  # fmt: skip
        assert main(command) == 2, command
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1, err
        assert f"evidence key {key_id(old)} is not in the key ring" in err
    assert not (site.directory / "x.xml").exists()

    site.use_keys(new, old)  # the old key back, as a retired key
    assert main(["evidence", "status"]) == 0
    assert "retired" in said(capsys)
    assert main(["evidence", "rekey", "--batch-size", "1"]) == 0
    assert f"every stored blob is sealed with key {key_id(new)}" in said(capsys)
    [rekeyed] = site.events("evidence_rekeyed")
    assert json.loads(str(rekeyed.detail)) == {"key_id": key_id(new), "documents": 1, "receipts": 1}

    site.use_keys(new)  # nothing needs the old key any more
    assert main(["evidence", "show", item.ma_lk, "--out", str(site.directory / "after.xml")]) == 0
    assert (site.directory / "after.xml").read_bytes() == signed_file("2101")


def test_purge_follows_the_retention_setting_and_is_audited(
    site: Site, capsys: pytest.CaptureFixture[str]
) -> None:
    keys = site.use_keys(new_key())
    now = datetime.now(UTC)
    old = sent_version(site.ledger, keys, "2201", completed_at=now - timedelta(days=400))
    recent = sent_version(site.ledger, keys, "2202", completed_at=now - timedelta(days=30))
    assert main(["evidence", "purge"]) == 0
    assert "kept for ever, nothing to purge" in said(capsys)

    site.monkeypatch.setenv("VNEID_DELIVERY__EVIDENCE_RETENTION_DAYS", "365")
    assert main(["evidence", "purge", "--dry-run"]) == 0
    assert "dry run: 1 version(s)" in said(capsys)
    assert site.events("evidence_purged") == []
    assert main(["evidence", "purge"]) == 0
    assert "purged the evidence of 1 version(s)" in said(capsys)
    [event] = site.events("evidence_purged")
    assert str(event.actor).startswith(OPERATOR)
    assert json.loads(str(event.detail))["versions"] == 1
    with site.ledger.connect() as conn:
        kept = dict(conn.execute(sa.select(evidence.c.version_id, evidence.c.signed_document)).all())
    assert kept[old.version_id] is None
    assert kept[recent.version_id] is not None
    assert main(["evidence", "show", old.ma_lk, "--out", str(site.directory / "old.xml")]) == 1
    assert f"the evidence of version {old.version_id} was purged (retention)" in capsys.readouterr().err


def test_new_key_writes_a_private_file_once(site: Site, capsys: pytest.CaptureFixture[str]) -> None:
    path = site.directory / "secrets" / "evidence-key"
    assert main(["evidence", "new-key", "--out", str(path)]) == 0
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    written = path.read_text(encoding="ascii")
    [key] = decode_keys(written, setting="test")
    assert f"evidence key {key_id(key)} written" in said(capsys)
    assert main(["evidence", "new-key", "--out", str(path)]) == 1
    assert "never overwritten" in capsys.readouterr().err
    assert path.read_text(encoding="ascii") == written
