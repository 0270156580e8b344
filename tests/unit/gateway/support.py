"""Signed test files for the gateway tests: a throwaway PKI and tiny GIAMDINHHS / XML0 documents.

Self-contained on purpose (the payload and signer layers have their own tests): the envelope follows
DOMAIN.md §3.2 with one XML1 carrying only MA_LK and two invented fields, signed by ``xmlsec1 --sign`` with
the profile of §10.2 (un-prefixed ``Signature`` inside ``CHUKYDONVI``). No personal data, not even invented.
"""

from __future__ import annotations

import base64
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from ipaddress import IPv4Address
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from adapters.signers.testpki import generate_ca
from tests.services import require_binary

XML_DECLARATION = b'<?xml version="1.0" encoding="utf-8"?>'
ROOT_NAMESPACES = (
    b' xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:xsd="http://www.w3.org/2001/XMLSchema"'
)
SIGNATURE_TEMPLATE = (
    b'<Signature xmlns="http://www.w3.org/2000/09/xmldsig#"><SignedInfo>'
    b'<CanonicalizationMethod Algorithm="http://www.w3.org/TR/2001/REC-xml-c14n-20010315"/>'
    b'<SignatureMethod Algorithm="http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"/>'
    b'<Reference URI=""><Transforms>'
    b'<Transform Algorithm="http://www.w3.org/2000/09/xmldsig#enveloped-signature"/>'
    b'<Transform Algorithm="http://www.w3.org/TR/2001/REC-xml-c14n-20010315"/>'
    b'</Transforms><DigestMethod Algorithm="http://www.w3.org/2001/04/xmlenc#sha256"/>'
    b"<DigestValue/></Reference></SignedInfo><SignatureValue/>"
    b"<KeyInfo><X509Data/></KeyInfo></Signature>"
)


@dataclass(frozen=True)
class Pki:
    ca_pem: Path  # the trust store
    key_pem: Path  # signing key (unencrypted, test only)
    cert_pem: Path  # signing certificate, issued by the CA


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "VN"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "vneid-sync TEST"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _write_key(path: Path, key: rsa.RSAPrivateKey) -> Path:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return path


def _write_cert(path: Path, certificate: x509.Certificate) -> Path:
    path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    return path


def make_pki(directory: Path, *, label: str = "TEST", server_ip: str | None = None) -> Pki:
    """A CA and one certificate issued by it: a signing certificate, or a TLS server certificate for
    ``server_ip`` when given."""
    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.now(UTC)
    issued_ca = generate_ca(common_name=f"{label} CA", key_size=2048, valid_days=30)
    ca_key, ca, ca_name = issued_ca.key, issued_ca.certificate, issued_ca.certificate.subject
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(f"{label} {'server' if server_ip else 'signer'}"))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=7))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
    )
    builder = builder.add_extension(
        x509.KeyUsage(
            digital_signature=True,
            content_commitment=server_ip is None,
            key_encipherment=server_ip is not None,
            data_encipherment=False,
            key_agreement=False,
            key_cert_sign=False,
            crl_sign=False,
            encipher_only=False,
            decipher_only=False,
        ),
        critical=True,
    )
    if server_ip is not None:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(IPv4Address(server_ip))]), critical=False
        )
    certificate = builder.sign(ca_key, hashes.SHA256())
    return Pki(
        ca_pem=_write_cert(directory / "ca.pem", ca),
        key_pem=_write_key(directory / "key.pem", key),
        cert_pem=_write_cert(directory / "cert.pem", certificate),
    )


def inner_xml1(ma_lk: str, *, filler: str = "") -> bytes:
    return (
        XML_DECLARATION
        + ROOT_NAMESPACES.join((b"<TONG_HOP", b">"))
        + f"<MA_LK>{ma_lk}</MA_LK><STT>1</STT><MA_BN>BN{filler}</MA_BN></TONG_HOP>".encode()
    )


def claim_template(
    ma_lk: str, *, facility: str = "79999", filler: str = "", comment: str = "", signature: bool = True
) -> bytes:
    """An unsigned GIAMDINHHS with the signature template in CHUKYDONVI (``signature=False``: empty slot).
    ``comment`` goes into an XML comment before the root: non-ASCII bytes in the file itself."""
    content = base64.b64encode(inner_xml1(ma_lk, filler=filler))
    return (
        XML_DECLARATION
        + (f"<!--{comment}-->".encode() if comment else b"")
        + b"<GIAMDINHHS"
        + ROOT_NAMESPACES
        + b"><THONGTINDONVI><MACSKCB>"
        + facility.encode()
        + b"</MACSKCB></THONGTINDONVI><THONGTINHOSO><NGAYLAP>20260304</NGAYLAP><SOLUONGHOSO>1</SOLUONGHOSO>"
        + b"<DANHSACHHOSO><HOSO><FILEHOSO><LOAIHOSO>XML1</LOAIHOSO><NOIDUNGFILE>"
        + content
        + b"</NOIDUNGFILE></FILEHOSO></HOSO></DANHSACHHOSO></THONGTINHOSO>"
        + (b"<CHUKYDONVI>" + SIGNATURE_TEMPLATE + b"</CHUKYDONVI>" if signature else b"<CHUKYDONVI/>")
        + b"</GIAMDINHHS>"
    )


def checkin_template(ma_lk: str) -> bytes:
    return (
        XML_DECLARATION
        + b"<CHI_TIEU_TRANG_THAI_KCB"
        + ROOT_NAMESPACES
        + b"><DSACH_TRANG_THAI_KCB><TRANG_THAI_KCB><MA_LK>"
        + ma_lk.encode()
        + b"</MA_LK><STT>1</STT></TRANG_THAI_KCB></DSACH_TRANG_THAI_KCB><CHUKYDONVI>"
        + SIGNATURE_TEMPLATE
        + b"</CHUKYDONVI></CHI_TIEU_TRANG_THAI_KCB>"
    )


class XmlsecSigner:
    """Signs templates with ``xmlsec1 --sign`` (fills DigestValue, SignatureValue and X509Data)."""

    def __init__(self, pki: Pki, workdir: Path) -> None:
        self.pki = pki
        self._binary = require_binary("xmlsec1")
        self._workdir = workdir
        self._count = 0

    def sign(self, template: bytes) -> bytes:
        self._count += 1
        source = self._workdir / f"template-{self._count}.xml"
        target = self._workdir / f"signed-{self._count}.xml"
        source.write_bytes(template)
        subprocess.run(
            [
                self._binary,
                "--sign",
                "--privkey-pem",
                f"{self.pki.key_pem},{self.pki.cert_pem}",
                "--output",
                str(target),
                str(source),
            ],
            check=True,
            capture_output=True,
        )
        return target.read_bytes()

    def claim(self, ma_lk: str, **options: str) -> bytes:
        return self.sign(claim_template(ma_lk, **options))

    def checkin(self, ma_lk: str) -> bytes:
        return self.sign(checkin_template(ma_lk))
