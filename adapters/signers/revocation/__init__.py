"""Revocation status of the signing certificate: OCSP first, CRL as fallback (DOMAIN.md §10.5, NĐ 23/2025).

NĐ 23/2025 Đ15 asks signing software to check the certificate's status before signing. Results:

- ``good``: an OCSP responder or a CRL of the issuing CA, verified, says so;
- ``revoked`` (with the revocation time and reason): signing stops (``CertificateRevokedError``);
- ``unknown``: no source gave a verifiable, fresh answer (unreachable, no revocation service named, stale,
  forged). ``signer.revocation`` decides: ``warn`` (default) signs and warns, ``require`` refuses, ``off``
  does not check at all.

``checker`` fetches, verifies and caches the answers; ``ocsp`` and ``crl`` hold the verification rules;
``guard`` puts the check in front of the worker's signer. ``vneid-sync cert check`` shows the status.
"""

from adapters.signers.revocation.checker import (
    RevocationChecker,
    RevocationConfig,
    revocation_status,
    shared_checker,
)
from adapters.signers.revocation.guard import RevocationGuardedSigner, guard_signer, signer_chain
from adapters.signers.revocation.model import (
    CaAnswer,
    CertificateRevokedError,
    CertificateStatusUnknownError,
    RevocationCheckError,
    RevocationPolicy,
    RevocationSource,
    RevocationState,
    RevocationStatus,
)

__all__ = [
    "CaAnswer",
    "CertificateRevokedError",
    "CertificateStatusUnknownError",
    "RevocationCheckError",
    "RevocationChecker",
    "RevocationConfig",
    "RevocationGuardedSigner",
    "RevocationPolicy",
    "RevocationSource",
    "RevocationState",
    "RevocationStatus",
    "guard_signer",
    "revocation_status",
    "shared_checker",
    "signer_chain",
]
