"""covering completed_at index for coverage

Coverage reads (ma_lk, state, accepted_at) of every encounter of each day; with these columns in the index
PostgreSQL answers from the index alone (an index-only scan) and SQLite uses it as a covering index. It
replaces ``ix_encounters_completed_at``, whose leading column it keeps, so range queries on completed_at
are served as before and inserts still maintain a single completed_at index (kept beside it, the narrower
index wins the planner's choice and the table is read again). Plain key columns rather than PostgreSQL's
INCLUDE: the same index on both dialects, and the same size (64 MB at 1M encounters). Built before the old
one is dropped; the build blocks writes to ``encounters`` for its duration (1.2 s at 1M rows), so run it
with the worker stopped, as every ``db upgrade``. Measured in bench/bench_coverage.py.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28 20:30:00.000000
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

COVERING = "ix_encounters_completed_at_ma_lk_state_accepted_at"
PLAIN = "ix_encounters_completed_at"


def upgrade() -> None:
    with op.batch_alter_table("encounters", schema=None) as batch_op:
        batch_op.create_index(COVERING, ["completed_at", "ma_lk", "state", "accepted_at"], unique=False)
        batch_op.drop_index(PLAIN)


def downgrade() -> None:
    with op.batch_alter_table("encounters", schema=None) as batch_op:
        batch_op.create_index(PLAIN, ["completed_at"], unique=False)
        batch_op.drop_index(COVERING)
