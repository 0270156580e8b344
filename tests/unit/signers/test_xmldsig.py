"""The signature profile and its placement, checked against libxmlsec1 (PyPI ``xmlsec``) as the oracle.

xmlsec1 the command line is exercised in tests/integration/signers; here the in-process binding keeps the
property test fast. A signxml round trip is never the only check.
"""

from __future__ import annotations

import base64
import hashlib
import threading
from pathlib import Path

import pytest
import xmlsec
from cryptography.hazmat.primitives import serialization
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from adapters.signers.errors import CertificateNotUsableError, SignerConfigError, UnsignableDocumentError
from adapters.signers.file.signer import FileKey, FileKeySigner
from adapters.signers.keyfiles import KeyMaterial
from adapters.signers.xmldsig import (
    C14N_1_0,
    DS_NS,
    ENVELOPED_SIGNATURE,
    RSA_SHA256,
    SHA256,
    EnvelopedSigner,
    SignatureTemplate,
    locate_slot,
)
from schemas.ports import Signer
from tests.unit.signers.support import PkiSet, build_checkin, file_settings

DS = "{" + DS_NS + "}"


def libxmlsec_verify(signed: bytes, ca_pem: Path) -> None:
    """Verify with libxmlsec1: the KeyInfo certificate must chain to ``ca_pem``; raises xmlsec.Error."""
    root = etree.fromstring(signed)
    node = xmlsec.tree.find_node(root, xmlsec.constants.NodeSignature)
    manager = xmlsec.KeysManager()
    manager.load_cert(str(ca_pem), xmlsec.constants.KeyDataFormatPem, xmlsec.constants.KeyDataTypeTrusted)
    xmlsec.SignatureContext(manager).verify(node)


def slot_bounds(document: bytes) -> tuple[int, int]:
    start = document.rindex(b"<CHUKYDONVI")
    return start, document.index(b">", start) + 1


# ----------------------------------------------------------------------------------------------- output


def test_signer_satisfies_the_port(file_signer: FileKeySigner) -> None:
    assert isinstance(file_signer, Signer)


def test_every_byte_outside_chukydonvi_is_kept(file_signer: FileKeySigner, envelope: bytes) -> None:
    signed = file_signer.sign(envelope)
    start, end = slot_bounds(envelope)
    assert envelope[start:end] == b"<CHUKYDONVI/>"
    assert signed.startswith(envelope[:start] + b"<CHUKYDONVI><Signature ")
    assert signed.endswith(b"</Signature></CHUKYDONVI>" + envelope[end:])
    assert signed.startswith(b'<?xml version="1.0" encoding="utf-8"?><GIAMDINHHS ')


def test_signature_has_exactly_the_profile(file_signer: FileKeySigner, envelope: bytes, pki: PkiSet) -> None:
    root = etree.fromstring(file_signer.sign(envelope))
    slot = root[-1]
    assert slot.tag == "CHUKYDONVI"
    assert [child.tag for child in slot] == [DS + "Signature"]
    signature = slot[0]
    assert signature.prefix is None  # un-prefixed by default (DOMAIN.md §10.2)
    assert [child.tag for child in signature] == [DS + "SignedInfo", DS + "SignatureValue", DS + "KeyInfo"]
    signed_info = signature[0]
    assert signed_info.find(DS + "CanonicalizationMethod").get("Algorithm") == C14N_1_0
    assert signed_info.find(DS + "SignatureMethod").get("Algorithm") == RSA_SHA256
    references = signed_info.findall(DS + "Reference")
    assert len(references) == 1
    assert references[0].get("URI") == ""
    assert [t.get("Algorithm") for t in references[0].iter(DS + "Transform")] == [
        ENVELOPED_SIGNATURE,
        C14N_1_0,
    ]
    assert references[0].find(DS + "DigestMethod").get("Algorithm") == SHA256
    certificate_text = signature.findtext(f"{DS}KeyInfo/{DS}X509Data/{DS}X509Certificate")
    assert base64.b64decode(certificate_text) == pki[2048].hospital.certificate.public_bytes(
        serialization.Encoding.DER
    )


def test_digest_is_sha256_of_canonical_document_without_the_signature(
    file_signer: FileKeySigner, envelope: bytes
) -> None:
    root = etree.fromstring(file_signer.sign(envelope))
    digest = base64.b64decode(root.findtext(f".//{DS}DigestValue"))
    root[-1].remove(root[-1][0])  # the enveloped-signature transform, done by hand
    assert digest == hashlib.sha256(etree.tostring(root.getroottree(), method="c14n")).digest()


def test_prefix_is_configurable(pki: PkiSet, envelope: bytes) -> None:
    with FileKeySigner.from_settings(file_settings(pki[2048], signature_prefix="ds")) as signer:
        signed = signer.sign(envelope)
    assert (
        b'<CHUKYDONVI><ds:Signature xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><ds:SignedInfo>' in signed
    )
    libxmlsec_verify(signed, pki.ca_certificate)


@pytest.mark.parametrize("prefix", ["", "1ds", "a:b", "xmlfoo"])
def test_unusable_prefixes_are_refused(prefix: str) -> None:
    if prefix == "":
        assert SignatureTemplate(prefix).prefix is None
        return
    with pytest.raises(SignerConfigError, match="signature_prefix"):
        SignatureTemplate(prefix)


def test_signing_is_deterministic(file_signer: FileKeySigner, envelope: bytes) -> None:
    assert file_signer.sign(envelope) == file_signer.sign(envelope)


@pytest.mark.parametrize("key_size", [2048, 3072])
def test_envelope_and_checkin_verify_with_libxmlsec(pki: PkiSet, envelope: bytes, key_size: int) -> None:
    with FileKeySigner.from_settings(file_settings(pki[key_size])) as signer:
        for document in (envelope, build_checkin()):
            libxmlsec_verify(signer.sign(document), pki.ca_certificate)


def test_one_byte_tamper_fails(file_signer: FileKeySigner, envelope: bytes, pki: PkiSet) -> None:
    signed = file_signer.sign(envelope)
    at = signed.index(b"<MACSKCB>") + len(b"<MACSKCB>")
    tampered = signed[:at] + b"8" + signed[at + 1 :]
    with pytest.raises(xmlsec.Error):
        libxmlsec_verify(tampered, pki.ca_certificate)


def test_concurrent_signing_is_safe(file_signer: FileKeySigner, envelope: bytes, pki: PkiSet) -> None:
    results: list[bytes] = []
    lock = threading.Lock()

    def work() -> None:
        for _ in range(5):
            signed = file_signer.sign(envelope)
            with lock:
                results.append(signed)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 20
    assert len(set(results)) == 1
    libxmlsec_verify(results[0], pki.ca_certificate)


# --------------------------------------------------------------------------- canonical SignedInfo, fuzzed

_names = st.sampled_from(["A", "HOSO", "TEN_THUOC", "x", "GHI_CHU"])
_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="\ufffe\uffff")
    | st.sampled_from(["&", "<", ">", '"', "'", "\t", "\n", "\r", "]"]),
    max_size=30,
)


@st.composite
def unsigned_documents(draw: st.DrawFn) -> bytes:
    """Documents whose canonical form stresses the in-scope namespaces and inherited xml:* attributes."""
    default_ns = draw(st.sampled_from([None, "urn:vneid:test", "http://example.org/ns"]))
    root_prefix = draw(st.sampled_from([None, "g"]))
    nsmap: dict[str | None, str] = {
        "xsi": "http://www.w3.org/2001/XMLSchema-instance",
        "xsd": "http://www.w3.org/2001/XMLSchema",
    }
    if draw(st.booleans()):
        nsmap["zz"] = "urn:zz"
    if default_ns:
        nsmap[None] = default_ns
    namespace = "urn:g" if root_prefix else default_ns
    if root_prefix:
        nsmap[root_prefix] = "urn:g"

    def tag(name: str) -> str:
        return f"{{{namespace}}}{name}" if namespace else name

    root = etree.Element(tag("GIAMDINHHS"), nsmap=nsmap)
    for attribute in draw(st.lists(st.sampled_from(["lang", "space", "base"]), unique=True, max_size=3)):
        value = {"lang": "vi", "space": "preserve", "base": "http://h/"}[attribute]
        root.set(f"{{http://www.w3.org/XML/1998/namespace}}{attribute}", value)
    for _ in range(draw(st.integers(0, 4))):
        child = etree.SubElement(root, tag(draw(_names)))
        child.text = draw(_text)
        if draw(st.booleans()):
            child.set("note", draw(_text))
        if draw(st.booleans()):
            child.append(etree.Comment(" comment "))
        if draw(st.booleans()):
            etree.SubElement(child, "{urn:zz}Z").text = draw(_text)
    slot = etree.SubElement(root, tag("CHUKYDONVI"))
    if draw(st.booleans()):
        slot.set("{http://www.w3.org/XML/1998/namespace}lang", "en")
    body = etree.tostring(root, encoding="utf-8")
    if draw(st.booleans()):
        body = body.replace(b"<CHUKYDONVI/>", b"<CHUKYDONVI></CHUKYDONVI>").replace(
            b"<g:CHUKYDONVI/>", b"<g:CHUKYDONVI ></g:CHUKYDONVI>"
        )
    prolog = draw(
        st.sampled_from([b"", b'<?xml version="1.0" encoding="utf-8"?>', b"<?xml version='1.0'?>\n"])
    )
    return prolog + body + draw(st.sampled_from([b"", b"\n"]))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(document=unsigned_documents(), prefix=st.sampled_from([None, "ds", "sig"]))
def test_any_document_signs_to_what_libxmlsec_accepts(
    pki: PkiSet, document: bytes, prefix: str | None
) -> None:
    material = KeyMaterial(
        private_key=pki[2048].hospital.key, certificate=pki[2048].hospital.certificate, chain=()
    )
    signer = EnvelopedSigner(FileKey(material), signature_prefix=prefix)
    signed = signer.sign(document)
    libxmlsec_verify(signed, pki.ca_certificate)
    start = locate_slot(document).start
    assert signed[:start] == document[:start]


# ----------------------------------------------------------------------------------------------- refusals

REFUSED = {
    "no slot": b"<GIAMDINHHS><A/></GIAMDINHHS>",
    "slot not last": b"<GIAMDINHHS><CHUKYDONVI/><A/></GIAMDINHHS>",
    "slot not empty": b"<GIAMDINHHS><A/><CHUKYDONVI>x</CHUKYDONVI></GIAMDINHHS>",
    "comment after slot": b"<GIAMDINHHS><A/><CHUKYDONVI/><!-- x --></GIAMDINHHS>",
    "epilogue": b"<GIAMDINHHS><CHUKYDONVI/></GIAMDINHHS><!-- after -->",
    "doctype": b'<!DOCTYPE GIAMDINHHS [<!ATTLIST A b CDATA "1">]><GIAMDINHHS><A/><CHUKYDONVI/></GIAMDINHHS>',
    "latin-1": b'<?xml version="1.0" encoding="ISO-8859-1"?><GIAMDINHHS><CHUKYDONVI/></GIAMDINHHS>',
    "ampersand namespace": b'<GIAMDINHHS xmlns:a="urn:a?b=1&amp;c=2"><CHUKYDONVI/></GIAMDINHHS>',
    "not well-formed": b"<GIAMDINHHS><HO_TEN>Nguyen Van A</GIAMDINHHS>",
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_documents_outside_the_profile_are_refused(file_signer: FileKeySigner, case: str) -> None:
    with pytest.raises(UnsignableDocumentError) as caught:
        file_signer.sign(REFUSED[case])
    assert "Nguyen" not in str(caught.value)  # positions only, never document text


def test_signing_twice_is_refused(file_signer: FileKeySigner, envelope: bytes) -> None:
    with pytest.raises(UnsignableDocumentError, match="signed already"):
        file_signer.sign(file_signer.sign(envelope))


def test_text_input_is_refused(file_signer: FileKeySigner, envelope: bytes) -> None:
    with pytest.raises(UnsignableDocumentError, match="bytes"):
        file_signer.sign(envelope.decode("utf-8"))  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------- certificates


@pytest.mark.parametrize(
    ("which", "message"), [("expired", "expired on"), ("not_yet_valid", "not valid before")]
)
def test_signing_outside_validity_is_refused(pki: PkiSet, envelope: bytes, which: str, message: str) -> None:
    files = getattr(pki, which)
    with FileKeySigner.from_settings(file_settings(files)) as signer:
        serial = format(signer.certificate.serial_number, "x")
        with pytest.raises(CertificateNotUsableError, match=message) as caught:
            signer.sign(envelope)
    assert serial in str(caught.value)


def test_key_that_does_not_match_the_certificate_is_refused(pki: PkiSet, envelope: bytes) -> None:
    settings_ = file_settings(
        pki[2048],
        key_file=pki[2048].private_key,
        cert_file=pki[3072].certificate,
        passphrase=pki[2048].passphrase,
    )
    with FileKeySigner.from_settings(settings_) as signer:
        assert signer.certificate == pki[3072].hospital.certificate
        assert signer.key_matches_certificate() is False
        with pytest.raises(CertificateNotUsableError, match="does not belong"):
            signer.sign(envelope)


def test_matching_key_probe(file_signer: FileKeySigner) -> None:
    assert file_signer.key_matches_certificate() is True
