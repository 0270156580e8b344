"""Wiring: settings → ledger engine, HIS source, signer, gateways and payload options, in one place."""

from __future__ import annotations

from sqlalchemy.engine import Engine

from schemas import PayloadOptions
from worker.config import PayloadSettings, Settings
from worker.ledger.db import create_ledger_engine
from worker.pipeline.context import Pipeline
from worker.ports import EncounterSource, Gateway, Signer


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


def build_pipeline(settings: Settings) -> Pipeline:
    """The production wiring. Adapters are created lazily: a dispatcher process never opens the HIS."""

    def source() -> EncounterSource:
        from adapters.his.registry import create_source  # noqa: PLC0415  # a process loads only the adapters it uses

        return create_source(settings.his, settings.payload.facility_code, url=settings.his_url)

    def signer() -> Signer:
        from adapters.signers.registry import process_signer  # noqa: PLC0415  # a process loads only the adapters it uses

        return process_signer(settings.signer)

    def gateways() -> dict[str, Gateway]:
        from adapters.gateway.registry import create_gateways  # noqa: PLC0415  # a process loads only the adapters it uses

        return create_gateways(settings)

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
        verifier=verifier if settings.signer.verify_before_send else None,
    )
