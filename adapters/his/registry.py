"""Pick the HIS adapter named in the settings (entry-point group ``vneid_sync.adapters``).

Adapters are registered in ``pyproject.toml``; a hospital can ship its own in another package under the
same group. Each adapter class has ``from_settings(his, *, url, facility_code)``.
"""

from __future__ import annotations

from importlib.metadata import EntryPoint, entry_points
from typing import Protocol, cast

from adapters.his.errors import AdapterConfigError
from adapters.his.settings import HisSettings
from schemas.ports import EncounterSource

ENTRY_POINT_GROUP = "vneid_sync.adapters"

#: The adapters this package provides; used when the package is not installed (running from a checkout).
BUILT_IN = {
    "qd130_tables": "adapters.his.qd130_tables.source:Qd130TablesSource",
    "sql_mapping": "adapters.his.sql_mapping.source:SqlMappingSource",
    "demo": "adapters.his.demo.source:DemoSource",
}


class AdapterFactory(Protocol):
    def from_settings(self, his: HisSettings, *, url: str, facility_code: str) -> EncounterSource: ...


def _entry_points() -> dict[str, EntryPoint]:
    found = {name: EntryPoint(name, value, ENTRY_POINT_GROUP) for name, value in BUILT_IN.items()}
    found.update({point.name: point for point in entry_points(group=ENTRY_POINT_GROUP)})
    return found


def known_adapters() -> tuple[str, ...]:
    """Names of every registered HIS adapter, sorted."""
    return tuple(sorted(_entry_points()))


def adapter_class(name: str) -> AdapterFactory:
    """The class registered under ``name``; unknown names list the known ones."""
    points = _entry_points()
    point = points.get(name)
    if point is None:
        raise AdapterConfigError(f"unknown HIS adapter {name!r}; known: {', '.join(sorted(points))}")
    try:
        loaded = point.load()
    except (ImportError, AttributeError) as exc:
        raise AdapterConfigError(f"HIS adapter {name!r} cannot be loaded ({point.value}): {exc}") from exc
    if not callable(getattr(loaded, "from_settings", None)):
        raise AdapterConfigError(f"HIS adapter {name!r} ({point.value}) has no from_settings()")
    return cast(AdapterFactory, loaded)


def create_source(his: HisSettings, facility_code: str, *, url: str | None = None) -> EncounterSource:
    """The configured adapter on ``url`` (default ``his.url``; the caller passes the demo default)."""
    target = url or his.url
    if not target:
        raise AdapterConfigError("no HIS database URL: set his.url")
    return adapter_class(his.adapter).from_settings(his, url=target, facility_code=facility_code)
