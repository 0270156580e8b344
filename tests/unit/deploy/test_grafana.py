"""deploy/grafana/vneid-sync.json: valid JSON, a well-formed dashboard, and only metrics worker/monitoring exports."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[3]
DASHBOARD = REPO_ROOT / "deploy" / "grafana" / "vneid-sync.json"
METRICS_MODULES = [
    REPO_ROOT / "worker" / "monitoring" / name for name in ("ledger_metrics.py", "worker_metrics.py")
]
#: Series suffixes Prometheus adds to a family name (counters, histograms).
_SUFFIXES = ("_total", "_bucket", "_sum", "_count", "_created")
_METRIC = re.compile(r"\b(vneid_[a-z0-9_]+)\b")
_GROUPING = re.compile(r"\bby\s*\(([^)]*)\)")
_MATCHER = re.compile(r"([a-z_]+)\s*(?:=~|!~|!=|=)")


def _dashboard() -> dict[str, Any]:
    data = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def _panels() -> list[dict[str, Any]]:
    return [panel for panel in _dashboard()["panels"] if panel["type"] != "row"]


def _exprs() -> list[str]:
    return [target["expr"] for panel in _panels() for target in panel["targets"]]


def _family(series: str) -> str:
    for suffix in _SUFFIXES:
        if series.endswith(suffix):
            return series[: -len(suffix)]
    return series


def test_dashboard_is_well_formed() -> None:
    dashboard = _dashboard()
    assert dashboard["uid"] == "vneid-sync"
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids)), "panel ids are unique"
    for panel in _panels():
        assert panel["targets"], panel["title"]
        assert panel["datasource"]["uid"] == "${DS_PROMETHEUS}", panel["title"]
        assert {"x", "y", "w", "h"} <= set(panel["gridPos"]), panel["title"]
        assert panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24, panel["title"]
        for target in panel["targets"]:
            expr = target["expr"]
            assert expr.count("(") == expr.count(")"), expr
            assert expr.count("{") == expr.count("}"), expr
            assert 'instance=~"$instance"' in expr, f"{panel['title']}: follows the exporter selector"


def test_the_dashboard_answers_the_operators_questions() -> None:
    families = {_family(name) for expr in _exprs() for name in _METRIC.findall(expr)}
    for wanted in (
        "vneid_ledger_encounters",  # backlog by state
        "vneid_ledger_oldest_unaccepted_age_seconds",  # oldest non-accepted age
        "vneid_gateway_attempts",  # submissions by result code
        "vneid_ledger_coverage_ratio",  # coverage
        "vneid_signer_certificate_expiry_days",  # certificate days left
    ):
        assert wanted in families


def test_every_metric_and_label_exists_in_worker_metrics() -> None:
    source = "".join(module.read_text(encoding="utf-8") for module in METRICS_MODULES)
    for expr in _exprs():
        for series in _METRIC.findall(expr):
            family = _family(series)
            assert f'"{family}"' in source, f"{family} (from {expr}) is not exported by worker/monitoring"
        labels = {label.strip() for group in _GROUPING.findall(expr) for label in group.split(",")}
        labels |= set(_MATCHER.findall(expr))
        for label in labels - {"instance", ""}:
            assert f'"{label}"' in source, f"label {label} (from {expr}) is not in worker/monitoring"
