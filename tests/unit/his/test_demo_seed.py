"""The reference HIS seeder: what it generates, and what it refuses to store."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import date

import pytest
import sqlalchemy as sa

from adapters.his.demo import schema
from adapters.his.demo.seed import (
    DemoSchemaError,
    DemoWriter,
    derived_first_cost,
    generate_with_defects,
    seed_demo_his,
)
from adapters.his.demo.synthetic import Kind, make_encounter
from schemas.domain import FirstCost, HivCare


def test_generated_encounters_spread_over_the_range_with_the_asked_share_of_defects() -> None:
    drawn = list(
        generate_with_defects(
            400,
            rng=random.Random(1),
            first_number=5,
            since=date(2026, 1, 1),
            until=date(2026, 1, 31),
            bad_share=0.25,
        )
    )
    assert [encounter.his_key for encounter, _ in drawn[:2]] == ["V0000005", "V0000006"]
    days = {encounter.visit.ngay_vao.date() for encounter, _ in drawn if encounter.visit.ngay_vao}
    assert min(days) >= date(2026, 1, 1)
    assert max(days) <= date(2026, 1, 31)
    assert len(days) > 20
    bad = sum(1 for _, defect in drawn if defect is not None)
    assert 60 < bad < 140
    assert len({encounter.visit.ma_loai_kcb for encounter, _ in drawn}) >= 4  # a mix of visit kinds


def test_first_cost_is_the_earliest_order() -> None:
    encounter = make_encounter(random.Random(3), his_key="K1", kind=Kind.OUTPATIENT_TREATMENT)
    first = derived_first_cost(encounter)
    assert first == encounter.first_cost
    earlier = replace(encounter.drug_lines[0], ngay_yl=encounter.service_lines[0].ngay_yl.replace(hour=1))  # type: ignore[union-attr]
    moved = replace(encounter, drug_lines=(earlier, *encounter.drug_lines[1:]))
    assert derived_first_cost(moved) == FirstCost(
        ma_thuoc=earlier.ma_thuoc, ten_thuoc=earlier.ten_thuoc, ngay_yl=earlier.ngay_yl
    )


def test_the_writer_refuses_what_the_demo_cannot_store() -> None:
    engine = sa.create_engine("sqlite://")
    schema.create_schema(engine)
    base = make_encounter(random.Random(4), his_key="K1", kind=Kind.OUTPATIENT_EXAM)
    cases = [
        (replace(base, hiv_care=(HivCare(),)), "hiv_care"),
        (replace(base, visit=replace(base.visit, du_phong="x")), "visit.du_phong"),
        (replace(base, visit=replace(base.visit, ma_khoa="K77")), "visit.ma_khoa"),
        (replace(base, first_cost=None), "first_cost"),
    ]
    with engine.begin() as conn:
        writer = DemoWriter(conn)
        for encounter, where in cases:
            with pytest.raises(DemoSchemaError, match=where):
                writer.write([encounter])
    engine.dispose()
    with pytest.raises(ValueError, match="bad_share"):
        seed_demo_his("sqlite://", encounters=1, bad_share=2)
