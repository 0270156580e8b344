"""`vneid-sync cert check`, `cert test-pki`, `sign` and `verify` through the real CLI entry point."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509

from adapters.signers.certcheck import EXIT_FAILURE, EXIT_OK, EXIT_REVOKED, EXIT_WARNING
from adapters.signers.testpki import TestPkiFiles, create_test_pki
from adapters.signers.verification import verify
from tests.unit.signers.revocation_support import CRL_PATH, OCSP_PATH, CaServices, Clock, dead_url, serve_ca
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


# ------------------------------------------------------------------------------------------ revocation


@pytest.fixture
def ca_services(pki: PkiSet) -> Iterator[CaServices]:
    with serve_ca(pki.ca, Clock()) as services:
        yield services


def _key_naming(services: CaServices, cli: Cli, **urls: str) -> TestPkiFiles:
    """A PKCS#12 whose certificate names ``services`` (or ``urls``) as its OCSP responder and CRL."""
    return create_test_pki(
        cli.directory / "pki",
        ca=services.ca,
        ocsp_url=urls.get("ocsp_url", services.ocsp_url),
        crl_url=urls.get("crl_url", services.crl_url),
    )


def test_cert_check_shows_the_revocation_status(cli: Cli, ca_services: CaServices) -> None:
    files = _key_naming(ca_services, cli)
    cli.use_key(files)
    cli.monkeypatch.setenv("VNEID_DATA_DIR", str(cli.directory / "data"))
    assert cli.run("cert", "check") == EXIT_OK
    assert f"revocation  good according to OCSP {ca_services.ocsp_url}" in cli.out
    assert cli.run("cert", "check") == EXIT_OK
    assert "according to OCSP (cache)" in cli.out  # the answer kept under data_dir/revocation
    assert cli.run("cert", "check", "--refresh") == EXIT_OK
    assert ca_services.requests[OCSP_PATH] == 2


def test_cert_check_exits_5_when_revoked(cli: Cli, ca_services: CaServices) -> None:
    files = _key_naming(ca_services, cli)
    ca_services.revoke(files.hospital.certificate, x509.ReasonFlags.key_compromise, at=ca_services.clock.now)
    cli.use_key(files)
    cli.monkeypatch.setenv("VNEID_DATA_DIR", str(cli.directory / "data"))
    assert cli.run("cert", "check") == EXIT_REVOKED
    out = cli.out
    assert "status      FAILURE" in out
    assert "revocation  revoked on" in out
    assert "(keyCompromise) according to OCSP" in out
    assert cli.run("cert", "check", "--json") == EXIT_REVOKED
    report = json.loads(cli.out)
    assert report["revocation"]["state"] == "revoked"
    assert report["revocation"]["reason"] == "keyCompromise"
    assert cli.run("cert", "check", "--cert", str(files.certificate)) == EXIT_REVOKED
    assert cli.run("cert", "check", "--no-revocation") == EXIT_OK
    assert "revocation  not checked" in cli.out
    assert ca_services.requests[OCSP_PATH] == 1  # later checks used the cached answer; --no-revocation none


def test_cert_check_unknown_status_follows_the_policy(cli: Cli, ca_services: CaServices) -> None:
    files = _key_naming(ca_services, cli, ocsp_url=dead_url(OCSP_PATH), crl_url=dead_url(CRL_PATH))
    cli.use_key(files)
    assert cli.run("cert", "check") == EXIT_WARNING
    assert "revocation  unknown: OCSP http://127.0.0.1" in cli.out
    cli.use_key(files, revocation="require")
    assert cli.run("cert", "check") == EXIT_FAILURE
    assert "(signer.revocation = require)" in cli.out
    cli.use_key(files, revocation="off")
    assert cli.run("cert", "check") == EXIT_OK
    assert "revocation  not checked" in cli.out
