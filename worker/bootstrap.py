"""Wiring: settings → ledger engine, evidence keys, HIS source, signer, gateways and payload options, in one place."""

from __future__ import annotations

from sqlalchemy.engine import Engine

from schemas import PayloadOptions
from schemas.ports import EncounterSource, Gateway, Signer
from worker.config import PayloadSettings, Settings
from worker.evidence_keys import load_evidence_keys
from worker.ledger.db import create_ledger_engine
from worker.ledger.evidence_crypto import EvidenceKeys
from worker.logging import get_logger
from worker.monitoring.worker_metrics import PrometheusDeliveryObserver, record_token_request
from worker.pipeline.context import Pipeline

log = get_logger(__name__)


def payload_options(payload: PayloadSettings) -> PayloadOptions:
    return PayloadOptions(
        facility_code=payload.facility_code,
        profile=payload.profile,
        xml8_for_every_visit=payload.xml8_for_every_visit,
        checkin_for_non_bhyt=payload.checkin_for_non_bhyt,
        non_bhyt_tables=tuple(payload.non_bhyt_tables),
        inner_xml_declaration=payload.inner_xml_declaration,
        hiv_filter=payload.hiv_filter,
    )


def ledger_engine(settings: Settings) -> Engine:
    password = settings.ledger.password.get_secret_value() if settings.ledger.password else None
    return create_ledger_engine(settings.ledger_url, pool_size=settings.ledger.pool_size, password=password)


def evidence_keys(settings: Settings) -> EvidenceKeys:
    """The key ring (``worker.evidence_keys``: the key file, else ``evidence.key``, else the one generated
    under data_dir for the demo, created here on first use).

    A generated key is the only copy of what can read the evidence: every process that uses it says so."""
    loaded = load_evidence_keys(settings, create=True)
    keys = loaded.keys
    if keys.generated_file is not None:
        log.warning(
            "evidence is encrypted with a key generated on this machine: BACK IT UP, or set evidence.key "
            "(without this file the stored signed files and receipts cannot be read)",
            key_file=str(keys.generated_file.resolve()),
            key_id=keys.active_id,
            created=loaded.created,
        )
    return keys


def build_pipeline(settings: Settings) -> Pipeline:
    """The production wiring. Adapters are created lazily: a dispatcher process never opens the HIS."""

    def source() -> EncounterSource:
        from adapters.his.registry import create_source  # noqa: PLC0415  # a process loads only the adapters it uses

        return create_source(settings.his, settings.payload.facility_code, url=settings.his_url)

    def signer() -> Signer:
        from adapters.signers.registry import process_signer  # noqa: PLC0415  # a process loads only the adapters it uses
        from adapters.signers.revocation import guard_signer  # noqa: PLC0415  # idem

        # A revoked certificate (or, with signer.revocation = "require", an unknown status) refuses to sign.
        return guard_signer(process_signer(settings.signer), settings.signer, settings.data_dir)

    def gateways() -> dict[str, Gateway]:
        from adapters.gateway.registry import create_gateways  # noqa: PLC0415  # a process loads only the adapters it uses

        return create_gateways(
            settings.destinations,
            default_facility_code=settings.payload.facility_code,
            on_token_request=record_token_request,
        )

    def verifier(signed: bytes) -> object:
        from adapters.signers.verification import verify  # noqa: PLC0415  # only when verification is on

        return verify(signed, settings.signer.trust_store)

    return Pipeline(
        settings=settings,
        engine=ledger_engine(settings),
        source_factory=source,
        signer_factory=signer,
        gateways_factory=gateways,
        payload_options=payload_options(settings.payload),
        evidence_keys=evidence_keys(settings),
        verifier=verifier if settings.signer.verify_before_send else None,
        observer=PrometheusDeliveryObserver(),
    )
