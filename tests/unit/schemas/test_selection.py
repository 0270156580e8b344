"""Which tables a visit sends (DOMAIN.md §5), the non-BHYT policy and the HIV filter (§13)."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime, timedelta

import pytest
from lxml import etree

from schemas import PayloadOptions, PayloadValidationError, build_claim, decode_envelope
from schemas.documents import read_rows
from schemas.domain import Encounter, HivCare, RecordSummary
from schemas.domain.values import VIETNAM_TZ
from tests.unit.schemas.cases import (
    CREATED,
    day_patient,
    inpatient_referral,
    non_insured,
    outpatient_exam,
    outpatient_treatment,
    tb_follow_up,
    totals,
)

OPTIONS = PayloadOptions()


def _tables(encounter: Encounter, options: PayloadOptions = OPTIONS) -> tuple[str, ...]:
    return build_claim(encounter, options, created=CREATED).tables


def _rules(encounter: Encounter, options: PayloadOptions = OPTIONS) -> set[str]:
    with pytest.raises(PayloadValidationError) as caught:
        build_claim(encounter, options, created=CREATED)
    return set(caught.value.rules)


def _xml(encounter: Encounter, table: str, options: PayloadOptions = OPTIONS) -> list[dict[str, str]]:
    document = decode_envelope(build_claim(encounter, options, created=CREATED).document)[table]
    return read_rows(table, etree.fromstring(document))


def test_tables_follow_the_visit_type() -> None:
    assert _tables(outpatient_exam()) == ("XML1", "XML2", "XML3", "XML4")
    assert _tables(outpatient_treatment()) == ("XML1", "XML2", "XML3", "XML5", "XML14")
    assert _tables(day_patient()) == ("XML1", "XML2", "XML3", "XML5", "XML7", "XML8")
    assert _tables(tb_follow_up()) == ("XML1", "XML2", "XML3", "XML15")


def test_clinical_notes_are_required_for_treatment_and_dropped_for_an_examination() -> None:
    treatment = outpatient_treatment()
    assert _rules(replace(treatment, clinical_notes=())) == {"XML5.missing_for_visit_type"}
    exam = replace(outpatient_exam(), clinical_notes=outpatient_treatment().clinical_notes)
    built = build_claim(exam, OPTIONS, created=CREATED)
    assert "XML5" not in built.tables
    assert [issue.rule for issue in built.warnings] == ["XML5.not_for_visit_type"]


def test_xml8_for_03_04_06_and_for_every_visit_when_configured() -> None:
    assert _rules(replace(day_patient(), record_summary=None)) == {"XML8.missing_for_visit_type"}
    every = replace(OPTIONS, xml8_for_every_visit=True)
    assert _rules(outpatient_exam(), every) == {"XML8.missing_for_visit_type"}
    summary = RecordSummary(
        qt_benhly="Đau đầu 2 ngày", tomtat_kq="Đường huyết 6.8 mmol/L", pp_dieutri="Theo dõi", ngay_ct=CREATED
    )
    assert "XML8" in _tables(replace(outpatient_exam(), record_summary=summary), every)
    assert "XML8" not in _tables(replace(outpatient_exam(), record_summary=summary))


def test_qd1804_codes_10_to_16_are_treated_like_an_examination() -> None:
    exam = outpatient_exam()
    after = datetime(2026, 8, 3, 8, 0, tzinfo=VIETNAM_TZ)
    home = replace(
        exam,
        visit=replace(
            exam.visit,
            ma_loai_kcb="12",
            ngay_vao=after,
            ngay_ra=after + timedelta(hours=1),
            ngay_ttoan=None,
            thang_qt=8,
        ),
    )
    moved = replace(home, drug_lines=(), service_lines=(), cls_results=(), first_cost=None)
    moved = replace(moved, visit=replace(moved.visit, **totals((), ())))  # type: ignore[arg-type]
    assert _tables(moved) == ("XML1",)
    assert "XML1.MA_LOAI_KCB.code" in _rules(
        replace(
            moved,
            visit=replace(
                moved.visit, ma_loai_kcb="12", ngay_ra=exam.visit.ngay_ra, ngay_vao=exam.visit.ngay_vao
            ),
        )
    )


def test_referral_only_for_discharge_types_2_and_5() -> None:
    referral = inpatient_referral()
    assert "XML13" in _tables(referral)
    patient_request = replace(referral, visit=replace(referral.visit, ma_loai_rv=5))
    assert "XML13" in _tables(patient_request)
    discharged = replace(referral, visit=replace(referral.visit, ma_loai_rv=1))
    built = build_claim(discharged, OPTIONS, created=CREATED)
    assert "XML13" not in built.tables
    assert [issue.rule for issue in built.warnings] == ["XML13.not_for_discharge_type"]
    assert _rules(replace(referral, referral=None)) == {"XML13.missing_for_discharge_type"}


def test_non_bhyt_visit_is_limited_to_the_configured_tables_and_never_sends_a_referral() -> None:
    visit = non_insured()
    assert _tables(visit) == ("XML1", "XML2", "XML3", "XML8")
    xml1 = _xml(visit, "XML1")[0]
    assert xml1["MA_DOITUONG_KCB"] == "9"
    assert all(
        xml1[name] == "" for name in ("MA_THE_BHYT", "MA_DKBD", "GT_THE_TU", "GT_THE_DEN", "MA_KHUVUC")
    )
    narrow = replace(OPTIONS, non_bhyt_tables=("XML1", "XML8"))
    built = build_claim(visit, narrow, created=CREATED)
    assert built.tables == ("XML1", "XML8")
    assert {issue.rule for issue in built.warnings} == {
        "XML2.not_for_non_bhyt",
        "XML3.not_for_non_bhyt",
        "XML1.totals_cover_withheld_lines",
    }
    referred = replace(
        visit, visit=replace(visit.visit, ma_loai_rv=2), referral=inpatient_referral().referral
    )
    everything = replace(OPTIONS, non_bhyt_tables=("XML1", "XML2", "XML3", "XML8", "XML13"))
    built = build_claim(referred, everything, created=CREATED)
    assert "XML13" not in built.tables
    assert "XML13.not_for_non_bhyt" in {issue.rule for issue in built.warnings}


def test_a_bhyt_code_without_a_card_is_sent_as_non_bhyt() -> None:
    exam = outpatient_exam()
    no_card = replace(exam, patient=replace(exam.patient, ma_the_bhyt=None))
    # The lines still carry BHYT amounts: the non-BHYT money rules catch them.
    rules = _rules(no_card, replace(OPTIONS, non_bhyt_tables=("XML1", "XML2", "XML3", "XML4")))
    assert "XML1.T_TONGCHI_BH.non_bhyt_zero" in rules
    assert "XML2.THANH_TIEN_BH.non_bhyt_zero" in rules
    assert "XML1.MA_THE_BHYT" not in {rule.rsplit(".", 1)[0] for rule in rules}


def _hiv_care() -> HivCare:
    return HivCare(
        noi_lay_mau_xn="79001",
        noi_xn_kd="79001",
        noi_bddt_arv="79999",
        ngaykd_hiv=date(2020, 5, 4),
        bddt_arv=date(2020, 6, 1),
        ma_phac_do_dieu_tri_bd="TDF+3TC+DTG",
        ma_lydo_dtri=1,
        loai_dtri_lao=0,
        sang_loc_lao=2,
        kq_dtri_lao=7,
        ma_loai_bn=1,
        giai_doan_lam_sang=1,
        nhom_doi_tuong=1,
        ma_tinh_trang_dk="9",
        ma_xu_tri="4",
        ma_phac_do_dieu_tri="TDF+3TC+DTG",
        ngay_chuyen_phac_do=date(2024, 1, 2),
        ly_do_chuyen_phac_do=1,
    )


def _with_hiv(encounter: Encounter) -> Encounter:
    arv = replace(encounter.drug_lines[0], ma_thuoc="40.99", ten_thuoc="TDF+3TC+DTG", hiv_restricted=True)
    return replace(encounter, hiv_care=(_hiv_care(),), drug_lines=(*encounter.drug_lines, arv))


def test_hiv_policy_keeps_xml6_on_bhyt_claims_and_drops_it_for_non_bhyt_sends() -> None:
    insured = _with_hiv(outpatient_exam())
    insured = replace(
        insured, visit=replace(insured.visit, **totals(insured.drug_lines, insured.service_lines))
    )  # type: ignore[arg-type]
    built = build_claim(insured, OPTIONS, created=CREATED)
    assert "XML6" in built.tables
    assert len(_xml(insured, "XML2")) == 2

    always = replace(OPTIONS, hiv_filter="always")
    filtered = build_claim(insured, always, created=CREATED)
    assert "XML6" not in filtered.tables
    assert {issue.rule for issue in filtered.warnings} == {
        "XML6.hiv_filtered",
        "XML1.totals_cover_withheld_lines",
    }
    assert [row["TEN_THUOC"] for row in _xml(insured, "XML2", always)] == ["Paracetamol 500mg"]

    visit = non_insured()
    arv = replace(visit.drug_lines[0], ma_thuoc="40.99", ten_thuoc="TDF+3TC+DTG", hiv_restricted=True)
    uninsured = replace(visit, hiv_care=(_hiv_care(),), drug_lines=(*visit.drug_lines, arv))
    uninsured = replace(
        uninsured, visit=replace(uninsured.visit, **totals(uninsured.drug_lines, uninsured.service_lines))
    )  # type: ignore[arg-type]
    everything = replace(OPTIONS, non_bhyt_tables=("XML1", "XML2", "XML3", "XML6", "XML8"))
    assert "XML6" not in build_claim(uninsured, everything, created=CREATED).tables
    assert [row["TEN_THUOC"] for row in _xml(uninsured, "XML2", everything)] == ["Amoxicilin 500mg"]
    never = replace(everything, hiv_filter="never")
    assert "XML6" in build_claim(uninsured, never, created=CREATED).tables
