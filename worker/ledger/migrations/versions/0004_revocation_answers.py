"""revocation answers: the CA's signed OCSP responses and CRLs that signatures relied on

NĐ 23/2025 Đ15–Đ17 (DOMAIN.md §10.5) asks signing software to check the certificate's status before signing
and to store the results. The ``signed`` audit event of each version already records the status; this table
keeps the CA's signed answer itself (DER), once per distinct answer (its SHA-256, which the audit event
names), so an inspector can verify the status again with the CA's certificate. Compressed, not encrypted:
OCSP responses and CRLs hold certificate serials and dates, no personal data. A new table only: nothing to
rewrite, instant on a ledger of any size.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29 00:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "revocation_answers",
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("this_update", sa.DateTime(timezone=True), nullable=False),
        sa.Column("next_update", sa.DateTime(timezone=True), nullable=True),
        sa.Column("der", sa.LargeBinary(), nullable=False),
        sa.Column("compression", sa.String(length=10), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("first_used_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("kind IN ('ocsp', 'crl')", name=op.f("ck_revocation_answers_kind")),
        sa.PrimaryKeyConstraint("sha256", name=op.f("pk_revocation_answers")),
    )


def downgrade() -> None:
    # Signed audit events (inside the hash chain) name these rows: refuse instead of losing what they name.
    bind = op.get_bind()
    kept = bind.execute(sa.text("SELECT count(*) FROM revocation_answers")).scalar_one()
    if kept:
        raise RuntimeError(
            f"{kept} revocation answers are kept and named by signed audit events: revision 0003 cannot hold "
            "them; downgrade is not possible without losing evidence"
        )
    op.drop_table("revocation_answers")
