"""A kept CA answer judged at the time a signature relied on it, not today (DOMAIN.md §10.5, NĐ 23/2025 Đ15).

An OCSP response or a CRL speaks for a few days, from its thisUpdate to its nextUpdate. The ledger keeps the one
each signature was allowed on (``revocation_answers``), and an inspector looks at it months or years later:
judged against today every kept answer is stale, which says nothing about the signature. What matters is
whether it held *when it was used*. ``judge`` reads the dates and the certificate's entry from the CA's signed
bytes themselves (not from the ledger's copy of the dates, which no hash protects) and says, for the time of
use: ``valid``, ``stale`` (used after its nextUpdate), ``not_yet_valid`` (used before its thisUpdate),
``revoked`` (the answer itself says the certificate was revoked before that use), ``not_covered`` (not about
that certificate) or ``unreadable``.

The time of use is the time of the version's ``signed`` audit event, hash-chained with it. The worker records
those events once the whole batch is signed, and it accepts an answer up to ``CLOCK_SKEW`` past its nextUpdate
and then keeps it for ``MIN_RECHECK`` before asking again: a recorded use up to ``LATE_USE`` after the end of
the answer's period is one the worker's own rules allowed, later is not. ``judge`` does not verify the CA's
signature: the ledger does not keep the CA's certificate. The answer's bytes are tied to the signed events by
their SHA-256 (``audit verify``); openssl, given the CA's certificate, verifies the signature, at the time of
use with ``-attime`` (``vneid-sync evidence revocation-answer`` prints the commands).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from cryptography import x509
from cryptography.x509 import ocsp

from adapters.signers.revocation.checker import MIN_RECHECK
from adapters.signers.revocation.crl import load_crl
from adapters.signers.revocation.model import CLOCK_SKEW, holds_until

#: Between the last signature of a batch checked against an answer and the ``signed`` events of that batch:
#: the rest of the batch is signed first (``delivery.batch_size`` files, seconds with a key file, longer with a
#: remote signer or an HSM).
RECORDING_LAG = timedelta(minutes=5)
#: How long after the end of an answer's period a recorded use still fits the worker's rules (see above).
LATE_USE = CLOCK_SKEW + MIN_RECHECK + RECORDING_LAG
#: How long before thisUpdate a use still fits them: the worker takes a thisUpdate up to CLOCK_SKEW ahead.
EARLY_USE = CLOCK_SKEW


class AtUse(StrEnum):
    VALID = "valid"
    STALE = "stale"
    NOT_YET_VALID = "not_yet_valid"
    REVOKED = "revoked"
    NOT_COVERED = "not_covered"
    UNREADABLE = "unreadable"

    @property
    def label(self) -> str:
        """How people are told: ``valid at the time of use``, ``stale at use`` …"""
        return _LABELS[self]


_LABELS = {
    AtUse.VALID: "valid at the time of use",
    AtUse.STALE: "stale at use",
    AtUse.NOT_YET_VALID: "not yet valid at use",
    AtUse.REVOKED: "revoked before use",
    AtUse.NOT_COVERED: "not about the certificate used",
    AtUse.UNREADABLE: "unreadable",
}


@dataclass(frozen=True, slots=True)
class UseJudgement:
    """What a kept answer says about the time it was used, from its own bytes."""

    verdict: AtUse
    #: One line for people: the period and the uses for a verdict on dates, what is wrong otherwise.
    reason: str
    this_update: datetime | None = None
    next_update: datetime | None = None

    @property
    def held(self) -> bool:
        return self.verdict is AtUse.VALID

    def summary(self) -> str:
        """``stale at use: thisUpdate …, nextUpdate …; used on …, after its nextUpdate``."""
        return f"{self.verdict.label}: {self.reason}"


@dataclass(frozen=True, slots=True)
class _Said:
    """What the answer says about one certificate (or, for a CRL judged without one, about its period)."""

    this_update: datetime
    next_update: datetime | None
    serial: int | None = None  # the certificate the answer was read for
    revoked_at: datetime | None = None


def judge(
    kind: str,
    der: bytes,
    *,
    first_use: datetime,
    last_use: datetime | None = None,
    serial: int | None = None,
) -> UseJudgement:
    """The kept answer ``der`` (``kind`` ``ocsp`` or ``crl``) judged at the uses from ``first_use`` to
    ``last_use`` (one use when ``last_use`` is not given), for the certificate ``serial``.

    Without ``serial`` an OCSP response must cover one certificate only (the worker's always do), and a CRL is
    judged on its period alone: whether it lists a certificate needs the serial."""
    last_use = last_use or first_use
    said = _read(kind, der, serial)
    if isinstance(said, UseJudgement):
        return said
    until = holds_until(said.this_update, said.next_update)
    period = _period(said)

    def verdict(state: AtUse, reason: str) -> UseJudgement:
        return UseJudgement(state, reason, said.this_update, said.next_update)

    if first_use < said.this_update - EARLY_USE:
        return verdict(AtUse.NOT_YET_VALID, f"{period}; used on {_iso(first_use)}, before its thisUpdate")
    if last_use > until + LATE_USE:
        end = "nextUpdate" if said.next_update else "thisUpdate + 1 h (no nextUpdate)"
        return verdict(AtUse.STALE, f"{period}; used on {_iso(last_use)}, after its {end}")
    if said.revoked_at is not None and said.revoked_at <= last_use:
        return verdict(
            AtUse.REVOKED,
            f"{period}; says certificate serial {said.serial:x} was revoked on {_iso(said.revoked_at)}, "
            f"before its use on {_iso(last_use)}",
        )
    uses = _iso(first_use) if last_use == first_use else f"{_iso(first_use)} to {_iso(last_use)}"
    return verdict(AtUse.VALID, f"{period}; used on {uses}")


def held_at_use(
    kind: str, der: bytes, *, cert_serial: str | None, first_use: datetime, last_use: datetime
) -> str | None:
    """``audit verify``'s judge (``worker.ledger.audit.UseJudge``): ``None`` when the answer held at every
    use the signed events of one certificate (``cert_serial``, hex as they record it) made of it; otherwise
    the verdict and why, in one line."""
    try:
        serial = int(cert_serial, 16) if cert_serial else None
    except ValueError:
        return (
            f"{AtUse.NOT_COVERED.label}: the signed events name certificate serial {cert_serial!r}, not hex"
        )
    found = judge(kind, der, first_use=first_use, last_use=last_use, serial=serial)
    return None if found.held else found.summary()


def _read(kind: str, der: bytes, serial: int | None) -> _Said | UseJudgement:
    if kind == "ocsp":
        return _read_ocsp(der, serial)
    if kind == "crl":
        return _read_crl(der, serial)
    return UseJudgement(AtUse.UNREADABLE, f"unknown kind of answer {kind!r}")


def _read_ocsp(der: bytes, serial: int | None) -> _Said | UseJudgement:
    try:
        response = ocsp.load_der_ocsp_response(der)
    except ValueError:
        return UseJudgement(AtUse.UNREADABLE, "not an OCSP response")
    if response.response_status is not ocsp.OCSPResponseStatus.SUCCESSFUL:
        return UseJudgement(AtUse.UNREADABLE, f"the responder answered {response.response_status.name}")
    singles = list(response.responses)
    if serial is not None:
        singles = [one for one in singles if one.serial_number == serial]
    if not singles:
        return UseJudgement(
            AtUse.NOT_COVERED, f"the OCSP response does not cover certificate serial {serial:x}"
        )
    if len(singles) > 1:
        return UseJudgement(
            AtUse.NOT_COVERED, "the OCSP response covers several certificates: name the serial to judge one"
        )
    [single] = singles
    if single.certificate_status is ocsp.OCSPCertStatus.UNKNOWN:
        return UseJudgement(
            AtUse.NOT_COVERED, f"the responder did not know certificate serial {single.serial_number:x}"
        )
    revoked = single.certificate_status is ocsp.OCSPCertStatus.REVOKED
    return _Said(
        single.this_update_utc,
        single.next_update_utc,
        single.serial_number,
        single.revocation_time_utc if revoked else None,
    )


def _read_crl(der: bytes, serial: int | None) -> _Said | UseJudgement:
    try:
        crl = load_crl(der)
    except ValueError:
        return UseJudgement(AtUse.UNREADABLE, "not a CRL")
    said = _Said(crl.last_update_utc, crl.next_update_utc, serial)
    entry = crl.get_revoked_certificate_by_serial_number(serial) if serial is not None else None
    if entry is None:
        return said
    try:
        reason = entry.extensions.get_extension_for_class(x509.CRLReason).value.reason
    except x509.ExtensionNotFound:
        reason = None
    if reason is x509.ReasonFlags.remove_from_crl:  # taken off hold: not revoked (as the checker reads it)
        return said
    return _Said(said.this_update, said.next_update, serial, entry.revocation_date_utc)


def _period(said: _Said) -> str:
    until = f"nextUpdate {_iso(said.next_update)}" if said.next_update else "no nextUpdate"
    return f"thisUpdate {_iso(said.this_update)}, {until}"


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds")
