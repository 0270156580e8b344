"""The worker's signer, refusing to sign once the CA says the certificate is revoked (DOMAIN.md §10.5).

``guard_signer`` wraps the process signer when ``signer.revocation`` is not ``off``. Before each signature
it asks the shared checker, which answers from memory until the answer must be refreshed, so a batch costs
at most one OCSP/CRL round trip and usually none. A revoked certificate raises ``CertificateRevokedError``
(a ``CertificateNotUsableError``, like an expired certificate): the batch stops before anything is signed
or sent, the versions stay where they are, and the ``certificate_revoked`` alert tells the operator. With
``require``, an unknown status does the same (``CertificateStatusUnknownError``); with ``warn`` it signs
and logs a warning each time the status is asked again.

``revocation_record`` gives, for the signature the calling thread made last, the status it was allowed on;
the delivery service keeps it in that version's ``signed`` audit event, so an inspector can see for each
signed file what the CA said about the certificate when it was signed. ``revocation_answer`` gives the CA's
signed answer (DER OCSP response or CRL) that status was derived from: the ledger keeps it once per distinct
answer, so the status can be verified again with the CA's certificate alone.
"""

from __future__ import annotations

import threading
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from structlog import get_logger

from adapters.signers.revocation.checker import RevocationChecker, RevocationConfig, shared_checker
from adapters.signers.revocation.model import CaAnswer, RevocationPolicy, RevocationState, RevocationStatus
from adapters.signers.settings import SignerSettings
from schemas.ports import RevocationAwareSigner, Signer

log = get_logger(__name__)


def signer_chain(signer: object) -> tuple[x509.Certificate, ...]:
    """The certificates the key source holds besides its own (a PKCS#12 or PEM chain): the issuer, usually."""
    inner = getattr(signer, "signer", signer)  # a guarded signer: look at the one it wraps
    key_source = getattr(inner, "key_source", None)
    chain = getattr(key_source, "chain", ())
    return tuple(c for c in chain if isinstance(c, x509.Certificate))


class RevocationGuardedSigner(RevocationAwareSigner):
    """A ``Signer`` that checks the certificate's revocation status before delegating each signature.

    Declared a ``RevocationAwareSigner`` (not only shaped like one) so that mypy checks here, not at the
    delivery service, that it gives what delivery reads into each version's ``signed`` audit event."""

    def __init__(
        self,
        signer: Signer,
        checker: RevocationChecker,
        policy: RevocationPolicy,
        *,
        chain: tuple[x509.Certificate, ...] = (),
    ) -> None:
        self.signer = signer
        self._checker = checker
        self._policy = policy
        self._chain = chain or signer_chain(signer)
        self._lock = threading.Lock()
        self._last: RevocationStatus | None = None
        # Per thread: the status each thread's last signature was allowed on (threads may share a signer).
        self._signed_under = threading.local()
        # The record and answer of the last status asked for: one dict and one hash per answer, not per file.
        self._record: tuple[RevocationStatus, dict[str, object], CaAnswer | None] | None = None
        self._fingerprint: str | None = None

    @property
    def certificate(self) -> x509.Certificate:
        return self.signer.certificate

    def sign(self, document: bytes) -> bytes:
        status = self.ensure_signable()
        signed = self.signer.sign(document)
        self._signed_under.status = status
        return signed

    def revocation_record(self) -> dict[str, object] | None:
        """What the audit event of this thread's last signature records about the certificate: its SHA-256
        fingerprint and the revocation status the signature was allowed on; ``None`` before any signature."""
        cached = self._signed_under_cached()
        return None if cached is None else dict(cached[1])

    def revocation_answer(self) -> CaAnswer | None:
        """The CA's signed answer (DER OCSP response or CRL) behind the status this thread's last signature
        was allowed on, from the CA or from the cache; ``None`` before any signature or when the status is
        unknown (no answer)."""
        cached = self._signed_under_cached()
        return None if cached is None else cached[2]

    def _signed_under_cached(self) -> tuple[RevocationStatus, dict[str, object], CaAnswer | None] | None:
        status: RevocationStatus | None = getattr(self._signed_under, "status", None)
        if status is None:
            return None
        cached = self._record
        if cached is None or cached[0] is not status:  # the status objects of one answer are reused
            if self._fingerprint is None:
                self._fingerprint = self.certificate.fingerprint(hashes.SHA256()).hex()
            record = {"cert_sha256": self._fingerprint, **status.signing_record(self._policy)}
            cached = self._record = (status, record, status.ca_answer())
        return cached

    def ensure_signable(self) -> RevocationStatus:
        """The current status; raises ``CertificateNotUsableError`` when the policy forbids signing."""
        status = self._checker.status(self.certificate, chain=self._chain)
        self._note(status)
        refusal = status.refusal(self._policy)
        if refusal is not None:
            raise refusal
        return status

    @property
    def last_status(self) -> RevocationStatus | None:
        """The status the last signature was allowed (or refused) on: what a receipt should record."""
        return self._last

    def _note(self, status: RevocationStatus) -> None:
        """Log when the answer changes (a new check, or a new state), never once per signed file."""
        with self._lock:
            previous, self._last = self._last, status
        if previous is not None and (previous.state, previous.checked_at) == (
            status.state,
            status.checked_at,
        ):
            return
        fields = {
            "certificate_serial": format(self.certificate.serial_number, "x"),
            "state": status.state.value,
            "source": status.via,
            "policy": self._policy.value,
        }
        if status.state is RevocationState.REVOKED:
            log.error("signer.certificate_revoked", reason=status.reason, summary=status.summary(), **fields)
        elif status.state is RevocationState.UNKNOWN:
            signing = "refused" if self._policy is RevocationPolicy.REQUIRE else "continues"
            log.warning(
                "signer.certificate_status_unknown", signing=signing, summary=status.summary(), **fields
            )
        elif previous is None or previous.state is not RevocationState.GOOD:
            log.info("signer.certificate_status_good", summary=status.summary(), **fields)


def guard_signer(signer: Signer, settings: SignerSettings, data_dir: Path | None) -> Signer:
    """``signer`` behind the revocation check of ``settings`` (unchanged when ``signer.revocation = off``)."""
    config = RevocationConfig.from_settings(settings, data_dir)
    if config.policy is RevocationPolicy.OFF:
        return signer
    return RevocationGuardedSigner(signer, shared_checker(config), config.policy)
