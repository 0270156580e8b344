"""The demo adapter (generic sql_mapping + bundled mapping.toml) against the reference HIS on SQLite,
PostgreSQL and MariaDB: it must give back exactly what the generator wrote, and discovery must miss nothing."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
import sqlalchemy as sa

from adapters.his.demo import schema
from schemas.domain.values import VIETNAM_TZ
from schemas.ports import CompletedKeyLister, Cursor, EncounterSource
from tests.integration.his.demo_data import demo_source, execute, sample_encounters, write

#: PostgreSQL 25006, MariaDB 1792, SQLite (mode=ro file / PRAGMA query_only).
READ_ONLY_ERRORS = ("read-only transaction", "read only transaction", "readonly database", "query_only")
RANGE = (datetime(2026, 1, 1, tzinfo=VIETNAM_TZ), datetime(2026, 6, 1, tzinfo=VIETNAM_TZ))


def _cursor(source: EncounterSource) -> Cursor:
    return max(Cursor(ref.changed_at, ref.his_key) for ref in source.discover(None))


def test_load_gives_back_exactly_the_generated_encounter(his_url: str) -> None:
    written = sample_encounters()
    write(his_url, written)
    with demo_source(his_url) as source:
        assert isinstance(source, EncounterSource)
        for encounter in written:
            loaded = source.load(encounter.his_key)
            assert loaded == encounter, encounter.his_key
            assert loaded.completed_at == encounter.visit.ngay_ra


def test_discovery_pages_through_everything_once_in_order(his_url: str) -> None:
    written = sample_encounters(count_per_kind=2)
    write(his_url, written)
    with demo_source(his_url, page_size=5) as source:
        refs = list(source.discover(None))
        completed = list(source.list_completed(*RANGE))
    keys = sorted(encounter.his_key for encounter in written)
    assert sorted(ref.his_key for ref in refs) == keys  # each exactly once across page boundaries
    assert [(ref.changed_at, ref.his_key) for ref in refs] == sorted(
        (ref.changed_at, ref.his_key) for ref in refs
    )
    assert sorted(ref.his_key for ref in completed) == keys
    assert [(ref.completed_at, ref.his_key) for ref in completed] == sorted(
        (r.completed_at, r.his_key) for r in completed
    )
    by_key = {encounter.his_key: encounter for encounter in written}
    for ref in refs:
        encounter = by_key[ref.his_key]
        assert ref.completed_at == encounter.visit.ngay_ra
        assert ref.visit_type == encounter.visit.ma_loai_kcb
        assert ref.department == encounter.visit.ma_khoa  # mapped back from the local code
        assert ref.insured == encounter.is_insured


@pytest.mark.parametrize("overlap_minutes", [0, 60 * 24 * 3])
def test_discovery_rereads_from_the_watermark_minus_the_overlap(his_url: str, overlap_minutes: int) -> None:
    write(his_url, sample_encounters())
    with demo_source(his_url, watermark_overlap_minutes=overlap_minutes) as source:
        everything = list(source.discover(None))
        since = Cursor(everything[5].changed_at, everything[5].his_key)
        again = list(source.discover(since))
    lower = since.changed_at - timedelta(minutes=overlap_minutes)
    assert [ref.his_key for ref in again] == [ref.his_key for ref in everything if ref.changed_at >= lower]
    assert len(again) < len(everything)


def test_a_late_commit_is_missed_by_discovery_but_found_by_the_sweep(his_url: str) -> None:
    write(his_url, sample_encounters())
    with demo_source(his_url, watermark_overlap_minutes=30) as source:
        watermark = _cursor(source)
        # A transaction that stamped its change time long ago commits only now.
        late = sample_encounters(first=900)[0]
        write(his_url, [late], changed_at=watermark.changed_at - timedelta(hours=2))
        assert late.his_key not in {ref.his_key for ref in source.discover(watermark)}
        assert late.visit.ngay_ra is not None
        day = late.visit.ngay_ra.replace(hour=0, minute=0)
        swept = {ref.his_key for ref in source.list_completed(day, day + timedelta(days=1))}
        assert late.his_key in swept
        assert source.load(late.his_key) == late


def test_an_updated_encounter_is_rediscovered_with_its_new_content(his_url: str) -> None:
    written = sample_encounters()
    write(his_url, written)
    target = next(encounter for encounter in written if encounter.drug_lines)
    with demo_source(his_url, watermark_overlap_minutes=0) as source:
        watermark = _cursor(source)
        changed = (watermark.changed_at + timedelta(hours=1)).astimezone(VIETNAM_TZ).replace(tzinfo=None)
        visit_id = (
            sa.select(schema.visits.c.id)
            .where(schema.visits.c.visit_code == target.his_key)
            .scalar_subquery()
        )
        execute(
            his_url,
            schema.visits.update()
            .where(schema.visits.c.visit_code == target.his_key)
            .values(discharge_diagnosis="Chẩn đoán đã sửa", updated_at=changed),
        )
        execute(
            his_url,
            schema.prescriptions.update()
            .where(schema.prescriptions.c.visit_id == visit_id, schema.prescriptions.c.line_no == 1)
            .values(quantity=99),
        )
        rediscovered = list(source.discover(watermark))
        loaded = source.load(target.his_key)
    # At or after the watermark: the watermark's own row again (>=) and the updated encounter.
    assert [ref.his_key for ref in rediscovered] == [watermark.his_key, target.his_key]
    assert loaded is not None
    assert loaded != target
    assert loaded.visit.chan_doan_rv == "Chẩn đoán đã sửa"
    assert loaded.drug_lines[0].so_luong == 99


def test_deleted_cancelled_or_reopened_encounters_load_as_none(his_url: str) -> None:
    written = sample_encounters()
    write(his_url, written)
    deleted, cancelled, reopened = (encounter.his_key for encounter in written[:3])
    visits = schema.visits
    execute(
        his_url, visits.update().where(visits.c.visit_code == deleted).values(deleted_at=datetime(2026, 3, 1))
    )
    execute(his_url, visits.update().where(visits.c.visit_code == cancelled).values(status="CANCELLED"))
    execute(
        his_url,
        visits.update()
        .where(visits.c.visit_code == reopened)
        .values(status="OPEN", discharged_at=None, paid_at=None),
    )
    with demo_source(his_url) as source:
        for key in (deleted, cancelled, reopened):
            assert source.load(key) is None
        listed = {ref.his_key for ref in source.list_completed(*RANGE)}
        discovered = {ref.his_key for ref in source.discover(None)}
        assert source.load("V9999999") is None  # never existed
    assert listed == discovered == {encounter.his_key for encounter in written[3:]}


def test_completed_keys_and_refs_name_exactly_what_list_completed_lists(his_url: str) -> None:
    written = sample_encounters(count_per_kind=2)
    write(his_url, written)
    deleted = written[0].his_key
    execute(
        his_url,
        schema.visits.update()
        .where(schema.visits.c.visit_code == deleted)
        .values(deleted_at=datetime(2026, 3, 1)),
    )
    with demo_source(his_url) as source:
        assert isinstance(source, CompletedKeyLister)
        listed = {ref.his_key: ref for ref in source.list_completed(*RANGE)}
        keys = source.completed_keys(*RANGE)
        first = min(ref.completed_at for ref in listed.values())
        day = (first.replace(hour=0, minute=0, second=0, microsecond=0), first.replace(hour=23, minute=59))
        keys_of_day = source.completed_keys(*day)
        described = source.refs([*reversed(keys), deleted, "V9999999"])  # gone and unknown keys left out
    assert sorted(keys) == sorted(listed) == sorted(e.his_key for e in written[1:])
    assert sorted(keys_of_day) == sorted(
        key for key, ref in listed.items() if day[0] <= ref.completed_at < day[1]
    )
    assert 0 < len(keys_of_day) < len(keys)
    assert {ref.his_key: ref for ref in described} == listed


def test_completion_rule_is_configurable(his_url: str) -> None:
    written = sample_encounters()
    write(his_url, written)
    unpaid = written[0]
    execute(
        his_url,
        schema.visits.update()
        .where(schema.visits.c.visit_code == unpaid.his_key)
        .values(paid_at=None, status="DISCHARGED"),
    )
    everyone = {encounter.his_key for encounter in written}
    with demo_source(his_url) as by_discharge:
        assert {ref.his_key for ref in by_discharge.discover(None)} == everyone
    with demo_source(his_url, options={"completion": "payment"}) as by_payment:
        refs = list(by_payment.discover(None))
        assert {ref.his_key for ref in refs} == everyone - {unpaid.his_key}
        assert by_payment.load(unpaid.his_key) is None
        paid = {encounter.his_key: encounter.visit.ngay_ttoan for encounter in written}
        assert all(ref.completed_at == paid[ref.his_key] for ref in refs)
    with demo_source(his_url, options={"completion": "status", "status_values": ["PAID"]}) as by_status:
        assert {ref.his_key for ref in by_status.list_completed(*RANGE)} == everyone - {unpaid.his_key}


def test_the_adapter_connection_cannot_write(his_url: str) -> None:
    written = sample_encounters()
    write(his_url, written)
    key = written[0].his_key
    with demo_source(his_url) as source:
        update = schema.visits.update().where(schema.visits.c.visit_code == key).values(status="CANCELLED")
        with source.engine.connect() as conn, pytest.raises(sa.exc.DBAPIError) as refused:
            conn.execute(update)
        assert source.load(key) == written[0]
    # The database's own read-only refusal, not some other failure.
    message = str(refused.value.orig).lower()
    assert any(text in message for text in READ_ONLY_ERRORS), message
