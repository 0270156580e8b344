"""``DemoSource``: the generic ``sql_mapping`` adapter reading the reference HIS through ``mapping.toml``.

Nothing here is specific to the demo except the mapping file: if the demo works, a hospital's own mapping
file works the same way.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Self

from adapters.his.demo.config import DemoOptions
from adapters.his.engine import create_his_engine
from adapters.his.options import parse_options
from adapters.his.settings import HisSettings
from adapters.his.sql_mapping.mapping import load_mapping
from adapters.his.sql_mapping.source import SqlMappingSource

DEMO_MAPPING_FILE = Path(__file__).with_name("mapping.toml")


class DemoSource(SqlMappingSource):
    """The reference HIS (``vneid-sync demo seed``), read by sql_mapping with the bundled mapping file."""

    name: ClassVar[str] = "demo"

    @classmethod
    def from_settings(cls, his: HisSettings, *, url: str, facility_code: str) -> Self:
        options = parse_options(DemoOptions, his.options, cls.name)
        return cls(
            engine=create_his_engine(url, his, timezone=options.zone),
            mapping=load_mapping(DEMO_MAPPING_FILE),
            mapping_file=DEMO_MAPPING_FILE,
            options=options,
            facility_code=facility_code,
            page_size=his.page_size,
            overlap_minutes=his.watermark_overlap_minutes,
        )
