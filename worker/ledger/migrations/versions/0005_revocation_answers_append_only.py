"""revocation answers are append-only: the database refuses UPDATE and DELETE on them, as on audit_log

A kept answer is evidence named by ``signed`` audit events (``revocation.answer_sha256``, inside the hash
chain): nothing in the worker ever changes or removes one (``revocation_answers.keep`` inserts with ON
CONFLICT DO NOTHING, which fires no UPDATE trigger), so the database refuses both, like it does for
``audit_log`` (revision 0001), as defence in depth beside ``vneid-sync audit verify``, which finds an answer
that is missing or whose bytes no longer hash to its name. Triggers only: nothing to rewrite, instant on a
ledger of any size. TRUNCATE and DROP (database owner rights) are not refused, as for ``audit_log``.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29 12:00:00.000000
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_REFUSAL = "revocation_answers is append-only"


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        # A function of its own, not audit_log's vneid_audit_append_only: the error names the table.
        op.execute(
            "CREATE FUNCTION vneid_revocation_answers_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ "
            f"BEGIN RAISE EXCEPTION '{_REFUSAL}'; END $$"
        )
        op.execute(
            "CREATE TRIGGER revocation_answers_append_only BEFORE UPDATE OR DELETE ON revocation_answers "
            "FOR EACH ROW EXECUTE FUNCTION vneid_revocation_answers_append_only()"
        )
    elif dialect == "sqlite":
        for action in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER revocation_answers_no_{action.lower()} BEFORE {action} ON revocation_answers "
                f"BEGIN SELECT RAISE(ABORT, '{_REFUSAL}'); END"
            )


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS revocation_answers_append_only ON revocation_answers")
        op.execute("DROP FUNCTION IF EXISTS vneid_revocation_answers_append_only()")
    elif dialect == "sqlite":
        for action in ("update", "delete"):
            op.execute(f"DROP TRIGGER IF EXISTS revocation_answers_no_{action}")
