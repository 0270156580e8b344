"""CRLs (RFC 5280 §5): the fallback when no OCSP answer can be had.

A CRL counts only when it is a complete CRL of the certificate's own issuer (same name, signed with the
issuer's key, the issuer allowed to sign CRLs), covers end-entity certificates, and is fresh. Delta CRLs,
indirect CRLs and CRLs partitioned by reason are refused rather than half-understood: a refused CRL makes the
status unknown, never good.
"""

from __future__ import annotations

from datetime import datetime

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from adapters.signers.revocation.model import (
    Answer,
    RevocationCheckError,
    RevocationSource,
    valid_until,
)


def crl_is_der(data: bytes) -> bool:
    """Whether ``data`` is a DER CRL rather than PEM armour around one."""
    return not data.lstrip().startswith(b"-----BEGIN")


def load_crl(data: bytes) -> x509.CertificateRevocationList:
    """DER or PEM (CAs publish DER; people who copy a CRL by hand often end up with PEM)."""
    if not crl_is_der(data):
        return x509.load_pem_x509_crl(data)
    return x509.load_der_x509_crl(data)


def _refuse_partial(crl: x509.CertificateRevocationList, what: str) -> None:
    for extension in crl.extensions:
        value = extension.value
        if isinstance(value, x509.DeltaCRLIndicator):
            raise RevocationCheckError(f"{what}: a delta CRL, not a complete one")
        if isinstance(value, x509.IssuingDistributionPoint) and (
            value.only_contains_ca_certs
            or value.only_contains_attribute_certs
            or value.only_some_reasons
            or value.indirect_crl
        ):
            raise RevocationCheckError(f"{what}: a partitioned or indirect CRL (not supported)")


def _may_sign_crls(issuer: x509.Certificate) -> bool:
    try:
        usage = issuer.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return True
    return bool(usage.crl_sign)


def verify_crl(
    data: bytes, *, certificate: x509.Certificate, issuer: x509.Certificate, now: datetime, url: str
) -> Answer:
    """The verified status of ``certificate`` in the CRL ``data``; ``RevocationCheckError`` when unusable."""
    what = f"CRL {url}"
    try:
        crl = load_crl(data)
    except ValueError:
        raise RevocationCheckError(f"{what}: not a CRL") from None
    if crl.issuer != certificate.issuer:
        raise RevocationCheckError(f"{what}: published by another issuer")
    if not _may_sign_crls(issuer):
        raise RevocationCheckError(f"{what}: the issuer's KeyUsage does not allow signing CRLs")
    if not crl.is_signature_valid(issuer.public_key()):  # type: ignore[arg-type]  # every CA key type is accepted at run time
        raise RevocationCheckError(f"{what}: the signature does not verify (forged or corrupted CRL)")
    _refuse_partial(crl, what)
    until = valid_until(crl.last_update_utc, crl.next_update_utc, now, what=what)
    entry = crl.get_revoked_certificate_by_serial_number(certificate.serial_number)
    reason: x509.ReasonFlags | None = None
    if entry is not None:
        try:
            reason = entry.extensions.get_extension_for_class(x509.CRLReason).value.reason
        except x509.ExtensionNotFound:
            reason = None
    revoked = entry is not None and reason is not x509.ReasonFlags.remove_from_crl
    return Answer.verified(
        RevocationSource.CRL,
        url,
        this_update=crl.last_update_utc,
        next_update=crl.next_update_utc,
        valid_until=until,
        # DER always, also for a PEM copy in signer.crl_file: what is kept is the CA's signed object, which
        # `openssl crl -inform DER` reads (the bytes are the ones the CA signed, not re-encoded).
        der=data if crl_is_der(data) else crl.public_bytes(serialization.Encoding.DER),
        revoked_at=entry.revocation_date_utc if revoked and entry is not None else None,
        reason=reason,
    )
