"""Choosing the key source by name through the ``vneid_sync.signers`` entry points."""

from __future__ import annotations

import pytest

from adapters.signers.errors import SignerConfigError
from adapters.signers.file.signer import FileKeySigner
from adapters.signers.pkcs11.signer import Pkcs11Signer
from adapters.signers.registry import available_signers, create_signer, process_signer, signer_class
from adapters.signers.remote.signer import RemoteSigner
from schemas.ports import Signer
from tests.unit.signers.support import PkiSet, file_settings


def test_the_three_sources_are_registered() -> None:
    assert signer_class("file") is FileKeySigner
    assert signer_class("pkcs11") is Pkcs11Signer
    assert signer_class("remote") is RemoteSigner
    assert {"file", "pkcs11", "remote"} <= set(available_signers())


def test_unknown_source_lists_the_known_ones() -> None:
    with pytest.raises(SignerConfigError, match=r"unknown signer source 'usb'; known: file, pkcs11, remote"):
        signer_class("usb")


def test_create_signer_builds_from_settings(pki: PkiSet, envelope: bytes) -> None:
    signer = create_signer(file_settings(pki[2048]))
    assert isinstance(signer, FileKeySigner)
    assert isinstance(signer, Signer)
    assert signer.sign(envelope).count(b"<SignatureValue>") == 1


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("pkcs11", r"signer\.pkcs11_module, signer\.token_label, signer\.pin"),
        ("remote", r"signer\.remote_url"),
    ],
)
def test_missing_settings_are_named(source: str, message: str) -> None:
    from worker.config import SignerSettings

    with pytest.raises(SignerConfigError, match=message):
        create_signer(SignerSettings(source=source))  # type: ignore[arg-type]


def test_process_signer_loads_once_per_process_and_settings(pki: PkiSet) -> None:
    settings = file_settings(pki[2048])
    first = process_signer(settings)
    assert process_signer(file_settings(pki[2048])) is first
    assert process_signer(file_settings(pki[3072])) is not first
