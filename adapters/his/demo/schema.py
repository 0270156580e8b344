"""The reference HIS: a small, realistic hospital schema of our own (SQLAlchemy Core).

It is deliberately *not* shaped like the QĐ 130 tables: local department codes, local sex codes, a
diagnosis catalogue joined by id, insurance-card data kept on the visit, a first cost derived from the
earliest order, a change timestamp and a soft-delete column — the things a real HIS mapping has to deal
with. ``mapping.toml`` next to this file reads it into the canonical model.

Each table lists the columns that store a standard field as is (``FieldColumns``): the seeder writes them
from the canonical encounter; the mapping file reads them back under the standard names. Column types
follow the canonical type of the field (money ``Numeric``, times ``DateTime`` in hospital wall-clock time).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import mysql

from adapters.his.assemble import field_types, sections
from schemas.domain import BirthDate
from schemas.spec import base_fields

#: (local column, standard field) pairs of one table.
FieldColumns = tuple[tuple[str, str], ...]

metadata = sa.MetaData()

#: Times carry microseconds on MariaDB too (DATETIME(6)), so a change time survives a round trip exactly.
Timestamp = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")


def _max_lengths(table: str) -> dict[str, int | None]:
    return {spec.name: spec.max_length for spec in base_fields(table)}


def _sql_type(section: str, field: str) -> Any:
    cls = sections()[section].cls
    target = field_types(cls)[field]
    if target is Decimal:
        scale = 3 if field == "SO_LUONG" or field.startswith("DON_GIA") else 2
        return sa.Numeric(18, scale)
    if target is int:
        return sa.Integer()
    if target is bool:
        return sa.Boolean()
    if target is datetime:
        return Timestamp
    if target is BirthDate:
        # As on the BHYT card / birth record: yyyyMMddHHmm with 0000 for an unknown day-month or time
        # (year-only births are common; newborns carry the time of birth).
        return sa.String(12)
    if target is date:
        return sa.Date()
    size = _max_lengths(cls.TABLE).get(field)
    # Short codes get a roomy VARCHAR (a HIS does not enforce the standard's sizes: the validator does);
    # long or unbounded texts go off-row (MariaDB limits a row to 64 KiB of VARCHARs).
    return sa.String(100) if size is not None and size <= 100 else sa.Text()


def _columns(section: str, pairs: FieldColumns) -> list[sa.Column[Any]]:
    return [sa.Column(column, _sql_type(section, field)) for column, field in pairs]


def _id() -> sa.Column[int]:
    return sa.Column("id", sa.Integer, primary_key=True, autoincrement=False)


def _visit_fk(*, unique: bool = False) -> sa.Column[int]:
    return sa.Column(
        "visit_id", sa.Integer, sa.ForeignKey("visits.id"), nullable=False, unique=unique, index=not unique
    )


def _line_no() -> sa.Column[int]:
    return sa.Column("line_no", sa.Integer, nullable=False)


def _department_fk(name: str = "department_id") -> sa.Column[int]:
    return sa.Column(name, sa.Integer, sa.ForeignKey("departments.id"))


# ------------------------------------------------------------------------------------------ catalogues

departments = sa.Table(
    "departments",
    metadata,
    _id(),
    sa.Column("code", sa.String(20), nullable=False, unique=True),  # local code, mapped to MA_KHOA
    sa.Column("name", sa.String(200), nullable=False),
)

diagnoses = sa.Table(
    "diagnoses",
    metadata,
    _id(),
    sa.Column("icd10", sa.String(20), nullable=False, unique=True),
    sa.Column("name", sa.Text, nullable=False),
)

# ------------------------------------------------------------------------------------------ people, visits

PATIENT_COLUMNS: FieldColumns = (
    ("patient_code", "MA_BN"),
    ("full_name", "HO_TEN"),
    ("national_id", "SO_CCCD"),
    ("birth_date", "NGAY_SINH"),
    ("blood_group", "NHOM_MAU"),
    ("nationality", "MA_QUOCTICH"),  # NULL for Vietnamese citizens: the mapping's default is 000
    ("ethnicity", "MA_DANTOC"),
    ("occupation", "MA_NGHE_NGHIEP"),
    ("address", "DIA_CHI"),
    ("province_code", "MATINH_CU_TRU"),
    ("district_code", "MAHUYEN_CU_TRU"),
    ("commune_code", "MAXA_CU_TRU"),
    ("phone", "DIEN_THOAI"),
)
#: Insurance-card data as presented at this visit (kept on the visit, as many HIS do).
VISIT_CARD_COLUMNS: FieldColumns = (
    ("card_number", "MA_THE_BHYT"),
    ("card_home_facility", "MA_DKBD"),
    ("card_valid_from", "GT_THE_TU"),
    ("card_valid_to", "GT_THE_DEN"),
    ("copay_exempt_from", "NGAY_MIEN_CCT"),
    ("card_area", "MA_KHUVUC"),
    ("five_years_from", "NAM_NAM_LIEN_TUC"),
)
VISIT_COLUMNS: FieldColumns = (
    ("reason_for_visit", "LY_DO_VV"),
    ("reason_for_admission", "LY_DO_VNT"),
    ("admission_reason_code", "MA_LY_DO_VNT"),
    ("admission_diagnosis", "CHAN_DOAN_VAO"),
    ("discharge_diagnosis", "CHAN_DOAN_RV"),
    ("secondary_icd_codes", "MA_BENH_KT"),
    ("traditional_icd_codes", "MA_BENH_YHCT"),
    ("procedure_codes", "MA_PTTT_QT"),
    ("patient_category", "MA_DOITUONG_KCB"),
    ("referred_from", "MA_NOI_DI"),
    ("referred_to", "MA_NOI_DEN"),
    ("accident_code", "MA_TAI_NAN"),
    ("admitted_at", "NGAY_VAO"),
    ("inpatient_at", "NGAY_VAO_NOI_TRU"),
    ("discharged_at", "NGAY_RA"),
    ("referral_slip_no", "GIAY_CHUYEN_TUYEN"),
    ("treatment_days", "SO_NGAY_DTRI"),
    ("treatment_method", "PP_DIEU_TRI"),
    ("outcome", "KET_QUA_DTRI"),
    ("discharge_type", "MA_LOAI_RV"),
    ("advice", "GHI_CHU"),
    ("paid_at", "NGAY_TTOAN"),
    ("total_drugs", "T_THUOC"),
    ("total_supplies", "T_VTYT"),
    ("total_cost", "T_TONGCHI_BV"),
    ("total_insured_cost", "T_TONGCHI_BH"),
    ("total_patient_pays", "T_BNTT"),
    ("total_copay", "T_BNCCT"),
    ("total_fund_pays", "T_BHTT"),
    ("total_other_sources", "T_NGUONKHAC"),
    ("total_fund_outside_capitation", "T_BHTT_GDV"),
    ("settle_year", "NAM_QT"),
    ("settle_month", "THANG_QT"),
    ("visit_type", "MA_LOAI_KCB"),
    ("weight_kg", "CAN_NANG"),
    ("newborn_weights", "CAN_NANG_CON"),
    ("follow_up_dates", "NGAY_TAI_KHAM"),
    ("record_no", "MA_HSBA"),
    ("director_health_id", "MA_TTDV"),
)

patients = sa.Table(
    "patients",
    metadata,
    _id(),
    *_columns("patient", PATIENT_COLUMNS),
    sa.Column("sex", sa.String(1)),  # local code M / F / U, mapped to GIOI_TINH
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("updated_at", Timestamp, nullable=False),
)

VISIT_STATUSES = ("OPEN", "DISCHARGED", "PAID", "CANCELLED")

visits = sa.Table(
    "visits",
    metadata,
    _id(),
    sa.Column("visit_code", sa.String(50), nullable=False, unique=True),  # the HIS key
    sa.Column("patient_id", sa.Integer, sa.ForeignKey("patients.id"), nullable=False),
    _department_fk(),
    sa.Column("main_diagnosis_id", sa.Integer, sa.ForeignKey("diagnoses.id")),
    *_columns("patient", VISIT_CARD_COLUMNS),
    *_columns("visit", VISIT_COLUMNS),
    sa.Column("status", sa.String(12), nullable=False),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("updated_at", Timestamp, nullable=False),  # bumped by every change to the visit or its lines
    sa.Column("deleted_at", Timestamp),  # soft delete: hidden from everyone
    sa.Index("ix_visits_updated", "updated_at", "visit_code"),
    sa.Index("ix_visits_discharged", "discharged_at", "visit_code"),
    sa.Index("ix_visits_paid", "paid_at", "visit_code"),
)

# ------------------------------------------------------------------------------------------ orders, results

PRESCRIPTION_COLUMNS: FieldColumns = (
    ("drug_code", "MA_THUOC"),
    ("preparation_method", "MA_PP_CHEBIEN"),
    ("source_facility", "MA_CSKCB_THUOC"),
    ("cost_group", "MA_NHOM"),
    ("drug_name", "TEN_THUOC"),
    ("unit", "DON_VI_TINH"),
    ("strength", "HAM_LUONG"),
    ("route", "DUONG_DUNG"),
    ("dosage_form", "DANG_BAO_CHE"),
    ("dosage", "LIEU_DUNG"),
    ("instructions", "CACH_DUNG"),
    ("registration_no", "SO_DANG_KY"),
    ("tender_info", "TT_THAU"),
    ("scope", "PHAM_VI"),
    ("insurance_rate", "TYLE_TT_BH"),
    ("quantity", "SO_LUONG"),
    ("unit_price", "DON_GIA"),
    ("amount", "THANH_TIEN_BV"),
    ("insured_amount", "THANH_TIEN_BH"),
    ("other_state_budget", "T_NGUONKHAC_NSNN"),
    ("other_foreign_aid", "T_NGUONKHAC_VTNN"),
    ("other_domestic_aid", "T_NGUONKHAC_VTTN"),
    ("other_remaining", "T_NGUONKHAC_CL"),
    ("other_total", "T_NGUONKHAC"),
    ("benefit_level", "MUC_HUONG"),
    ("patient_pays", "T_BNTT"),
    ("copay", "T_BNCCT"),
    ("fund_pays", "T_BHTT"),
    ("doctor_code", "MA_BAC_SI"),
    ("linked_service_code", "MA_DICH_VU"),
    ("ordered_at", "NGAY_YL"),
    ("administered_at", "NGAY_TH_YL"),
    ("payment_method", "MA_PTTT"),
    ("funding_source", "NGUON_CTRA"),
    ("war_wound", "VET_THUONG_TP"),
    ("hiv_restricted", "HIV_RESTRICTED"),
)
SERVICE_ORDER_COLUMNS: FieldColumns = (
    ("service_code", "MA_DICH_VU"),
    ("procedure_code", "MA_PTTT_QT"),
    ("supply_code", "MA_VAT_TU"),
    ("cost_group", "MA_NHOM"),
    ("supply_package", "GOI_VTYT"),
    ("supply_name", "TEN_VAT_TU"),
    ("service_name", "TEN_DICH_VU"),
    ("fuel_code", "MA_XANG_DAU"),
    ("unit", "DON_VI_TINH"),
    ("scope", "PHAM_VI"),
    ("quantity", "SO_LUONG"),
    ("price_hospital", "DON_GIA_BV"),
    ("price_insured", "DON_GIA_BH"),
    ("tender_info", "TT_THAU"),
    ("service_rate", "TYLE_TT_DV"),
    ("insurance_rate", "TYLE_TT_BH"),
    ("amount", "THANH_TIEN_BV"),
    ("insured_amount", "THANH_TIEN_BH"),
    ("ceiling_amount", "T_TRANTT"),
    ("benefit_level", "MUC_HUONG"),
    ("other_state_budget", "T_NGUONKHAC_NSNN"),
    ("other_foreign_aid", "T_NGUONKHAC_VTNN"),
    ("other_domestic_aid", "T_NGUONKHAC_VTTN"),
    ("other_remaining", "T_NGUONKHAC_CL"),
    ("other_total", "T_NGUONKHAC"),
    ("patient_pays", "T_BNTT"),
    ("copay", "T_BNCCT"),
    ("fund_pays", "T_BHTT"),
    ("bed_code", "MA_GIUONG"),
    ("doctor_code", "MA_BAC_SI"),
    ("performer_code", "NGUOI_THUC_HIEN"),
    ("icd_code", "MA_BENH"),
    ("traditional_icd_code", "MA_BENH_YHCT"),
    ("ordered_at", "NGAY_YL"),
    ("performed_at", "NGAY_TH_YL"),
    ("resulted_at", "NGAY_KQ"),
    ("payment_method", "MA_PTTT"),
    ("war_wound", "VET_THUONG_TP"),
    ("anaesthesia_method", "PP_VO_CAM"),
    ("body_site", "VI_TRI_TH_DVKT"),
    ("machine_code", "MA_MAY"),
    ("product_code", "MA_HIEU_SP"),
    ("reusable", "TAI_SU_DUNG"),
    ("hiv_restricted", "HIV_RESTRICTED"),
)
LAB_RESULT_COLUMNS: FieldColumns = (
    ("service_code", "MA_DICH_VU"),
    ("index_code", "MA_CHI_SO"),
    ("index_name", "TEN_CHI_SO"),
    ("result_value", "GIA_TRI"),
    ("unit", "DON_VI_DO"),
    ("description", "MO_TA"),
    ("conclusion", "KET_LUAN"),
    ("resulted_at", "NGAY_KQ"),
    ("reader_code", "MA_BS_DOC_KQ"),
    ("hiv_restricted", "HIV_RESTRICTED"),
)
CLINICAL_NOTE_COLUMNS: FieldColumns = (
    ("progress", "DIEN_BIEN_LS"),
    ("stage", "GIAI_DOAN_BENH"),
    ("case_conference", "HOI_CHAN"),
    ("surgery", "PHAU_THUAT"),
    ("noted_at", "THOI_DIEM_DBLS"),
    ("author_code", "NGUOI_THUC_HIEN"),
)

prescriptions = sa.Table(
    "prescriptions",
    metadata,
    _id(),
    _visit_fk(),
    _line_no(),
    _department_fk(),
    *_columns("drug_lines", PRESCRIPTION_COLUMNS),
)
service_orders = sa.Table(
    "service_orders",
    metadata,
    _id(),
    _visit_fk(),
    _line_no(),
    _department_fk(),
    *_columns("service_lines", SERVICE_ORDER_COLUMNS),
)
lab_results = sa.Table(
    "lab_results", metadata, _id(), _visit_fk(), _line_no(), *_columns("cls_results", LAB_RESULT_COLUMNS)
)
clinical_notes = sa.Table(
    "clinical_notes",
    metadata,
    _id(),
    _visit_fk(),
    _line_no(),
    *_columns("clinical_notes", CLINICAL_NOTE_COLUMNS),
)

# ------------------------------------------------------------------------------------------ documents

DISCHARGE_PAPER_COLUMNS: FieldColumns = (
    ("archive_no", "SO_LUU_TRU"),
    ("health_code", "MA_YTE"),
    ("pregnancy_terminated", "MA_DINH_CHI_THAI"),
    ("termination_cause", "NGUYENNHAN_DINHCHI"),
    ("terminated_at", "THOIGIAN_DINHCHI"),
    ("gestational_weeks", "TUOI_THAI"),
    ("treatment_method", "PP_DIEUTRI"),
    ("signer_health_id", "MA_BS"),
    ("signer_name", "TEN_BS"),
    ("issued_on", "NGAY_CT"),
    ("father_health_id", "MA_CHA"),
    ("mother_health_id", "MA_ME"),
    ("temporary_card", "MA_THE_TAM"),
    ("father_name", "HO_TEN_CHA"),
    ("mother_name", "HO_TEN_ME"),
    ("rest_days", "SO_NGAY_NGHI"),
    ("rest_from", "NGOAITRU_TUNGAY"),
    ("rest_to", "NGOAITRU_DENNGAY"),
)
RECORD_SUMMARY_COLUMNS: FieldColumns = (
    ("father_name", "HO_TEN_CHA"),
    ("mother_name", "HO_TEN_ME"),
    ("guardian_name", "NGUOI_GIAM_HO"),
    ("employer", "DON_VI"),
    ("history", "QT_BENHLY"),
    ("results_summary", "TOMTAT_KQ"),
    ("treatment_method", "PP_DIEUTRI"),
    ("baby_born_on", "NGAY_SINHCON"),
    ("baby_died_on", "NGAY_CONCHET"),
    ("babies_died", "SO_CONCHET"),
    ("issued_on", "NGAY_CT"),
    ("temporary_card", "MA_THE_TAM"),
)
REFERRAL_COLUMNS: FieldColumns = (
    ("file_no", "SO_HOSO"),
    ("book_no", "SO_CHUYENTUYEN"),
    ("clinical_signs", "DAU_HIEU_LS"),
    ("history", "QT_BENHLY"),
    ("results_summary", "TOMTAT_KQ"),
    ("treatment_method", "PP_DIEUTRI"),
    ("services_used", "TEN_DICH_VU"),
    ("drugs_used", "TEN_THUOC"),
    ("reason_code", "MA_LYDO_CT"),
    ("treatment_plan", "HUONG_DIEU_TRI"),
    ("transport", "PHUONGTIEN_VC"),
    ("escort_name", "HOTEN_NGUOI_HT"),
    ("escort_title", "CHUCDANH_NGUOI_HT"),
    ("doctor_code", "MA_BAC_SI"),
)
FOLLOW_UP_COLUMNS: FieldColumns = (
    ("slip_no", "SO_GIAYHEN_KL"),
    ("appointment_at", "NGAY_HEN_KL"),
    ("doctor_code", "MA_BAC_SI"),
    ("issued_on", "NGAY_CT"),
)
TB_EPISODE_COLUMNS: FieldColumns = (
    ("site_class", "PHANLOAI_LAO_VITRI"),
    ("history_class", "PHANLOAI_LAO_TS"),
    ("hiv_class", "PHANLOAI_LAO_HIV"),
    ("bacteriology_class", "PHANLOAI_LAO_VK"),
    ("resistance_class", "PHANLOAI_LAO_KT"),
    ("treatment_type", "LOAI_DTRI_LAO"),
    ("started_on", "NGAYBD_DTRI_LAO"),
    ("regimen", "PHACDO_DTRI_LAO"),
    ("ended_on", "NGAYKT_DTRI_LAO"),
    ("outcome", "KET_QUA_DTRI_LAO"),
    ("hiv_confirmed_on", "NGAYKD_HIV"),
    ("arv_started_on", "BDDT_ARV"),
    ("ctx_started_on", "NGAY_BAT_DAU_DT_CTX"),
)

discharge_papers = sa.Table(
    "discharge_papers",
    metadata,
    _id(),
    _visit_fk(),
    _line_no(),
    _department_fk(),  # the department that closed the record, mapped to MA_KHOA_RV
    *_columns("discharge_papers", DISCHARGE_PAPER_COLUMNS),
)
record_summaries = sa.Table(
    "record_summaries",
    metadata,
    _id(),
    _visit_fk(unique=True),
    *_columns("record_summary", RECORD_SUMMARY_COLUMNS),
)
referrals = sa.Table(
    "referrals", metadata, _id(), _visit_fk(unique=True), *_columns("referral", REFERRAL_COLUMNS)
)
follow_ups = sa.Table(
    "follow_ups", metadata, _id(), _visit_fk(unique=True), *_columns("follow_up", FOLLOW_UP_COLUMNS)
)
tb_episodes = sa.Table(
    "tb_episodes",
    metadata,
    _id(),
    _visit_fk(),
    _line_no(),
    *_columns("tb_treatments", TB_EPISODE_COLUMNS),
)

#: Section → (table, stored columns) for the sections kept one table each.
SECTION_TABLES: dict[str, tuple[sa.Table, FieldColumns]] = {
    "drug_lines": (prescriptions, PRESCRIPTION_COLUMNS),
    "service_lines": (service_orders, SERVICE_ORDER_COLUMNS),
    "cls_results": (lab_results, LAB_RESULT_COLUMNS),
    "clinical_notes": (clinical_notes, CLINICAL_NOTE_COLUMNS),
    "discharge_papers": (discharge_papers, DISCHARGE_PAPER_COLUMNS),
    "record_summary": (record_summaries, RECORD_SUMMARY_COLUMNS),
    "referral": (referrals, REFERRAL_COLUMNS),
    "follow_up": (follow_ups, FOLLOW_UP_COLUMNS),
    "tb_treatments": (tb_episodes, TB_EPISODE_COLUMNS),
}

#: Insert order (parents first); delete in reverse.
ALL_TABLES: Sequence[sa.Table] = metadata.sorted_tables


def create_schema(engine: sa.Engine) -> None:
    """Create the reference HIS tables that do not exist yet."""
    metadata.create_all(engine)
