"""In-process verification: the profile check plus signxml (with the issue #275 workaround)."""

from __future__ import annotations

from pathlib import Path

import pytest
from lxml import etree

from adapters.signers.errors import InvalidSignatureError
from adapters.signers.file.signer import FileKeySigner
from adapters.signers.testpki import generate_ca, write_certificates_pem
from adapters.signers.verification import verify
from tests.unit.signers.support import PkiSet, file_settings

DS = "{http://www.w3.org/2000/09/xmldsig#}"


def test_unprefixed_signature_verifies_against_the_ca(
    file_signer: FileKeySigner, envelope: bytes, pki: PkiSet
) -> None:
    result = verify(file_signer.sign(envelope), pki.ca_certificate)
    assert result.trusted is True
    assert result.certificate == pki[2048].hospital.certificate
    assert result.signature_prefix is None
    assert len(result.reference_digest) == 32


def test_prefixed_signature_verifies(pki: PkiSet, checkin: bytes) -> None:
    with FileKeySigner.from_settings(file_settings(pki[3072], signature_prefix="ds")) as signer:
        result = verify(signer.sign(checkin), pki.ca_certificate)
    assert result.signature_prefix == "ds"


def test_without_trust_store_the_signer_is_not_vouched_for(
    file_signer: FileKeySigner, envelope: bytes
) -> None:
    assert verify(file_signer.sign(envelope), None).trusted is False


def test_other_ca_is_rejected(file_signer: FileKeySigner, envelope: bytes, tmp_path: Path) -> None:
    other = write_certificates_pem(tmp_path / "other.pem", generate_ca(key_size=2048).certificate)
    with pytest.raises(InvalidSignatureError, match="certificate not accepted"):
        verify(file_signer.sign(envelope), other)


def test_tampered_content_is_rejected(file_signer: FileKeySigner, envelope: bytes, pki: PkiSet) -> None:
    signed = file_signer.sign(envelope)
    at = signed.index(b"<NGAYLAP>") + len(b"<NGAYLAP>") + 7
    tampered = signed[:at] + (b"5" if signed[at : at + 1] != b"5" else b"6") + signed[at + 1 :]
    with pytest.raises(InvalidSignatureError, match="changed after signing"):
        verify(tampered, pki.ca_certificate)


def test_tampered_signature_value_is_rejected(
    file_signer: FileKeySigner, envelope: bytes, pki: PkiSet
) -> None:
    signed = file_signer.sign(envelope)
    at = signed.index(b"<SignatureValue>") + len(b"<SignatureValue>") + 10
    tampered = signed[:at] + (b"A" if signed[at : at + 1] != b"A" else b"B") + signed[at + 1 :]
    with pytest.raises(InvalidSignatureError, match="does not verify"):
        verify(tampered, pki.ca_certificate)


def _moved_signature(signed: bytes) -> bytes:
    root = etree.fromstring(signed)
    signature = root[-1][0]
    root[0].append(signature)  # into THONGTINDONVI
    return etree.tostring(root)


def test_signature_outside_chukydonvi_breaks_the_profile(
    file_signer: FileKeySigner, envelope: bytes, pki: PkiSet
) -> None:
    with pytest.raises(InvalidSignatureError, match="profile"):
        verify(_moved_signature(file_signer.sign(envelope)), pki.ca_certificate)


def test_unsigned_and_garbage_are_rejected(envelope: bytes, pki: PkiSet) -> None:
    with pytest.raises(InvalidSignatureError, match="exactly one ds:Signature"):
        verify(envelope, pki.ca_certificate)
    with pytest.raises(InvalidSignatureError, match="well-formed"):
        verify(b"<GIAMDINHHS>", pki.ca_certificate)


def test_other_algorithms_break_the_profile(file_signer: FileKeySigner, envelope: bytes, pki: PkiSet) -> None:
    signed = file_signer.sign(envelope).replace(
        b"http://www.w3.org/2001/04/xmlenc#sha256", b"http://www.w3.org/2000/09/xmldsig#sha1"
    )
    with pytest.raises(InvalidSignatureError, match="DigestMethod"):
        verify(signed, pki.ca_certificate)
