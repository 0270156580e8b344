"""The wired dependencies a pipeline service needs; built once per process by ``worker.bootstrap``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy.engine import Engine

from schemas import PayloadOptions
from schemas.ports import EncounterSource, Gateway, Signer
from worker.config import Settings
from worker.ledger.evidence_crypto import EvidenceKeys
from worker.pipeline.observer import DeliveryObserver, NoDeliveryObserver


@dataclass
class Pipeline:
    settings: Settings
    engine: Engine
    source_factory: Callable[[], EncounterSource]
    signer_factory: Callable[[], Signer]
    gateways_factory: Callable[[], dict[str, Gateway]]
    payload_options: PayloadOptions
    #: Seals the signed files and receipts the ledger keeps, opens them for resubmission (evidence_crypto).
    evidence_keys: EvidenceKeys
    #: Optional check of each signed file before it is kept (DOMAIN.md §10.3 step 4); raises when it fails.
    verifier: Callable[[bytes], object] | None = None
    #: Told about every gateway submission (the worker's metrics); nobody by default.
    observer: DeliveryObserver = field(default_factory=NoDeliveryObserver)
    _source: EncounterSource | None = field(default=None, init=False, repr=False)
    _signer: Signer | None = field(default=None, init=False, repr=False)
    _gateways: dict[str, Gateway] | None = field(default=None, init=False, repr=False)

    def source(self) -> EncounterSource:
        if self._source is None:
            self._source = self.source_factory()
        return self._source

    @property
    def signer(self) -> Signer:
        if self._signer is None:
            self._signer = self.signer_factory()
        return self._signer

    @property
    def gateways(self) -> dict[str, Gateway]:
        if self._gateways is None:
            self._gateways = self.gateways_factory()
        return self._gateways

    def primary_gateway(self) -> tuple[str, Gateway]:
        for name, destination in self.settings.destinations.items():
            if destination.enabled and destination.primary and name in self.gateways:
                return name, self.gateways[name]
        raise RuntimeError("no enabled primary destination is configured")

    def close(self) -> None:
        if self._source is not None:
            self._source.close()
        for gateway in (self._gateways or {}).values():
            gateway.close()
        self.engine.dispose()
