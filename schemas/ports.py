"""The ports: what the worker needs from the outside world, as Protocols, and the values they pass.

They live on the bottom floor so that both floors above can name them: the adapters (``adapters/``, one
folder each, a registry per port) implement them without importing the worker, and the worker's pipeline
calls them without knowing an adapter. Fakes for unit tests live in ``tests/fakes.py``. Everything is wired
in one place, ``worker/bootstrap.py``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Protocol, runtime_checkable

from cryptography import x509

from schemas.domain import Encounter

# --------------------------------------------------------------------------------------------------- HIS


@dataclass(frozen=True, slots=True, order=True)
class Cursor:
    """Discovery watermark: the last (change time, HIS key) seen. Ordered, so the max is the new watermark."""

    changed_at: datetime
    his_key: str


@dataclass(frozen=True, slots=True)
class EncounterRef:
    """A completed encounter as listed by the HIS, without loading it (discovery, sweep and coverage)."""

    his_key: str
    completed_at: datetime
    changed_at: datetime
    visit_type: str | None = None  # MA_LOAI_KCB
    department: str | None = None  # MA_KHOA
    insured: bool | None = None


class SourceDataError(Exception):
    """One encounter cannot be read into the canonical model (unparseable value, unmapped code).

    The message names the section and column, never the value. The pipeline quarantines that encounter and
    goes on with the rest of the batch."""

    def __init__(self, his_key: str, message: str, *, section: str | None = None, column: str | None = None):
        super().__init__(message)
        self.his_key = his_key
        self.section = section
        self.column = column


class SourceUnavailableError(Exception):
    """The HIS stayed unreachable after the adapter's own retries: try the whole batch again later."""


@runtime_checkable
class EncounterSource(Protocol):
    """Read-only access to completed encounters in a hospital's HIS database."""

    def discover(self, since: Cursor | None) -> Iterator[EncounterRef]:
        """Completed encounters whose change time is at or after ``since`` (minus the configured overlap),
        streamed in (changed_at, his_key) order, in bounded memory."""
        ...

    def list_completed(self, start: datetime, end: datetime) -> Iterator[EncounterRef]:
        """Every encounter completed in ``[start, end)``, streamed in (completed_at, his_key) order."""
        ...

    def load(self, his_key: str) -> Encounter | None:
        """The encounter in the canonical model, or ``None`` when the HIS no longer shows it as completed."""
        ...

    def load_many(self, his_keys: Sequence[str]) -> dict[str, Encounter | SourceDataError | None]:
        """``load`` for a batch, read consistently and with a few queries for the whole batch.

        Every requested key is in the result: its encounter, ``None`` (as ``load``), or the
        ``SourceDataError`` that ``load`` would raise for it, so one unreadable encounter does not fail the
        others. Raises ``SourceUnavailableError`` for the whole batch when the HIS stays unreachable."""
        ...

    def close(self) -> None: ...


@runtime_checkable
class CompletedKeyLister(Protocol):
    """What a source may add for coverage over long ranges: the keys alone, in one query per range, instead
    of one ``EncounterRef`` per encounter. Coverage uses it when a source has it and ``list_completed``
    otherwise; both must name the same encounters."""

    def completed_keys(self, start: datetime, end: datetime) -> list[str]:
        """The HIS key of every encounter completed in ``[start, end)``, in no particular order, each in the
        form ``EncounterRef.his_key`` gives it."""
        ...

    def refs(self, his_keys: Sequence[str]) -> list[EncounterRef]:
        """The ``EncounterRef`` of each key that the HIS shows completed (any order; absent keys left out)."""
        ...


# ------------------------------------------------------------------------------------------------ signing


@runtime_checkable
class Signer(Protocol):
    """Applies the enveloped XML-DSig of DOMAIN.md §10 inside ``CHUKYDONVI``."""

    @property
    def certificate(self) -> x509.Certificate: ...

    def sign(self, document: bytes) -> bytes:
        """Sign serialised XML with an empty ``<CHUKYDONVI/>``; return the exact bytes to submit and keep."""
        ...


class CaSignedAnswer(Protocol):
    """The CA's signed answer (an OCSP response or a CRL) that a certificate's revocation status was derived
    from, as the ledger keeps it (``revocation_answers``) for an inspector to verify again (DOMAIN.md §10.5).
    Read-only: the revocation adapter's ``CaAnswer`` is one."""

    @property
    def sha256(self) -> str:
        """SHA-256 of ``der``, hex: the answer's identity (one CRL serves many signatures)."""
        ...

    @property
    def source(self) -> StrEnum:
        """Where the status came from: ``ocsp`` or ``crl`` (its ``value`` is the ledger's ``kind``)."""
        ...

    @property
    def der(self) -> bytes:
        """The DER OCSP response or CRL, exactly as the CA signed it."""
        ...

    @property
    def url(self) -> str:
        """Where it came from (an http URL, or the file path of ``signer.crl_file``)."""
        ...

    @property
    def this_update(self) -> datetime: ...

    @property
    def next_update(self) -> datetime | None: ...


@runtime_checkable
class RevocationAwareSigner(Protocol):
    """What a signer may add when it checks its certificate's revocation status before each signature (the
    revocation guard, ``signer.revocation`` not ``off``): what it was allowed to sign on, for the ``signed``
    audit event of the file it just signed. A signer without it checked nothing (``not_checked``).

    Both answer for the signature the *calling thread* made last (threads may share one signer)."""

    def revocation_record(self) -> dict[str, object] | None:
        """What the audit event records about the certificate: its SHA-256 fingerprint (``cert_sha256``) and
        the status the signature was allowed on (``policy``, ``state``, ``source``, ``checked_at``, and the
        ``url``/``this_update``/``next_update`` of the answer, or the ``problems`` when unknown). A new dict
        each call. ``None`` when this thread has not signed yet."""
        ...

    def revocation_answer(self) -> CaSignedAnswer | None:
        """The CA's signed answer that status was derived from (fetched for it, read back from the cache, or
        kept after a failed refresh). ``None`` when this thread has not signed yet, or when the status is
        unknown: no source gave an answer, so there is nothing to keep."""
        ...


# ------------------------------------------------------------------------------------------------ gateway


class Outcome(StrEnum):
    """Classification of one gateway attempt (DOMAIN.md §12.1)."""

    ACCEPTED = "accepted"  # maKetQua 200, or "already received" for the same version
    TRANSIENT = "transient"  # network, timeout, 5xx/429, non-JSON, maKetQua 500: retry with backoff
    UNKNOWN = "unknown"  # timeout after the body was sent: retry identical bytes (dedup makes it safe)
    AUTH = "auth"  # 401 after the one re-login: stop the destination
    CONFIG = "config"  # 402/403/locked: stop the destination and alert, no retry
    DATA_ERROR = "data_error"  # any other maKetQua / 4xx: keep thongDiep, no automatic retry


class DocumentKind(StrEnum):
    CHECKIN = "checkin"  # XML0, loaiHoSo=0
    CLAIM = "claim"  # GIAMDINHHS, loaiHoSo=130


@dataclass(frozen=True, slots=True)
class GatewayReceipt:
    outcome: Outcome
    http_status: int | None
    ma_ket_qua: str | None
    ma_giao_dich: str | None
    thoi_gian_tiep_nhan: str | None
    thong_diep: str | None  # may echo personal data: stored in the protected receipt store, never logged
    request_sha256: str
    elapsed_ms: float
    duplicate: bool = False


@runtime_checkable
class Gateway(Protocol):
    """One destination (BHXH or a provincial hub) speaking the API of DOMAIN.md §9.

    ``submit`` is called from several threads at once (a batch keeps a few requests in flight)."""

    name: str

    def submit(self, signed: bytes, kind: DocumentKind) -> GatewayReceipt:
        """Send the exact signed bytes; never raises for gateway outcomes, only returns a classified receipt."""
        ...

    def close(self) -> None: ...
