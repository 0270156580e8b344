"""Business rules (DOMAIN.md §5–§8) over rendered documents, each with its stable rule id."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from lxml import etree

from adapters.his.demo.synthetic import Defect, Kind
from schemas import PayloadOptions, PayloadValidationError, build_claim, decode_envelope
from schemas.documents import read_rows
from schemas.domain import Encounter
from schemas.issues import Issue, Severity
from schemas.rules import RuleContext, check_documents
from schemas.spec import Profile
from tests.factories import encounter as synthetic
from tests.unit.schemas.cases import (
    CREATED,
    day_patient,
    inpatient_referral,
    non_insured,
    outpatient_exam,
    outpatient_treatment,
)

Documents = dict[str, list[dict[str, str]]]


def documents(encounter: Encounter, profile: Profile = Profile.QD4750) -> Documents:
    built = build_claim(encounter, PayloadOptions(profile=profile), created=CREATED)
    return {
        table: read_rows(table, etree.fromstring(content))
        for table, content in decode_envelope(built.document).items()
    }


def findings(docs: Documents, **context: object) -> list[Issue]:
    return check_documents(docs, RuleContext(profile=Profile.QD4750, **context))  # type: ignore[arg-type]


def rules(docs: Documents, **context: object) -> set[str]:
    return {issue.rule for issue in findings(docs, **context) if issue.severity is Severity.ERROR}


def warnings(docs: Documents, **context: object) -> set[str]:
    return {issue.rule for issue in findings(docs, **context) if issue.severity is Severity.WARNING}


@pytest.mark.parametrize(
    ("defect", "rule"),
    [
        (Defect.BAD_CCCD, "XML1.SO_CCCD.format"),
        (Defect.TOTALS_MISMATCH, "XML1.T_TONGCHI_BV.total"),
        (Defect.DISCHARGE_BEFORE_ADMISSION, "XML1.NGAY_RA.order"),
        (Defect.UNKNOWN_VISIT_TYPE, "XML1.MA_LOAI_KCB.code"),
        (Defect.BAD_ICD, "XML1.MA_BENH_CHINH.format"),
    ],
)
@pytest.mark.parametrize("kind", [Kind.OUTPATIENT_EXAM, Kind.INPATIENT_REFERRAL, Kind.NON_INSURED])
def test_every_synthetic_defect_is_caught_with_its_rule(defect: Defect, rule: str, kind: Kind) -> None:
    with pytest.raises(PayloadValidationError) as caught:
        build_claim(synthetic(kind, seed=11, defect=defect), PayloadOptions(), created=CREATED)
    assert rule in caught.value.rules


def test_clean_documents_have_no_findings() -> None:
    for encounter in (outpatient_exam(), outpatient_treatment(), inpatient_referral(), non_insured()):
        assert findings(documents(encounter), facility_code="79999") == []


@pytest.mark.parametrize(
    ("number", "valid"),
    [
        ("079185012345", True),
        ("123456789", True),
        ("B1234567", True),
        ("1234567890", False),
        ("b1234567", False),
        ("07918501234X", False),
    ],
)
def test_identity_number_shape(number: str, valid: bool) -> None:
    docs = documents(outpatient_exam())
    docs["XML1"][0]["SO_CCCD"] = number
    assert ("XML1.SO_CCCD.format" not in rules(docs)) is valid


def test_secondary_diagnoses_at_most_twelve_icd10_codes() -> None:
    docs = documents(outpatient_exam())
    docs["XML1"][0]["MA_BENH_KT"] = ";".join(f"J{n:02d}" for n in range(12))
    assert rules(docs) == set()
    docs["XML1"][0]["MA_BENH_KT"] = ";".join(f"J{n:02d}" for n in range(13))
    assert rules(docs) == {"XML1.MA_BENH_KT.count"}
    docs["XML1"][0]["MA_BENH_KT"] = "J06.9;banana"
    assert rules(docs) == {"XML1.MA_BENH_KT.format"}


def _dated(docs: Documents, day: str) -> Documents:
    """Move the visit to ``day`` (yyyyMMdd) so the code lists of that date apply."""
    for rows in docs.values():
        for row in rows:
            for name in ("NGAY_VAO", "NGAY_RA", "NGAY_YL", "NGAY_TH_YL", "NGAY_KQ", "NGAY_TTOAN"):
                if row.get(name):
                    row[name] = day + row[name][8:]
    return docs


def test_code_lists_are_chosen_by_the_visit_end_date() -> None:
    before = _dated(documents(outpatient_exam()), "20260731")
    after = _dated(documents(outpatient_exam()), "20260803")
    before["XML1"][0]["MA_LOAI_KCB"] = after["XML1"][0]["MA_LOAI_KCB"] = "14"  # QĐ 1804 only
    assert rules(before) == {"XML1.MA_LOAI_KCB.code"}
    assert rules(after) == set()
    # MA_KHOA has no list before 2026-08-01: nothing to check; afterwards QĐ 1804 codes.
    for code, expected in [
        ("K0809", set()),
        ("K02.D35", set()),
        ("K16.1", set()),
        ("K03.4", {"XML1.MA_KHOA.code"}),
        ("K77", {"XML1.MA_KHOA.code"}),
        ("KHOA-NOI", {"XML1.MA_KHOA.format"}),
        ("K03;K26", set()),
    ]:
        before["XML1"][0]["MA_KHOA"] = after["XML1"][0]["MA_KHOA"] = code
        assert rules(before) == {"XML1.MA_LOAI_KCB.code"}, code
        assert rules(after) == expected, code


def test_dates_must_be_in_order() -> None:
    docs = documents(inpatient_referral())
    docs["XML1"][0]["NGAY_VAO_NOI_TRU"] = "202603040800"  # before NGAY_VAO 08:15
    assert rules(docs) == {"XML1.NGAY_VAO_NOI_TRU.order"}
    docs = documents(outpatient_exam())
    docs["XML2"][0]["NGAY_TH_YL"] = "202603040800"
    assert rules(docs) == {"XML2.NGAY_TH_YL.order"}
    docs = documents(outpatient_treatment())
    docs["XML14"][0]["NGAY_HEN_KL"] = "202603051000"  # before NGAY_RA (2026-03-08)
    assert rules(docs) == {"XML14.NGAY_HEN_KL.order"}


def test_results_after_discharge_are_warnings() -> None:
    docs = documents(outpatient_exam())
    docs["XML4"][0]["NGAY_KQ"] = "202603041200"  # after NGAY_RA 10:25, same day
    assert rules(docs) == set()
    assert warnings(docs) == {"XML4.NGAY_KQ.after_discharge"}
    docs["XML4"][0]["NGAY_KQ"] = "202603151200"
    assert warnings(docs) == {"XML4.NGAY_KQ.late_result"}


def test_newborn_needs_the_full_birth_time() -> None:
    docs = documents(outpatient_exam())
    docs["XML1"][0]["NGAY_SINH"] = "202603010000"  # 3 days old, time unknown
    assert rules(docs) == {"XML1.NGAY_SINH.newborn_time"}
    assert rules(docs, birth_time_known=True) == set()  # born at 00:00 exactly, as the canonical model knows
    docs["XML1"][0]["NGAY_SINH"] = "202603010715"
    assert rules(docs) == set()
    docs["XML1"][0]["NGAY_SINH"] = "202602010000"  # 31 days old: no longer a newborn
    assert rules(docs) == set()
    docs["XML1"][0]["NGAY_SINH"] = "202603050000"
    assert rules(docs) == {"XML1.NGAY_SINH.after_visit"}


def test_treatment_days_follow_the_visit_type() -> None:
    docs = documents(day_patient())
    assert docs["XML1"][0]["SO_NGAY_DTRI"] == "2"
    docs["XML1"][0]["SO_NGAY_DTRI"] = "1"
    assert rules(docs) == {"XML1.SO_NGAY_DTRI.days"}
    docs = documents(outpatient_exam())
    docs["XML1"][0]["SO_NGAY_DTRI"] = "1"
    assert rules(docs) == {"XML1.SO_NGAY_DTRI.days"}


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (
            lambda d: d["XML2"][0].update(THANH_TIEN_BV="4501.00"),
            {"XML2.THANH_TIEN_BV.formula", "XML1.T_TONGCHI_BV.total", "XML1.T_THUOC.total"},
        ),
        (
            lambda d: d["XML3"][0].update(THANH_TIEN_BH="1.00"),
            {"XML3.THANH_TIEN_BH.formula", "XML1.T_TONGCHI_BH.total"},
        ),
        (lambda d: d["XML3"][0].update(T_NGUONKHAC_CL="5.00"), {"XML3.T_NGUONKHAC.formula"}),
        (lambda d: d["XML1"][0].update(T_BHTT="1.00"), {"XML1.T_BHTT.total"}),
        (lambda d: d["XML1"][0].update(T_BNCCT="1.00"), {"XML1.T_BNCCT.total", "XML1.T_BHTT.total"}),
        (lambda d: d["XML1"][0].update(T_NGUONKHAC="1.00"), {"XML1.T_NGUONKHAC.total"}),
        (lambda d: d["XML1"][0].update(T_BNTT="1.00"), {"XML1.T_BNTT.total"}),
    ],
)
def test_money_identities(mutate: Callable[[Documents], None], expected: set[str]) -> None:
    docs = documents(outpatient_exam())
    mutate(docs)
    assert rules(docs) == expected


def test_supplies_total_is_a_warning_because_the_classification_is_uncertain() -> None:
    docs = documents(inpatient_referral())
    assert docs["XML1"][0]["T_VTYT"] == "15500.00"
    docs["XML1"][0]["T_VTYT"] = "0.00"
    assert rules(docs) == set()
    assert warnings(docs) == {"XML1.T_VTYT.total_unsure"}


def test_non_bhyt_money_must_be_zero() -> None:
    docs = documents(non_insured())
    docs["XML2"][0]["THANH_TIEN_BH"] = docs["XML2"][0]["THANH_TIEN_BV"]
    docs["XML1"][0]["T_BHTT_GDV"] = "10.00"
    assert {"XML2.THANH_TIEN_BH.non_bhyt_zero", "XML1.T_BHTT_GDV.non_bhyt_zero"} <= rules(docs)


def test_conditional_requirements() -> None:
    docs = documents(outpatient_exam())
    docs["XML3"][1]["NGUOI_THUC_HIEN"] = ""  # glucose test: MA_NHOM 1 needs the performer
    assert rules(docs) == {"XML3.NGUOI_THUC_HIEN.required_if"}
    (issue,) = [found for found in findings(docs) if found.is_error]
    assert issue.row == 2
    assert "MA_NHOM is 1, 2, 3, 8 or 18" in issue.message_en
    docs = documents(day_patient())
    docs["XML7"][0]["MA_DINH_CHI_THAI"] = "1"
    assert rules(docs) == {
        "XML7.NGUYENNHAN_DINHCHI.required_if",
        "XML7.THOIGIAN_DINHCHI.required_if",
        "XML7.TUOI_THAI.required_if",
    }
    docs["XML7"][0].update(NGUYENNHAN_DINHCHI="Thai lưu", THOIGIAN_DINHCHI="202603041000", TUOI_THAI="45")
    assert rules(docs) == {"XML7.TUOI_THAI.range"}
    docs["XML7"][0].update(TUOI_THAI="12", SO_NGAY_NGHI="5")
    assert rules(docs) == {"XML7.NGOAITRU_TUNGAY.all_or_none"}


def test_required_field_and_max_length() -> None:
    docs = documents(outpatient_exam())
    docs["XML1"][0]["LY_DO_VV"] = ""
    docs["XML2"][0]["DUONG_DUNG"] = "Tiêm truyền"
    assert rules(docs) == {"XML1.LY_DO_VV.required", "XML2.DUONG_DUNG.max_length"}


def test_keys_and_facility() -> None:
    docs = documents(outpatient_exam())
    docs["XML3"][1]["MA_LK"] = "79999-OTHER"
    assert rules(docs) == {"XML3.MA_LK.consistent"}
    docs = documents(outpatient_exam())
    for rows in docs.values():
        for row in rows:
            row["MA_LK"] = "79999-079185012345"
    assert rules(docs) == {"XML1.MA_LK.personal_data"}
    assert rules(documents(outpatient_exam()), facility_code="01234") == {"XML1.MA_CSKCB.facility"}


def test_line_needs_a_service_or_a_supply() -> None:
    docs = documents(outpatient_exam())
    docs["XML3"][0].update(TEN_DICH_VU="")
    assert "XML3.line_item" in rules(docs)


def test_messages_never_contain_the_values_that_failed() -> None:
    secrets = {
        "SO_CCCD": "0791850XXXXX",
        "MA_BENH_CHINH": "ZZ-SECRET",
        "MA_TTDV": "79SECRET99",
        "DIA_CHI": "x" * 1030,
    }
    docs = documents(outpatient_exam())
    docs["XML1"][0].update(secrets)
    found = findings(docs)
    assert {issue.field for issue in found} >= {"SO_CCCD", "MA_BENH_CHINH", "MA_TTDV", "DIA_CHI"}
    for issue in found:
        text = issue.message_vi + issue.message_en + issue.hint
        assert not any(secret in text for secret in secrets.values()), issue.rule
