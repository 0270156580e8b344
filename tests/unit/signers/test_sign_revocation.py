"""`vneid-sync sign` applies ``signer.revocation`` like the worker: a test CA answers OCSP/CRL over real HTTP on
127.0.0.1, the key is a real PKCS#12 whose certificate names it, and the command runs through the CLI entry
point. A refused certificate writes nothing; the exit code says why (5 revoked, 4 unknown under require)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509

from adapters.signers.certcheck import EXIT_FAILURE, EXIT_REVOKED
from adapters.signers.testpki import TestPkiFiles
from adapters.signers.verification import verify
from tests.unit.signers.revocation_support import CRL_PATH, OCSP_PATH, CaServices, Clock, key_naming, serve_ca
from tests.unit.signers.support import PkiSet
from worker.cli.app import main


@dataclass
class Signing:
    """The CLI with a key whose certificate names the test CA's services; one unsigned claim to sign."""

    monkeypatch: pytest.MonkeyPatch
    capsys: pytest.CaptureFixture[str]
    services: CaServices
    directory: Path
    unsigned: Path

    def use_key(self, files: TestPkiFiles, **signer: str) -> None:
        """The key, its CA as trust store and ``signer`` in a TOML file; the passphrase in the environment."""
        for name in list(os.environ):
            if name.startswith("VNEID_"):
                self.monkeypatch.delenv(name)
        values = {
            "source": "file",
            "key_file": str(files.pkcs12),
            "trust_store": str(files.ca_certificate),
            **signer,
        }
        config = self.directory / "config.toml"
        config.write_text(
            f'data_dir = "{self.directory / "data"}"\n[signer]\n'
            + "".join(f'{k} = "{v}"\n' for k, v in values.items()),
            encoding="utf-8",
        )
        self.monkeypatch.setenv("VNEID_CONFIG", str(config))
        self.monkeypatch.setenv("VNEID_SIGNER__PASSPHRASE", files.passphrase)

    def sign(self, out: Path, *files: Path) -> tuple[int, str, str]:
        self.capsys.readouterr()
        code = main(["sign", *(str(f) for f in files or (self.unsigned,)), "--out", str(out)])
        captured = self.capsys.readouterr()
        return code, captured.out, captured.err


@pytest.fixture
def signing(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    pki: PkiSet,
    tmp_path: Path,
    envelope: bytes,
) -> Iterator[Signing]:
    unsigned = tmp_path / "claim.xml"
    unsigned.write_bytes(envelope)
    with serve_ca(pki.ca, Clock()) as services:
        yield Signing(monkeypatch, capsys, services, tmp_path, unsigned)


def error_lines(err: str) -> list[str]:
    """The CLI's own error lines (the structured log lines on stderr are JSON objects)."""
    return [line for line in err.splitlines() if line.startswith("error:")]


def test_revoked_certificate_signs_nothing_and_exits_5(signing: Signing) -> None:
    services = signing.services
    files = key_naming(services, signing.directory / "pki")
    services.revoke(files.hospital.certificate, x509.ReasonFlags.key_compromise, at=services.clock.now)
    out = signing.directory / "out"
    for policy in ("warn", "require"):  # a revoked certificate never signs, whatever the policy
        signing.use_key(files, revocation=policy)
        code, stdout, err = signing.sign(out)
        assert code == EXIT_REVOKED
        [line] = error_lines(err)
        assert "revoked on" in line
        assert "(keyCompromise) according to OCSP" in line
        assert line.endswith("refusing to sign")
        assert "signed " not in stdout
        assert not out.exists()  # refused before anything was written, the output directory included


def test_unknown_status_refuses_under_require_with_exit_4(signing: Signing) -> None:
    files = key_naming(signing.services, signing.directory / "pki", reachable=False)
    signing.use_key(files, revocation="require")
    out = signing.directory / "out"
    code, _, err = signing.sign(out)
    assert code == EXIT_FAILURE
    [line] = error_lines(err)
    assert "status unknown: OCSP http://127.0.0.1" in line
    assert line.endswith("refusing to sign (signer.revocation = require)")
    assert not out.exists()


def test_unknown_status_under_warn_signs_and_warns_on_stderr(signing: Signing, pki: PkiSet) -> None:
    files = key_naming(signing.services, signing.directory / "pki", reachable=False)
    signing.use_key(files, revocation="warn")
    out = signing.directory / "out"
    code, stdout, err = signing.sign(out)
    assert code == 0
    assert "signed claim.xml" in stdout
    assert "warning" not in stdout  # the warning goes to stderr, the signed-file lines stay parseable
    warnings = [line for line in err.splitlines() if line.startswith("warning: signing certificate status")]
    assert len(warnings) == 1
    assert "unknown" in warnings[0]
    assert "signing anyway (signer.revocation = warn)" in warnings[0]
    assert verify((out / "claim.xml").read_bytes(), pki.ca_certificate).trusted


def test_good_status_signs_with_one_ocsp_request_and_off_asks_nothing(
    signing: Signing, envelope: bytes
) -> None:
    services = signing.services
    files = key_naming(services, signing.directory / "pki")
    second = signing.directory / "second.xml"
    second.write_bytes(envelope)
    signing.use_key(files, revocation_cache="false")
    code, stdout, err = signing.sign(signing.directory / "out", signing.unsigned, second)
    assert code == 0
    assert stdout.count("signed ") == 2
    assert "warning:" not in err
    assert services.requests == {OCSP_PATH: 1}  # asked once for both files

    services.revoke(files.hospital.certificate, None, at=services.clock.now)
    signing.use_key(files, revocation="off")
    code, stdout, _ = signing.sign(signing.directory / "off")
    assert code == 0  # "off" checks nothing: the revocation above is not seen
    assert "signed claim.xml" in stdout
    assert services.requests == {OCSP_PATH: 1}
    assert CRL_PATH not in services.requests
