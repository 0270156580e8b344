"""In-memory fakes of the ports for unit tests of the pipeline services (real adapters are tested apart)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from cryptography import x509

from schemas.domain import Encounter
from schemas.ports import Cursor, DocumentKind, EncounterRef, GatewayReceipt, Outcome, SourceDataError


@dataclass
class FakeSource:
    """A HIS with encounters keyed by his_key; ``changed`` times drive discovery.

    ``loads`` counts encounters read (one per key, whether through ``load`` or ``load_many``); ``batches``
    records the keys of each ``load_many`` call."""

    encounters: dict[str, Encounter] = field(default_factory=dict)
    changed: dict[str, datetime] = field(default_factory=dict)
    loads: int = 0
    batches: list[tuple[str, ...]] = field(default_factory=list)

    def put(self, encounter: Encounter, changed_at: datetime) -> None:
        self.encounters[encounter.his_key] = encounter
        self.changed[encounter.his_key] = changed_at

    def hide(self, his_key: str) -> None:
        self.encounters.pop(his_key, None)
        self.changed.pop(his_key, None)

    def _ref(self, key: str) -> EncounterRef:
        enc = self.encounters[key]
        assert enc.completed_at is not None
        return EncounterRef(
            his_key=key,
            completed_at=enc.completed_at,
            changed_at=self.changed[key],
            visit_type=enc.visit.ma_loai_kcb,
            department=enc.visit.ma_khoa,
            insured=enc.is_insured,
        )

    def discover(self, since: Cursor | None) -> Iterator[EncounterRef]:
        keys = sorted(self.encounters, key=lambda k: (self.changed[k], k))
        for key in keys:
            if since is None or Cursor(self.changed[key], key) > since:
                yield self._ref(key)

    def list_completed(self, start: datetime, end: datetime) -> Iterator[EncounterRef]:
        for key in sorted(self.encounters):
            ref = self._ref(key)
            if start <= ref.completed_at < end:
                yield ref

    def load(self, his_key: str) -> Encounter | None:
        self.loads += 1
        return self.encounters.get(his_key)

    def load_many(self, his_keys: Sequence[str]) -> dict[str, Encounter | SourceDataError | None]:
        """Through ``load`` (so a test that replaces ``load`` to fail one key fails it here too)."""
        self.batches.append(tuple(his_keys))
        results: dict[str, Encounter | SourceDataError | None] = {}
        for key in dict.fromkeys(his_keys):
            try:
                results[key] = self.load(key)
            except SourceDataError as exc:
                results[key] = exc
        return results

    def close(self) -> None:
        pass


@dataclass
class FakeSigner:
    """Appends a marker instead of a signature: the pipeline only needs bytes it must keep unchanged."""

    cert: x509.Certificate
    signed: int = 0

    @property
    def certificate(self) -> x509.Certificate:
        return self.cert

    def sign(self, document: bytes) -> bytes:
        self.signed += 1
        return document.replace(b"<CHUKYDONVI/>", b"<CHUKYDONVI><FakeSignature/></CHUKYDONVI>")


@dataclass
class FakeGateway:
    """Answers from a script of outcomes (then ACCEPTED); dedups by the exact bytes like the simulator."""

    name: str = "bhxh"
    script: list[Outcome] = field(default_factory=list)
    received: dict[str, str] = field(default_factory=dict)  # sha256 of bytes -> maGiaoDich
    calls: list[bytes] = field(default_factory=list)

    def submit(self, signed: bytes, kind: DocumentKind) -> GatewayReceipt:
        self.calls.append(signed)
        digest = hashlib.sha256(signed).hexdigest()
        outcome = self.script.pop(0) if self.script else Outcome.ACCEPTED
        if outcome is Outcome.ACCEPTED:
            duplicate = digest in self.received
            transaction = self.received.setdefault(digest, f"GD{len(self.received) + 1:06d}")
            return GatewayReceipt(
                Outcome.ACCEPTED,
                200,
                "200",
                transaction,
                "20260304101500",
                "already received" if duplicate else "ok",
                digest,
                1.0,
                duplicate,
            )
        code = {Outcome.DATA_ERROR: "422", Outcome.CONFIG: "403", Outcome.AUTH: "401"}.get(outcome, "500")
        return GatewayReceipt(outcome, 200, code, None, None, "error", digest, 1.0)

    def close(self) -> None:
        pass
