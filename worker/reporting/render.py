"""Coverage report renderers: a rich table for the terminal, CSV, JSON, and one self-contained HTML page."""

from __future__ import annotations

import csv
import html
import io
import json
from collections import Counter
from datetime import date, datetime, timedelta
from typing import Any

from rich.console import Console
from rich.table import Table

from schemas.domain.values import VIETNAM_TZ
from worker.reporting.coverage import COLUMNS, CoverageReport, Gap


def _gap_dict(gap: Gap) -> dict[str, Any]:
    return {
        "ma_lk": gap.ma_lk,
        "his_key": gap.his_key,
        "completed_at": gap.completed_at.isoformat(),
        "state": gap.state,
        "reason": gap.reason,
        "age_hours": round(gap.age_hours, 1),
        "target_breached": gap.target_breached,
        "claim_breached": gap.claim_breached,
    }


def to_json(report: CoverageReport) -> str:
    return json.dumps(
        {
            "start": report.start.isoformat(),
            "end_exclusive": report.end.isoformat(),
            "group_by": report.group_by.value,
            "generated_at": report.generated_at.isoformat(),
            "ratio": report.ratio,
            "totals": {column: report.totals[column] for column in COLUMNS},
            "buckets": {
                key: {c: counts[c] for c in COLUMNS} for key, counts in sorted(report.buckets.items())
            },
            "accepted_late": report.accepted_late,
            "claim_breaches": len(report.claim_breaches),
            "gaps": [_gap_dict(gap) for gap in report.gaps],
        },
        ensure_ascii=False,
        indent=2,
    )


def to_csv(report: CoverageReport) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([report.group_by.value, *COLUMNS, "coverage"])
    for key, counts in sorted(report.buckets.items()):
        ratio = counts["accepted"] / counts["completed"] if counts["completed"] else 1.0
        writer.writerow([key, *(counts[c] for c in COLUMNS), f"{ratio:.4f}"])
    totals = report.totals
    writer.writerow(["TOTAL", *(totals[c] for c in COLUMNS), f"{report.ratio:.4f}"])
    writer.writerow([])
    writer.writerow(["ma_lk", "his_key", "completed_at", "state", "reason", "age_hours", "target_breached",
                     "claim_breached"])  # fmt: skip
    for gap in report.gaps:
        writer.writerow(list(_gap_dict(gap).values()))
    return out.getvalue()


#: QĐ 2733 six-monthly report: per visit type, visits and linked (accepted) visits, BHYT and non-BHYT.
HALF_YEAR_COLUMNS = ("visit_type", "bhyt_visits", "bhyt_linked", "non_bhyt_visits", "non_bhyt_linked", "visits",
                     "linked")  # fmt: skip


def half_year_rows(report: CoverageReport) -> list[dict[str, Any]]:
    """The cross table of a ``visit-type-insurance`` report, one row per visit type and a TOTAL row. ``visits``
    and ``linked`` also count visits whose insurance is unknown."""
    rows: dict[str, dict[str, Any]] = {}
    for key, counts in report.buckets.items():
        visit_type, _, insurance = key.partition(" / ")
        row = rows.setdefault(visit_type, dict.fromkeys(HALF_YEAR_COLUMNS, 0) | {"visit_type": visit_type})
        prefix = {"BHYT": "bhyt_", "non-BHYT": "non_bhyt_"}.get(insurance)
        if prefix:
            row[prefix + "visits"] += counts["completed"]
            row[prefix + "linked"] += counts["accepted"]
        row["visits"] += counts["completed"]
        row["linked"] += counts["accepted"]
    ordered = [rows[key] for key in sorted(rows)]
    total = dict.fromkeys(HALF_YEAR_COLUMNS, 0) | {"visit_type": "TOTAL"}
    for row in ordered:
        for column in HALF_YEAR_COLUMNS[1:]:
            total[column] += row[column]
    return [*ordered, total]


def half_year_json(report: CoverageReport) -> str:
    data = json.loads(to_json(report))
    data["rows"] = half_year_rows(report)
    return json.dumps(data, ensure_ascii=False, indent=2)


def half_year_csv(report: CoverageReport) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(HALF_YEAR_COLUMNS)
    for row in half_year_rows(report):
        writer.writerow([row[column] for column in HALF_YEAR_COLUMNS])
    return out.getvalue()


def print_half_year(report: CoverageReport, console: Console) -> None:
    last_day = report.end - timedelta(days=1)
    table = Table(title=f"QĐ 2733 six-monthly counts {report.start} → {last_day}: visits and linked visits")
    for header in ("MA_LOAI_KCB", "BHYT visits", "BHYT linked", "non-BHYT visits", "non-BHYT linked",
                   "visits", "linked", "linked %"):  # fmt: skip
        table.add_column(header, justify="left" if header == "MA_LOAI_KCB" else "right")
    for row in half_year_rows(report):
        ratio = row["linked"] / row["visits"] if row["visits"] else 1.0
        cells = [str(row[column]) for column in HALF_YEAR_COLUMNS] + [f"{ratio:.2%}"]
        table.add_row(*(f"[bold]{cell}[/]" for cell in cells) if row["visit_type"] == "TOTAL" else cells)
    console.print(table)
    if report.gaps:
        console.print(f"Not accepted: {len(report.gaps)} (use `vneid-sync coverage` to list them)")


def _deadline_flag(gap: Gap) -> str:
    if gap.claim_breached:
        return "CLAIM LIMIT PASSED"
    return "target passed" if gap.target_breached else ""


def print_table(report: CoverageReport, console: Console, *, max_gaps: int = 200) -> None:
    last_day = report.end - timedelta(days=1)
    table = Table(title=f"Coverage {report.start} → {last_day} (by {report.group_by.value})")
    table.add_column(report.group_by.value)
    for column in COLUMNS:
        table.add_column(column, justify="right")
    table.add_column("coverage", justify="right")
    for key, counts in sorted(report.buckets.items()):
        ratio = counts["accepted"] / counts["completed"] if counts["completed"] else 1.0
        table.add_row(key, *(str(counts[c]) for c in COLUMNS), f"{ratio:.1%}")
    totals = report.totals
    table.add_row(
        "[bold]total[/]", *(f"[bold]{totals[c]}[/]" for c in COLUMNS), f"[bold]{report.ratio:.2%}[/]"
    )
    console.print(table)
    if report.gaps and max_gaps > 0:
        gaps = Table(title=f"Not accepted: {len(report.gaps)}")
        gaps.add_column("MA_LK", no_wrap=True, min_width=15)
        gaps.add_column("completed", no_wrap=True, min_width=10)
        gaps.add_column("state", no_wrap=True, min_width=11)
        gaps.add_column("age h", justify="right", no_wrap=True, min_width=5)
        gaps.add_column("deadline", no_wrap=True)
        gaps.add_column("reason", overflow="fold", ratio=1)
        for gap in report.gaps[:max_gaps]:
            gaps.add_row(gap.ma_lk, _local(gap.completed_at).strftime("%Y-%m-%d %H:%M"), gap.state,
                         f"{gap.age_hours:.0f}", _deadline_flag(gap), gap.reason)  # fmt: skip
        console.print(gaps)
        if len(report.gaps) > max_gaps:
            console.print(f"… {len(report.gaps) - max_gaps} more (use --format csv for all)")
    elif report.gaps:
        console.print(f"Not accepted: {len(report.gaps)} (use `vneid-sync coverage` to list them)")
    if report.claim_breaches:
        console.print(
            f"CLAIM LIMIT PASSED: {len(report.claim_breaches)} encounter(s) past the claim deadline"
        )


#: Vietnamese (English) words for what a hospital director reads.
_STATE_LABELS = {
    "quarantined": "Lỗi dữ liệu, cần sửa trên HIS (failed validation)",
    "rejected": "Cổng BHXH từ chối (rejected by the gateway)",
    "dead": "Gửi lỗi nhiều lần (retries exhausted)",
    "hidden": "HIS không còn hiển thị (no longer completed in the HIS)",
    "missing": "Chưa được ghi nhận (never discovered)",
    "discovered": "Đang xử lý (in progress)",
    "built": "Đang xử lý (in progress)",
    "signed": "Đang gửi (being sent)",
    "submitted": "Đang gửi lại (retrying)",
}
_COLUMN_LABELS = {
    "completed": "Hoàn thành<br>completed",
    "accepted": "Đã tiếp nhận<br>accepted",
    "pending": "Đang gửi<br>pending",
    "rejected": "Bị từ chối<br>rejected",
    "quarantined": "Lỗi dữ liệu<br>quarantined",
    "dead": "Gửi lỗi<br>dead",
    "hidden": "Đã ẩn<br>hidden",
    "missing": "Chưa ghi nhận<br>missing",
}
_GROUP_LABELS = {
    "day": "ngày / day",
    "department": "khoa / department",
    "visit-type": "loại KCB / visit type",
    "insurance": "đối tượng / insurance",
    "visit-type-insurance": "loại KCB × BHYT / visit type × insurance",
}
#: Up to this many days the chart shows one bar per day; longer ranges one bar per month.
_DAILY_BARS_UP_TO = 62


def _local(value: datetime) -> datetime:
    return value.astimezone(VIETNAM_TZ) if value.tzinfo else value


def _vn_date(day: date) -> str:
    return day.strftime("%d/%m/%Y")


def _percent(ratio: float) -> str:
    return f"{ratio:.2%}".replace(".", ",")


def _age(hours: float) -> str:
    return f"{hours:.0f} giờ" if hours < 48 else f"{hours / 24:.0f} ngày"


def _chart_bars(report: CoverageReport) -> tuple[str, list[tuple[str, str, Counter[str]]]]:
    """(unit, bars): one bar per day for short ranges, per month otherwise (a year of daily bars is noise).
    Each bar is (label, tooltip period, counts)."""
    days = sorted(report.daily)
    if len(days) <= _DAILY_BARS_UP_TO:
        return "ngày / day", [(day[8:10] + "/" + day[5:7], day, report.daily[day]) for day in days]
    months: dict[str, Counter[str]] = {}
    for day in days:
        months.setdefault(day[:7], Counter()).update(report.daily[day])
    several_years = len({month[:4] for month in months}) > 1
    bars = []
    for month, counts in months.items():
        label = f"T{int(month[5:7])}" + (f"/{month[2:4]}" if several_years else "")
        bars.append((label, month, counts))
    return "tháng / month", bars


def _chart_svg(report: CoverageReport, width: int = 900, height: int = 220) -> str:
    unit, bars = _chart_bars(report)
    if not bars:
        return (
            '<svg id="daily-chart" width="900" height="40"><text x="10" y="25">Không có dữ liệu</text></svg>'
        )
    left, bottom, top = 44, 28, 10
    plot_w, plot_h = width - left - 8, height - bottom - top
    peak = max(1, *(counts["completed"] for _, _, counts in bars))
    step = plot_w / len(bars)
    bar_w = max(min(step * 0.75, 48.0), 1.0)
    every = max(1, -(-len(bars) // 16))  # at most ~16 x labels
    parts = [f'<svg id="daily-chart" data-unit="{unit}" role="img" '
             f'aria-label="Hoàn thành và đã tiếp nhận theo {unit}" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}">']  # fmt: skip
    for fraction in (0.0, 0.5, 1.0):
        y = top + plot_h - fraction * plot_h
        parts.append(f'<line class="grid" x1="{left}" x2="{width - 8}" y1="{y:.1f}" y2="{y:.1f}"/>'
                     f'<text class="axis" x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">'
                     f"{round(peak * fraction)}</text>")  # fmt: skip
    for index, (label, period, counts) in enumerate(bars):
        x = left + index * step + (step - bar_w) / 2
        accepted, completed = counts["accepted"], counts["completed"]
        accepted_h = accepted / peak * plot_h
        open_h = max(completed - accepted, 0) / peak * plot_h
        base = top + plot_h
        tooltip = f"{period}: {completed} hoàn thành / completed, {accepted} đã tiếp nhận / accepted"
        parts.append(f'<g class="bar" data-period="{period}" data-completed="{completed}" '
                     f'data-accepted="{accepted}"><title>{html.escape(tooltip)}</title>'
                     f'<rect class="accepted" x="{x:.1f}" y="{base - accepted_h:.1f}" width="{bar_w:.1f}" '
                     f'height="{accepted_h:.1f}"/>'
                     f'<rect class="open" x="{x:.1f}" y="{base - accepted_h - open_h:.1f}" width="{bar_w:.1f}" '
                     f'height="{open_h:.1f}"/></g>')  # fmt: skip
        if index % every == 0:
            parts.append(f'<text class="axis" x="{x + bar_w / 2:.1f}" y="{height - 8}" text-anchor="middle">'
                         f"{html.escape(label)}</text>")  # fmt: skip
    parts.append("</svg>")
    return "".join(parts)


def _verdict(report: CoverageReport) -> tuple[str, str]:
    """(css class, sentence): the one line a director reads first."""
    gaps, breaches = len(report.gaps), len(report.claim_breaches)
    if not gaps:
        return "ok", "ĐẠT — mọi lượt khám đã hoàn thành đều đã được cổng BHXH tiếp nhận."
    sentence = f"CHƯA ĐẠT — {gaps} lượt khám chưa được cổng BHXH tiếp nhận"
    if breaches:
        return "bad", f"{sentence}, trong đó {breaches} đã quá hạn gửi hồ sơ (TT 48). Xem danh sách bên dưới."
    return "warn", f"{sentence} (chưa quá hạn). Xem danh sách bên dưới."


def to_html(report: CoverageReport, *, facility: str) -> str:
    """One self-contained page: verdict, key figures, what needs action, the trend, then the detail table."""
    totals = report.totals
    esc = html.escape
    verdict_class, verdict = _verdict(report)
    unit, _ = _chart_bars(report)
    last_day = report.end - timedelta(days=1)
    generated = _local(report.generated_at)
    group_label = _GROUP_LABELS.get(report.group_by.value, report.group_by.value)
    rows = "".join(
        f"<tr><td>{esc(key)}</td>"
        + "".join(f"<td>{counts[c]}</td>" for c in COLUMNS)
        + f"<td>{_percent(counts['accepted'] / counts['completed'] if counts['completed'] else 1.0)}</td></tr>"
        for key, counts in sorted(report.buckets.items())
    )
    rows += (
        "<tr class=total><td>Tổng / total</td>"
        + "".join(f"<td>{totals[c]}</td>" for c in COLUMNS)
        + f"<td>{_percent(report.ratio)}</td></tr>"
    )
    gap_rows = "".join(
        f'<tr class="{"breach" if g.claim_breached else ""}"><td class="n">{esc(g.ma_lk)}</td>'
        f'<td class="n">{_local(g.completed_at):%d/%m/%Y %H:%M}</td>'
        f'<td title="{esc(g.state)}">{esc(_STATE_LABELS.get(g.state, g.state))}</td><td>{esc(g.reason)}</td>'
        f'<td class="n">{_age(g.age_hours)}</td><td class="n">{"Quá hạn" if g.claim_breached else ""}</td></tr>'
        for g in report.gaps
    )
    if not report.gaps:
        gap_rows = '<tr><td colspan="6">Không có / none</td></tr>'
    head = "".join(f"<th>{_COLUMN_LABELS[c]}</th>" for c in COLUMNS)
    many = len(report.buckets) > 31
    breaches = len(report.claim_breaches)
    return f"""<!doctype html>
<html lang="vi"><head><meta charset="utf-8">
<title>Báo cáo liên thông Sổ SKĐT — {esc(facility)}</title>
<style>
body{{font-family:system-ui,"Noto Sans","DejaVu Sans",sans-serif;margin:1.5em 2em;color:#222;max-width:1100px}}
h1{{font-size:1.45em;margin:0 0 .2em}} h2{{font-size:1.15em;margin:1.4em 0 .4em}} .sub{{color:#555;margin:0}}
.verdict{{font-size:1.25em;font-weight:600;padding:.7em 1em;border-radius:6px;margin:1em 0}}
.verdict.ok{{background:#e6f4ea;color:#1a7f37}} .verdict.warn{{background:#fff4e5;color:#9a5b00}}
.verdict.bad{{background:#fde7e7;color:#b71c1c}}
.kpis{{display:flex;gap:1em;flex-wrap:wrap}}
.kpi{{border:1px solid #ddd;border-radius:6px;padding:.6em 1em;min-width:10em}}
.kpi b{{font-size:2em;display:block}} .kpi small{{color:#666}}
.ok b{{color:#1a7f37}} .bad b{{color:#c62828}} .warn b{{color:#9a5b00}}
table{{border-collapse:collapse;margin:.5em 0}} td,th{{border:1px solid #ccc;padding:.25em .6em;text-align:right}}
th{{background:#f3f5f7;font-weight:600}} td:first-child,th:first-child{{text-align:left}}
#gap-table td,#gap-table th{{text-align:left}} #gap-table td.n{{white-space:nowrap}} tr.breach{{background:#fde7e7}} tr.total td{{font-weight:600}}
rect.accepted{{fill:#2e7d32}} rect.open{{fill:#e53935}} line.grid{{stroke:#e0e0e0}} text.axis{{font-size:11px;fill:#555}}
.legend span{{margin-right:1.5em}} .sw{{display:inline-block;width:.9em;height:.9em;vertical-align:-.1em;margin-right:.3em}}
</style></head><body>
<h1>Liên thông dữ liệu khám chữa bệnh lên Sổ sức khỏe điện tử — cơ sở {esc(facility)}</h1>
<p class="sub">Kỳ báo cáo / period: {_vn_date(report.start)} – {_vn_date(last_day)} ·
lập lúc / generated {generated:%d/%m/%Y %H:%M} (giờ Việt Nam)</p>
<div class="verdict {verdict_class}" id="verdict">{esc(verdict)}</div>
<div class="kpis">
<div class="kpi {"ok" if not report.gaps else "bad"}" id="coverage-ratio">Tỷ lệ đã liên thông<b>{_percent(report.ratio)}</b><small>coverage</small></div>
<div class="kpi">Lượt khám hoàn thành<b>{totals["completed"]}</b><small>completed visits</small></div>
<div class="kpi">Đã được tiếp nhận<b>{totals["accepted"]}</b><small>accepted by the gateway</small></div>
<div class="kpi {"bad" if report.gaps else "ok"}">Chưa tiếp nhận<b>{len(report.gaps)}</b><small>not accepted</small></div>
<div class="kpi {"bad" if breaches else "ok"}">Quá hạn (TT 48)<b>{breaches}</b><small>past the claim deadline</small></div>
</div>
<h2>Lượt khám chưa được tiếp nhận — cần xử lý / not accepted: action needed</h2>
<table id="gap-table"><thead><tr><th>Mã lượt khám (MA_LK)</th><th>Hoàn thành lúc</th><th>Tình trạng</th>
<th>Lý do (quy tắc) / reason</th><th>Đã chờ / age</th><th>Quá hạn TT 48</th></tr></thead><tbody>{gap_rows}</tbody></table>
<h2>Theo {unit}: hoàn thành và đã tiếp nhận</h2>
<div class="legend"><span><i class="sw" style="background:#2e7d32"></i>Đã tiếp nhận / accepted</span>
<span><i class="sw" style="background:#e53935"></i>Chưa tiếp nhận / not accepted</span></div>
{_chart_svg(report)}
<h2>Chi tiết theo {esc(group_label)}</h2>
<details{"" if many else " open"}><summary>{len(report.buckets)} dòng / rows</summary>
<table id="buckets"><thead><tr><th>{esc(group_label[:1].upper() + group_label[1:])}</th>{head}<th>Tỷ lệ<br>coverage</th></tr></thead>
<tbody>{rows}</tbody></table></details>
</body></html>
"""
