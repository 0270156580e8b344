"""What a revocation check answers, and the rules every source shares (freshness, the signing policy)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from adapters.signers.errors import CertificateNotUsableError

#: Tolerated difference between our clock and the CA's: thisUpdate slightly in the future, or nextUpdate just
#: passed, is clock drift rather than a replayed or stale answer.
CLOCK_SKEW = timedelta(minutes=5)
#: How long an answer without nextUpdate is used. RFC 6960 §4.2.2.1: no nextUpdate means newer information is
#: always available, so such an answer is only good shortly after thisUpdate (CRLs must carry nextUpdate).
LIFETIME_WITHOUT_NEXT_UPDATE = timedelta(hours=1)


class RevocationState(StrEnum):
    GOOD = "good"
    REVOKED = "revoked"
    UNKNOWN = "unknown"


class RevocationSource(StrEnum):
    OCSP = "ocsp"
    CRL = "crl"
    NONE = "none"


class RevocationPolicy(StrEnum):
    """``signer.revocation``: what an unknown status does to signing (a revoked certificate never signs)."""

    OFF = "off"  # not checked at all
    WARN = "warn"  # unknown: sign, and say so (hospital networks often cannot reach the CA)
    REQUIRE = "require"  # unknown: refuse to sign


class RevocationCheckError(Exception):
    """One source gave no usable answer (unreachable, unreadable, forged, stale …); the message says why and
    names URLs and serial numbers only."""


class CertificateRevokedError(CertificateNotUsableError):
    """The CA says the signing certificate is revoked: nothing may be signed with it."""


class CertificateStatusUnknownError(CertificateNotUsableError):
    """``signer.revocation = "require"`` and no source could say whether the certificate is revoked."""


def reason_name(reason: object) -> str:
    """The RFC 5280 name of a revocation reason (``keyCompromise``); ``unspecified`` when none was given."""
    value = getattr(reason, "value", None)
    return str(value) if value else "unspecified"


def holds_until(this_update: datetime, next_update: datetime | None) -> datetime:
    """The end of the period an answer speaks for: its nextUpdate, or thisUpdate + 1 h without one."""
    return next_update or this_update + LIFETIME_WITHOUT_NEXT_UPDATE


def valid_until(this_update: datetime, next_update: datetime | None, now: datetime, *, what: str) -> datetime:
    """Until when an answer may be used; raises when it is not yet valid or already stale."""
    if this_update > now + CLOCK_SKEW:
        raise RevocationCheckError(
            f"{what}: thisUpdate {this_update.isoformat()} is in the future (check this server's clock)"
        )
    until = holds_until(this_update, next_update)
    if now > until + CLOCK_SKEW:
        label = "nextUpdate" if next_update else "thisUpdate + 1 h (no nextUpdate)"
        raise RevocationCheckError(f"{what}: stale, {label} {until.isoformat()} has passed")
    return until


@dataclass(frozen=True, slots=True, repr=False)
class Answer:
    """One verified answer of the CA (an OCSP response or a CRL), as received."""

    state: RevocationState  # GOOD or REVOKED: anything else is not an answer
    source: RevocationSource
    url: str  # where it came from (an http URL, or a file path for a local CRL)
    this_update: datetime
    next_update: datetime | None
    valid_until: datetime
    revoked_at: datetime | None = None
    reason: str | None = None
    der: bytes = field(default=b"", compare=False)  # the exact bytes, to re-verify from the cache or keep

    def __repr__(self) -> str:
        return f"Answer({self.state.value} via {self.source.value} {self.url})"

    @classmethod
    def verified(
        cls,
        source: RevocationSource,
        url: str,
        *,
        this_update: datetime,
        next_update: datetime | None,
        valid_until: datetime,
        der: bytes,
        revoked_at: datetime | None,
        reason: object = None,
    ) -> Answer:
        """A checked OCSP response or CRL: revoked exactly when it gives a revocation time."""
        revoked = revoked_at is not None
        return cls(
            state=RevocationState.REVOKED if revoked else RevocationState.GOOD,
            source=source,
            url=url,
            this_update=this_update,
            next_update=next_update,
            valid_until=valid_until,
            revoked_at=revoked_at,
            reason=reason_name(reason) if revoked else None,
            der=der,
        )


@dataclass(frozen=True, slots=True, repr=False)
class CaAnswer:
    """The CA's signed answer a status was derived from, exactly as an inspector needs it to verify the status
    again: the DER OCSP response or CRL, its SHA-256 (its identity: one CRL serves many signatures), where it
    came from and the period the CA said it covers (DOMAIN.md §10.5: the results are stored)."""

    sha256: str
    source: RevocationSource  # OCSP or CRL
    der: bytes
    url: str
    this_update: datetime
    next_update: datetime | None

    def __repr__(self) -> str:
        return f"CaAnswer({self.source.value} {self.url} sha256 {self.sha256[:12]}…, {len(self.der)} bytes)"


@dataclass(frozen=True, slots=True)
class RevocationStatus:
    """The status of one certificate, as the worker, ``cert check``, health, metrics and alerts see it."""

    state: RevocationState
    source: RevocationSource
    checked_at: datetime  # when the answer used was fetched (or, for unknown, when the sources were tried)
    from_cache: bool = False  # the answer was fetched earlier (memory or the cache file), not by this call
    url: str | None = None
    this_update: datetime | None = None
    next_update: datetime | None = None
    revoked_at: datetime | None = None
    reason: str | None = None
    #: The revocation services known for the certificate (its AIA/CRLDP, or the configured overrides).
    sources: tuple[str, ...] = ()
    #: Why sources gave no answer (also set when a cached answer was used because a refresh failed).
    problems: tuple[str, ...] = ()
    response: bytes = field(default=b"", repr=False, compare=False)  # DER of the answer used (``ca_answer``)

    @classmethod
    def from_answer(
        cls,
        answer: Answer,
        *,
        checked_at: datetime,
        from_cache: bool,
        sources: tuple[str, ...],
        problems: tuple[str, ...] = (),
    ) -> RevocationStatus:
        return cls(
            state=answer.state,
            source=answer.source,
            checked_at=checked_at,
            from_cache=from_cache,
            url=answer.url,
            this_update=answer.this_update,
            next_update=answer.next_update,
            revoked_at=answer.revoked_at,
            reason=answer.reason,
            sources=sources,
            problems=problems,
            response=answer.der,
        )

    @property
    def no_source(self) -> bool:
        """Unknown because nothing can be asked: the certificate names no OCSP responder or CRL and none is
        configured (test certificates; every licensed CA publishes both)."""
        return self.state is RevocationState.UNKNOWN and not self.sources

    @property
    def via(self) -> str:
        """``OCSP``, ``CRL``, ``OCSP (cache)`` …: where the answer came from."""
        if self.source is RevocationSource.NONE:
            return "no answer"
        return self.source.value.upper() + (" (cache)" if self.from_cache else "")

    def summary(self) -> str:
        """One line for people: the state, where it came from and until when it holds."""
        if self.state is RevocationState.REVOKED:
            when = self.revoked_at.isoformat() if self.revoked_at else "an unknown time"
            return f"revoked on {when} ({self.reason or 'unspecified'}) according to {self.via} {self.url}"
        if self.state is RevocationState.GOOD:
            until = f", next update {self.next_update.isoformat()}" if self.next_update else ""
            return f"good according to {self.via} {self.url}{until}"
        if self.no_source:
            return (
                "unknown: the certificate names no OCSP responder or CRL and none is configured "
                "(signer.ocsp_url, signer.crl_url, signer.crl_file)"
            )
        return "unknown: " + ("; ".join(self.problems) or "no source answered")

    def refusal(self, policy: RevocationPolicy) -> CertificateNotUsableError | None:
        """The error that stops signing under ``policy``, or ``None`` when signing may go on."""
        if policy is RevocationPolicy.OFF:
            return None
        if self.state is RevocationState.REVOKED:
            return CertificateRevokedError(f"signing certificate {self.summary()}; refusing to sign")
        if self.state is RevocationState.UNKNOWN and policy is RevocationPolicy.REQUIRE:
            return CertificateStatusUnknownError(
                f"signing certificate status {self.summary()}; refusing to sign (signer.revocation = require)"
            )
        return None

    def signing_record(self, policy: RevocationPolicy) -> dict[str, object]:
        """What the audit event of a signature made under this status keeps (DOMAIN.md §10.5: the status is
        stored with each signed file): the state, where the answer came from, when it was fetched and how long
        the CA said it holds; for unknown, why no source answered. Empty values are left out (one per row)."""
        record: dict[str, object] = {
            "policy": policy.value,
            "state": self.state.value,
            "source": self.source.value,
            "checked_at": self.checked_at.isoformat(),
        }
        optional = {
            "url": self.url,
            "this_update": self.this_update.isoformat() if self.this_update else None,
            "next_update": self.next_update.isoformat() if self.next_update else None,
            "problems": list(self.problems) if self.state is RevocationState.UNKNOWN else None,
        }
        record.update((name, value) for name, value in optional.items() if value)
        return record

    def ca_answer(self) -> CaAnswer | None:
        """The CA's signed answer this status was derived from (also when it was read back from the cache, or
        kept after a failed refresh); ``None`` when there is none (unknown). Hashes the bytes: callers that
        ask per signed file keep the result (the guard does)."""
        if self.source is RevocationSource.NONE or not self.response or not self.url or not self.this_update:
            return None
        return CaAnswer(
            sha256=hashlib.sha256(self.response).hexdigest(),
            source=self.source,
            der=self.response,
            url=self.url,
            this_update=self.this_update,
            next_update=self.next_update,
        )

    def as_dict(self) -> dict[str, Any]:
        def iso(value: datetime | None) -> str | None:
            return value.isoformat() if value else None

        return {
            "state": self.state.value,
            "source": self.source.value,
            "from_cache": self.from_cache,
            "url": self.url,
            "checked_at": iso(self.checked_at),
            "this_update": iso(self.this_update),
            "next_update": iso(self.next_update),
            "revoked_at": iso(self.revoked_at),
            "reason": self.reason,
            "sources": list(self.sources),
            "problems": list(self.problems),
        }
