"""The ``file`` key source: PKCS#12 and PEM layouts, file permissions, passphrase errors."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from adapters.signers.errors import SignerConfigError
from adapters.signers.file.signer import FileKeySigner
from adapters.signers.keyfiles import load_key_material
from adapters.signers.testpki import write_private_key_pem
from tests.unit.signers.support import PkiSet, file_settings


def test_pkcs12_and_pem_layouts_sign_identically(pki: PkiSet, envelope: bytes) -> None:
    files = pki[3072]
    with FileKeySigner.from_settings(file_settings(files)) as from_p12:
        signed_p12 = from_p12.sign(envelope)
    pem = file_settings(files, key_file=files.private_key, cert_file=files.certificate)
    with FileKeySigner.from_settings(pem) as from_pem:
        signed_pem = from_pem.sign(envelope)
    assert signed_p12 == signed_pem  # RSASSA-PKCS1-v1_5 is deterministic: same key, same bytes


def test_pkcs12_keeps_the_ca_as_chain(pki: PkiSet) -> None:
    material = load_key_material(pki[2048].pkcs12, passphrase=pki[2048].passphrase)
    assert material.certificate == pki[2048].hospital.certificate
    assert material.chain == (pki.ca.certificate,)
    assert "PRIVATE" not in repr(material)


def test_pem_file_holding_key_and_certificate(pki: PkiSet, tmp_path: Path) -> None:
    combined = write_private_key_pem(tmp_path / "both.pem", pki[2048].hospital.key)
    with combined.open("ab") as handle:
        handle.write(pki[2048].certificate.read_bytes())
    material = load_key_material(combined)
    assert material.certificate == pki[2048].hospital.certificate


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660])
def test_key_readable_by_others_is_refused(pki: PkiSet, tmp_path: Path, mode: int) -> None:
    key_file = tmp_path / "hospital.p12"
    shutil.copy(pki[2048].pkcs12, key_file)
    key_file.chmod(mode)
    with pytest.raises(SignerConfigError, match=f"mode {mode:04o}.*allow_group_readable_key"):
        FileKeySigner.from_settings(file_settings(pki[2048], key_file=key_file))
    allowed = file_settings(pki[2048], key_file=key_file, allow_group_readable_key=True)
    with FileKeySigner.from_settings(allowed) as signer:
        assert signer.certificate == pki[2048].hospital.certificate


@pytest.mark.parametrize("layout", ["pkcs12", "pem"])
@pytest.mark.parametrize("passphrase", ["wrong-passphrase-1234", None])
def test_wrong_or_missing_passphrase(pki: PkiSet, layout: str, passphrase: str | None) -> None:
    files = pki[2048]
    key_file = files.pkcs12 if layout == "pkcs12" else files.private_key
    settings = file_settings(files, key_file=key_file, cert_file=files.certificate, passphrase=passphrase)
    with pytest.raises(SignerConfigError, match="passphrase") as caught:
        FileKeySigner.from_settings(settings)
    assert files.passphrase not in str(caught.value)
    if passphrase:
        assert passphrase not in str(caught.value)


def test_missing_settings_and_files(tmp_path: Path) -> None:
    from worker.config import SignerSettings

    with pytest.raises(SignerConfigError, match=r"signer\.key_file"):
        FileKeySigner.from_settings(SignerSettings(source="file"))
    with pytest.raises(SignerConfigError, match="not found"):
        FileKeySigner.from_settings(SignerSettings(source="file", key_file=tmp_path / "absent.p12"))


def test_pem_key_without_certificate(pki: PkiSet, tmp_path: Path) -> None:
    key_only = write_private_key_pem(tmp_path / "key.pem", pki[2048].hospital.key)
    with pytest.raises(SignerConfigError, match=r"signer\.cert_file"):
        load_key_material(key_only)
