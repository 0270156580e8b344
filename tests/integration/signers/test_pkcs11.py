"""The ``pkcs11`` key source against a real SoftHSM2 token."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from adapters.signers.errors import SignerConfigError
from adapters.signers.pkcs11.config import Pkcs11Config
from adapters.signers.pkcs11.signer import Pkcs11Key, Pkcs11Signer
from adapters.signers.registry import create_signer
from adapters.signers.verification import xmlsec1_verify
from adapters.signers.xmldsig import EnvelopedSigner
from tests.integration.signers.conftest import SoftHsm
from tests.unit.signers.support import PkiSet, file_settings


def test_key_and_certificate_come_from_the_token(softhsm: SoftHsm, pki: PkiSet) -> None:
    with Pkcs11Signer.from_settings(softhsm.settings(3072)) as signer:
        assert signer.certificate == pki[3072].hospital.certificate
        assert signer.key_matches_certificate()


def test_raw_rsa_mechanism_gives_the_same_signature(softhsm: SoftHsm, pki: PkiSet, envelope: bytes) -> None:
    """Tokens without CKM_SHA256_RSA_PKCS get the DigestInfo built locally: same bytes as the file key."""
    config = Pkcs11Config.from_settings(softhsm.settings(2048))
    with EnvelopedSigner(Pkcs11Key(config, mechanism="rsa_pkcs")) as raw:
        assert raw.key_source.uses_raw_rsa  # type: ignore[attr-defined]
        signed = raw.sign(envelope)
    with create_signer(file_settings(pki[2048])) as from_file:  # type: ignore[attr-defined]
        assert signed == from_file.sign(envelope)
    assert xmlsec1_verify(signed, trusted_pem=pki.ca_certificate).ok


def test_certificate_from_a_file(softhsm: SoftHsm, pki: PkiSet) -> None:
    settings = softhsm.settings(2048, cert_file=pki[2048].certificate)
    with Pkcs11Signer.from_settings(settings) as signer:
        assert signer.certificate == pki[2048].hospital.certificate


def test_wrong_pin_is_a_configuration_error(softhsm: SoftHsm) -> None:
    settings = softhsm.settings(2048, token_label=softhsm.spare_token_label, pin="11112222")
    with pytest.raises(SignerConfigError, match="rejected the PIN") as caught:
        Pkcs11Signer.from_settings(settings)
    assert "11112222" not in str(caught.value)
    assert softhsm.pin not in str(caught.value)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"token_label": "no-such-token"}, "no PKCS#11 token labelled 'no-such-token'"),
        ({"key_label": "no-such-key"}, r"no RSA private key \(label='no-such-key'\)"),
        ({"key_label": None, "key_id": "zz"}, "must be hexadecimal"),
        ({"key_label": None, "key_id": "0001"}, r"no RSA private key \(id=0001\)"),
        ({"pkcs11_module": Path("/nonexistent/libtoken.so")}, "module not found"),
        ({"pin": None}, r"needs signer\.pin"),
    ],
)
def test_configuration_errors_are_clear(softhsm: SoftHsm, overrides: dict[str, object], message: str) -> None:
    with pytest.raises(SignerConfigError, match=message):
        Pkcs11Signer.from_settings(softhsm.settings(2048, **overrides))


def test_forked_child_opens_its_own_session(softhsm: SoftHsm, pki: PkiSet, envelope: bytes) -> None:
    """Celery prefork: a signer built before fork still signs in the child, and the parent after it.

    SoftHSM tolerates sessions inherited across fork, so this proves the behaviour, not that a strict
    token would fail without the re-initialisation the key source does in the child.
    """
    with Pkcs11Signer.from_settings(softhsm.settings(2048)) as signer:
        expected = signer.sign(envelope)
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # child: sign, report, exit without running the parent's cleanup
            status = 1
            try:
                os.close(read_end)
                os.write(write_end, signer.sign(envelope))
                status = 0
            finally:
                os._exit(status)
        os.close(write_end)
        chunks = []
        while chunk := os.read(read_end, 65536):
            chunks.append(chunk)
        os.close(read_end)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert b"".join(chunks) == expected
        assert signer.sign(envelope) == expected  # the parent's session is untouched
