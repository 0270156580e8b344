"""A large demo HIS in minutes: the demo seeder writes a base of real encounters, then SQL copies them.

The seeder is Python-bound (about 530 visits/s: 30 minutes for a million). For scale runs the content of each
visit matters less than the number, so ``replicate_demo_his`` copies the seeded visits and every row that
hangs off them (prescriptions, services, results, papers...) under new ids and new visit codes
(``<code>-c<copy>``), one ``INSERT ... SELECT`` per table over ``generate_series``. A copy keeps its template's
dates and content; its MA_LK differs (derived from the visit code), so each copy is a distinct encounter to the
worker, the gateway simulator and the ledger. PostgreSQL only (the scale runs' database).
"""

from __future__ import annotations

import sqlalchemy as sa

from adapters.his.demo import schema

#: The columns a copy changes; every other column is the template's.
_VISIT_KEY = "visit_code"


def replicate_demo_his(url: str, total: int) -> int:
    """Copy the seeded visits (and their rows) until the HIS holds at least ``total`` visits; returns the
    number of visits."""
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            base = int(conn.execute(sa.select(sa.func.count()).select_from(schema.visits)).scalar_one())
            copies = max(-(-total // base) - 1, 0) if base else 0
            copied = [t for t in schema.metadata.sorted_tables if t is schema.visits or "visit_id" in t.c]
            # Every offset is read before the first copy: a copied table's max(id) has moved.
            last_ids = {
                t.name: int(conn.execute(sa.select(sa.func.max(t.c.id))).scalar_one() or 0) for t in copied
            }
            for table in copied if copies else ():
                conn.exec_driver_sql(_copy_statement(table, copies, last_ids))
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM ANALYZE")
            return int(conn.execute(sa.select(sa.func.count()).select_from(schema.visits)).scalar_one())
    finally:
        engine.dispose()


def _copy_statement(table: sa.Table, copies: int, last_ids: dict[str, int]) -> str:
    """``INSERT INTO t SELECT ... FROM t CROSS JOIN generate_series(1, copies) g``: copy g of a row gets
    ``id + g * max(id)``, and its visit ``visit_id + g * max(visits.id)`` (maxima before any copy)."""
    last_visit = last_ids[schema.visits.name]
    replaced = {"id": f"r.id + g * {last_ids[table.name]}"}
    if table is schema.visits:
        replaced[_VISIT_KEY] = f"r.{_VISIT_KEY} || '-c' || g"
    else:
        replaced["visit_id"] = f"r.visit_id + g * {last_visit}"
    names = [column.name for column in table.columns]
    selected = ", ".join(replaced.get(name, f"r.{name}") for name in names)
    return (
        f"INSERT INTO {table.name} ({', '.join(names)}) SELECT {selected} "  # metadata names and integers only
        f"FROM {table.name} r CROSS JOIN generate_series(1, {int(copies)}) g"
    )
