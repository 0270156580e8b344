"""OCSP (RFC 6960): the request for one certificate, and the checks an answer must pass to be believed.

An answer counts only when it is signed by the issuing CA itself or by a responder certificate the CA issued
directly with the id-kp-OCSPSigning EKU (§4.2.2.2), covers exactly our certificate (CertID: serial, issuer
name hash, issuer key hash), echoes our nonce when it carries one (RFC 8954: responders serving pre-produced
answers send none, which is allowed), and is fresh (thisUpdate not in the future, nextUpdate not passed).
"""

from __future__ import annotations

import os
from datetime import datetime

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, padding, rsa
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID, SignatureAlgorithmOID

from adapters.signers.revocation.model import (
    CLOCK_SKEW,
    Answer,
    RevocationCheckError,
    RevocationSource,
    valid_until,
)

#: RFC 8954 allows 1 to 32 octets; 32 makes a replayed answer for our request practically impossible.
NONCE_BYTES = 32
CONTENT_TYPE_REQUEST = "application/ocsp-request"


def new_nonce() -> bytes:
    return os.urandom(NONCE_BYTES)


def build_request(certificate: x509.Certificate, issuer: x509.Certificate, *, nonce: bytes | None) -> bytes:
    """DER request for ``certificate``. SHA-1 CertID: the one every responder answers (RFC 5019 §2.1.1)."""
    builder = ocsp.OCSPRequestBuilder().add_certificate(certificate, issuer, hashes.SHA1())  # noqa: S303  # CertID hashing, not a signature: RFC 5019 requires SHA-1 here
    if nonce is not None:
        builder = builder.add_extension(x509.OCSPNonce(nonce), critical=False)
    return builder.build().public_bytes(serialization.Encoding.DER)


def _cert_id(
    certificate: x509.Certificate, issuer: x509.Certificate, algorithm: hashes.HashAlgorithm
) -> tuple[bytes, bytes, int]:
    """(issuer name hash, issuer key hash, serial) as a responder computes them with ``algorithm``."""
    request = ocsp.OCSPRequestBuilder().add_certificate(certificate, issuer, algorithm).build()
    return request.issuer_name_hash, request.issuer_key_hash, request.serial_number


def _names_responder(response: ocsp.OCSPResponse, candidate: x509.Certificate) -> bool:
    """Whether the ResponderID (by name, or by the SHA-1 of the public key bits) names ``candidate``."""
    if response.responder_name is not None:
        return response.responder_name == candidate.subject
    key_hash = x509.SubjectKeyIdentifier.from_public_key(candidate.public_key()).digest
    return response.responder_key_hash == key_hash


def _delegated_responder(
    response: ocsp.OCSPResponse, issuer: x509.Certificate, now: datetime
) -> x509.Certificate:
    """The responder certificate included in the answer, checked against RFC 6960 §4.2.2.2."""
    named = [c for c in response.certificates if _names_responder(response, c)]
    if not named:
        raise RevocationCheckError(
            "OCSP answer signed by a responder that is neither the issuing CA nor a certificate it includes"
        )
    responder = named[0]
    try:
        responder.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        raise RevocationCheckError(
            f"OCSP responder certificate (serial {responder.serial_number:x}) was not issued by the "
            "certificate's CA"
        ) from None
    try:
        usages = responder.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        usages = x509.ExtendedKeyUsage([])
    if ExtendedKeyUsageOID.OCSP_SIGNING not in usages:
        raise RevocationCheckError(
            f"OCSP responder certificate (serial {responder.serial_number:x}) lacks the OCSP-signing EKU"
        )
    if not (responder.not_valid_before_utc - CLOCK_SKEW <= now <= responder.not_valid_after_utc + CLOCK_SKEW):
        raise RevocationCheckError(
            f"OCSP responder certificate (serial {responder.serial_number:x}) is outside its validity period"
        )
    return responder


def verify_signature(
    public_key: object,
    signature: bytes,
    data: bytes,
    hash_algorithm: hashes.HashAlgorithm | None,
    algorithm_oid: x509.ObjectIdentifier,
) -> None:
    """Raise ``InvalidSignature`` unless ``signature`` over ``data`` verifies with ``public_key``."""
    if isinstance(public_key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
        public_key.verify(signature, data)
        return
    if hash_algorithm is None:
        raise InvalidSignature("no hash algorithm for this key type")
    if isinstance(public_key, rsa.RSAPublicKey):
        scheme: padding.AsymmetricPadding = (
            padding.PSS(mgf=padding.MGF1(hash_algorithm), salt_length=padding.PSS.AUTO)
            if algorithm_oid == SignatureAlgorithmOID.RSASSA_PSS
            else padding.PKCS1v15()
        )
        public_key.verify(signature, data, scheme, hash_algorithm)
    elif isinstance(public_key, ec.EllipticCurvePublicKey):
        public_key.verify(signature, data, ec.ECDSA(hash_algorithm))
    elif isinstance(public_key, dsa.DSAPublicKey):
        public_key.verify(signature, data, hash_algorithm)
    else:
        raise InvalidSignature(f"unsupported responder key {type(public_key).__name__}")


def verify_response(
    der: bytes,
    *,
    certificate: x509.Certificate,
    issuer: x509.Certificate,
    now: datetime,
    url: str,
    nonce: bytes | None = None,
) -> Answer:
    """The verified answer for ``certificate`` in ``der``; ``RevocationCheckError`` says why there is none.

    ``nonce``: the one sent with the request (``None`` when re-reading a cached answer)."""
    what = f"OCSP {url}"
    try:
        response = ocsp.load_der_ocsp_response(der)
    except ValueError:
        raise RevocationCheckError(f"{what}: not an OCSP response") from None
    if response.response_status is not ocsp.OCSPResponseStatus.SUCCESSFUL:
        raise RevocationCheckError(f"{what}: responder answered {response.response_status.name}")
    signer = issuer if _names_responder(response, issuer) else _delegated_responder(response, issuer, now)
    try:
        hash_algorithm = response.signature_hash_algorithm
    except UnsupportedAlgorithm:
        raise RevocationCheckError(f"{what}: unsupported signature algorithm") from None
    try:
        verify_signature(
            signer.public_key(),
            response.signature,
            response.tbs_response_bytes,
            hash_algorithm,
            response.signature_algorithm_oid,
        )
    except InvalidSignature:
        raise RevocationCheckError(
            f"{what}: the signature does not verify (forged or corrupted answer)"
        ) from None
    single = next(
        (
            one
            for one in response.responses
            if (one.issuer_name_hash, one.issuer_key_hash, one.serial_number)
            == _cert_id(certificate, issuer, one.hash_algorithm)
        ),
        None,
    )
    if single is None:
        raise RevocationCheckError(f"{what}: the answer does not cover serial {certificate.serial_number:x}")
    if nonce is not None:
        try:
            echoed = response.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce
        except x509.ExtensionNotFound:
            echoed = None
        if echoed is not None and echoed != nonce:
            raise RevocationCheckError(f"{what}: nonce mismatch (a replayed answer)")
    until = valid_until(single.this_update_utc, single.next_update_utc, now, what=what)
    if single.certificate_status is ocsp.OCSPCertStatus.UNKNOWN:
        raise RevocationCheckError(
            f"{what}: the responder does not know serial {certificate.serial_number:x}"
        )
    revoked = single.certificate_status is ocsp.OCSPCertStatus.REVOKED
    return Answer.verified(
        RevocationSource.OCSP,
        url,
        this_update=single.this_update_utc,
        next_update=single.next_update_utc,
        valid_until=until,
        der=der,
        revoked_at=single.revocation_time_utc if revoked else None,
        reason=single.revocation_reason,
    )
