"""build_claim / build_checkin: envelope layout (§3.2), element order (§4), hashing and decoding."""

from __future__ import annotations

import base64
import re
from dataclasses import replace
from datetime import date, datetime

import pytest
from lxml import etree

from schemas import (
    EnvelopeFormatError,
    PayloadOptions,
    PayloadValidationError,
    build_checkin,
    build_claim,
    content_hash_of_envelope,
    decode_envelope,
    validate_document,
    validate_envelope_bytes,
)
from schemas.documents import read_rows
from schemas.domain.values import VIETNAM_TZ
from schemas.spec import TABLE_LAYOUTS, Profile, table_fields
from tests.factories import one_of_each_kind
from tests.unit.schemas.cases import CREATED, VALID_CASES, inpatient_referral, non_insured, outpatient_exam

DSIG = "http://www.w3.org/2000/09/xmldsig#"


def test_envelope_layout_is_exactly_as_in_the_guide() -> None:
    built = build_claim(inpatient_referral(), PayloadOptions(facility_code="79999"), created=date(2026, 3, 5))
    document = built.document
    assert document.startswith(
        b'<?xml version="1.0" encoding="utf-8"?><GIAMDINHHS xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"'
        b' xmlns:xsd="http://www.w3.org/2001/XMLSchema"><THONGTINDONVI><MACSKCB>79999</MACSKCB></THONGTINDONVI>'
        b"<THONGTINHOSO><NGAYLAP>20260305</NGAYLAP><SOLUONGHOSO>1</SOLUONGHOSO><DANHSACHHOSO><HOSO><FILEHOSO>"
    )
    assert document.endswith(b"</FILEHOSO></HOSO></DANHSACHHOSO></THONGTINHOSO><CHUKYDONVI/></GIAMDINHHS>")
    assert b"\n" not in document
    assert b"> <" not in document
    names = re.findall(rb"<LOAIHOSO>([^<]+)</LOAIHOSO>", document)
    assert [name.decode() for name in names] == list(built.tables)
    assert built.tables == ("XML1", "XML2", "XML3", "XML5", "XML7", "XML8", "XML13")
    contents = re.findall(rb"<NOIDUNGFILE>([^<]+)</NOIDUNGFILE>", document)
    assert [base64.b64decode(content) for content in contents] == list(decode_envelope(document).values())


def test_ngaylap_defaults_to_today_in_vietnam() -> None:
    before = datetime.now(VIETNAM_TZ).date()
    document = build_claim(outpatient_exam(), PayloadOptions()).document
    after = datetime.now(VIETNAM_TZ).date()
    stamp = re.search(rb"<NGAYLAP>(\d{8})</NGAYLAP>", document)
    assert stamp is not None
    assert stamp.group(1).decode() in {before.strftime("%Y%m%d"), after.strftime("%Y%m%d")}


def test_build_is_deterministic_and_the_hash_ignores_the_creation_date() -> None:
    options = PayloadOptions()
    first = build_claim(outpatient_exam(), options, created=date(2026, 3, 5))
    again = build_claim(outpatient_exam(), options, created=date(2026, 3, 5))
    next_day = build_claim(outpatient_exam(), options, created=date(2026, 3, 6))
    assert first == again
    assert next_day.document != first.document
    assert next_day.content_hash == first.content_hash
    assert re.fullmatch(r"[0-9a-f]{64}", first.content_hash)
    assert content_hash_of_envelope(next_day.document) == first.content_hash


def test_the_hash_changes_with_content_and_profile_but_not_with_the_facility_envelope_only() -> None:
    base = build_claim(outpatient_exam(), PayloadOptions(), created=CREATED)
    encounter = outpatient_exam()
    edited = replace(encounter, visit=replace(encounter.visit, ghi_chu="Tái khám nếu sốt"))
    assert build_claim(edited, PayloadOptions(), created=CREATED).content_hash != base.content_hash
    no_declaration = build_claim(
        outpatient_exam(), PayloadOptions(inner_xml_declaration=False), created=CREATED
    )
    assert no_declaration.content_hash != base.content_hash
    referral = inpatient_referral()
    assert (
        build_claim(referral, PayloadOptions(profile=Profile.QD4750), created=CREATED).content_hash
        != build_claim(referral, PayloadOptions(profile=Profile.QD3176), created=CREATED).content_hash
    )


def test_inner_declaration_switch() -> None:
    with_declaration = decode_envelope(
        build_claim(outpatient_exam(), PayloadOptions(), created=CREATED).document
    )
    without = decode_envelope(
        build_claim(outpatient_exam(), PayloadOptions(inner_xml_declaration=False), created=CREATED).document
    )
    assert with_declaration["XML1"].startswith(b'<?xml version="1.0" encoding="utf-8"?><TONG_HOP xmlns:xsi=')
    assert without["XML1"].startswith(b"<TONG_HOP xmlns:xsi=")
    assert with_declaration["XML1"].endswith(without["XML1"])


def _element_names(table: str, content: bytes) -> list[list[str]]:
    root = etree.fromstring(content)
    layout = TABLE_LAYOUTS[table]
    records = [root] if layout.row is None else root.findall(f"{layout.list_element}/{layout.row}")
    return [[child.tag for child in record if child.tag != "CHUKYDONVI"] for record in records]


@pytest.mark.parametrize("profile", list(Profile))
def test_every_table_emits_every_field_in_csv_order_and_validates(profile: Profile) -> None:
    options = PayloadOptions(profile=profile)
    encounters = [case() for case in VALID_CASES.values()] + [
        encounter
        for encounter in one_of_each_kind()
        if encounter.patient.so_cccd  # the newborn fails by design
    ]
    seen: set[str] = set()
    for encounter in encounters:
        for table, content in decode_envelope(
            build_claim(encounter, options, created=CREATED).document
        ).items():
            expected = [spec.name for spec in table_fields(table, profile)]
            records = _element_names(table, content)
            assert records, table
            assert all(names == expected for names in records), table
            assert validate_document(table, content, profile) == []
            seen.add(table)
    assert seen >= {"XML1", "XML2", "XML3", "XML4", "XML5", "XML7", "XML8", "XML13", "XML14", "XML15"}


def test_stt_counts_from_one_in_each_table() -> None:
    documents = decode_envelope(build_claim(inpatient_referral(), PayloadOptions(), created=CREATED).document)
    for table in ("XML2", "XML3", "XML5"):
        rows = read_rows(table, etree.fromstring(documents[table]))
        assert [row["STT"] for row in rows] == [str(number) for number in range(1, len(rows) + 1)]
        assert {row["MA_LK"] for row in rows} == {"79999-G0003"}


def test_qd3176_referral_renames_are_filled_from_the_4750_fields() -> None:
    documents = {
        profile: read_rows(
            "XML13",
            etree.fromstring(
                decode_envelope(
                    build_claim(
                        inpatient_referral(), PayloadOptions(profile=profile), created=CREATED
                    ).document
                )["XML13"]
            ),
        )[0]
        for profile in Profile
    }
    old, new = documents[Profile.QD4750], documents[Profile.QD3176]
    assert new["MA_CSKCB_DEN"] == old["MA_NOI_DEN"] == "79001"
    assert new["MA_CSKCB_DI"] == old["MA_NOI_DI"] == ""
    assert new["TINH_TRANG_CT"] == old["PP_DIEU_TRI"] == old["PP_DIEUTRI"] == "Điều trị nội khoa"
    assert "TEN_DICH_VU" not in new
    assert old["TEN_THUOC"] == "Natri clorid 0,9% 500ml;Ceftriaxon 1g"


def test_facility_code_fills_an_empty_ma_cskcb_and_a_different_one_is_an_error() -> None:
    encounter = outpatient_exam()
    unset = replace(encounter, visit=replace(encounter.visit, ma_cskcb=None))
    xml1 = decode_envelope(
        build_claim(unset, PayloadOptions(facility_code="01234"), created=CREATED).document
    )["XML1"]
    assert b"<MA_CSKCB>01234</MA_CSKCB>" in xml1
    with pytest.raises(PayloadValidationError, match=r"XML1\.MA_CSKCB\.facility"):
        build_claim(encounter, PayloadOptions(facility_code="01234"), created=CREATED)


def test_decode_tolerates_a_signature_and_rejects_broken_envelopes() -> None:
    built = build_claim(outpatient_exam(), PayloadOptions(), created=CREATED)
    signature = f'<ds:Signature xmlns:ds="{DSIG}"><ds:SignedInfo/><ds:SignatureValue>AAAA</ds:SignatureValue></ds:Signature>'
    signed = built.document.replace(b"<CHUKYDONVI/>", f"<CHUKYDONVI>{signature}</CHUKYDONVI>".encode())
    assert decode_envelope(signed) == decode_envelope(built.document)
    assert content_hash_of_envelope(signed) == built.content_hash
    assert validate_envelope_bytes(signed, Profile.QD3176) == []
    with pytest.raises(EnvelopeFormatError):
        decode_envelope(b"not xml")
    with pytest.raises(EnvelopeFormatError):
        decode_envelope(b"<TONG_HOP/>")
    with pytest.raises(EnvelopeFormatError, match="more than once"):
        decode_envelope(built.document.replace(b"<LOAIHOSO>XML2<", b"<LOAIHOSO>XML1<"))
    with pytest.raises(EnvelopeFormatError, match="base64"):
        decode_envelope(re.sub(rb"<NOIDUNGFILE>[^<]{4}", b"<NOIDUNGFILE>@@@@", built.document, count=1))


def test_checkin_document_and_when_it_is_skipped() -> None:
    options = PayloadOptions()
    checkin = build_checkin(outpatient_exam(), options)
    assert checkin is not None
    assert checkin.tables == ("XML0",)
    root = etree.fromstring(checkin.document)
    assert [child.tag for child in root] == ["DSACH_TRANG_THAI_KCB", "CHUKYDONVI"]
    assert len(root[1]) == 0
    assert not root[1].text
    assert validate_document("XML0", checkin.document, options.profile) == []
    assert build_checkin(outpatient_exam(), options) == checkin

    emergency = outpatient_exam()
    emergency = replace(emergency, visit=replace(emergency.visit, ma_doituong_kcb="2"))
    assert build_checkin(emergency, options) is None
    assert build_checkin(non_insured(), options) is None
    opted_in = build_checkin(non_insured(), replace(options, checkin_for_non_bhyt=True))
    assert opted_in is not None
    row = read_rows("XML0", etree.fromstring(opted_in.document))[0]
    assert row["MA_DOITUONG_KCB"] == "9"
    assert row["MA_THE_BHYT"] == ""
    assert row["GT_THE_DEN"] == ""


def test_checkin_with_two_first_costs_is_rejected() -> None:
    encounter = outpatient_exam()
    assert encounter.first_cost is not None
    both = replace(
        encounter, first_cost=replace(encounter.first_cost, ma_thuoc="40.152", ten_thuoc="Paracetamol 500mg")
    )
    with pytest.raises(PayloadValidationError, match=r"XML0\.exactly_one"):
        build_checkin(both, PayloadOptions())


def test_builds_in_parallel_threads_give_the_same_bytes() -> None:
    """The worker may build from several threads: per-thread parsers, schemas and record templates."""
    from concurrent.futures import ThreadPoolExecutor

    expected = {
        name: build_claim(case(), PayloadOptions(), created=CREATED).document
        for name, case in VALID_CASES.items()
    }

    def build(name: str) -> tuple[str, bytes, bool]:
        document = build_claim(VALID_CASES[name](), PayloadOptions(), created=CREATED).document
        return name, document, validate_envelope_bytes(document, Profile.QD3176) == []

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(build, [name for name in VALID_CASES for _ in range(6)]))
    assert all(document == expected[name] and valid for name, document, valid in results)
