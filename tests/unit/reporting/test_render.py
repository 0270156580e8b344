"""Coverage renderers: CSV and JSON structure, the terminal tables, and the HTML page's parts."""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from datetime import UTC, date, datetime, timedelta

import lxml.html
from rich.console import Console

from schemas.domain.values import VIETNAM_TZ
from worker.reporting import render
from worker.reporting.coverage import COLUMNS, CoverageReport, Gap, GroupBy

NOW = datetime(2026, 4, 1, 3, 0, tzinfo=UTC)


def _gap(
    ma_lk: str, completed: datetime, state: str, reason: str, *, claim: bool, target: bool = True
) -> Gap:
    return Gap(ma_lk=ma_lk, his_key=ma_lk.split("-")[1], completed_at=completed, state=state, reason=reason,
               age_hours=(NOW - completed).total_seconds() / 3600, target_breached=target, claim_breached=claim)  # fmt: skip


def report(
    group_by: GroupBy = GroupBy.DEPARTMENT, *, start: date = date(2026, 3, 1), days: int = 31
) -> CoverageReport:
    result = CoverageReport(
        start=start, end=start + timedelta(days=days), group_by=group_by, generated_at=NOW
    )
    result.buckets = {
        "K03": Counter(completed=4, accepted=3, quarantined=1),
        "K02": Counter(completed=2, accepted=1, missing=1, hidden=1),
    }
    for offset in range(days):
        result.daily[(start + timedelta(days=offset)).isoformat()] = Counter()
    result.daily[start.isoformat()].update(completed=4, accepted=3, quarantined=1)
    result.daily[(start + timedelta(days=days - 1)).isoformat()].update(completed=2, accepted=1, missing=1)
    result.gaps = [
        _gap("79999-V0000001", datetime(2026, 3, 1, 9, 5, tzinfo=VIETNAM_TZ), "quarantined",
             "validation: XML1.SO_CCCD.format", claim=True),
        _gap("79999-V0000002", datetime(2026, 3, 31, 16, 0, tzinfo=VIETNAM_TZ), "missing", "never discovered",
             claim=False),
    ]  # fmt: skip
    result.accepted_late = 2
    return result


def test_csv_has_one_row_per_bucket_a_total_then_the_gaps() -> None:
    rows = list(csv.reader(io.StringIO(render.to_csv(report()))))
    assert rows[0] == ["department", *COLUMNS, "coverage"]
    assert rows[1] == ["K02", "2", "1", "0", "0", "0", "0", "1", "1", "0.5000"]  # sorted by key
    assert rows[2] == ["K03", "4", "3", "0", "0", "1", "0", "0", "0", "0.7500"]
    assert rows[3] == ["TOTAL", "6", "4", "0", "0", "1", "0", "1", "1", "0.6667"]
    assert rows[4] == []
    assert rows[5] == ["ma_lk", "his_key", "completed_at", "state", "reason", "age_hours", "target_breached",
                       "claim_breached"]  # fmt: skip
    assert rows[6] == ["79999-V0000001", "V0000001", "2026-03-01T09:05:00+07:00", "quarantined",
                       "validation: XML1.SO_CCCD.format", "744.9", "True", "True"]  # fmt: skip
    assert rows[7][3:5] == ["missing", "never discovered"]
    assert rows[7][-1] == "False"
    assert len(rows) == 8


def test_json_carries_totals_every_column_of_every_bucket_and_the_gaps() -> None:
    data = json.loads(render.to_json(report()))
    assert data["start"] == "2026-03-01"
    assert data["end_exclusive"] == "2026-04-01"
    assert data["group_by"] == "department"
    assert data["generated_at"] == NOW.isoformat()
    assert data["totals"] == {"completed": 6, "accepted": 4, "pending": 0, "rejected": 0, "quarantined": 1,
                              "dead": 0, "hidden": 1, "missing": 1}  # fmt: skip
    assert data["ratio"] == 4 / 6
    assert list(data["buckets"]) == ["K02", "K03"]
    assert all(list(counts) == list(COLUMNS) for counts in data["buckets"].values())
    assert data["accepted_late"] == 2
    assert data["claim_breaches"] == 1
    assert [gap["ma_lk"] for gap in data["gaps"]] == ["79999-V0000001", "79999-V0000002"]
    assert set(data["gaps"][0]) == {"ma_lk", "his_key", "completed_at", "state", "reason", "age_hours",
                                    "target_breached", "claim_breached"}  # fmt: skip


def test_empty_report_is_fully_covered() -> None:
    empty = CoverageReport(
        start=date(2026, 3, 1), end=date(2026, 3, 2), group_by=GroupBy.DAY, generated_at=NOW
    )
    data = json.loads(render.to_json(empty))
    assert data["ratio"] == 1.0
    assert data["gaps"] == []
    assert list(csv.reader(io.StringIO(render.to_csv(empty))))[1] == ["TOTAL", *["0"] * 8, "1.0000"]


def test_terminal_gap_table_values_sit_under_their_headers() -> None:
    console = Console(record=True, width=220)
    render.print_table(report(), console)
    text = console.export_text()
    header = next(line for line in text.splitlines() if "MA_LK" in line)
    row = next(line for line in text.splitlines() if "79999-V0000001" in line)
    cells = [cell.strip() for cell in row.strip("│ ").split("│")]
    names = [cell.strip() for cell in header.strip("┃ ").split("┃")]
    assert dict(zip(names, cells, strict=True)) == {
        "MA_LK": "79999-V0000001", "completed": "2026-03-01 09:05", "state": "quarantined", "age h": "745",
        "deadline": "CLAIM LIMIT PASSED", "reason": "validation: XML1.SO_CCCD.format",
    }  # fmt: skip
    assert "Coverage 2026-03-01 → 2026-03-31 (by department)" in text
    assert "CLAIM LIMIT PASSED: 1 encounter(s)" in text


def test_terminal_table_without_gap_list_says_how_many() -> None:
    console = Console(record=True, width=220)
    render.print_table(report(GroupBy.VISIT_TYPE_INSURANCE), console, max_gaps=0)
    text = console.export_text()
    assert "MA_LK" not in text
    assert "Not accepted: 2 (use `vneid-sync coverage` to list them)" in text


def _page(result: CoverageReport, facility: str = "79999") -> lxml.html.HtmlElement:
    return lxml.html.fromstring(render.to_html(result, facility=facility))


def test_html_has_verdict_figures_gap_table_chart_and_buckets() -> None:
    page = _page(report())
    assert page.get_element_by_id("verdict").text_content().startswith("CHƯA ĐẠT — 2 lượt khám")
    assert "bad" in page.get_element_by_id("verdict").get("class")
    assert page.get_element_by_id("coverage-ratio").find("b").text == "66,67%"
    gap_rows = page.get_element_by_id("gap-table").findall("./tbody/tr")
    assert [row.findall("td")[0].text for row in gap_rows] == ["79999-V0000001", "79999-V0000002"]
    assert gap_rows[0].get("class") == "breach"
    assert [td.text_content() for td in gap_rows[0].findall("td")][1:] == [
        "01/03/2026 09:05", "Lỗi dữ liệu, cần sửa trên HIS (failed validation)", "validation: XML1.SO_CCCD.format",
        "31 ngày", "Quá hạn",
    ]  # fmt: skip
    bucket_rows = page.get_element_by_id("buckets").findall("./tbody/tr")
    assert [row.findall("td")[0].text for row in bucket_rows] == ["K02", "K03", "Tổng / total"]
    assert bucket_rows[-1].findall("td")[-1].text == "66,67%"


def test_html_chart_has_a_bar_per_day_for_a_month_and_per_month_for_a_year() -> None:
    month = _page(report()).get_element_by_id("daily-chart")
    bars = month.find_class("bar")
    assert month.get("data-unit") == "ngày / day"
    assert len(bars) == 31
    assert len(month.findall(".//rect")) == 62  # accepted + not accepted per bar
    assert (bars[0].get("data-completed"), bars[0].get("data-accepted")) == ("4", "3")
    year = _page(report(start=date(2026, 1, 1), days=365)).get_element_by_id("daily-chart")
    assert year.get("data-unit") == "tháng / month"
    assert [bar.get("data-period") for bar in year.find_class("bar")] == [
        f"2026-{m:02d}" for m in range(1, 13)
    ]
    assert sum(int(bar.get("data-completed")) for bar in year.find_class("bar")) == 6


def test_html_verdict_is_green_when_everything_is_accepted_and_amber_before_the_deadline() -> None:
    done = report()
    done.gaps = []
    verdict = _page(done).get_element_by_id("verdict")
    assert verdict.get("class") == "verdict ok"
    assert verdict.text_content().startswith("ĐẠT")
    waiting = report()
    waiting.gaps = [gap for gap in waiting.gaps if not gap.claim_breached]
    assert _page(waiting).get_element_by_id("verdict").get("class") == "verdict warn"


def test_html_escapes_facility_and_bucket_names() -> None:
    result = report()
    result.buckets["<script>alert(1)</script>"] = Counter(completed=1, accepted=1)
    text = render.to_html(result, facility="A&B <x>")
    assert "<script>alert(1)</script>" not in text
    assert "&lt;script&gt;" in text
    assert "A&amp;B &lt;x&gt;" in text


def _half_year() -> CoverageReport:
    result = CoverageReport(start=date(2026, 7, 1), end=date(2027, 1, 1), group_by=GroupBy.VISIT_TYPE_INSURANCE,
                            generated_at=NOW)  # fmt: skip
    result.buckets = {
        "01 / BHYT": Counter(completed=10, accepted=9, quarantined=1),
        "01 / non-BHYT": Counter(completed=4, accepted=4),
        "03 / BHYT": Counter(completed=3, accepted=2, pending=1),
        "03 / (unknown)": Counter(completed=1, accepted=1),
    }
    return result


def test_half_year_rows_cross_visit_type_with_insurance() -> None:
    rows = render.half_year_rows(_half_year())
    assert rows == [
        {"visit_type": "01", "bhyt_visits": 10, "bhyt_linked": 9, "non_bhyt_visits": 4, "non_bhyt_linked": 4,
         "visits": 14, "linked": 13},
        {"visit_type": "03", "bhyt_visits": 3, "bhyt_linked": 2, "non_bhyt_visits": 0, "non_bhyt_linked": 0,
         "visits": 4, "linked": 3},
        {"visit_type": "TOTAL", "bhyt_visits": 13, "bhyt_linked": 11, "non_bhyt_visits": 4, "non_bhyt_linked": 4,
         "visits": 18, "linked": 16},
    ]  # fmt: skip
    assert list(csv.reader(io.StringIO(render.half_year_csv(_half_year())))) == [
        list(render.HALF_YEAR_COLUMNS),
        ["01", "10", "9", "4", "4", "14", "13"],
        ["03", "3", "2", "0", "0", "4", "3"],
        ["TOTAL", "13", "11", "4", "4", "18", "16"],
    ]
    data = json.loads(render.half_year_json(_half_year()))
    assert data["rows"] == rows
    assert data["buckets"]["03 / (unknown)"]["completed"] == 1


def test_half_year_table_shows_the_cross_table_and_a_total() -> None:
    console = Console(record=True, width=200)
    render.print_half_year(_half_year(), console)
    lines = console.export_text().splitlines()
    assert "QĐ 2733 six-monthly counts 2026-07-01 → 2026-12-31" in lines[0]
    total = next(line for line in lines if "TOTAL" in line)
    assert [cell.strip() for cell in total.strip("│ ").split("│")] == ["TOTAL", "13", "11", "4", "4", "18", "16",
                                                                      "88.89%"]  # fmt: skip
