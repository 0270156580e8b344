"""Hand-built encounters for the golden tests: every value is written here, nothing is drawn at random, so
a golden file changes only when the payload layer (or the spec) does. All people are invented."""

from __future__ import annotations

import unicodedata
from dataclasses import replace
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

from schemas.domain import (
    BirthDate,
    ClinicalNote,
    ClsResult,
    DischargePaper,
    DrugLine,
    Encounter,
    FirstCost,
    FollowUp,
    Patient,
    RecordSummary,
    Referral,
    ServiceLine,
    TbTreatment,
    Visit,
)
from schemas.domain.values import VIETNAM_TZ

FACILITY = "79999"
CREATED = date(2026, 3, 10)
START = datetime(2026, 3, 4, 8, 15, tzinfo=VIETNAM_TZ)
DOCTOR = "000123/HCM-CCHN"
NURSE = "004567/HCM-CCHN"
DIRECTOR = "7912345678"
ZERO = Decimal("0.00")


def r2(value: Decimal) -> Decimal:
    return value.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def drug(
    code: str,
    name: str,
    quantity: str,
    price: str,
    *,
    route: str = "1.01",
    unit: str = "Viên",
    insured_rate: int = 100,
    benefit: int = 80,
    ordered: datetime = START + timedelta(minutes=30),
    hiv_restricted: bool = False,
) -> DrugLine:
    qty, unit_price = Decimal(quantity), Decimal(price)
    bv = r2(qty * unit_price)
    bh = r2(qty * unit_price * insured_rate / 100)
    fund = r2(bh * benefit / 100)
    return DrugLine(
        ma_thuoc=code,
        ten_thuoc=name,
        don_vi_tinh=unit,
        ham_luong="500mg",
        duong_dung=route,
        ma_nhom=4,
        lieu_dung="1 viên/lần x 2 lần/ngày x 5 ngày",
        cach_dung="Uống sau ăn",
        so_dang_ky="VD-12345-10",
        tt_thau="G1;N1;2025;KQ01",
        pham_vi=1,
        tyle_tt_bh=insured_rate,
        so_luong=qty,
        don_gia=unit_price,
        thanh_tien_bv=bv,
        thanh_tien_bh=bh,
        t_nguonkhac_nsnn=ZERO,
        t_nguonkhac_vtnn=ZERO,
        t_nguonkhac_vttn=ZERO,
        t_nguonkhac_cl=ZERO,
        t_nguonkhac=ZERO,
        muc_huong=benefit,
        t_bntt=bv - bh,
        t_bncct=bh - fund,
        t_bhtt=fund,
        ma_khoa="K03",
        ma_bac_si=DOCTOR,
        ngay_yl=ordered,
        ngay_th_yl=ordered + timedelta(minutes=15),
        ma_pttt=1,
        nguon_ctra=1,
        hiv_restricted=hiv_restricted,
    )


def service(
    code: str,
    name: str,
    group: int,
    quantity: str,
    price: str,
    *,
    insured: bool = True,
    benefit: int = 80,
    supply: tuple[str, str] | None = None,
    ordered: datetime = START + timedelta(minutes=20),
) -> ServiceLine:
    qty, unit_price = Decimal(quantity), Decimal(price)
    rate = 100 if insured else 0
    bv = r2(qty * unit_price * 100 / 100)
    bh = r2(qty * (unit_price if insured else ZERO) * rate / 100)
    fund = r2(bh * benefit / 100)
    performed = group in (1, 2, 3, 8, 18)
    return ServiceLine(
        ma_dich_vu=None if supply else code,
        ten_dich_vu=None if supply else name,
        ma_vat_tu=supply[0] if supply else None,
        ten_vat_tu=supply[1] if supply else None,
        ma_nhom=group,
        don_vi_tinh="Lần",
        pham_vi=1,
        so_luong=qty,
        don_gia_bv=unit_price,
        don_gia_bh=unit_price if insured else Decimal("0.000"),
        tt_thau="QD123.79999;G1;N1;2025" if group == 10 else None,
        tyle_tt_dv=100,
        tyle_tt_bh=rate,
        thanh_tien_bv=bv,
        thanh_tien_bh=bh,
        muc_huong=benefit if insured else 0,
        t_nguonkhac_nsnn=ZERO,
        t_nguonkhac_vtnn=ZERO,
        t_nguonkhac_vttn=ZERO,
        t_nguonkhac_cl=ZERO,
        t_nguonkhac=ZERO,
        t_bntt=bv - bh,
        t_bncct=bh - fund,
        t_bhtt=fund,
        ma_khoa="K03",
        ma_bac_si=DOCTOR,
        nguoi_thuc_hien=NURSE if performed else None,
        ngay_yl=ordered,
        ngay_th_yl=ordered + timedelta(minutes=20) if performed else None,
        ngay_kq=ordered + timedelta(hours=1) if group in (1, 2) else None,
        ma_pttt=1,
    )


def totals(drugs: tuple[DrugLine, ...], services: tuple[ServiceLine, ...]) -> dict[str, Decimal]:
    lines: list[DrugLine | ServiceLine] = [*drugs, *services]

    def total(
        name: str, chosen: list[DrugLine] | list[ServiceLine] | list[DrugLine | ServiceLine]
    ) -> Decimal:
        return sum((getattr(line, name) or ZERO for line in chosen), ZERO)

    bh, copay = total("thanh_tien_bh", lines), total("t_bncct", lines)
    return {
        "t_thuoc": total("thanh_tien_bv", list(drugs)),
        "t_vtyt": total("thanh_tien_bv", [line for line in services if line.ma_vat_tu]),
        "t_tongchi_bv": total("thanh_tien_bv", lines),
        "t_tongchi_bh": bh,
        "t_bntt": total("t_bntt", lines),
        "t_bncct": copay,
        "t_bhtt": bh - copay,
        "t_nguonkhac": total("t_nguonkhac", lines),
        "t_bhtt_gdv": ZERO,
    }


def patient(**changes: object) -> Patient:
    base = Patient(
        ma_bn="BN000101",
        ho_ten="Nguyễn Thị Hạnh",
        so_cccd="079185012345",
        ngay_sinh=BirthDate(1985, 6, 15),
        gioi_tinh=2,
        ma_quoctich="000",
        ma_dantoc="01",
        ma_nghe_nghiep="00000",
        dia_chi="12 Lê Lợi, Phường Sài Gòn, TP. Hồ Chí Minh",
        matinh_cu_tru="79",
        maxa_cu_tru="26734",
        dien_thoai="0901234567",
        ma_the_bhyt="DN4797912345678",
        ma_dkbd=FACILITY,
        gt_the_tu="20260101",
        gt_the_den="20261231",
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def visit(drugs: tuple[DrugLine, ...], services: tuple[ServiceLine, ...], **changes: object) -> Visit:
    end = START + timedelta(hours=2, minutes=10)
    base = Visit(
        ly_do_vv="Đau đầu, sốt nhẹ",
        chan_doan_vao="Tăng huyết áp",
        chan_doan_rv="Tăng huyết áp vô căn (nguyên phát)",
        ma_benh_chinh="I10",
        ma_benh_kt="E11.9;K29.7",
        ma_doituong_kcb="1.1",
        ngay_vao=START,
        ngay_ra=end,
        so_ngay_dtri=0,
        pp_dieu_tri="Điều trị nội khoa",
        ket_qua_dtri=1,
        ma_loai_rv=1,
        ngay_ttoan=end + timedelta(minutes=20),
        nam_qt=2026,
        thang_qt=3,
        ma_loai_kcb="01",
        ma_khoa="K03",
        ma_cskcb=FACILITY,
        can_nang="58.50",
        ma_hsba="HS000101",
        ma_ttdv=DIRECTOR,
        **totals(drugs, services),
    )
    return replace(base, **changes)  # type: ignore[arg-type]


EXAM = service("02.1896", "Khám Nội", 13, "1", "38700.000")
GLUCOSE = service("23.0020.1494", "Định lượng Glucose [Máu]", 1, "1", "21500.000")
PARACETAMOL = drug("40.152", "Paracetamol 500mg", "10", "450.000")
FIRST_COST = FirstCost(ma_dich_vu="02.1896", ten_dich_vu="Khám Nội", ngay_yl=START + timedelta(minutes=20))
GLUCOSE_RESULT = ClsResult(
    ma_dich_vu="23.0020.1494",
    ma_chi_so="GLU",
    ten_chi_so="Glucose",
    gia_tri="6.8",
    don_vi_do="mmol/L",
    ket_luan="Tăng nhẹ",
    ngay_kq=START + timedelta(hours=1, minutes=20),
    ma_bs_doc_kq=DOCTOR,
)


def outpatient_exam() -> Encounter:
    drugs, services = (PARACETAMOL,), (EXAM, GLUCOSE)
    return Encounter(
        ma_lk="79999-G0001",
        his_key="G0001",
        patient=patient(),
        visit=visit(drugs, services),
        first_cost=FIRST_COST,
        drug_lines=drugs,
        service_lines=services,
        cls_results=(GLUCOSE_RESULT,),
    )


def outpatient_treatment() -> Encounter:
    end = START + timedelta(days=4, hours=3)
    # 1.5 × 333.333 = 499.9995 → 500.00 (ROUND_HALF_UP); the HIS name arrives decomposed (NFD) → NFC.
    drugs = (
        drug("40.531", "Metformin 850mg", "28", "690.000", ordered=START + timedelta(hours=1)),
        drug("40.488", "Omeprazol 20mg", "1.5", "333.333"),
    )
    services = (EXAM,)
    return Encounter(
        ma_lk="79999-G0002",
        his_key="G0002",
        patient=patient(
            ma_bn="BN000102",
            ho_ten=unicodedata.normalize("NFD", "Trần Văn Đức"),
            gioi_tinh=1,
            so_cccd="B1234567",
            ngay_sinh=BirthDate(1962),
        ),
        visit=visit(
            drugs,
            services,
            ma_loai_kcb="02",
            ngay_ra=end,
            so_ngay_dtri=5,
            ma_benh_chinh="E11.9",
            ma_benh_kt=None,
            chan_doan_rv="Đái tháo đường type 2 không biến chứng",
            ghi_chu='Tái khám sau 2 tuần & uống thuốc đúng giờ <sáng/tối>, "kiêng" đồ ngọt 🍬',
            ngay_tai_kham="20260322",
            ngay_ttoan=None,
        ),
        first_cost=FIRST_COST,
        drug_lines=drugs,
        service_lines=services,
        clinical_notes=tuple(
            ClinicalNote(
                dien_bien_ls=f"Ngày {day + 1}: CSST<M75_T37_HA120/70_NT18>",
                thoi_diem_dbls=START + timedelta(days=day, hours=1),
                nguoi_thuc_hien=NURSE,
            )
            for day in range(2)
        ),
        follow_up=FollowUp(
            so_giayhen_kl="GH0002", ngay_hen_kl=end + timedelta(days=14), ma_bac_si=DOCTOR, ngay_ct=end.date()
        ),
    )


def _inpatient(
    ma_lk: str, loai_kcb: str, days: int, **visit_changes: object
) -> tuple[Encounter, datetime, tuple[DrugLine, ...], tuple[ServiceLine, ...]]:
    end = START + timedelta(days=days - 1, hours=6)
    drugs = (
        drug("40.1014", "Natri clorid 0,9% 500ml", "2", "9800.000", route="2.15", unit="Chai", benefit=95),
        drug("40.89", "Ceftriaxon 1g", "6", "23500.000", route="2.10", unit="Lọ", benefit=95),
    )
    services = (
        service("02.1896", "Khám Nội", 13, "1", "38700.000", benefit=95),
        service("18.0119.0028", "Chụp X-quang ngực thẳng", 2, "1", "65400.000", benefit=95),
        service("K03.1919", "Ngày giường bệnh Nội khoa loại 1", 15, str(days), "199100.000", benefit=95),
        service("", "", 10, "1", "15500.000", benefit=95, supply=("N03.01.070", "Kim luồn tĩnh mạch")),
    )
    base = Encounter(
        ma_lk=ma_lk,
        his_key=ma_lk[6:],
        patient=patient(ma_bn=f"BN{ma_lk[-4:]}"),
        visit=visit(
            drugs,
            services,
            ma_loai_kcb=loai_kcb,
            ly_do_vnt="Sốt cao, khó thở",
            ngay_vao_noi_tru=START + timedelta(hours=1),
            ngay_ra=end,
            so_ngay_dtri=days,
            chan_doan_vao="Viêm phổi",
            chan_doan_rv="Viêm phổi, không đặc hiệu",
            ma_benh_chinh="J18.9",
            ma_benh_kt=None,
            ket_qua_dtri=2,
            **visit_changes,
        ),
        first_cost=FIRST_COST,
        drug_lines=drugs,
        service_lines=services,
        clinical_notes=tuple(
            ClinicalNote(
                dien_bien_ls=f"Ngày {day + 1}: bệnh nhân tỉnh, sinh hiệu ổn định",
                giai_doan_benh="Ổn định",
                thoi_diem_dbls=START + timedelta(days=day, hours=2),
                nguoi_thuc_hien=DOCTOR,
            )
            for day in range(days)
        ),
        discharge_papers=(
            DischargePaper(
                so_luu_tru=f"LT{ma_lk[-4:]}",
                ma_yte=None,
                ma_khoa_rv="K03",
                pp_dieutri="Kháng sinh đường tĩnh mạch",
                ma_bs="7912300001",
                ten_bs="Lê Minh Tâm",
                ngay_ct=end.date(),
            ),
        ),
        record_summary=RecordSummary(
            qt_benhly="Sốt 3 ngày, ho đờm",
            tomtat_kq="X-quang: tổn thương phổi phải",
            pp_dieutri="Kháng sinh đường tĩnh mạch",
            ngay_ct=end.date(),
        ),
    )
    return base, end, drugs, services


def inpatient_referral() -> Encounter:
    encounter, _, _, _ = _inpatient(
        "79999-G0003", "03", 4, ma_loai_rv=2, ma_noi_den="79001", giay_chuyen_tuyen="CT0003"
    )
    return replace(
        encounter,
        referral=Referral(
            so_hoso="HS0003",
            so_chuyentuyen="CT0003",
            dau_hieu_ls="Sốt cao 39°C, khó thở",
            qt_benhly="Điều trị 4 ngày không cải thiện",
            tomtat_kq="X-quang: tổn thương phổi phải lan rộng",
            ma_lydo_ct=2,
            huong_dieu_tri="Tiếp tục điều trị tại tuyến chuyên sâu",
            phuongtien_vc="Xe cứu thương",
            hoten_nguoi_ht="Phạm Thu Trang",
            chucdanh_nguoi_ht="Điều dưỡng",
            ma_bac_si=DOCTOR,
        ),
    )


def day_patient() -> Encounter:
    encounter, _, _, _ = _inpatient("79999-G0004", "04", 2)
    return encounter


def non_insured() -> Encounter:
    drugs = (drug("40.16", "Amoxicilin 500mg", "14", "1200.000", insured_rate=0, benefit=0),)
    services = (
        service("02.1896", "Khám Nội", 13, "1", "38700.000", insured=False),
        service("22.0120.1370", "Tổng phân tích tế bào máu ngoại vi", 1, "1", "46200.000", insured=False),
    )
    return Encounter(
        ma_lk="79999-G0005",
        his_key="G0005",
        patient=patient(
            ma_bn="BN000105",
            ho_ten="Võ Quang Long",
            gioi_tinh=1,
            so_cccd="001090054321",
            ngay_sinh=BirthDate(1990, 2, 1),
            ma_the_bhyt=None,
            ma_dkbd=None,
            gt_the_tu=None,
            gt_the_den=None,
        ),
        visit=visit(
            drugs,
            services,
            ma_doituong_kcb="9",
            chan_doan_rv="Nhiễm trùng đường hô hấp trên cấp",
            ma_benh_chinh="J06.9",
            ma_benh_kt=None,
        ),
        first_cost=FIRST_COST,
        drug_lines=drugs,
        service_lines=services,
        record_summary=RecordSummary(
            qt_benhly="Ho, sốt 2 ngày",
            tomtat_kq="Công thức máu: bạch cầu tăng nhẹ",
            pp_dieutri="Kháng sinh đường uống",
            ngay_ct=START.date(),
        ),
    )


def newborn(*, birth_time_known: bool = True) -> Encounter:
    born = START - timedelta(days=2, hours=5)
    birth = (
        BirthDate(born.year, born.month, born.day, born.hour, born.minute)
        if birth_time_known
        else BirthDate(born.year, born.month, born.day)
    )
    encounter, _, _, _ = _inpatient("79999-G0006", "03", 3, can_nang="3.20", ma_doituong_kcb="1.7")
    return replace(
        encounter,
        patient=patient(
            ma_bn="BN000106",
            ho_ten="Con bà Nguyễn Thị Hạnh",
            so_cccd=None,
            ngay_sinh=birth,
            gioi_tinh=1,
            ma_the_bhyt="TE1797900000001",
        ),
    )


def tb_follow_up() -> Encounter:
    drugs = (drug("40.152", "Paracetamol 500mg", "10", "450.000"),)
    services = (EXAM,)
    return Encounter(
        ma_lk="79999-G0007",
        his_key="G0007",
        patient=patient(ma_bn="BN000107", ho_ten="Đỗ Xuân Sơn", gioi_tinh=1),
        visit=visit(
            drugs,
            services,
            chan_doan_rv="Lao phổi, có xác nhận bằng soi đờm",
            ma_benh_chinh="A15.0",
            ma_benh_kt=None,
        ),
        first_cost=FIRST_COST,
        drug_lines=drugs,
        service_lines=services,
        tb_treatments=(
            TbTreatment(
                phanloai_lao_vitri=1,
                phanloai_lao_ts=1,
                phanloai_lao_hiv=2,
                phanloai_lao_vk=1,
                phanloai_lao_kt=1,
                loai_dtri_lao=2,
                ngaybd_dtri_lao=date(2026, 1, 5),
                phacdo_dtri_lao=1,
            ),
        ),
    )


#: Case name → encounter that must build; every one has golden files under tests/golden/payload/<name>/.
VALID_CASES = {
    "outpatient_exam": outpatient_exam,
    "outpatient_treatment": outpatient_treatment,
    "inpatient_referral": inpatient_referral,
    "day_patient": day_patient,
    "non_insured": non_insured,
    "newborn": newborn,
    "tb_follow_up": tb_follow_up,
}
