"""`vneid-sync evidence`: the encrypted signed files and receipts — keys, rekey, retention purge, audited reads.

Every command that touches the sealed evidence first checks that the key ring opens every sealed row, and
stops with one line naming the missing key id otherwise: a missing key is found before anything depends on
it. Reading evidence (`show`) appends an `evidence_read` audit event naming the operator; nothing here prints
personal data (ids, states, hashes and counts only). `revocation-answer` exports a CA's OCSP response or CRL
kept in the ledger: not personal data, not sealed, so it needs no key and is not audited as a read.
"""

from __future__ import annotations

import hashlib
import json
import os
import pwd
import re
import socket
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table
from sqlalchemy.engine import Engine

from adapters.signers.revocation import at_use
from worker.bootstrap import evidence_keys, ledger_engine
from worker.cli.context import CliError, console, err_console, settings
from worker.ledger import audit, evidence_store, migrate, revocation_answers
from worker.ledger.audit import AuditEvent
from worker.ledger.db import utcnow
from worker.ledger.evidence_crypto import (
    EvidenceKeyError,
    EvidenceKeys,
    EvidenceKind,
    key_id,
    new_key,
    write_key_file,
)

evidence_group = typer.Typer(
    help="Encrypted evidence (signed files, receipts): keys, rekey, retention purge, audited export.",
    no_args_is_help=True,
)


def operator() -> str:
    """Who runs this command, for the audit log: the OS account, the person behind it, and the host.

    `vneid-sync-admin` runs commands as the service account (sudo, then runuser): the login name of the
    terminal and ``SUDO_USER`` still name the person who typed the command."""
    uid = os.geteuid()
    try:
        account = pwd.getpwuid(uid).pw_name
    except KeyError:  # a container user without a passwd entry
        account = f"uid {uid}"
    try:
        login: str | None = os.getlogin()
    except OSError:  # no controlling terminal (cron, a container, a test)
        login = None
    people = list(
        dict.fromkeys(name for name in (os.environ.get("SUDO_USER"), login) if name and name != account)
    )
    who = f"{account} (by {', '.join(people)})" if people else account
    return f"{who}@{socket.gethostname()}"


def _keys(ctx: typer.Context) -> EvidenceKeys:
    try:
        keys = evidence_keys(settings(ctx))
    except EvidenceKeyError as exc:
        raise CliError(str(exc), exit_code=2) from None
    if keys.generated_file is not None:
        err_console.print(
            f"warning: evidence key {keys.active_id} was generated in {keys.generated_file}: back it up, or "
            "configure evidence.key (docs/operations.md, 'Evidence encryption')",
            markup=False,
            highlight=False,
        )
    return keys


def _ledger(ctx: typer.Context) -> Engine:
    engine = ledger_engine(settings(ctx))
    if not migrate.is_up_to_date(engine):
        raise CliError("the ledger schema is not up to date: run `vneid-sync db upgrade`", exit_code=2)
    return engine


def _ledger_and_keys(ctx: typer.Context) -> tuple[Engine, EvidenceKeys]:
    """The ledger and the key ring, refusing to go on when the ring lacks a key some row was sealed with."""
    keys = _keys(ctx)
    engine = _ledger(ctx)
    with engine.connect() as conn:
        _check(evidence_store.census(conn), keys)
    return engine, keys


def _check(census: evidence_store.Census, keys: EvidenceKeys) -> None:
    try:
        census.check(keys)
    except EvidenceKeyError as exc:
        raise CliError(str(exc), exit_code=2) from None


def _write_private(path: Path, data: bytes) -> None:
    """Write a new file readable by its owner only; an existing file is never overwritten."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(data)


@evidence_group.command("new-key")
def new_key_command(
    out: Annotated[Path, typer.Option("--out", help="The new key file (created 0600; never overwritten).")],
) -> None:
    """Create an evidence key (32 random bytes, base64) and print its id. Back the file up before use."""
    if out.exists():
        raise CliError(f"{out} exists: a key file is never overwritten")
    key = new_key()
    write_key_file(out, key)
    console.print(f"evidence key {key_id(key)} written to {out}")
    console.print("back it up off this server now: the evidence it seals cannot be read without it")


@evidence_group.command("status")
def status_command(ctx: typer.Context) -> None:
    """The key ring and what the evidence table holds by key; exit 2 when a key the rows need is missing."""
    cfg = settings(ctx)
    keys = _keys(ctx)
    engine = _ledger(ctx)
    with engine.connect() as conn:
        found = evidence_store.census(conn)
        retention = cfg.delivery.evidence_retention_days
        eligible = (
            evidence_store.purge_expired(conn, retention_days=retention, now=utcnow(), dry_run=True).remaining
            if retention is not None
            else None
        )
    source = f"generated, {keys.generated_file}" if keys.generated_file else "evidence.key"
    table = Table("key id", "role", "sealed blobs")
    table.add_row(keys.active_id, f"active ({source})", str(found.sealed.get(keys.active_id, 0)))
    for retired in keys.retired_ids:
        table.add_row(retired, "retired", str(found.sealed.get(retired, 0)))
    missing = found.unopenable(keys)
    for absent, blobs in sorted(missing.items()):
        table.add_row(absent, "MISSING from the key ring", str(blobs))
    console.print(table)
    console.print(
        f"not sealed (written before encryption): {found.plain_documents} signed files, "
        f"{found.plain_receipts} receipts — `vneid-sync evidence rekey` seals them"
    )
    console.print(f"purged by retention: {found.purged}")
    if retention is None:
        console.print("retention: delivery.evidence_retention_days not set, evidence is kept for ever")
    else:
        console.print(f"retention: {retention} days; {eligible} version(s) eligible for `evidence purge` now")
    _check(found, keys)


@evidence_group.command("rekey")
def rekey_command(
    ctx: typer.Context,
    batch_size: Annotated[int, typer.Option(min=1, max=5000, help="Rows per transaction.")] = 500,
) -> None:
    """Re-seal with the active key every row another key (or no key, before encryption) sealed. Resumable.

    Each batch commits on its own: stop it at any time and run it again. Once done, a retired key seals
    nothing the ledger still needs (`evidence status` shows 0) and can be destroyed after the backups made
    while it was in use have aged out (crypto-shredding)."""
    engine, keys = _ledger_and_keys(ctx)
    documents = receipts = 0
    after = 0
    while True:
        with engine.begin() as conn:
            batch = evidence_store.rekey_batch(conn, keys, after_version_id=after, limit=batch_size)
        if batch.last_version_id is None:
            break
        after = batch.last_version_id
        documents += batch.documents
        receipts += batch.receipts
        console.print(f"re-sealed {documents} signed files and {receipts} receipts (up to version {after})")
    with engine.begin() as conn:
        audit.append(
            conn,
            [AuditEvent("evidence_rekeyed", detail={"key_id": keys.active_id, "documents": documents,
                                                     "receipts": receipts})],
            actor=operator(),
        )  # fmt: skip
    console.print(f"done: every stored blob is sealed with key {keys.active_id}")


@evidence_group.command("purge")
def purge_command(
    ctx: typer.Context,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Count what would be purged; change nothing.")
    ] = False,
    limit: Annotated[
        int, typer.Option(min=1, help="Versions per run (one transaction, one audit event).")
    ] = 50_000,
) -> None:
    """Delete the signed files and receipts of accepted versions whose visit is older than the retention.

    Uses delivery.evidence_retention_days (unset: keep for ever, nothing to do). Versions not accepted are
    never touched. The row keeps its hash and the date it was purged; each run appends one audit event."""
    cfg = settings(ctx)
    days = cfg.delivery.evidence_retention_days
    if days is None:
        console.print(
            "delivery.evidence_retention_days is not set: evidence is kept for ever, nothing to purge"
        )
        return
    engine, _ = _ledger_and_keys(ctx)
    actor = operator()
    purged = 0
    while True:
        with engine.begin() as conn:
            result = evidence_store.purge_expired(
                conn, retention_days=days, now=utcnow(), limit=limit, dry_run=dry_run, actor=actor
            )
        purged += result.purged
        if dry_run or result.remaining == 0 or result.purged == 0:
            break
    cutoff = result.cutoff.date().isoformat()
    if dry_run:
        console.print(f"dry run: {result.remaining} version(s) with a visit before {cutoff} would be purged")
    else:
        console.print(f"purged the evidence of {purged} version(s) with a visit before {cutoff}")


@evidence_group.command("show")
def show_command(
    ctx: typer.Context,
    ma_lk: Annotated[str, typer.Argument(help="The visit (MA_LK).")],
    out: Annotated[Path, typer.Option("--out", help="Write the exact signed bytes here (new file, 0600).")],
    version: Annotated[
        int | None, typer.Option("--version", help="This version id (default: the newest stored).")
    ] = None,
    receipt_out: Annotated[
        Path | None, typer.Option("--receipt", help="Also write the gateway's receipt (JSON) here.")
    ] = None,
) -> None:
    """Export one version's signed file exactly as sent (and its receipt). Audited: `evidence_read`."""
    for path in (out, receipt_out):
        if path is not None and path.exists():
            raise CliError(f"{path} exists: evidence is never written over a file")
    engine, keys = _ledger_and_keys(ctx)
    parts = [EvidenceKind.SIGNED_DOCUMENT, *([EvidenceKind.RECEIPT] if receipt_out else [])]
    with engine.begin() as conn:
        found = evidence_store.read_evidence(
            conn, keys, ma_lk=ma_lk, version_id=version, reader=operator(), parts=parts
        )
    if found is None:
        which = f"version {version} of MA_LK {ma_lk}" if version is not None else f"MA_LK {ma_lk}"
        raise CliError(f"no stored evidence for {which}")
    if found.document is None:
        purged = found.purged_at.date().isoformat() if found.purged_at else "an unknown date"
        raise CliError(f"the evidence of version {found.version_id} was purged (retention) on {purged}")
    if hashlib.sha256(found.document).hexdigest() != found.signed_sha256:
        raise CliError(f"version {found.version_id}: the stored bytes do not match their recorded SHA-256")
    _write_private(out, found.document)
    console.print(
        f"version {found.version_id} ({found.state}), sha256 {found.signed_sha256}, "
        f"{len(found.document)} bytes -> {out}"
    )
    console.print(found.signing_summary(), markup=False, highlight=False, soft_wrap=True)
    answer_line = _revocation_answer_line(engine, found.signing, found.stored_at)
    if answer_line is not None:
        console.print(answer_line, markup=False, highlight=False, soft_wrap=True)
    if receipt_out is not None:
        if found.receipt is None:
            console.print("no receipt stored for this version (no final answer from the gateway)")
        else:
            text = json.dumps(found.receipt, ensure_ascii=False, indent=2) + "\n"
            _write_private(receipt_out, text.encode("utf-8"))
            console.print(f"receipt -> {receipt_out}")


_KIND_NAMES = {"ocsp": "OCSP response", "crl": "CRL"}
_SHA256 = re.compile(r"[0-9a-fA-F]{64}")


def _revocation_answer_line(
    engine: Engine, signing: dict[str, object] | None, signed_at: datetime
) -> str | None:
    """Which kept CA answer the version's revocation status was derived from, and how to export it and have
    it judged at the time this version was signed (``signed_at``: when the signed file was recorded)."""
    record = (signing or {}).get("revocation")
    if not isinstance(record, dict) or record.get("state") in (None, "not_checked", "unknown"):
        return None  # nothing recorded, nothing checked, or no source answered: no answer to keep
    sha256 = record.get("answer_sha256")
    if not isinstance(sha256, str):
        return "CA's signed answer: not kept (signed before revocation answers were kept, revision 0004)"
    with engine.connect() as conn:
        kept = revocation_answers.describe(conn, sha256)
    if kept is None:
        return (
            f"CA's signed answer sha256 {sha256}: MISSING from the ledger (named by the signed audit event)"
        )
    serial = (signing or {}).get("cert_serial")
    return (
        f"CA's signed answer: {_KIND_NAMES.get(kept.kind, kept.kind)} sha256 {kept.sha256} ({kept.size} bytes); "
        f"export: vneid-sync evidence revocation-answer {kept.sha256} --out FILE "
        f"--at {signed_at.isoformat(timespec='seconds')}" + (f" --serial {serial}" if serial else "")
    )


def _moment(text: str) -> datetime:
    """``--at``: ISO 8601 with its offset (``2026-03-04T12:00:00+07:00``, ``…Z``), or Unix seconds."""
    try:
        moment = datetime.fromtimestamp(int(text), UTC) if text.isdigit() else datetime.fromisoformat(text)
    except (ValueError, OverflowError):
        raise typer.BadParameter(f"{text!r} is neither an ISO 8601 time nor Unix seconds") from None
    if moment.tzinfo is None:
        raise typer.BadParameter(f"{text!r} has no UTC offset (add Z or +07:00): the time would be a guess")
    return moment.astimezone(UTC)


def _serial(text: str) -> int:
    """``--serial``: hexadecimal, as ``cert_serial`` (``0x`` allowed)."""
    try:
        return int(text.removeprefix("0x").removeprefix("0X"), 16)
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not a hexadecimal serial number") from None


@evidence_group.command("revocation-answer")
def revocation_answer_command(
    ctx: typer.Context,
    sha256: Annotated[str, typer.Argument(help="The answer's SHA-256, as `evidence show` prints it.")],
    out: Annotated[Path, typer.Option("--out", help="Write the DER here (new file, never overwritten).")],
    at: Annotated[
        datetime | None,
        typer.Option(
            "--at",
            parser=_moment,
            metavar="TIME",
            help="The time of use to judge it at: when the version was signed, as `evidence show` prints "
            "it (ISO 8601 with offset, or Unix seconds). Default: when the ledger first relied on it.",
        ),
    ] = None,
    serial: Annotated[
        int | None,
        typer.Option(
            "--serial",
            parser=_serial,
            metavar="HEX",
            help="The signing certificate's serial (the signed event's cert_serial): which certificate an "
            "OCSP response must be about, and which entry of a CRL to look for.",
        ),
    ] = None,
) -> None:
    """Export a kept OCSP response or CRL (DER), the CA's signed answer a signature's status relied on, and
    judge it at the time it was used, not today.

    An answer speaks for a few days (thisUpdate to nextUpdate), so checked against today's date any old
    answer is stale. This command reads thisUpdate, nextUpdate and the certificate's entry from the CA's
    bytes and says whether the answer was valid at the time of use (--at, or when the ledger first relied on
    it): "valid at the time of use", or "stale at use" (used after its nextUpdate), "not yet valid at use",
    "revoked before use". It then prints the openssl commands that verify the CA's signature as of that time
    (-attime): `openssl ocsp ... -attime T` (openssl still warns "Status times invalid" for an answer past its
    nextUpdate: it compares those two dates with today whatever -attime says), and for a CRL
    `openssl verify -attime T -crl_check -CAfile CA.pem -CRLfile FILE CERT.pem`. Needs no evidence key (no
    personal data)."""
    if not _SHA256.fullmatch(sha256):
        raise CliError(f"{sha256!r} is not a SHA-256 (64 hexadecimal digits)")
    if out.exists():
        raise CliError(f"{out} exists: evidence is never written over a file")
    engine = _ledger(ctx)
    try:
        with engine.connect() as conn:
            kept = revocation_answers.read(conn, sha256)
    except revocation_answers.RevocationAnswerCorruptError as exc:
        raise CliError(str(exc)) from None
    if kept is None or kept.der is None:
        raise CliError(f"no revocation answer with SHA-256 {sha256.lower()} in the ledger")
    _write_private(out, kept.der)
    until = kept.next_update.isoformat() if kept.next_update else "none"
    console.print(
        f"{_KIND_NAMES.get(kept.kind, kept.kind)} from {kept.url} (this update {kept.this_update.isoformat()}, "
        f"next update {until}; first relied on {kept.first_used_at.isoformat()}), sha256 {kept.sha256}, "
        f"{kept.size} bytes -> {out}",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )
    used_at = at or kept.first_used_at
    judged = at_use.judge(kept.kind, kept.der, first_use=used_at, serial=serial)
    when = "--at" if at else "when the ledger first relied on it"
    console.print(
        f"at {used_at.isoformat(timespec='seconds')} ({when}): {judged.summary()}",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )
    for line in _openssl_lines(kept.kind, out, used_at, serial):
        console.print(line, markup=False, highlight=False, soft_wrap=True)


def _openssl_lines(kind: str, out: Path, used_at: datetime, serial: int | None) -> list[str]:
    """How an inspector reads the exported answer, and verifies the CA's signature on it as of ``used_at``
    (``-attime``): the responder's or CA's certificate may have expired since, which would fail today.
    CA.pem is the CA's certificate (``signer.trust_store``), CERT.pem the signing certificate."""
    attime = int(used_at.timestamp())
    if kind == "ocsp":
        named = f"0x{serial:x}" if serial is not None else "0x<cert_serial>"
        return [
            f"read it: openssl ocsp -respin {out} -text -noverify",
            f"verify it as of its use: openssl ocsp -respin {out} -issuer CA.pem -CAfile CA.pem -serial {named} "
            f"-no_nonce -attime {attime}",
            '  (openssl compares This Update/Next Update with today whatever -attime says: its "WARNING: '
            'Status times invalid" is expected once the answer is past its nextUpdate; the "at …" line '
            "above judged those dates at the time of use)",
        ]
    return [
        f"read it: openssl crl -inform DER -in {out} -text -noout",
        f"verify it as of its use: openssl verify -attime {attime} -crl_check -CAfile CA.pem -CRLfile {out} "
        "CERT.pem",
        '  ("CERT.pem: OK": at that time the CRL was current, signed by the CA, and did not list the '
        "certificate)",
    ]


def register(app: typer.Typer) -> None:
    app.add_typer(evidence_group, name="evidence")
