"""sealed evidence: key ids, sealed receipt, purge marker

The signed file and the receipt are sealed with AES-256-GCM (worker/ledger/evidence_crypto.py): each sealed
column has the id of the key that sealed it. ``sealed_receipt`` replaces the plain ``receipt`` for new rows;
``receipt`` stays for rows written before this revision (readable as they are, sealed by
``vneid-sync evidence rekey``). ``signed_document`` becomes nullable: a retention purge clears it and sets
``purged_at``, keeping the row and its hash as the record that the evidence existed.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28 21:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("evidence", schema=None) as batch_op:
        batch_op.add_column(sa.Column("document_key_id", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("sealed_receipt", sa.LargeBinary(), nullable=True))
        batch_op.add_column(sa.Column("receipt_key_id", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("purged_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.alter_column("signed_document", existing_type=sa.LargeBinary(), nullable=True)


def downgrade() -> None:
    # Sealed or purged rows cannot go back to a schema that has neither: refuse instead of losing them.
    bind = op.get_bind()
    blocking = bind.execute(
        sa.text(
            "SELECT count(*) FROM evidence WHERE document_key_id IS NOT NULL OR receipt_key_id IS NOT NULL "
            "OR signed_document IS NULL"
        )
    ).scalar_one()
    if blocking:
        raise RuntimeError(
            f"{blocking} evidence rows are sealed or purged: revision 0002 cannot hold them; "
            "downgrade is not possible without losing evidence"
        )
    with op.batch_alter_table("evidence", schema=None) as batch_op:
        batch_op.alter_column("signed_document", existing_type=sa.LargeBinary(), nullable=False)
        batch_op.drop_column("purged_at")
        batch_op.drop_column("receipt_key_id")
        batch_op.drop_column("sealed_receipt")
        batch_op.drop_column("document_key_id")
