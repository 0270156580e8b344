"""Acceptance: every key source × key size signs envelopes and check-ins that xmlsec1 (the reference verifier)
and the in-process verifier accept; one changed byte inside the signed content fails both."""

from __future__ import annotations

import base64
import subprocess
from pathlib import Path

import pytest

from adapters.signers.errors import InvalidSignatureError
from adapters.signers.registry import create_signer
from adapters.signers.verification import verify, xmlsec1_verify
from adapters.signers.xmldsig import EnvelopedSigner, SignatureTemplate, document_digest, locate_slot
from tests.integration.signers.conftest import KeySources
from tests.services import require_binary
from tests.unit.signers.support import PkiSet, file_settings


@pytest.fixture(scope="module")
def xmlsec1() -> str:
    return require_binary("xmlsec1")


def tamper(signed: bytes, offset: int) -> bytes:
    replacement = b"7" if signed[offset : offset + 1] != b"7" else b"8"
    return signed[:offset] + replacement + signed[offset + 1 :]


def envelope_tamper_offsets(signed: bytes) -> dict[str, int]:
    return {
        "MACSKCB": signed.index(b"<MACSKCB>") + len(b"<MACSKCB>") + 1,
        "NGAYLAP": signed.index(b"<NGAYLAP>") + len(b"<NGAYLAP>") + 7,
        "first NOIDUNGFILE": signed.index(b"<NOIDUNGFILE>") + len(b"<NOIDUNGFILE>") + 120,
        "last NOIDUNGFILE": signed.rindex(b"</NOIDUNGFILE>") - 10,
    }


def test_xmlsec1_and_in_process_accept_every_source(
    xmlsec1: str, source_signer: EnvelopedSigner, envelope: bytes, checkin: bytes, pki: PkiSet
) -> None:
    for document in (envelope, checkin):
        signed = source_signer.sign(document)
        result = xmlsec1_verify(signed, trusted_pem=pki.ca_certificate)
        assert result.ok, result.output
        assert "SignedInfo References (ok/all): 1/1" in result.output
        verified = verify(signed, pki.ca_certificate)
        assert verified.trusted
        assert verified.certificate == source_signer.certificate


def test_one_byte_tamper_fails_both_verifiers(
    xmlsec1: str, source_signer: EnvelopedSigner, envelope: bytes, checkin: bytes, pki: PkiSet
) -> None:
    signed = source_signer.sign(envelope)
    cases = {name: tamper(signed, offset) for name, offset in envelope_tamper_offsets(signed).items()}
    signed_checkin = source_signer.sign(checkin)
    cases["check-in MA_LK"] = tamper(signed_checkin, signed_checkin.index(b"<MA_LK>") + len(b"<MA_LK>") + 2)
    for name, tampered in cases.items():
        assert not xmlsec1_verify(tampered, trusted_pem=pki.ca_certificate).ok, name
        with pytest.raises(InvalidSignatureError, match="changed after signing"):
            verify(tampered, pki.ca_certificate)


@pytest.mark.parametrize("key_size", [2048, 3072])
def test_every_source_produces_the_same_bytes(
    key_sources: KeySources, envelope: bytes, key_size: int
) -> None:
    """One code path: with the same key, file, token and remote service give byte-identical files."""
    outputs = {}
    for name, settings in key_sources.all_settings(key_size).items():
        signer = create_signer(settings)
        assert isinstance(signer, EnvelopedSigner)
        with signer:
            outputs[name] = signer.sign(envelope)
    assert len(outputs) == 5
    assert len(set(outputs.values())) == 1, sorted(outputs)


@pytest.mark.parametrize("prefix", [None, "ds"])
def test_canonical_signed_info_equals_xmlsec1s(
    xmlsec1: str, envelope: bytes, pki: PkiSet, tmp_path: Path, prefix: str | None
) -> None:
    """The SignedInfo we sign is byte for byte what xmlsec1 canonicalises (``--store-signatures``)."""
    path = tmp_path / "signed.xml"
    signer = create_signer(file_settings(pki[2048], signature_prefix=prefix))
    path.write_bytes(signer.sign(envelope))
    completed = subprocess.run(
        [
            xmlsec1,
            "--verify",
            "--store-signatures",
            "--print-debug",
            "--trusted-pem",
            str(pki.ca_certificate),
            "--enabled-reference-uris",
            "empty",
            str(path),
        ],
        capture_output=True,
        check=True,
    )
    output = completed.stdout + completed.stderr
    start = output.index(b"== PreSigned data - start buffer:\n") + len(b"== PreSigned data - start buffer:\n")
    canonical_by_xmlsec1 = output[start : output.index(b"\n== PreSigned data - end buffer", start)]
    slot = locate_slot(envelope)
    digest = base64.b64encode(document_digest(slot.tree)).decode()
    ours = SignatureTemplate(prefix).canonical_signed_info(digest, slot.namespaces, slot.xml_attributes)
    assert ours == canonical_by_xmlsec1
