"""Synthetic but realistic Vietnamese encounters, for the demo HIS, tests and benchmarks.

Every person here is invented: names are drawn from common family/middle/given names, identity numbers are
random digits in the official shapes (12-digit CCCD, 15-character BHYT card). Money follows DOMAIN.md §7 so
that a generated encounter satisfies the totals identities unless a defect is asked for.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from enum import StrEnum

from schemas.domain.encounter import NON_INSURED_CATEGORY, Encounter, derive_ma_lk
from schemas.domain.records import (
    ClinicalNote,
    ClsResult,
    DischargePaper,
    DrugLine,
    FirstCost,
    FollowUp,
    Patient,
    RecordSummary,
    Referral,
    ServiceLine,
    TbTreatment,
    Visit,
)
from schemas.domain.values import VIETNAM_TZ, BirthDate

FAMILY_NAMES = (
    "Nguyễn",
    "Trần",
    "Lê",
    "Phạm",
    "Hoàng",
    "Huỳnh",
    "Phan",
    "Vũ",
    "Võ",
    "Đặng",
    "Bùi",
    "Đỗ",
    "Hồ",
)
MIDDLE_NAMES = ("Văn", "Thị", "Hữu", "Minh", "Ngọc", "Thanh", "Đức", "Thu", "Quang", "Xuân", "Bảo")
GIVEN_NAMES = (
    "An",
    "Bình",
    "Chi",
    "Dũng",
    "Giang",
    "Hà",
    "Hải",
    "Hạnh",
    "Hiếu",
    "Hoa",
    "Hùng",
    "Khánh",
    "Lan",
    "Linh",
    "Long",
    "Mai",
    "Nam",
    "Nga",
    "Phúc",
    "Phương",
    "Quân",
    "Sơn",
    "Tâm",
    "Thảo",
    "Trang",
    "Trung",
    "Tuấn",
    "Yến",
)
STREETS = ("Lê Lợi", "Trần Hưng Đạo", "Nguyễn Huệ", "Hai Bà Trưng", "Lý Thường Kiệt", "Điện Biên Phủ")
WARDS = ("Phường Bến Nghé", "Phường Sài Gòn", "Xã Bình Chánh", "Phường Tân Định", "Xã Cần Giờ")
#: (ICD-10 code, diagnosis text)
DIAGNOSES = (
    ("J06.9", "Nhiễm trùng đường hô hấp trên cấp"),
    ("I10", "Tăng huyết áp vô căn (nguyên phát)"),
    ("E11.9", "Đái tháo đường type 2 không biến chứng"),
    ("K29.7", "Viêm dạ dày, không đặc hiệu"),
    ("M54.5", "Đau thắt lưng"),
    ("J18.9", "Viêm phổi, không đặc hiệu"),
    ("A09", "Tiêu chảy và viêm dạ dày ruột nhiễm trùng"),
    ("N39.0", "Nhiễm khuẩn đường tiết niệu"),
    ("S52.5", "Gãy đầu dưới xương quay"),
    ("K35.8", "Viêm ruột thừa cấp khác"),
)
TB_DIAGNOSIS = ("A15.0", "Lao phổi, có xác nhận bằng soi đờm")
#: (code, name, unit, strength, route code, unit price VND); DUONG_DUNG is a code of at most 4 characters
#: (invented in the shape of the MoH route codes), not the route's name.
DRUGS = (
    ("40.152", "Paracetamol 500mg", "Viên", "500mg", "1.01", Decimal("450.000")),
    ("40.16", "Amoxicilin 500mg", "Viên", "500mg", "1.01", Decimal("1200.000")),
    ("40.488", "Omeprazol 20mg", "Viên", "20mg", "1.01", Decimal("850.000")),
    ("40.531", "Metformin 850mg", "Viên", "850mg", "1.01", Decimal("690.000")),
    ("40.435", "Amlodipin 5mg", "Viên", "5mg", "1.01", Decimal("530.000")),
    ("40.1014", "Natri clorid 0,9% 500ml", "Chai", "0,9%", "2.15", Decimal("9800.000")),
    ("40.89", "Ceftriaxon 1g", "Lọ", "1g", "2.10", Decimal("23500.000")),
)
#: (code, name, group MA_NHOM, unit price VND): examination, lab, imaging, bed day
SERVICES = (
    ("02.1896", "Khám Nội", 13, Decimal("38700.000")),
    ("23.0020.1494", "Định lượng Glucose [Máu]", 1, Decimal("21500.000")),
    ("22.0120.1370", "Tổng phân tích tế bào máu ngoại vi", 1, Decimal("46200.000")),
    ("18.0119.0028", "Chụp X-quang ngực thẳng", 2, Decimal("65400.000")),
    ("K03.1919", "Ngày giường bệnh Nội khoa loại 1", 15, Decimal("199100.000")),
)
CLS_INDEXES = (
    ("23.0020.1494", "GLU", "Glucose", "mmol/L", ("5.2", "6.8", "11.4")),
    ("22.0120.1370", "WBC", "Số lượng bạch cầu", "G/L", ("6.5", "12.3", "8.1")),
)
DEPARTMENTS = ("K03", "K19", "K26", "K48", "K02")
DOCTORS = ("000123/HCM-CCHN", "004567/HCM-CCHN", "010987/BYT-CCHN")


class Kind(StrEnum):
    """The shapes of visit the demo and the tests exercise."""

    OUTPATIENT_EXAM = "outpatient_exam"
    OUTPATIENT_TREATMENT = "outpatient_treatment"
    INPATIENT_REFERRAL = "inpatient_referral"
    DAY_PATIENT = "day_patient"
    NON_INSURED = "non_insured"
    NEWBORN = "newborn"
    TB_FOLLOW_UP = "tb_follow_up"


class Defect(StrEnum):
    """Deliberate errors a validator must catch (the demo's "bad records")."""

    BAD_CCCD = "bad_cccd"
    TOTALS_MISMATCH = "totals_mismatch"
    DISCHARGE_BEFORE_ADMISSION = "discharge_before_admission"
    UNKNOWN_VISIT_TYPE = "unknown_visit_type"
    BAD_ICD = "bad_icd"
    NEWBORN_WITHOUT_BIRTH_TIME = "newborn_without_birth_time"


def money(value: Decimal) -> Decimal:
    return value.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def person_name(rng: random.Random) -> str:
    return f"{rng.choice(FAMILY_NAMES)} {rng.choice(MIDDLE_NAMES)} {rng.choice(GIVEN_NAMES)}"


def cccd(rng: random.Random, birth_year: int) -> str:
    """12 digits: province (3), century+sex (1), year (2), serial (6) — the official shape."""
    province = rng.choice(("001", "079", "048", "031", "092"))
    century_sex = rng.choice(("0", "1")) if birth_year < 2000 else rng.choice(("2", "3"))
    return f"{province}{century_sex}{birth_year % 100:02d}{rng.randrange(10**6):06d}"


def bhyt_card(rng: random.Random) -> str:
    """15 characters: 2-letter group, benefit level digit, 2-digit province, 10-digit BHXH number."""
    return f"{rng.choice(('DN', 'HT', 'GD', 'TE', 'HN', 'CN'))}{rng.choice('1234')}79{rng.randrange(10**10):010d}"


@dataclass(frozen=True, slots=True)
class _Frame:
    """What every part of one encounter is drawn against: who, when, where and which shape of visit."""

    his_key: str
    kind: Kind
    facility_code: str
    start: datetime
    end: datetime
    department: str
    loai_kcb: str  # MA_LOAI_KCB
    days: int
    insured: bool

    @property
    def inpatient(self) -> bool:
        return self.loai_kcb in ("03", "04")

    @property
    def referral(self) -> bool:
        return self.kind is Kind.INPATIENT_REFERRAL


# The steps below draw from ``rng`` in a fixed order (the order of the calls in ``make_encounter``, then the
# order of the arguments inside each step): the same seed must give the same encounters, byte for byte, as the
# golden files and the seeded demo HIS expect. Reorder nothing that draws.


def _visit_shape(rng: random.Random, kind: Kind) -> tuple[str, int]:
    """MA_LOAI_KCB and the length of stay in days."""
    # The inpatient length is drawn for every kind (it always was): skipping it would shift the random stream.
    referral_days = rng.randint(3, 7)
    return {
        Kind.OUTPATIENT_EXAM: ("01", 1),
        Kind.OUTPATIENT_TREATMENT: ("02", 5),
        Kind.INPATIENT_REFERRAL: ("03", referral_days),
        Kind.DAY_PATIENT: ("04", 2),
        Kind.NON_INSURED: ("01", 1),
        Kind.NEWBORN: ("03", 3),
        Kind.TB_FOLLOW_UP: ("01", 1),
    }[kind]


def _frame(
    rng: random.Random, his_key: str, kind: Kind, start: datetime | None, facility_code: str
) -> _Frame:
    start = start or datetime(2026, 3, 4, 8, 15, tzinfo=VIETNAM_TZ)
    department = rng.choice(DEPARTMENTS)
    loai_kcb, days = _visit_shape(rng, kind)
    end = start + (timedelta(days=days - 1, hours=6) if days > 1 else timedelta(hours=2, minutes=10))
    return _Frame(
        his_key, kind, facility_code, start, end, department, loai_kcb, days, kind is not Kind.NON_INSURED
    )


def _birth(rng: random.Random, frame: _Frame) -> BirthDate:
    if frame.kind is Kind.NEWBORN:
        born = frame.start - timedelta(days=2)
        return BirthDate(born.year, born.month, born.day, 4, 35)  # a newborn needs the full birth time (§7)
    year = rng.randint(1940, 2020)
    return BirthDate(year, rng.randint(1, 12), rng.randint(1, 28))


def _diagnoses(rng: random.Random, kind: Kind) -> tuple[tuple[str, str], list[str]]:
    """The main diagnosis (ICD-10 code, text) and the secondary codes."""
    diagnosis = TB_DIAGNOSIS if kind is Kind.TB_FOLLOW_UP else rng.choice(DIAGNOSES)
    secondary = rng.sample([code for code, _ in DIAGNOSES if code != diagnosis[0]], rng.randint(0, 2))
    return diagnosis, secondary


def _drug_lines(rng: random.Random, frame: _Frame, rate: int, muc_huong: int) -> tuple[DrugLine, ...]:
    drugs = []
    for _ in range(rng.randint(1, 4)):
        code, name, unit, strength, route, price = rng.choice(DRUGS)
        quantity = Decimal(rng.choice((5, 10, 14, 20, 28, 30)))
        bv = money(quantity * price)
        bh = money(quantity * price * rate / 100)
        bhtt = money(bh * muc_huong / 100)
        drugs.append(
            DrugLine(
                ma_thuoc=code,
                ten_thuoc=name,
                don_vi_tinh=unit,
                ham_luong=strength,
                duong_dung=route,
                ma_nhom=4,
                lieu_dung="1 viên/lần x 2 lần/ngày",
                cach_dung="Sau ăn",
                so_dang_ky="VD-12345-10",
                tt_thau="G1;N1;2025;KQ01",
                pham_vi=1,
                tyle_tt_bh=rate,
                so_luong=quantity,
                don_gia=price,
                thanh_tien_bv=bv,
                thanh_tien_bh=bh,
                t_nguonkhac_nsnn=Decimal("0.00"),
                t_nguonkhac_vtnn=Decimal("0.00"),
                t_nguonkhac_vttn=Decimal("0.00"),
                t_nguonkhac_cl=Decimal("0.00"),
                t_nguonkhac=Decimal("0.00"),
                muc_huong=muc_huong,
                t_bntt=bv - bh,
                t_bncct=bh - bhtt,
                t_bhtt=bhtt,
                ma_khoa=frame.department,
                ma_bac_si=rng.choice(DOCTORS),
                ngay_yl=frame.start + timedelta(minutes=30),
                ngay_th_yl=frame.start + timedelta(minutes=45),
                ma_pttt=1,
                nguon_ctra=1,
            )
        )
    return tuple(drugs)


def _service_lines(rng: random.Random, frame: _Frame, rate: int, muc_huong: int) -> tuple[ServiceLine, ...]:
    services = []
    chosen = [SERVICES[0], *rng.sample(SERVICES[1:4], rng.randint(0, 2))]
    if frame.days > 1:
        chosen.append(SERVICES[4])
    for code, name, group, price in chosen:
        quantity = Decimal(frame.days if group == 15 else 1)
        bv = money(quantity * price)
        bh = money(quantity * price * rate / 100)
        bhtt = money(bh * muc_huong / 100)
        services.append(
            ServiceLine(
                ma_dich_vu=code,
                ten_dich_vu=name,
                ma_nhom=group,
                don_vi_tinh="Lần",
                pham_vi=1,
                so_luong=quantity,
                don_gia_bv=price,
                don_gia_bh=price if frame.insured else Decimal("0.000"),
                tyle_tt_dv=100,
                tyle_tt_bh=rate,
                thanh_tien_bv=bv,
                thanh_tien_bh=bh,
                muc_huong=muc_huong,
                t_nguonkhac_nsnn=Decimal("0.00"),
                t_nguonkhac_vtnn=Decimal("0.00"),
                t_nguonkhac_vttn=Decimal("0.00"),
                t_nguonkhac_cl=Decimal("0.00"),
                t_nguonkhac=Decimal("0.00"),
                t_bntt=bv - bh,
                t_bncct=bh - bhtt,
                t_bhtt=bhtt,
                ma_khoa=frame.department,
                ma_bac_si=rng.choice(DOCTORS),
                nguoi_thuc_hien=rng.choice(DOCTORS) if group in (1, 2) else None,
                ngay_yl=frame.start + timedelta(minutes=20),
                ngay_th_yl=frame.start + timedelta(minutes=40) if group in (1, 2) else None,
                ngay_kq=frame.start + timedelta(hours=2) if group in (1, 2) else None,
                ma_pttt=1,
            )
        )
    return tuple(services)


def _lines(rng: random.Random, frame: _Frame) -> tuple[tuple[DrugLine, ...], tuple[ServiceLine, ...]]:
    """The cost lines (XML2 drugs, XML3 services), priced per DOMAIN.md §7 at one coverage level."""
    rate = 100 if frame.insured else 0
    muc_huong = rng.choice((80, 95, 100)) if frame.insured else 0
    drugs = _drug_lines(rng, frame, rate, muc_huong)
    return drugs, _service_lines(rng, frame, rate, muc_huong)


def _patient(rng: random.Random, frame: _Frame, birth: BirthDate) -> Patient:
    insured = frame.insured
    return Patient(
        ma_bn=f"BN{frame.his_key}",
        ho_ten=person_name(rng),
        so_cccd=cccd(rng, birth.year) if frame.kind is not Kind.NEWBORN else None,
        ngay_sinh=birth,
        gioi_tinh=rng.choice((1, 2)),
        ma_quoctich="000",
        ma_dantoc="01",
        ma_nghe_nghiep="00000",
        dia_chi=f"{rng.randint(1, 300)} {rng.choice(STREETS)}, {rng.choice(WARDS)}, TP. Hồ Chí Minh",
        matinh_cu_tru="79",
        maxa_cu_tru=f"{rng.randint(26000, 27999)}",
        dien_thoai=f"09{rng.randrange(10**8):08d}",
        ma_the_bhyt=bhyt_card(rng) if insured else None,
        ma_dkbd=frame.facility_code if insured else None,
        gt_the_tu="20260101" if insured else None,
        gt_the_den="20261231" if insured else None,
        ma_khuvuc=None,
    )


def _visit(
    frame: _Frame,
    birth: BirthDate,
    diagnoses: tuple[tuple[str, str], list[str]],
    drugs: tuple[DrugLine, ...],
    services: tuple[ServiceLine, ...],
) -> Visit:
    """The XML1 summary: dates, diagnoses and the totals of the lines (they add up unless a defect says not)."""
    (main_code, main_text), secondary = diagnoses
    start, end, insured, referral = frame.start, frame.end, frame.insured, frame.referral
    all_lines: tuple[DrugLine | ServiceLine, ...] = (*drugs, *services)
    bv_total = sum((line.thanh_tien_bv or Decimal(0) for line in all_lines), Decimal("0.00"))
    bh_total = sum((line.thanh_tien_bh or Decimal(0) for line in all_lines), Decimal("0.00"))
    bncct = sum((line.t_bncct or Decimal(0) for line in all_lines), Decimal("0.00"))
    bntt = sum((line.t_bntt or Decimal(0) for line in all_lines), Decimal("0.00"))
    return Visit(
        ly_do_vv="Đau, sốt",
        ly_do_vnt="Điều trị nội trú" if frame.inpatient else None,
        chan_doan_vao=main_text,
        chan_doan_rv=main_text,
        ma_benh_chinh=main_code,
        ma_benh_kt=";".join(secondary) or None,
        ma_doituong_kcb="1.1" if insured else NON_INSURED_CATEGORY,
        ma_noi_den="79001" if referral else None,
        ngay_vao=start,
        ngay_vao_noi_tru=start + timedelta(hours=1) if frame.inpatient else None,
        ngay_ra=end,
        giay_chuyen_tuyen=f"CT{frame.his_key}" if referral else None,
        so_ngay_dtri=frame.days if frame.loai_kcb != "01" else 0,
        pp_dieu_tri="Điều trị nội khoa",
        ket_qua_dtri=2 if referral else 1,
        ma_loai_rv=2 if referral else 1,
        ngay_ttoan=end + timedelta(minutes=20),
        t_thuoc=sum((d.thanh_tien_bv or Decimal(0) for d in drugs), Decimal("0.00")),
        t_vtyt=Decimal("0.00"),
        t_tongchi_bv=bv_total,
        t_tongchi_bh=bh_total,
        t_bntt=bntt,
        t_bncct=bncct,
        t_bhtt=bh_total - bncct,
        t_nguonkhac=Decimal("0.00"),
        t_bhtt_gdv=Decimal("0.00"),
        nam_qt=end.year,
        thang_qt=end.month,
        ma_loai_kcb=frame.loai_kcb,
        ma_khoa=frame.department,
        ma_cskcb=frame.facility_code,
        # CAN_NANG is required for every visit (S2); derived, not drawn, so the random stream is unchanged.
        can_nang="3.20" if frame.kind is Kind.NEWBORN else f"{45 + birth.year % 30}.50",
        ma_hsba=f"HS{frame.his_key}",
        ma_ttdv="7912345678",
        ngay_tai_kham=(end + timedelta(days=14)).strftime("%Y%m%d")
        if frame.kind is Kind.OUTPATIENT_TREATMENT
        else None,
    )


def _cls_results(
    rng: random.Random, frame: _Frame, services: tuple[ServiceLine, ...]
) -> tuple[ClsResult, ...]:
    """XML4: one result per index of each lab service the visit ordered."""
    return tuple(
        ClsResult(
            ma_dich_vu=code,
            ma_chi_so=index,
            ten_chi_so=name,
            gia_tri=rng.choice(values),
            don_vi_do=unit,
            ket_luan="Bình thường",
            ngay_kq=frame.start + timedelta(hours=2),
            ma_bs_doc_kq=rng.choice(DOCTORS),
        )
        for code, index, name, unit, values in CLS_INDEXES
        if any(line.ma_dich_vu == code for line in services)
    )


def _clinical_notes(rng: random.Random, frame: _Frame) -> tuple[ClinicalNote, ...]:
    """XML5: a progress note a day (at most three) for the visit types that keep them."""
    if frame.loai_kcb not in ("02", "03", "04", "05", "06", "08", "09"):
        return ()
    return tuple(
        ClinicalNote(
            dien_bien_ls=f"Ngày {day + 1}: bệnh nhân tỉnh, sinh hiệu ổn định",
            giai_doan_benh="Ổn định",
            thoi_diem_dbls=frame.start + timedelta(days=day, hours=1),
            nguoi_thuc_hien=rng.choice(DOCTORS),
        )
        for day in range(min(frame.days, 3))
    )


def _discharge_papers(rng: random.Random, frame: _Frame) -> tuple[DischargePaper, ...]:
    if not frame.inpatient:
        return ()
    return (
        DischargePaper(
            so_luu_tru=f"LT{frame.his_key}",
            ma_yte=f"YT{frame.his_key}",
            ma_khoa_rv=frame.department,
            pp_dieutri="Điều trị nội khoa",
            ma_bs=rng.choice(DOCTORS),
            ten_bs=person_name(rng),
            ngay_ct=frame.end.date(),
        ),
    )


def _record_summary(frame: _Frame) -> RecordSummary | None:
    if frame.insured and not frame.inpatient:
        return None
    return RecordSummary(
        qt_benhly="Khởi phát 3 ngày trước nhập viện",
        tomtat_kq="Xét nghiệm trong giới hạn",
        pp_dieutri="Điều trị nội khoa",
        ngay_ct=frame.end.date(),
    )


def _referral(rng: random.Random, frame: _Frame) -> Referral | None:
    if not frame.referral:
        return None
    return Referral(
        so_hoso=f"HS{frame.his_key}",
        so_chuyentuyen=f"CT{frame.his_key}",
        dau_hieu_ls="Sốt cao, khó thở",
        qt_benhly="Điều trị 3 ngày không cải thiện",
        tomtat_kq="X-quang: tổn thương phổi phải",
        ma_lydo_ct=2,
        huong_dieu_tri="Tiếp tục điều trị tuyến trên",
        phuongtien_vc="Xe cứu thương",
        hoten_nguoi_ht=person_name(rng),
        chucdanh_nguoi_ht="Điều dưỡng",
        ma_bac_si=rng.choice(DOCTORS),
    )


def _follow_up(rng: random.Random, frame: _Frame) -> FollowUp | None:
    if frame.kind is not Kind.OUTPATIENT_TREATMENT:
        return None
    return FollowUp(
        so_giayhen_kl=f"GH{frame.his_key}",
        ngay_hen_kl=frame.end + timedelta(days=14),
        ma_bac_si=rng.choice(DOCTORS),
        ngay_ct=frame.end.date(),
    )


def _tb_treatments(frame: _Frame) -> tuple[TbTreatment, ...]:
    if frame.kind is not Kind.TB_FOLLOW_UP:
        return ()
    return (
        TbTreatment(
            phanloai_lao_vitri=1,
            phanloai_lao_ts=1,
            phanloai_lao_hiv=2,
            phanloai_lao_vk=1,
            phanloai_lao_kt=1,
            loai_dtri_lao=1,
            ngaybd_dtri_lao=(frame.start - timedelta(days=60)).date(),
            phacdo_dtri_lao=1,
        ),
    )


def make_encounter(
    rng: random.Random,
    *,
    his_key: str,
    kind: Kind = Kind.OUTPATIENT_EXAM,
    start: datetime | None = None,
    facility_code: str = "79999",
    defect: Defect | None = None,
) -> Encounter:
    """One consistent completed encounter of the given kind; with ``defect``, one deliberate error."""
    frame = _frame(rng, his_key, kind, start, facility_code)
    birth = _birth(rng, frame)
    diagnoses = _diagnoses(rng, kind)
    drugs, services = _lines(rng, frame)
    patient = _patient(rng, frame, birth)
    visit = _visit(frame, birth, diagnoses, drugs, services)
    cls_results = _cls_results(rng, frame, services)
    notes = _clinical_notes(rng, frame)
    discharge_papers = _discharge_papers(rng, frame)
    referral = _referral(rng, frame)
    follow_up = _follow_up(rng, frame)
    encounter = Encounter(
        ma_lk=derive_ma_lk(facility_code, his_key),
        his_key=his_key,
        patient=patient,
        visit=visit,
        first_cost=FirstCost(
            ma_dich_vu=SERVICES[0][0], ten_dich_vu=SERVICES[0][1], ngay_yl=frame.start + timedelta(minutes=20)
        ),
        drug_lines=drugs,
        service_lines=services,
        cls_results=cls_results,
        clinical_notes=notes,
        discharge_papers=discharge_papers,
        record_summary=_record_summary(frame),
        referral=referral,
        follow_up=follow_up,
        tb_treatments=_tb_treatments(frame),
        completed_at=frame.end,
    )
    return apply_defect(encounter, defect) if defect else encounter


def apply_defect(encounter: Encounter, defect: Defect) -> Encounter:
    visit, patient = encounter.visit, encounter.patient
    if defect is Defect.BAD_CCCD:
        patient = replace(patient, so_cccd="12345")
    elif defect is Defect.TOTALS_MISMATCH:
        visit = replace(visit, t_tongchi_bv=(visit.t_tongchi_bv or Decimal(0)) + Decimal("1000.00"))
    elif defect is Defect.DISCHARGE_BEFORE_ADMISSION:
        assert visit.ngay_vao is not None
        visit = replace(visit, ngay_ra=visit.ngay_vao - timedelta(days=1))
    elif defect is Defect.UNKNOWN_VISIT_TYPE:
        visit = replace(visit, ma_loai_kcb="77")
    elif defect is Defect.BAD_ICD:
        visit = replace(visit, ma_benh_chinh="XYZ")
    elif defect is Defect.NEWBORN_WITHOUT_BIRTH_TIME:
        end = encounter.end_date or date(2026, 1, 1)
        patient = replace(patient, ngay_sinh=BirthDate(end.year, end.month, end.day))
    return replace(encounter, patient=patient, visit=visit)


def kinds_mix(rng: random.Random) -> Kind:
    """A plausible mix of visit kinds for a general hospital day."""
    return rng.choices(list(Kind), weights=(55, 12, 8, 6, 12, 2, 5), k=1)[0]
