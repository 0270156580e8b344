"""Coverage report renderers: a rich table for the terminal, CSV, JSON, and one self-contained HTML page."""

from __future__ import annotations

import csv
import html
import io
import json
from typing import Any

from rich.console import Console
from rich.table import Table

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


def print_table(report: CoverageReport, console: Console, *, max_gaps: int = 200) -> None:
    table = Table(title=f"Coverage {report.start} → {report.end} (by {report.group_by.value})")
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
    if report.gaps:
        gaps = Table(title=f"Not accepted: {len(report.gaps)}")
        gaps.add_column("MA_LK", no_wrap=True, min_width=15)
        gaps.add_column("completed", no_wrap=True, min_width=10)
        gaps.add_column("state", no_wrap=True, min_width=11)
        gaps.add_column("age h", justify="right", no_wrap=True, min_width=5)
        gaps.add_column("reason", overflow="fold", ratio=1)
        for gap in report.gaps[:max_gaps]:
            deadline = (
                "CLAIM LIMIT PASSED"
                if gap.claim_breached
                else ("target passed" if gap.target_breached else "")
            )
            gaps.add_row(gap.ma_lk, gap.completed_at.strftime("%Y-%m-%d %H:%M"), gap.state, gap.reason,
                         f"{gap.age_hours:.0f}", deadline)  # fmt: skip
        console.print(gaps)
        if report.claim_breaches:
            console.print(f"! = past the claim deadline ({len(report.claim_breaches)} encounter(s))")
        if len(report.gaps) > max_gaps:
            console.print(f"… {len(report.gaps) - max_gaps} more (use --format csv for all)")


def _chart_svg(report: CoverageReport, width: int = 900, height: int = 220) -> str:
    days = sorted(report.daily)
    if not days:
        return '<svg id="daily-chart" width="900" height="40"><text x="10" y="25">No visits</text></svg>'
    peak = max(1, *(report.daily[d]["completed"] for d in days))
    step = width / len(days)
    bar = max(step * 0.8, 1.0)
    parts = [f'<svg id="daily-chart" role="img" aria-label="completed vs accepted per day" '
             f'width="{width}" height="{height + 30}" viewBox="0 0 {width} {height + 30}">']  # fmt: skip
    for index, day in enumerate(days):
        counts = report.daily[day]
        x = index * step
        completed_h = counts["completed"] / peak * height
        accepted_h = counts["accepted"] / peak * height
        parts.append(f'<rect class="completed" x="{x:.1f}" y="{height - completed_h:.1f}" width="{bar:.1f}" '
                     f'height="{completed_h:.1f}"><title>{day}: {counts["completed"]} completed</title></rect>')  # fmt: skip
        parts.append(f'<rect class="accepted" x="{x:.1f}" y="{height - accepted_h:.1f}" width="{bar:.1f}" '
                     f'height="{accepted_h:.1f}"><title>{day}: {counts["accepted"]} accepted</title></rect>')  # fmt: skip
    parts.append(f'<text x="0" y="{height + 20}">{days[0]}</text>')
    parts.append(f'<text x="{width}" y="{height + 20}" text-anchor="end">{days[-1]}</text>')
    parts.append("</svg>")
    return "".join(parts)


def to_html(report: CoverageReport, *, facility: str) -> str:
    totals = report.totals
    esc = html.escape
    status = "ok" if not report.claim_breaches and report.ratio >= 1 else "bad"
    rows = "".join(
        f"<tr><td>{esc(key)}</td>" + "".join(f"<td>{counts[c]}</td>" for c in COLUMNS) + "</tr>"
        for key, counts in sorted(report.buckets.items())
    )
    gap_rows = "".join(
        f'<tr class="{"breach" if g.claim_breached else ""}"><td>{esc(g.ma_lk)}</td>'
        f"<td>{g.completed_at:%Y-%m-%d %H:%M}</td><td>{esc(g.state)}</td><td>{esc(g.reason)}</td>"
        f"<td>{g.age_hours:.1f}</td><td>{'yes' if g.claim_breached else ''}</td></tr>"
        for g in report.gaps
    )
    head = "".join(f"<th>{c}</th>" for c in COLUMNS)
    return f"""<!doctype html>
<html lang="vi"><head><meta charset="utf-8">
<title>Báo cáo liên thông Sổ SKĐT — {esc(facility)}</title>
<style>
body{{font-family:system-ui,sans-serif;margin:2em;color:#222}} h1{{font-size:1.4em}}
.kpi{{display:inline-block;margin-right:2em;font-size:1.1em}} .kpi b{{font-size:1.8em;display:block}}
.ok b{{color:#1a7f37}} .bad b{{color:#c62828}}
table{{border-collapse:collapse;margin:1em 0}} td,th{{border:1px solid #ccc;padding:.25em .6em;text-align:right}}
td:first-child,th:first-child{{text-align:left}} tr.breach{{background:#fde7e7}}
rect.completed{{fill:#cfd8dc}} rect.accepted{{fill:#2e7d32}} .legend span{{margin-right:1.5em}}
</style></head><body>
<h1>Liên thông dữ liệu khám chữa bệnh lên Sổ sức khỏe điện tử — cơ sở {esc(facility)}</h1>
<p>Kỳ báo cáo / period: {report.start} → {report.end} (exclusive) · tạo lúc / generated {report.generated_at:%Y-%m-%d %H:%M} UTC</p>
<div class="kpi {status}" id="coverage-ratio">Tỷ lệ đã liên thông / coverage<b>{report.ratio:.2%}</b></div>
<div class="kpi">Hoàn thành / completed<b>{totals["completed"]}</b></div>
<div class="kpi">Đã tiếp nhận / accepted<b>{totals["accepted"]}</b></div>
<div class="kpi {"bad" if report.gaps else "ok"}">Chưa liên thông / gaps<b>{len(report.gaps)}</b></div>
<div class="kpi {"bad" if report.claim_breaches else "ok"}">Quá hạn / past deadline<b>{len(report.claim_breaches)}</b></div>
<h2>Theo ngày / per day</h2>
<div class="legend"><span style="color:#90a4ae">■ completed</span><span style="color:#2e7d32">■ accepted</span></div>
{_chart_svg(report)}
<h2>Theo {esc(report.group_by.value)}</h2>
<table id="buckets"><thead><tr><th>{esc(report.group_by.value)}</th>{head}</tr></thead><tbody>{rows}</tbody></table>
<h2>Hồ sơ chưa được tiếp nhận / not accepted</h2>
<table id="gap-table"><thead><tr><th>MA_LK</th><th>completed</th><th>state</th><th>reason</th><th>age (h)</th>
<th>past claim deadline</th></tr></thead><tbody>{gap_rows}</tbody></table>
</body></html>
"""
