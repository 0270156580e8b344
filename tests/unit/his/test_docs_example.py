"""The full mapping example in docs/adapters.md stays a valid mapping file."""

from __future__ import annotations

import re
from pathlib import Path

from adapters.his.sql_mapping.mapping import load_mapping

DOC = Path(__file__).resolve().parents[3] / "docs" / "adapters.md"


def test_the_documented_example_mapping_loads(tmp_path: Path) -> None:
    blocks = re.findall(r"```toml\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.DOTALL)
    example = next(block for block in blocks if block.startswith("# /etc/vneid-sync/his-mapping.toml"))
    path = tmp_path / "his-mapping.toml"
    path.write_text(example, encoding="utf-8")
    mapping = load_mapping(path)
    assert set(mapping.sections) >= {"visit", "patient", "drug_lines", "service_lines", "discharge_papers"}
    assert mapping.value_maps["icd"].translate("icd", "THA,J18.9") == "I10;J18.9"
    assert mapping.sections["drug_lines"].batch_sql is not None
