"""A throwaway test PKI: a CA and a hospital signing certificate, written as PKCS#12 and PEM.

For tests, the demo and the training host only — never for production signatures (DOMAIN.md §10.4). The
certificates look like Vietnamese organisation signing certificates (C=VN, organisation name, the facility code)
with the extensions verifiers expect: the CA has BasicConstraints CA + keyCertSign; the hospital certificate has
digitalSignature + nonRepudiation, SKI/AKI. Every name is invented and marked TEST.

The CA can also answer for its certificates' status (DOMAIN.md §10.5), the way a licensed CA does: the hospital
certificate can point to an OCSP responder and a CRL (``ocsp_url``, ``crl_url``, ``ca_issuers_url``), a
delegated responder certificate carries the OCSP-signing EKU (``issue_ocsp_responder``), and
``ocsp_response`` / ``certificate_revocation_list`` produce the signed answers a test server hands out.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509 import ocsp
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID, NameOID

DEFAULT_ORGANISATION = "BỆNH VIỆN ĐA KHOA DEMO (TEST)"


@dataclass(frozen=True, slots=True, repr=False)
class Issued:
    """A private key and the certificate issued for it."""

    key: rsa.RSAPrivateKey
    certificate: x509.Certificate

    def __repr__(self) -> str:
        return f"Issued(subject={self.certificate.subject.rfc4514_string()!r})"


def generate_rsa_key(key_size: int = 2048) -> rsa.RSAPrivateKey:
    if key_size < 2048:
        raise ValueError("RSA keys below 2048 bits are not accepted")
    return rsa.generate_private_key(public_exponent=65537, key_size=key_size)


def _validity(
    not_before: datetime | None, not_after: datetime | None, valid_days: int
) -> tuple[datetime, datetime]:
    start = not_before or (datetime.now(UTC) - timedelta(hours=1))
    return start, not_after or (start + timedelta(days=valid_days))


def generate_ca(
    *,
    common_name: str = "vneid-sync TEST CA (not for production)",
    key_size: int = 3072,
    valid_days: int = 3650,
    not_before: datetime | None = None,
) -> Issued:
    """A self-signed root CA."""
    key = generate_rsa_key(key_size)
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "VN"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "vneid-sync test PKI"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )
    start, end = _validity(not_before, None, valid_days)
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ski, critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False)
        .sign(key, hashes.SHA256())
    )
    return Issued(key=key, certificate=certificate)


def issue_signing_certificate(
    ca: Issued,
    *,
    facility_code: str = "79999",
    organisation: str = DEFAULT_ORGANISATION,
    key_size: int = 2048,
    key: rsa.RSAPrivateKey | None = None,
    valid_days: int = 365,
    not_before: datetime | None = None,
    not_after: datetime | None = None,
    digital_signature: bool = True,
    ocsp_url: str | None = None,
    crl_url: str | None = None,
    ca_issuers_url: str | None = None,
) -> Issued:
    """A hospital (organisation) signing certificate issued by ``ca``; ``key`` reuses an existing key.

    ``ocsp_url`` / ``ca_issuers_url`` go into the AuthorityInformationAccess extension and ``crl_url`` into
    CRLDistributionPoints, as licensed CAs do; without them the certificate names no revocation service."""
    key = key or generate_rsa_key(key_size)
    start, end = _validity(not_before, not_after, valid_days)
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "VN"),
            x509.NameAttribute(NameOID.STATE_OR_PROVINCE_NAME, "TEST"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organisation),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, f"MACSKCB:{facility_code}"),
            x509.NameAttribute(NameOID.COMMON_NAME, organisation),
        ]
    )
    ca_ski = ca.certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca.certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=digital_signature,
                content_commitment=digital_signature,
                key_encipherment=not digital_signature,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.EMAIL_PROTECTION]),
            critical=False,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False)
    )
    builder = _with_revocation_pointers(
        builder, ocsp_url=ocsp_url, crl_url=crl_url, ca_issuers_url=ca_issuers_url
    )
    return Issued(key=key, certificate=builder.sign(ca.key, hashes.SHA256()))


def _with_revocation_pointers(
    builder: x509.CertificateBuilder,
    *,
    ocsp_url: str | None,
    crl_url: str | None,
    ca_issuers_url: str | None,
) -> x509.CertificateBuilder:
    access = [
        x509.AccessDescription(method, x509.UniformResourceIdentifier(url))
        for method, url in (
            (AuthorityInformationAccessOID.OCSP, ocsp_url),
            (AuthorityInformationAccessOID.CA_ISSUERS, ca_issuers_url),
        )
        if url
    ]
    if access:
        builder = builder.add_extension(x509.AuthorityInformationAccess(access), critical=False)
    if crl_url:
        point = x509.DistributionPoint([x509.UniformResourceIdentifier(crl_url)], None, None, None)
        builder = builder.add_extension(x509.CRLDistributionPoints([point]), critical=False)
    return builder


# ------------------------------------------------------------------------------------ certificate status

#: A revoked serial number: when, and why (``None``: no reason given, "unspecified").
RevokedEntry = tuple[datetime, x509.ReasonFlags | None]


def issue_ocsp_responder(
    ca: Issued,
    *,
    ocsp_signing: bool = True,
    common_name: str = "vneid-sync TEST OCSP responder",
    valid_days: int = 30,
    not_before: datetime | None = None,
) -> Issued:
    """A delegated OCSP responder certificate issued by ``ca`` (RFC 6960 §4.2.2.2): it may sign answers for
    the CA's certificates only with the id-kp-OCSPSigning EKU (``ocsp_signing=False`` makes one without)."""
    key = generate_rsa_key(2048)
    start, end = _validity(not_before, None, valid_days)
    usage = [ExtendedKeyUsageOID.OCSP_SIGNING] if ocsp_signing else [ExtendedKeyUsageOID.CLIENT_AUTH]
    ca_ski = ca.certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    certificate = (
        x509.CertificateBuilder()
        .subject_name(
            x509.Name(
                [
                    x509.NameAttribute(NameOID.COUNTRY_NAME, "VN"),
                    x509.NameAttribute(NameOID.ORGANIZATION_NAME, "vneid-sync test PKI"),
                    x509.NameAttribute(NameOID.COMMON_NAME, common_name),
                ]
            )
        )
        .issuer_name(ca.certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage(usage), critical=False)
        .add_extension(x509.OCSPNoCheck(), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False)
        .sign(ca.key, hashes.SHA256())
    )
    return Issued(key=key, certificate=certificate)


def ocsp_response(
    request: ocsp.OCSPRequest,
    *,
    signer: Issued,
    revoked: Mapping[int, RevokedEntry] | None = None,
    this_update: datetime,
    next_update: datetime | None,
    known_serials: frozenset[int] | None = None,
    echo_nonce: bool = True,
    include_signer_certificate: bool = False,
    responder_id: ocsp.OCSPResponderEncoding = ocsp.OCSPResponderEncoding.HASH,
) -> bytes:
    """The DER answer to ``request``, signed by ``signer`` (the CA itself, or a delegated responder whose
    certificate is then included). ``known_serials``: serials the CA issued; others are answered "unknown".

    To forge an answer in the CA's name, sign with an impostor (``generate_ca`` with the CA's common name) and
    ``responder_id=NAME``: the answer then names the real CA but is signed by another key."""
    serial = request.serial_number
    revocation = (revoked or {}).get(serial)
    if known_serials is not None and serial not in known_serials and revocation is None:
        status = ocsp.OCSPCertStatus.UNKNOWN
    else:
        status = ocsp.OCSPCertStatus.REVOKED if revocation else ocsp.OCSPCertStatus.GOOD
    builder = (
        ocsp.OCSPResponseBuilder()
        .add_response_by_hash(
            issuer_name_hash=request.issuer_name_hash,
            issuer_key_hash=request.issuer_key_hash,
            serial_number=serial,
            algorithm=request.hash_algorithm,
            cert_status=status,
            this_update=this_update,
            next_update=next_update,
            revocation_time=revocation[0] if revocation else None,
            revocation_reason=revocation[1] if revocation else None,
        )
        .responder_id(responder_id, signer.certificate)
    )
    if include_signer_certificate:
        builder = builder.certificates([signer.certificate])
    if echo_nonce:
        try:
            nonce = request.extensions.get_extension_for_class(x509.OCSPNonce).value
        except x509.ExtensionNotFound:
            pass
        else:
            builder = builder.add_extension(nonce, critical=False)
    return builder.sign(signer.key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)


def ocsp_error_response(status: ocsp.OCSPResponseStatus) -> bytes:
    """An unsigned OCSP error answer (tryLater, internalError, unauthorized …)."""
    return ocsp.OCSPResponseBuilder.build_unsuccessful(status).public_bytes(serialization.Encoding.DER)


def certificate_revocation_list(
    ca: Issued,
    revoked: Mapping[int, RevokedEntry] | None = None,
    *,
    last_update: datetime,
    next_update: datetime,
    number: int = 1,
) -> bytes:
    """A DER CRL of ``ca`` listing ``revoked`` (with the reason as a CRL entry extension)."""
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca.certificate.subject)
        .last_update(last_update)
        .next_update(next_update)
        .add_extension(x509.CRLNumber(number), critical=False)
    )
    for serial, (when, reason) in (revoked or {}).items():
        entry = x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(when)
        if reason is not None:
            entry = entry.add_extension(x509.CRLReason(reason), critical=False)
        builder = builder.add_revoked_certificate(entry.build())
    return builder.sign(ca.key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)


# ----------------------------------------------------------------------------------------------- writing


def _write_private(path: Path, data: bytes) -> Path:
    """Write a secret file readable by the owner only (the file key source refuses anything wider)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(data)
    path.chmod(0o600)
    return path


def write_pkcs12(
    path: Path, issued: Issued, *, passphrase: str, chain: tuple[x509.Certificate, ...] = ()
) -> Path:
    """PKCS#12 with the key, its certificate and ``chain``, encrypted with ``passphrase`` (AES-256)."""
    data = pkcs12.serialize_key_and_certificates(
        b"vneid-sync-test",
        issued.key,
        issued.certificate,
        list(chain) or None,
        serialization.BestAvailableEncryption(passphrase.encode("utf-8")),
    )
    return _write_private(path, data)


def write_private_key_pem(path: Path, key: rsa.RSAPrivateKey, *, passphrase: str | None = None) -> Path:
    """PKCS#8 PEM, encrypted when a passphrase is given."""
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(passphrase.encode("utf-8"))
        if passphrase
        else serialization.NoEncryption()
    )
    data = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)
    return _write_private(path, data)


def write_certificates_pem(path: Path, *certificates: x509.Certificate) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certificates))
    return path


@dataclass(frozen=True, slots=True)
class TestPkiFiles:
    """Where ``create_test_pki`` put things; ``passphrase`` protects both the PKCS#12 and the PEM key."""

    __test__ = False  # not a pytest test class despite the name

    directory: Path
    ca_certificate: Path  # trust store for verification (xmlsec1 --trusted-pem, signer.trust_store)
    pkcs12: Path  # signer.key_file for the file source
    private_key: Path  # PEM key (encrypted), with certificate below: the other file-source layout
    certificate: Path  # PEM: hospital certificate
    passphrase: str = field(repr=False)
    ca: Issued = field(repr=False)
    hospital: Issued = field(repr=False)


def create_test_pki(
    directory: Path,
    *,
    key_size: int = 2048,
    ca_key_size: int = 3072,
    facility_code: str = "79999",
    organisation: str = DEFAULT_ORGANISATION,
    valid_days: int = 365,
    not_before: datetime | None = None,
    not_after: datetime | None = None,
    passphrase: str | None = None,
    ca: Issued | None = None,
    ocsp_url: str | None = None,
    crl_url: str | None = None,
    ca_issuers_url: str | None = None,
) -> TestPkiFiles:
    """Generate (or reuse ``ca``) a CA and a hospital certificate, and write them under ``directory``.

    The URLs name the CA's revocation services in the hospital certificate (see ``issue_signing_certificate``)."""
    passphrase = passphrase or secrets.token_urlsafe(18)
    ca = ca or generate_ca(key_size=ca_key_size)
    hospital = issue_signing_certificate(
        ca,
        facility_code=facility_code,
        organisation=organisation,
        key_size=key_size,
        valid_days=valid_days,
        not_before=not_before,
        not_after=not_after,
        ocsp_url=ocsp_url,
        crl_url=crl_url,
        ca_issuers_url=ca_issuers_url,
    )
    return TestPkiFiles(
        directory=directory,
        ca_certificate=write_certificates_pem(directory / "ca.pem", ca.certificate),
        pkcs12=write_pkcs12(
            directory / "hospital.p12", hospital, passphrase=passphrase, chain=(ca.certificate,)
        ),
        private_key=write_private_key_pem(
            directory / "hospital-key.pem", hospital.key, passphrase=passphrase
        ),
        certificate=write_certificates_pem(directory / "hospital-cert.pem", hospital.certificate),
        passphrase=passphrase,
        ca=ca,
        hospital=hospital,
    )
