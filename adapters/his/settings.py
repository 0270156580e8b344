"""The ``[his]`` settings section: which HIS adapter reads completed encounters, and how."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr

from adapters.settings import Section


class HisSettings(Section):
    """Where completed encounters are read from (read-only)."""

    adapter: str = Field("demo", description="HIS adapter name (see `vneid-sync adapters list`).")
    url: str | None = Field(
        None, description="SQLAlchemy URL of the HIS database; default: the demo SQLite HIS."
    )
    password: SecretStr | None = Field(None, description="HIS database password, if not in the URL.")
    mapping_file: Path | None = Field(None, description="Mapping file for the sql_mapping adapter.")
    options: dict[str, Any] = Field(default_factory=dict, description="Adapter-specific options.")
    page_size: int = Field(500, ge=1, le=50_000, description="Rows fetched per page when streaming.")
    statement_timeout_s: int = Field(60, ge=1, description="Statement timeout on the HIS connection.")
    watermark_overlap_minutes: int = Field(
        30, ge=0, description="Re-read this far behind the watermark (clock skew, long transactions)."
    )
    pool_size: int = Field(2, ge=1, le=32, description="Connections kept open to the HIS.")
