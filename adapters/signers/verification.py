"""Checking signed files: in process (signxml + a profile check) and with the reference verifier, xmlsec1.

``verify`` is what the worker and ``vneid-sync verify`` use. It checks that the file carries exactly the
profile of DOMAIN.md §10.2 (one ``Signature``, the only child of the trailing ``CHUKYDONVI``, ``URI=""``,
enveloped + inclusive C14N 1.0, RSA-SHA256, SHA-256, an X.509 certificate), then lets signxml verify the
digest, the signature value and — given a trust store — the certificate chain.

signxml issue #275 (DOMAIN.md §10.6): for an un-prefixed ``Signature`` under inclusive C14N, signxml 5.2's
subtree canonicalisation adds ``xmlns=""`` inside ``SignedInfo`` and rejects valid signatures.
``excise_empty_xmlns_declarations = True`` removes those declarations again. Known remaining limit: signxml
re-parses the ``Signature`` on its own, so a document whose ancestors of ``CHUKYDONVI`` carry ``xml:lang`` /
``xml:space`` fails here although xmlsec1 accepts it; the envelopes we build carry none.

``xmlsec1_verify`` wraps ``xmlsec1 --verify --trusted-pem CA --enabled-reference-uris empty FILE`` (exit 0 =
valid), the independent verifier every signing test uses.
"""

from __future__ import annotations

import base64
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography import x509
from lxml import etree
from signxml.algorithms import DigestAlgorithm, SignatureMethod
from signxml.exceptions import InvalidCertificate, InvalidDigest, InvalidInput, InvalidSignature
from signxml.verifier import SignatureConfiguration, XMLVerifier

from adapters.signers.errors import InvalidSignatureError, SignerConfigError, UnsignableDocumentError
from adapters.signers.xmldsig import (
    C14N_1_0,
    DS_NS,
    ENVELOPED_SIGNATURE,
    RSA_SHA256,
    SHA256,
    SLOT_NAME,
    parse_document,
)

_DS = "{" + DS_NS + "}"
#: Transform lists accepted on verification: ours, and .NET ``SignedXml``'s (enveloped only, which
#: canonicalises its output with inclusive C14N 1.0 by default; DOMAIN.md §10.2).
_ACCEPTED_TRANSFORMS = ((ENVELOPED_SIGNATURE, C14N_1_0), (ENVELOPED_SIGNATURE,))


@dataclass(frozen=True, slots=True)
class VerifiedSignature:
    """A signature that verified: who signed, and whether the certificate chains to the trust store."""

    certificate: x509.Certificate
    trusted: bool  # False when no trust store was given: the value verifies, the signer is not vouched for
    reference_digest: bytes  # SHA-256 of the canonical document (the DigestValue)
    signature_prefix: str | None

    @property
    def subject(self) -> str:
        return self.certificate.subject.rfc4514_string()

    @property
    def serial(self) -> str:
        return format(self.certificate.serial_number, "x")


def _one(parent: etree._Element, tag: str, where: str) -> etree._Element:
    found = parent.findall(_DS + tag)
    if len(found) != 1:
        raise InvalidSignatureError(f"profile: expected one ds:{tag} in {where}, found {len(found)}")
    return found[0]


def _algorithm(element: etree._Element, expected: str) -> None:
    algorithm = element.get("Algorithm")
    if algorithm != expected:
        raise InvalidSignatureError(
            f"profile: {etree.QName(element).localname} is {algorithm!r}, expected {expected}"
        )


def check_profile(tree: etree._ElementTree) -> tuple[etree._Element, x509.Certificate, bytes]:
    """The profile checks; returns (CHUKYDONVI, embedded certificate, DigestValue)."""
    root = tree.getroot()
    signatures = list(tree.iter(_DS + "Signature"))
    if len(signatures) != 1:
        raise InvalidSignatureError(f"profile: expected exactly one ds:Signature, found {len(signatures)}")
    signature = signatures[0]
    slot = signature.getparent()
    if (
        slot is None
        or slot.getparent() is not root
        or etree.QName(slot).localname != SLOT_NAME
        or root[-1] is not slot
    ):
        raise InvalidSignatureError(
            f"profile: ds:Signature must be inside <{SLOT_NAME}>, the root's last child"
        )
    if len(slot) != 1 or (slot.text or "").strip() or (signature.tail or "").strip():
        raise InvalidSignatureError(f"profile: ds:Signature must be the only content of <{SLOT_NAME}>")
    signed_info = _one(signature, "SignedInfo", "Signature")
    _algorithm(_one(signed_info, "CanonicalizationMethod", "SignedInfo"), C14N_1_0)
    _algorithm(_one(signed_info, "SignatureMethod", "SignedInfo"), RSA_SHA256)
    reference = _one(signed_info, "Reference", "SignedInfo")
    if reference.get("URI") != "":
        raise InvalidSignatureError('profile: the Reference must have URI="" (the whole document)')
    transforms = tuple(t.get("Algorithm") for t in _one(reference, "Transforms", "Reference"))
    if transforms not in _ACCEPTED_TRANSFORMS:
        raise InvalidSignatureError(f"profile: unexpected transforms {transforms}")
    _algorithm(_one(reference, "DigestMethod", "Reference"), SHA256)
    digest_text = _one(reference, "DigestValue", "Reference").text or ""
    certificates = signature.findall(f"{_DS}KeyInfo/{_DS}X509Data/{_DS}X509Certificate")
    if not certificates:
        raise InvalidSignatureError("profile: no KeyInfo/X509Data/X509Certificate")
    try:
        certificate = x509.load_der_x509_certificate(
            base64.b64decode("".join((certificates[0].text or "").split()))
        )
        digest = base64.b64decode(digest_text, validate=True)
    except ValueError:
        raise InvalidSignatureError("profile: unreadable X509Certificate or DigestValue") from None
    return slot, certificate, digest


def verify(signed: bytes, trust_store: Path | None, *, at: datetime | None = None) -> VerifiedSignature:
    """Verify a signed envelope or check-in file; raise ``InvalidSignatureError`` when it does not verify.

    ``trust_store``: PEM bundle of the CAs (and intermediates) the signer's certificate must chain to; ``None``
    checks the signature against the embedded certificate only (``trusted=False``). ``at``: the time at which
    certificates must be valid (default now), for files signed before a certificate expired.
    """
    try:
        tree = parse_document(signed)
    except UnsignableDocumentError as exc:
        raise InvalidSignatureError(str(exc)) from None
    slot, certificate, digest = check_profile(tree)
    signature = slot[0]
    location = (
        "./" + (f"{{{etree.QName(slot).namespace}}}" if etree.QName(slot).namespace else "") + SLOT_NAME + "/"
    )
    config = SignatureConfiguration(
        require_x509=True,
        location=location,
        expect_references=1,
        signature_methods=frozenset({SignatureMethod.RSA_SHA256}),
        digest_algorithms=frozenset({DigestAlgorithm.SHA256}),
        verification_time=(at or datetime.now(UTC)),
    )
    verifier = XMLVerifier()
    verifier.excise_empty_xmlns_declarations = True  # signxml issue #275, see the module docstring
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=True)
    try:
        if trust_store is not None:
            if not trust_store.is_file():
                raise SignerConfigError(f"trust store not found: {trust_store}")
            verifier.verify(signed, ca_pem_file=str(trust_store), expect_config=config, parser=parser)
        else:
            verifier.verify(signed, x509_cert=certificate, expect_config=config, parser=parser)
    except InvalidDigest:
        raise InvalidSignatureError(
            "the document was changed after signing (reference digest mismatch)"
        ) from None
    except InvalidCertificate as exc:
        raise InvalidSignatureError(f"certificate not accepted: {exc}") from None
    except (InvalidSignature, InvalidInput) as exc:
        raise InvalidSignatureError(f"signature does not verify: {exc}") from None
    return VerifiedSignature(
        certificate=certificate,
        trusted=trust_store is not None,
        reference_digest=digest,
        signature_prefix=signature.prefix,
    )


# ---------------------------------------------------------------------------------------------- xmlsec1


@dataclass(frozen=True, slots=True)
class Xmlsec1Result:
    ok: bool
    returncode: int
    output: str  # xmlsec1's stderr/stdout: reference and signature status lines, no document content


def xmlsec1_verify(
    signed: bytes | Path,
    *,
    trusted_pem: Path,
    untrusted_pem: Path | None = None,
    at: datetime | None = None,
    binary: str = "xmlsec1",
) -> Xmlsec1Result:
    """``xmlsec1 --verify --trusted-pem CA --enabled-reference-uris empty FILE`` (exit 0 = valid).

    ``at`` maps to ``--verification-gmt-time`` (files signed while a now-expired certificate was valid).
    Never ``--insecure``: the chain to ``trusted_pem`` is part of the answer.
    """
    executable = shutil.which(binary)
    if executable is None:
        raise SignerConfigError(f"{binary} not found on PATH (Debian/Ubuntu: apt-get install xmlsec1)")
    with tempfile.TemporaryDirectory(prefix="vneid-xmlsec1-") as scratch:
        if isinstance(signed, bytes):
            path = Path(scratch) / "signed.xml"
            path.write_bytes(signed)
        else:
            path = signed
        command = [
            executable,
            "--verify",
            "--trusted-pem",
            str(trusted_pem),
            "--enabled-reference-uris",
            "empty",
        ]
        if untrusted_pem is not None:
            command += ["--untrusted-pem", str(untrusted_pem)]
        if at is not None:
            command += ["--verification-gmt-time", at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")]
        completed = subprocess.run(  # noqa: S603 - fixed binary, argument list, no shell
            [*command, str(path)], capture_output=True, text=True, timeout=60, check=False
        )
    return Xmlsec1Result(
        ok=completed.returncode == 0,
        returncode=completed.returncode,
        output=(completed.stdout + completed.stderr).strip(),
    )
