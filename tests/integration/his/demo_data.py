"""Synthetic encounters written into the reference HIS, and the demo adapter over it, for the tests."""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

from adapters.his.demo import schema
from adapters.his.demo.seed import DemoWriter, writer_engine
from adapters.his.demo.source import DemoSource
from adapters.his.demo.synthetic import Defect, Kind, make_encounter
from schemas.domain import Encounter
from schemas.domain.values import VIETNAM_TZ
from worker.config import HisSettings

FACILITY = "79999"


def sample_encounters(count_per_kind: int = 1, *, first: int = 1) -> list[Encounter]:
    """Every kind of visit and every defect, on distinct days of February 2026."""
    rng = random.Random(130)
    plan: list[tuple[Kind, Defect | None]] = [(kind, None) for kind in Kind for _ in range(count_per_kind)]
    plan += [
        (Kind.INPATIENT_REFERRAL if index % 2 else Kind.OUTPATIENT_EXAM, defect)
        for index, defect in enumerate(Defect)
    ]
    result = []
    for offset, (kind, defect) in enumerate(plan):
        number = first + offset
        start = datetime(2026, 2, 1, 8, 15, tzinfo=VIETNAM_TZ) + timedelta(days=offset, minutes=7 * offset)
        result.append(
            make_encounter(
                rng, his_key=f"V{number:07d}", kind=kind, start=start, defect=defect, facility_code=FACILITY
            )
        )
    return result


def write(url: str, encounters: Sequence[Encounter], *, changed_at: datetime | None = None) -> None:
    engine = writer_engine(url)
    try:
        schema.create_schema(engine)
        with engine.begin() as conn:
            DemoWriter(conn, facility_code=FACILITY).write(encounters, changed_at=changed_at)
    finally:
        engine.dispose()


def execute(url: str, statement: Any, parameters: dict[str, Any] | None = None) -> None:
    """A change made by the HIS itself (read-write, outside the adapter)."""
    engine = writer_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(statement, parameters or {})
    finally:
        engine.dispose()


@contextmanager
def demo_source(url: str, **his: Any) -> Iterator[DemoSource]:
    source = DemoSource.from_settings(HisSettings(**his), url=url, facility_code=FACILITY)
    try:
        yield source
    finally:
        source.close()
