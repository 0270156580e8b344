"""Options of the ``demo`` adapter: those of ``sql_mapping`` (it is the same adapter with a bundled mapping)."""

from __future__ import annotations

from adapters.his.sql_mapping.config import SqlMappingOptions


class DemoOptions(SqlMappingOptions):
    """The demo HIS lists NGAY_RA, NGAY_TTOAN and STATUS (OPEN, DISCHARGED, PAID, CANCELLED), so every
    completion rule works on it."""
