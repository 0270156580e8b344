"""Signing certificate health: what ``vneid-sync cert check`` prints and the metrics expose.

Status:

- ``failure``: expired, not yet valid, the key does not belong to the certificate, RSA key below 2048 bits,
  not an RSA key, or a KeyUsage without digitalSignature/nonRepudiation. Signing is refused or would be.
- ``warning``: expires within ``expiry_warning_days`` (default 30): renew and register the new certificate on
  the BHXH portal (DOMAIN.md §10.1) before then.
- ``ok``: none of the above.

Revocation (OCSP/CRL, DOMAIN.md §10.5; ``adapters.signers.revocation``), when a status is given:

- ``revoked``: failure, whatever ``signer.revocation`` says (the worker refuses to sign);
- ``unknown`` although the certificate names a revocation service (unreachable, stale, unverifiable answer):
  a warning under ``signer.revocation = "warn"``, a failure under ``"require"`` (the worker refuses to sign);
- ``unknown`` because nothing can be asked (no AIA/CRLDP, nothing configured: test certificates): reported,
  but a failure only under ``"require"``: warning about every test certificate would teach people to ignore it.

``vneid-sync cert check`` exits with ``EXIT_OK`` (0), ``EXIT_WARNING`` (3), ``EXIT_FAILURE`` (4) or
``EXIT_REVOKED`` (5: the CA revoked the certificate; replace it); 1 means the check itself could not run (e.g.
the key could not be loaded).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Protocol, runtime_checkable

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa

from adapters.signers.revocation.model import RevocationPolicy, RevocationState, RevocationStatus
from schemas.ports import Signer

EXIT_OK = 0
EXIT_WARNING = 3
EXIT_FAILURE = 4
#: Distinct from a failure: a revoked certificate cannot be fixed by configuration, only replaced.
EXIT_REVOKED = 5
MINIMUM_RSA_BITS = 2048

_KEY_USAGE_NAMES = (
    "digital_signature",
    "content_commitment",
    "key_encipherment",
    "data_encipherment",
    "key_agreement",
    "key_cert_sign",
    "crl_sign",
)


class Health(StrEnum):
    OK = "ok"
    WARNING = "warning"
    FAILURE = "failure"

    @property
    def exit_code(self) -> int:
        return {Health.OK: EXIT_OK, Health.WARNING: EXIT_WARNING, Health.FAILURE: EXIT_FAILURE}[self]


@runtime_checkable
class KeyProbe(Protocol):
    """A signer that can prove its key belongs to its certificate (``EnvelopedSigner`` can)."""

    def key_matches_certificate(self) -> bool: ...


@dataclass(frozen=True, slots=True)
class CertificateReport:
    subject: str
    issuer: str
    serial: str  # hex
    fingerprint_sha256: str
    not_before: datetime
    not_after: datetime
    days_left: float
    key_type: str
    key_size: int | None
    key_usage: tuple[str, ...]
    key_matches: bool | None  # None: not checked (no key at hand)
    status: Health
    problems: tuple[str, ...]
    revocation: RevocationStatus | None = None  # None: not checked

    @property
    def revoked(self) -> bool:
        return self.revocation is not None and self.revocation.state is RevocationState.REVOKED

    @property
    def exit_code(self) -> int:
        return EXIT_REVOKED if self.revoked else self.status.exit_code

    def as_dict(self) -> dict[str, Any]:
        return {
            "status": self.status.value,
            "problems": list(self.problems),
            "subject": self.subject,
            "issuer": self.issuer,
            "serial": self.serial,
            "fingerprint_sha256": self.fingerprint_sha256,
            "not_before": self.not_before.isoformat(),
            "not_after": self.not_after.isoformat(),
            "days_left": round(self.days_left, 2),
            "key_type": self.key_type,
            "key_size": self.key_size,
            "key_usage": list(self.key_usage),
            "key_matches": self.key_matches,
            "revocation": self.revocation.as_dict() if self.revocation is not None else None,
        }


def days_left(certificate: x509.Certificate, now: datetime | None = None) -> float:
    """Days until the certificate expires (negative once expired): the metric to alert on."""
    now = now or datetime.now(UTC)
    return (certificate.not_valid_after_utc - now).total_seconds() / 86400


def _key_usage(certificate: x509.Certificate) -> tuple[str, ...] | None:
    try:
        usage = certificate.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return None
    return tuple(name for name in _KEY_USAGE_NAMES if getattr(usage, name))


def check_certificate(
    certificate: x509.Certificate,
    *,
    warning_days: int,
    now: datetime | None = None,
    key_matches: bool | None = None,
    revocation: RevocationStatus | None = None,
    revocation_policy: RevocationPolicy = RevocationPolicy.WARN,
) -> CertificateReport:
    """Assess one certificate; ``key_matches`` is the result of a key probe when one was possible, and
    ``revocation`` the status found under ``revocation_policy`` when it was checked."""
    now = now or datetime.now(UTC)
    remaining = days_left(certificate, now)
    failures: list[str] = []
    warnings: list[str] = []
    not_before, not_after = certificate.not_valid_before_utc, certificate.not_valid_after_utc
    if now > not_after:
        failures.append(f"expired on {not_after.date().isoformat()} ({-remaining:.0f} days ago)")
    elif now < not_before:
        failures.append(f"not valid before {not_before.isoformat()}")
    elif remaining <= warning_days:
        warnings.append(
            f"expires on {not_after.date().isoformat()}, in {remaining:.0f} days (threshold {warning_days}): "
            "renew it and register the new certificate on the BHXH portal"
        )
    public_key = certificate.public_key()
    key_size = public_key.key_size if isinstance(public_key, rsa.RSAPublicKey) else None
    if key_size is None:
        failures.append(f"{type(public_key).__name__} key: the signature profile needs RSA")
    elif key_size < MINIMUM_RSA_BITS:
        failures.append(f"RSA key of {key_size} bits is below {MINIMUM_RSA_BITS}")
    usage = _key_usage(certificate)
    if usage is not None and not {"digital_signature", "content_commitment"} & set(usage):
        failures.append("KeyUsage allows neither digitalSignature nor nonRepudiation")
    if key_matches is False:
        failures.append("the private key does not belong to this certificate")
    if revocation is not None:
        _judge_revocation(revocation, revocation_policy, failures, warnings)
    status = Health.FAILURE if failures else Health.WARNING if warnings else Health.OK
    return CertificateReport(
        subject=certificate.subject.rfc4514_string(),
        issuer=certificate.issuer.rfc4514_string(),
        serial=format(certificate.serial_number, "x"),
        fingerprint_sha256=certificate.fingerprint(hashes.SHA256()).hex(),
        not_before=not_before,
        not_after=not_after,
        days_left=remaining,
        key_type="RSA" if key_size is not None else type(public_key).__name__,
        key_size=key_size,
        key_usage=usage or (),
        key_matches=key_matches,
        status=status,
        problems=tuple(failures + warnings),
        revocation=revocation,
    )


def _judge_revocation(
    revocation: RevocationStatus, policy: RevocationPolicy, failures: list[str], warnings: list[str]
) -> None:
    if revocation.state is RevocationState.REVOKED:
        failures.append(revocation.summary() + ": replace the certificate")
    elif revocation.state is RevocationState.UNKNOWN:
        if policy is RevocationPolicy.REQUIRE:
            failures.append(f"revocation status {revocation.summary()} (signer.revocation = require)")
        elif not revocation.no_source:
            warnings.append(f"revocation status {revocation.summary()}")


def check_signer(
    signer: Signer,
    *,
    warning_days: int,
    now: datetime | None = None,
    revocation: RevocationStatus | None = None,
    revocation_policy: RevocationPolicy = RevocationPolicy.WARN,
) -> CertificateReport:
    """Assess the signer's certificate and, when the signer can be probed, whether its key matches."""
    key_matches = signer.key_matches_certificate() if isinstance(signer, KeyProbe) else None
    return check_certificate(
        signer.certificate,
        warning_days=warning_days,
        now=now,
        key_matches=key_matches,
        revocation=revocation,
        revocation_policy=revocation_policy,
    )
