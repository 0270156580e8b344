"""Alembic on a test ledger: on a connection of the test's own (its transaction decides), or a whole
downgrade in one transaction."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Engine

from worker.ledger import migrate


def alembic_on(conn: sa.Connection) -> Config:
    """Alembic's configuration for running migrations on ``conn``, inside its transaction."""
    config = migrate.alembic_config(conn.engine.url.render_as_string(hide_password=False))
    config.attributes["connection"] = conn
    return config


def downgrade(engine: Engine, revision: str) -> None:
    """Downgrade to ``revision`` in one transaction: a step that refuses (raises) rolls back the steps before
    it, so the ledger stays at the revision it was at. (Caught inside the transaction instead, the refusal
    would let the steps before it be committed.)"""
    with engine.begin() as conn:
        command.downgrade(alembic_on(conn), revision)
