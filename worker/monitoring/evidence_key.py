"""Whether the evidence key ring can be loaded now, as a starting worker would load it, and opens the newest
stored evidence. Shared by the health check, the ``vneid_evidence_key_loaded`` gauge and the
``evidence_key_unusable`` alert, so the three agree; the ring is loaded with the worker's own loader
(``worker.evidence_keys``, without creating anything)."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from worker.config import Settings
from worker.evidence_keys import (
    EvidenceKeyConfigError,
    GeneratedKeyAbsentError,
    SourceKind,
    load_evidence_keys,
)
from worker.ledger import monitoring as ledger
from worker.ledger.monitoring import SealedEvidence
from worker.logging import get_logger

log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class EvidenceKeyReport:
    """Whether the evidence key ring can be loaded now as a starting worker would load it (ids, paths only)."""

    loaded: bool
    source: str  # where the active key comes from: a file, a setting, the generated file
    detail: str  # the key ids, or what is wrong
    generated: bool = False  # the demo's key, generated on this machine under data_dir

    def summary(self) -> str:
        return f"{self.detail} ({self.source})"


def _newest_sealed(engine: Engine) -> SealedEvidence | None:
    """The newest stored evidence blob's version id and key id. ``None`` when nothing is sealed yet or the
    ledger cannot be read (its own check reports that)."""
    try:
        with engine.connect() as conn:
            return ledger.newest_sealed_evidence(conn)
    except sa.exc.SQLAlchemyError as exc:
        log.debug("health.evidence_not_read", error=type(exc).__name__)
        return None


def assess_evidence_key(settings: Settings, *, engine: Engine | None = None) -> EvidenceKeyReport:
    """Load the evidence key ring with the loader a starting worker uses (``worker.evidence_keys``), without
    creating anything: the key files named by ``VNEID_EVIDENCE__KEY_FILE`` and
    ``VNEID_EVIDENCE__RETIRED_KEYS_FILE`` are read again (a long-running process read them when it started;
    a file removed or made unreadable since then stops the next worker that starts). With ``engine``, the
    newest stored evidence must open with the ring: a key file replaced by another key, or a generated key
    lost and made anew, fails here rather than at the first resubmission."""
    newest = _newest_sealed(engine) if engine is not None else None
    try:
        loaded = load_evidence_keys(settings, create=False)
    except GeneratedKeyAbsentError as absent:
        source = absent.source
        if newest is not None:
            return EvidenceKeyReport(
                False,
                str(source),
                f"the generated key file {source.path} is missing, yet the ledger holds evidence sealed with "
                f"key {newest.key_id}: restore that file from its backup (a new key cannot open it)",
                generated=True,
            )
        return EvidenceKeyReport(
            True, str(source), "not created yet: the first worker creates it", generated=True
        )
    except EvidenceKeyConfigError as exc:
        return EvidenceKeyReport(
            False, str(exc.source), str(exc), generated=exc.source.kind is SourceKind.GENERATED
        )
    keys, where = loaded.keys, str(loaded.source)
    generated = loaded.source.kind is SourceKind.GENERATED
    detail = f"key {keys.active_id}" + (f", {len(keys.retired_ids)} retired" if keys.retired_ids else "")
    if newest is not None:
        version_id, sealed_with = newest.version_id, newest.key_id
        if sealed_with not in keys.ids:
            return EvidenceKeyReport(
                False,
                where,
                f"{detail} cannot open the newest stored evidence (version {version_id}, sealed with key "
                f"{sealed_with}): this is not the key that sealed it (restore it, or add it to retired_keys)",
                generated=generated,
            )
        detail += ", opens the newest stored evidence"
    return EvidenceKeyReport(True, where, detail, generated=generated)
