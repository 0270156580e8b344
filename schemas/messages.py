"""The rule catalogue: for each kind of finding its severity, its Vietnamese and English text and a fix hint.

A rule id is ``<table>.<field>.<kind>`` (``XML1.SO_CCCD.format``) or ``<table>.<kind>`` for table-level
findings (``XML5.missing_for_visit_type``). Texts take only names, sizes and list names as parameters —
never the value that failed, which may be health data.
"""

from __future__ import annotations

from dataclasses import dataclass

from schemas.issues import Issue, Severity

E, W = Severity.ERROR, Severity.WARNING


@dataclass(frozen=True, slots=True)
class RuleText:
    severity: Severity
    vi: str
    en: str
    hint: str


CATALOGUE: dict[str, RuleText] = {
    # Table selection (DOMAIN.md §5, §13)
    "missing_for_visit_type": RuleText(E, "Loại KCB (MA_LOAI_KCB) này bắt buộc có bảng {table} nhưng HIS không cung cấp dữ liệu.", "This visit type (MA_LOAI_KCB) requires table {table} but the HIS provided none.", "Provide the {table} section for this visit, or correct MA_LOAI_KCB."),
    "not_for_visit_type": RuleText(W, "Bảng {table} không áp dụng cho loại KCB này nên không được gửi.", "Table {table} does not apply to this visit type and is not sent.", "Check MA_LOAI_KCB; enable xml8_for_every_visit if XML8 should go with every visit."),
    "missing_for_discharge_type": RuleText(E, "Loại ra viện chuyển tuyến (MA_LOAI_RV 2 hoặc 5) cần giấy chuyển tuyến (XML13) nhưng HIS không cung cấp.", "A referral discharge (MA_LOAI_RV 2 or 5) needs the referral paper (XML13) but the HIS provided none.", "Provide the referral section, or correct MA_LOAI_RV."),
    "not_for_discharge_type": RuleText(W, "Có giấy chuyển tuyến nhưng MA_LOAI_RV không phải 2 hoặc 5 nên XML13 không được gửi.", "A referral paper exists but MA_LOAI_RV is not 2 or 5, so XML13 is not sent.", "Check MA_LOAI_RV."),
    "not_for_non_bhyt": RuleText(W, "Người bệnh không dùng BHYT: bảng {table} không nằm trong danh sách bảng gửi nên không được gửi.", "Patient not using BHYT: table {table} is not among the tables sent for such visits and is left out.", "Adjust payload.non_bhyt_tables if this table should be sent (XML13 never is)."),
    "several_papers": RuleText(E, "Có nhiều giấy ra viện (sinh nhiều con); cách đóng gói nhiều XML7 chưa được BHXH xác nhận.", "Several discharge papers (multiple births); how to package several XML7 is not confirmed by BHXH.", "Send one discharge paper per visit until the packaging is confirmed on the training gateway (DOMAIN.md §15 row 14)."),
    "hiv_filtered": RuleText(W, "Theo chính sách bảo mật HIV, bảng XML6 không được gửi.", "Under the HIV confidentiality policy, table XML6 is not sent.", "See payload.hiv_filter (DOMAIN.md §13)."),
    "treated_as_non_bhyt": RuleText(W, "Không có thẻ BHYT: hồ sơ được gửi như người bệnh không dùng BHYT (MA_DOITUONG_KCB = 9).", "No BHYT card: the visit is sent as not using BHYT (MA_DOITUONG_KCB = 9).", "Record the BHYT card number if the patient used one."),
    # Values
    "required": RuleText(E, "Trường {field} bắt buộc nhưng đang trống.", "Field {field} is required but empty.", "Fill {field} in the HIS."),
    "required_if": RuleText(E, "Trường {field} bắt buộc khi {condition_vi}.", "Field {field} is required when {condition_en}.", "Fill {field}, or correct the fields it depends on."),
    "max_length": RuleText(E, "Trường {field} dài quá {max} ký tự.", "Field {field} is longer than {max} characters.", "Shorten {field} in the HIS to at most {max} characters."),
    "invalid_char": RuleText(E, "Trường {field} chứa ký tự không hợp lệ trong XML 1.0 ({detail}).", "Field {field} contains a character XML 1.0 cannot carry ({detail}).", "Remove the control character from {field} in the HIS."),
    "control_char": RuleText(E, "Trường {field} chứa ký tự điều khiển ({detail}).", "Field {field} contains a control character ({detail}).", "Remove the control character from {field} in the HIS; it usually comes from a wrong text encoding."),
    "not_finite": RuleText(E, "Trường {field} không phải là số hữu hạn.", "Field {field} is not a finite number.", "Store a plain decimal amount in {field}."),
    "not_integer": RuleText(E, "Trường {field} phải là số nguyên.", "Field {field} must be a whole number.", "Store an integer in {field}."),
    "unsupported_type": RuleText(E, "Trường {field} có kiểu dữ liệu không hỗ trợ ({detail}).", "Field {field} has an unsupported value type ({detail}).", "Fix the HIS adapter that produced {field}."),
    "rounded": RuleText(W, "Trường {field} có hơn {detail} chữ số thập phân; đã làm tròn nửa lên.", "Field {field} had more than {detail} decimals; rounded half-up.", "Round {field} in the HIS (DOMAIN.md §7) so totals are built from the rounded values."),
    "format": RuleText(E, "Trường {field} sai định dạng: cần {expected_vi}.", "Field {field} has the wrong format: expected {expected_en}.", "Correct {field} in the HIS."),
    "code": RuleText(E, "Giá trị của {field} không có trong danh mục {code_list} hiệu lực tại ngày kết thúc đợt KCB.", "The value of {field} is not in code list {code_list} valid at the visit end date.", "Use a code of {code_list} valid at the visit end date."),
    "count": RuleText(E, "Trường {field} có quá {max} mã.", "Field {field} has more than {max} codes.", "Keep at most {max} codes in {field}, separated by ';'."),
    "range": RuleText(E, "Trường {field} ngoài khoảng cho phép ({expected_vi}).", "Field {field} is out of range ({expected_en}).", "Correct {field} in the HIS."),
    # Dates (DOMAIN.md §7)
    "order": RuleText(E, "{field} phải không sớm hơn {other}.", "{field} must not be earlier than {other}.", "Correct the times of {field} and {other} in the HIS."),
    "after_discharge": RuleText(W, "{field} muộn hơn thời điểm ra viện (NGAY_RA).", "{field} is later than the discharge time (NGAY_RA).", "Check the result time; results available later are entered on the BHXH portal."),
    "late_result": RuleText(W, "{field} muộn hơn 7 ngày sau ra viện: kết quả này nhập trực tiếp trên cổng BHXH.", "{field} is more than 7 days after discharge: such results are entered on the BHXH portal.", "Enter the late result on the BHXH portal (DOMAIN.md §7)."),
    "newborn_time": RuleText(E, "Trẻ sơ sinh (≤ 28 ngày tuổi) phải ghi đủ giờ và phút sinh trong {field}.", "A newborn (≤ 28 days old) needs the full birth time (hour and minute) in {field}.", "Record the birth hour and minute in the HIS."),
    "after_visit": RuleText(E, "{field} muộn hơn thời điểm vào viện.", "{field} is later than the admission time.", "Correct {field} in the HIS."),
    "days": RuleText(E, "SO_NGAY_DTRI không khớp quy tắc theo MA_LOAI_KCB.", "SO_NGAY_DTRI does not follow the rule for this MA_LOAI_KCB.", "01/07/09 → 0; 02/03/04/06 → NGAY_RA − NGAY_VAO + 1 days (DOMAIN.md §7)."),
    # Money (DOMAIN.md §7)
    "formula": RuleText(E, "{field} không bằng {formula}.", "{field} does not equal {formula}.", "Recompute {field} from the rounded line values (ROUND_HALF_UP)."),
    "total": RuleText(E, "Tổng {field} ở XML1 không bằng {formula}.", "XML1 total {field} does not equal {formula}.", "Build the XML1 totals from the rounded line values (DOMAIN.md §7)."),
    "total_unsure": RuleText(W, "Tổng {field} ở XML1 không bằng {formula} (cách phân loại chưa chắc chắn).", "XML1 total {field} does not equal {formula} (classification not certain).", "Check which XML3 lines are supplies."),
    "totals_cover_withheld_lines": RuleText(W, "Một số dòng chi phí không được gửi (chính sách HIV hoặc danh sách bảng cho người không dùng BHYT); tổng ở XML1 vẫn tính cho cả đợt KCB.", "Some cost lines are not sent (HIV policy or the non-BHYT table list); the XML1 totals still cover the whole visit.", "Expected under payload.hiv_filter / payload.non_bhyt_tables; review them if BHXH rejects the file."),
    "non_bhyt_zero": RuleText(E, "Người bệnh không dùng BHYT: {field} phải bằng 0.", "Patient not using BHYT: {field} must be 0.", "Put the whole cost in T_BNTT (DOMAIN.md §5)."),
    # Identity and keys
    "facility": RuleText(E, "MA_CSKCB khác mã cơ sở gửi hồ sơ (MACSKCB).", "MA_CSKCB differs from the sending facility code (MACSKCB).", "Check payload.facility_code and the facility code in the HIS."),
    "consistent": RuleText(E, "MA_LK của bảng {table} khác MA_LK của XML1.", "MA_LK of table {table} differs from the MA_LK of XML1.", "Every table of a visit carries the same MA_LK."),
    "personal_data": RuleText(E, "MA_LK chứa số định danh của người bệnh.", "MA_LK contains a personal identity number.", "Derive MA_LK from the HIS encounter id, never from CCCD or card numbers (DOMAIN.md §7)."),
    "exactly_one": RuleText(E, "Chi phí đầu tiên phải xác định bằng đúng một trong MA_DICH_VU, MA_THUOC, MA_VAT_TU.", "The first cost must be identified by exactly one of MA_DICH_VU, MA_THUOC, MA_VAT_TU.", "Send the first cost of the visit only (DOMAIN.md §6)."),
    "line_item": RuleText(E, "Dòng phải có dịch vụ (MA_DICH_VU + TEN_DICH_VU) và/hoặc vật tư (MA_VAT_TU + TEN_VAT_TU).", "A line needs a service (MA_DICH_VU + TEN_DICH_VU) and/or a supply (MA_VAT_TU + TEN_VAT_TU).", "Fill the service or supply code and name of this line."),
    "all_or_none": RuleText(E, "{field} đi cùng {other}: ghi đủ cả nhóm hoặc để trống cả nhóm.", "{field} goes with {other}: fill all of them or none.", "Complete or clear the group."),
    # XML syntax and schema
    "xsd": RuleText(E, "Trường {field} không đúng lược đồ XSD ({reason_vi}).", "Field {field} does not match the XSD ({reason_en}).", "Correct {field} in the HIS."),
    "xsd_structure": RuleText(E, "Tài liệu {table} không đúng cấu trúc XSD ({reason_vi}).", "Document {table} does not match the XSD structure ({reason_en}).", "Regenerate the document with the payload builder."),
    "parse": RuleText(E, "Tài liệu {table} không phải XML hợp lệ.", "Document {table} is not well-formed XML.", "Check the file encoding (UTF-8) and content."),
    "base64": RuleText(E, "NOIDUNGFILE của {table} không phải base64 hợp lệ.", "NOIDUNGFILE of {table} is not valid base64.", "Encode the inner document bytes as base64."),
    "unknown_table": RuleText(E, "LOAIHOSO không hợp lệ.", "LOAIHOSO is not a known table.", "Use XML1 … XML11, XML13, XML14, XML15."),
    "duplicate_table": RuleText(E, "Bảng {table} xuất hiện nhiều lần trong hồ sơ.", "Table {table} appears more than once.", "Send each table once per visit."),
    "table_order": RuleText(E, "Các FILEHOSO không theo thứ tự bảng tăng dần.", "FILEHOSO elements are not in ascending table order.", "Order FILEHOSO by table number (DOMAIN.md §3.2)."),
    "hoso_count": RuleText(E, "SOLUONGHOSO không bằng số HOSO.", "SOLUONGHOSO does not equal the number of HOSO elements.", "One visit per file: SOLUONGHOSO = 1 (DOMAIN.md §3.2)."),
    "missing_xml1": RuleText(E, "Hồ sơ không có bảng XML1.", "The envelope has no XML1 table.", "XML1 is always sent."),
    "root": RuleText(E, "Phần tử gốc không đúng cho bảng {table}.", "Wrong root element for table {table}.", "Check the LOAIHOSO of this file."),
}  # fmt: skip


def issue(table: str, row: int | None, field: str | None, kind: str, **params: object) -> Issue:
    """An :class:`Issue` of catalogue entry ``kind``; ``severity`` in ``params`` overrides the default."""
    text = CATALOGUE[kind]
    severity = params.pop("severity", text.severity)
    assert isinstance(severity, Severity)
    values = {"table": table, "field": field or "", **params}
    rule = f"{table}.{field}.{kind}" if field else f"{table}.{kind}"
    return Issue(
        table=table,
        row=row,
        field=field,
        rule=rule,
        severity=severity,
        message_vi=text.vi.format(**values),
        message_en=text.en.format(**values),
        hint=text.hint.format(**values),
    )
