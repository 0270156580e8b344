"""`vneid-sync cert check`, `cert test-pki`, `sign` and `verify` through the real CLI entry point."""

from __future__ import annotations

import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path

import pytest

from adapters.signers.certcheck import EXIT_FAILURE, EXIT_OK, EXIT_WARNING
from adapters.signers.testpki import TestPkiFiles
from adapters.signers.verification import verify
from tests.unit.signers.support import PkiSet
from worker.cli.app import main


@dataclass
class Cli:
    monkeypatch: pytest.MonkeyPatch
    directory: Path
    capsys: pytest.CaptureFixture[str]

    def clean_environment(self) -> None:
        for name in list(os.environ):
            if name.startswith("VNEID_"):
                self.monkeypatch.delenv(name)

    def use_key(self, files: TestPkiFiles, **extra: str) -> None:
        """Paths in a TOML file (``VNEID_*_FILE`` variables name secret files), the passphrase in the env."""
        self.clean_environment()
        signer = {"source": "file", "key_file": str(files.pkcs12), "trust_store": str(files.ca_certificate)}
        signer.update({name: value for name, value in extra.items() if name != "passphrase"})
        config = self.directory / "config.toml"
        config.write_text(
            "[signer]\n" + "".join(f'{k} = "{v}"\n' for k, v in signer.items()), encoding="utf-8"
        )
        self.monkeypatch.setenv("VNEID_CONFIG", str(config))
        self.monkeypatch.setenv("VNEID_SIGNER__PASSPHRASE", extra.get("passphrase", files.passphrase))

    def run(self, *args: str) -> int:
        self.capsys.readouterr()
        return main(list(args))

    @property
    def out(self) -> str:
        return self.capsys.readouterr().out

    @property
    def err(self) -> str:
        return self.capsys.readouterr().err


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Cli:
    return Cli(monkeypatch, tmp_path, capsys)


@pytest.mark.parametrize(
    ("which", "code", "words"),
    [
        ("ok", EXIT_OK, "status      OK"),
        ("expiring", EXIT_WARNING, "in 10 days (threshold 30)"),
        ("expired", EXIT_FAILURE, "expired on"),
        ("not_yet_valid", EXIT_FAILURE, "not valid before"),
    ],
)
def test_cert_check_exit_codes(cli: Cli, pki: PkiSet, which: str, code: int, words: str) -> None:
    cli.use_key(pki[2048] if which == "ok" else getattr(pki, which))
    assert cli.run("cert", "check") == code
    out = cli.out
    assert words in out
    assert "key_matches yes" in out


def test_cert_check_mismatch(cli: Cli, pki: PkiSet) -> None:
    files = pki[2048]
    cli.use_key(files, key_file=str(files.private_key), cert_file=str(pki[3072].certificate))
    assert cli.run("cert", "check", "--json") == EXIT_FAILURE
    report = json.loads(cli.out)
    assert report["status"] == "failure"
    assert report["key_matches"] is False
    assert "the private key does not belong to this certificate" in report["problems"]


def test_cert_check_threshold_option_setting_and_cert_file(cli: Cli, pki: PkiSet) -> None:
    cli.use_key(pki.expiring)
    assert cli.run("cert", "check", "--warning-days", "5") == EXIT_OK
    cli.use_key(pki.expiring, expiry_warning_days="5")
    assert cli.run("cert", "check") == EXIT_OK
    assert cli.run("cert", "check", "--cert", str(pki.expired.certificate)) == EXIT_FAILURE


def test_cert_check_cannot_load_key(cli: Cli, pki: PkiSet) -> None:
    cli.use_key(pki[2048], passphrase="not-the-passphrase")
    assert cli.run("cert", "check") == 2
    err = cli.err
    assert "wrong or missing passphrase" in err
    assert "not-the-passphrase" not in err


def test_sign_then_verify(cli: Cli, pki: PkiSet, envelope: bytes, checkin: bytes) -> None:
    cli.use_key(pki[3072])
    inbox, outbox = cli.directory / "in", cli.directory / "out"
    inbox.mkdir()
    (inbox / "claim.xml").write_bytes(envelope)
    (inbox / "checkin.xml").write_bytes(checkin)
    assert cli.run("sign", str(inbox / "claim.xml"), str(inbox / "checkin.xml"), "--out", str(outbox)) == 0
    for name in ("claim.xml", "checkin.xml"):
        assert verify((outbox / name).read_bytes(), pki.ca_certificate).trusted
    assert cli.run("sign", str(inbox / "claim.xml"), "--out", str(outbox)) == 1  # exists, no --overwrite
    assert cli.run("verify", str(outbox / "claim.xml"), str(outbox / "checkin.xml")) == 0
    assert cli.out.count("valid   ") == 2
    broken = outbox / "broken.xml"
    broken.write_bytes((outbox / "claim.xml").read_bytes().replace(b"<MACSKCB>79999", b"<MACSKCB>79998"))
    assert cli.run("verify", str(broken)) == 1
    assert "INVALID" in cli.out


def test_sign_refuses_an_expired_certificate(cli: Cli, pki: PkiSet, envelope: bytes) -> None:
    cli.use_key(pki.expired)
    source = cli.directory / "claim.xml"
    source.write_bytes(envelope)
    assert cli.run("sign", str(source), "--out", str(cli.directory / "out")) == EXIT_FAILURE
    assert "refusing to sign" in cli.err
    assert not (cli.directory / "out" / "claim.xml").exists()


def test_test_pki_command_writes_a_usable_key(cli: Cli) -> None:
    cli.clean_environment()
    out = cli.directory / "pki"
    assert cli.run("cert", "test-pki", "--out", str(out), "--facility-code", "01001") == 0
    assert stat.S_IMODE((out / "hospital.pass").stat().st_mode) == 0o600
    config = cli.directory / "config.toml"
    config.write_text(f'[signer]\nkey_file = "{out / "hospital.p12"}"\n', encoding="utf-8")
    cli.monkeypatch.setenv("VNEID_CONFIG", str(config))
    cli.monkeypatch.setenv("VNEID_SIGNER__PASSPHRASE_FILE", str(out / "hospital.pass"))
    assert cli.run("cert", "check") == EXIT_OK
    assert "MACSKCB:01001" in cli.out
    assert cli.run("cert", "test-pki", "--out", str(out)) == 1  # refuses to overwrite
