"""Ledger tables (SQLAlchemy Core). Alembic migrations in ``worker/ledger/migrations`` create them.

- ``encounters``: one row per visit (MA_LK) the HIS showed as completed, with what coverage groups by.
- ``versions``: one row per encounter version (MA_LK + content hash) and its delivery state. A row in
  ``discovered`` state has no hash yet; once built it either becomes a new version or turns ``unchanged``.
  The due/lease columns make each row its own outbox entry: whatever is due and unleased gets enqueued.
- ``deliveries``: per extra destination (provincial hubs) — the primary destination's state is on ``versions``.
- ``audit_log``: append-only, hash-chained, one row per attempt and state change.
- ``evidence``: the exact signed bytes (compressed, encrypted) and the receipt (encrypted) of each version sent.
- ``revocation_answers``: the CA's signed OCSP responses and CRLs that signatures relied on, once each.
- ``checkpoints``: discovery watermark and backfill progress; ``destination_status``: stopped destinations;
  ``alert_state``: fired/cleared alert conditions.
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

TS = sa.DateTime(timezone=True)
BIGINT = sa.BigInteger().with_variant(sa.Integer(), "sqlite")  # SQLite autoincrement needs INTEGER

encounters = sa.Table(
    "encounters",
    metadata,
    sa.Column("ma_lk", sa.String(100), primary_key=True),
    sa.Column("his_key", sa.String(200), nullable=False),
    sa.Column("completed_at", TS, nullable=False),
    sa.Column("his_changed_at", TS, nullable=False),
    sa.Column("visit_type", sa.String(2)),
    sa.Column("department", sa.String(50)),
    sa.Column("insured", sa.Boolean),
    sa.Column("state", sa.String(20), nullable=False),
    sa.Column("current_version_id", BIGINT),
    sa.Column("accepted_at", TS),
    sa.Column("first_seen_at", TS, nullable=False),
    sa.Column("hidden_at", TS),
    # Serves every completed_at range and covers coverage's per-day read of (ma_lk, state, accepted_at),
    # which then never touches the table (revision 0002).
    sa.Index(None, "completed_at", "ma_lk", "state", "accepted_at"),
    sa.Index(None, "state", "completed_at"),
)

versions = sa.Table(
    "versions",
    metadata,
    sa.Column("id", BIGINT, primary_key=True, autoincrement=True),
    sa.Column("ma_lk", sa.String(100), sa.ForeignKey("encounters.ma_lk"), nullable=False),
    sa.Column("content_hash", sa.String(64)),
    sa.Column("state", sa.String(20), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("next_attempt_at", TS),
    sa.Column("lease_until", TS),
    sa.Column("lease_owner", sa.String(100)),
    sa.Column("enqueued_at", TS),
    sa.Column("last_error_code", sa.String(100)),
    sa.Column("last_error_detail", sa.Text),
    sa.Column("issues", sa.JSON),
    sa.Column("tables", sa.String(200)),
    sa.Column("signed_sha256", sa.String(64)),
    sa.Column("cert_serial", sa.String(80)),
    sa.Column("ma_ket_qua", sa.String(20)),
    sa.Column("ma_giao_dich", sa.String(100)),
    sa.Column("thoi_gian_tiep_nhan", sa.String(20)),
    sa.Column("his_changed_at", TS),
    sa.Column("created_at", TS, nullable=False),
    sa.Column("updated_at", TS, nullable=False),
    sa.Column("accepted_at", TS),
    sa.UniqueConstraint("ma_lk", "content_hash"),
    sa.Index(None, "state", "next_attempt_at"),
    sa.Index(None, "ma_lk"),
)

deliveries = sa.Table(
    "deliveries",
    metadata,
    sa.Column("version_id", BIGINT, sa.ForeignKey("versions.id"), primary_key=True),
    sa.Column("destination", sa.String(50), primary_key=True),
    sa.Column("state", sa.String(20), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("next_attempt_at", TS),
    sa.Column("last_error_code", sa.String(100)),
    sa.Column("ma_ket_qua", sa.String(20)),
    sa.Column("ma_giao_dich", sa.String(100)),
    sa.Column("thoi_gian_tiep_nhan", sa.String(20)),
    sa.Column("updated_at", TS, nullable=False),
    sa.Index(None, "state", "next_attempt_at"),
)

audit_log = sa.Table(
    "audit_log",
    metadata,
    sa.Column("id", BIGINT, primary_key=True, autoincrement=True),
    sa.Column("at", TS, nullable=False),
    sa.Column("actor", sa.String(200), nullable=False),
    sa.Column("event", sa.String(40), nullable=False),
    sa.Column("ma_lk", sa.String(100)),
    sa.Column("version_id", BIGINT),
    sa.Column("destination", sa.String(50)),
    sa.Column("request_hash", sa.String(64)),
    sa.Column("http_status", sa.Integer),
    sa.Column("ma_ket_qua", sa.String(20)),
    sa.Column("ma_giao_dich", sa.String(100)),
    sa.Column("thoi_gian_tiep_nhan", sa.String(20)),
    sa.Column("detail", sa.Text),
    sa.Column("prev_hash", sa.String(64), nullable=False),
    sa.Column("row_hash", sa.String(64), nullable=False),
    sa.Index(None, "ma_lk"),
    sa.Index(None, "at"),
)

# Sealed columns hold AES-256-GCM blobs (worker/ledger/evidence_crypto.py) under the key their *_key_id names.
# Rows written before revision 0003 hold the zlib bytes and the receipt in plain (key ids NULL) until
# `vneid-sync evidence rekey` seals them. A purge (retention) clears the bytes and keys, keeps the hash.
evidence = sa.Table(
    "evidence",
    metadata,
    sa.Column("version_id", BIGINT, sa.ForeignKey("versions.id"), primary_key=True),
    sa.Column("signed_sha256", sa.String(64), nullable=False),
    # Compressed (``compression``), then sealed; NULL once purged.
    sa.Column("signed_document", sa.LargeBinary),
    sa.Column("compression", sa.String(10), nullable=False),
    sa.Column("document_key_id", sa.String(32)),
    sa.Column("receipt", sa.JSON),  # plain receipt of rows from before revision 0003 only
    sa.Column("sealed_receipt", sa.LargeBinary),  # the receipt's JSON, sealed
    sa.Column("receipt_key_id", sa.String(32)),
    sa.Column("stored_at", TS, nullable=False),
    sa.Column("purged_at", TS),
)

# The CA's signed answers (DER OCSP response or CRL) the certificate status of signed versions was derived
# from (DOMAIN.md §10.5), keyed by the SHA-256 of the DER that the ``signed`` audit events name
# (``revocation.answer_sha256``). One row per distinct answer, however many versions relied on it: a CRL can
# be megabytes and serves every signature until the next one. ``der`` is compressed (``compression``), not
# encrypted: an OCSP response or a CRL holds serial numbers and dates of certificates, no personal data.
# Never purged by the evidence retention (revision 0004).
revocation_answers = sa.Table(
    "revocation_answers",
    metadata,
    sa.Column("sha256", sa.String(64), primary_key=True),
    sa.Column("kind", sa.String(10), nullable=False),  # "ocsp" or "crl"
    sa.Column("url", sa.Text, nullable=False),  # where it came from (a file path for signer.crl_file)
    sa.Column("this_update", TS, nullable=False),
    sa.Column("next_update", TS),
    sa.Column("der", sa.LargeBinary, nullable=False),
    sa.Column("compression", sa.String(10), nullable=False),
    sa.Column("size", sa.Integer, nullable=False),  # bytes of the DER before compression
    sa.Column("first_used_at", TS, nullable=False),  # when the first version signed under it was recorded
    sa.CheckConstraint("kind IN ('ocsp', 'crl')", name="kind"),
)

checkpoints = sa.Table(
    "checkpoints",
    metadata,
    sa.Column("name", sa.String(100), primary_key=True),
    sa.Column("changed_at", TS),
    sa.Column("his_key", sa.String(200)),
    sa.Column("payload", sa.JSON),
    sa.Column("updated_at", TS, nullable=False),
)

destination_status = sa.Table(
    "destination_status",
    metadata,
    sa.Column("destination", sa.String(50), primary_key=True),
    sa.Column("stopped", sa.Boolean, nullable=False),
    sa.Column("auth_failures", sa.Integer, nullable=False, server_default="0"),
    sa.Column("reason", sa.String(200)),
    sa.Column("since", TS, nullable=False),
)

alert_state = sa.Table(
    "alert_state",
    metadata,
    sa.Column("condition", sa.String(100), primary_key=True),
    sa.Column("firing", sa.Boolean, nullable=False),
    sa.Column("since", TS, nullable=False),
    sa.Column("detail", sa.Text),
)
