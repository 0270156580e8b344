"""Kept CA answers verified at the time the signatures relied on them, not today, on SQLite and PostgreSQL:
``audit verify`` judges each answer at the times of the signed events naming it (valid at the time of use a
month later, stale at use when an event relied on it past its nextUpdate), and ``evidence revocation-answer``
judges an exported answer at a given time and prints openssl commands that verify it as of then (``-attime``),
which this test runs. The signatures of a month ago are recorded with the ledger's clock set back a month."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives import serialization
from sqlalchemy.engine import Engine

from adapters.signers.testpki import (
    Issued,
    certificate_revocation_list,
    generate_ca,
    issue_ocsp_responder,
    issue_signing_certificate,
    ocsp_response,
)
from schemas.ports import EncounterRef
from tests.integration.ledger.evidence_support import FACILITY, signed_file
from tests.unit.signers.revocation_support import ocsp_request_for_serial
from worker.cli.app import main
from worker.ledger import audit
from worker.ledger import repository as repo
from worker.ledger.evidence_crypto import EvidenceKeys
from worker.ledger.revocation_answers import RevocationAnswer
from worker.ledger.schema import audit_log

KEYS = EvidenceKeys.generate()
#: Now, and a month ago, when the signatures relied on the answers. Whole seconds, as OCSP and CRL times.
NOW = datetime.now(UTC).replace(microsecond=0)
USED = NOW - timedelta(days=30)
THIS_UPDATE = USED - timedelta(hours=1)
NEXT_UPDATE = USED + timedelta(days=3)  # passed today, not when the answer was used


@dataclass(frozen=True)
class Pki:
    """A CA older than the signatures, the hospital certificate, and a delegated OCSP responder whose own
    certificate ran from a day before the use to ten days after it: expired today, as responders' do."""

    ca: Issued
    hospital: Issued
    responder: Issued
    directory: Path

    @property
    def serial(self) -> str:
        return f"{self.hospital.certificate.serial_number:x}"  # as the signed events record it

    def pem(self, name: str, issued: Issued) -> Path:
        path = self.directory / f"{name}.pem"
        path.write_bytes(issued.certificate.public_bytes(serialization.Encoding.PEM))
        return path


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    ca = generate_ca(key_size=2048, not_before=NOW - timedelta(days=400))
    hospital = issue_signing_certificate(ca, not_before=NOW - timedelta(days=200))
    responder = issue_ocsp_responder(ca, not_before=USED - timedelta(days=1), valid_days=11)
    return Pki(ca, hospital, responder, tmp_path_factory.mktemp("pki"))


def ocsp_answer(pki: Pki) -> RevocationAnswer:
    """The responder's answer about the hospital certificate, as the worker kept it a month ago."""
    request = ocsp_request_for_serial(pki.ca.certificate, pki.hospital.certificate.serial_number)
    der = ocsp_response(request, signer=pki.responder, this_update=THIS_UPDATE, next_update=NEXT_UPDATE,
                        include_signer_certificate=True)  # fmt: skip
    return kept("ocsp", der)


def crl_answer(pki: Pki) -> RevocationAnswer:
    return kept("crl", certificate_revocation_list(pki.ca, last_update=THIS_UPDATE, next_update=NEXT_UPDATE))


def kept(kind: str, der: bytes) -> RevocationAnswer:
    return RevocationAnswer(sha256=hashlib.sha256(der).hexdigest(), kind=kind, der=der, url=f"http://ca.test/{kind}",
                            this_update=THIS_UPDATE, next_update=NEXT_UPDATE)  # fmt: skip


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[datetime | None]:
    """The ledger's clock (audit events, evidence and first use of the answers): ``clock[0] = t`` sets it,
    ``None`` is the real time."""
    now: list[datetime | None] = [None]

    def utcnow() -> datetime:
        return now[0] or datetime.now(UTC)

    monkeypatch.setattr(audit, "utcnow", utcnow)
    monkeypatch.setattr(repo, "utcnow", utcnow)
    return now


def sign(engine: Engine, his_key: str, answer: RevocationAnswer, serial: str) -> int:
    """One version recorded as signed under ``answer`` with certificate ``serial``, through the repository
    as delivery does; returns its version id."""
    document = signed_file(his_key)
    with engine.begin() as conn:
        ref = EncounterRef(his_key=his_key, completed_at=USED, changed_at=USED)
        [item] = repo.read_items(conn, repo.register_refs(conn, [ref], facility_code=FACILITY).version_ids)
        digest = hashlib.sha256(document).hexdigest()
        repo.record_built(conn, item, content_hash=digest, tables=["XML1"], warnings=[])
        [item] = repo.read_items(conn, [item.version_id])
        status: dict[str, object] = {"policy": "warn", "state": "good", "source": answer.kind}
        signed = repo.Signed(item, document, digest, revocation=status, revocation_answer=answer)
        repo.record_signed_many(conn, [signed], cert_serial=serial, keys=KEYS)
    return item.version_id


#: ``vneid-sync ARGS`` on a ledger: (exit code, stdout lines, stderr lines).
Cli = Callable[..., tuple[int, list[str], list[str]]]


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Cli:
    def run(engine: Engine, *args: str) -> tuple[int, list[str], list[str]]:
        monkeypatch.setenv("VNEID_LEDGER__DATABASE_URL", engine.url.render_as_string(hide_password=False))
        capsys.readouterr()
        code = main(list(args))
        captured = capsys.readouterr()
        return code, captured.out.splitlines(), captured.err.splitlines()

    return run


def openssl(command: str, **files: Path) -> subprocess.CompletedProcess[str]:
    """Run an openssl command line as printed, its placeholder file names (CA.pem …) replaced by ``files``."""
    binary = shutil.which("openssl")
    if binary is None:
        pytest.fail("openssl is not on PATH (apt-get install openssl): the printed commands must be run")
    words = [str(files.get(word.replace(".", "_"), word)) for word in command.split()]
    assert words[0] == "openssl"
    return subprocess.run([binary, *words[1:]], capture_output=True, text=True, check=False)


def printed_command(lines: list[str], prefix: str) -> str:
    [line] = [line for line in lines if line.startswith(prefix)]
    return line.removeprefix(prefix)


# ---------------------------------------------------------------------------------------------- audit verify


def test_audit_verify_judges_each_answer_at_the_time_of_the_events_that_relied_on_it(
    ledger: Engine,
    pki: Pki,
    clock: list[datetime | None],
    cli: Cli,
) -> None:
    by_ocsp, by_crl = ocsp_answer(pki), crl_answer(pki)
    clock[0] = USED
    first = sign(ledger, "9001", by_ocsp, pki.serial)
    sign(ledger, "9002", by_crl, pki.serial)
    clock[0] = USED + timedelta(days=2)
    sign(ledger, "9003", by_ocsp, pki.serial)  # the same answer two days later: still before its nextUpdate
    clock[0] = None

    code, out, err = cli(ledger, "audit", "verify")
    assert (code, err) == (0, [])
    assert out[1:] == [
        "revocation answers intact: 2 kept, named by 3 signed events",
        "revocation answers valid at their time of use: 2 answers and certificates, judged at the times of the "
        "signed events that relied on them, not today",
    ]

    # A version signed today under the month-old OCSP answer: the answer had expired when it was relied on.
    late = sign(ledger, "9004", by_ocsp, pki.serial)
    with ledger.connect() as conn:
        assert audit.verify_chain(conn).ok  # without a judge: integrity only, as before
        report = audit.verify_chain(conn, judge=lambda *_, **__: None)
        assert report.ok
        assert report.answers.judged == 2
    code, out, err = cli(ledger, "audit", "verify")
    assert (code, out) == (1, [])
    events = {version: event for event, version in _signed_events(ledger)}
    [line, error] = err
    assert line.startswith(
        f"revocation answer {by_ocsp.sha256} stale at use: thisUpdate {THIS_UPDATE.isoformat()}, nextUpdate "
        f"{NEXT_UPDATE.isoformat()}; used on "
    )
    head, last_use = line.rsplit(" on ", 1)
    assert head.endswith(
        f", after its nextUpdate; relied on for certificate {pki.serial} by 3 signed events: event "
        f"{events[first]} (version {first}) on {USED.isoformat()} to event {events[late]} (version {late})"
    )
    assert datetime.fromisoformat(last_use) >= NOW - timedelta(
        seconds=1
    )  # today's event, not a month-old one
    assert f"used on {last_use}, after its nextUpdate" in line
    assert error.startswith(
        "error: 1 of 2 revocation answers did not hold when signed events relied on them (audit chain intact: "
    )


def test_an_answer_about_another_certificate_is_reported_for_the_events_naming_it(
    ledger: Engine,
    pki: Pki,
    clock: list[datetime | None],
    cli: Cli,
) -> None:
    clock[0] = USED
    version = sign(ledger, "9101", ocsp_answer(pki), "abcdef")  # the events name another certificate
    clock[0] = None
    code, _, err = cli(ledger, "audit", "verify")
    assert code == 1
    assert (
        "not about the certificate used: the OCSP response does not cover certificate serial abcdef; "
        in err[0]
    )
    assert err[0].endswith(f"by 1 signed event: event {_event_of(ledger, version)} (version {version}) on "
                           f"{USED.isoformat()}")  # fmt: skip


def _signed_events(engine: Engine) -> list[tuple[int, int]]:
    """(audit event id, version id) of every signed event."""
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(audit_log.c.id, audit_log.c.version_id).where(audit_log.c.event == "signed")
        )
        return [(row.id, row.version_id) for row in rows]


def _event_of(engine: Engine, version: int) -> int:
    return {v: e for e, v in _signed_events(engine)}[version]


# ------------------------------------------------------------------------------ evidence revocation-answer


def _export_as_of_use(
    ledger: Engine, pki: Pki, clock: list[datetime | None], cli: Cli, answer: RevocationAnswer, *,
    his_key: str, out_file: Path,
) -> list[str]:  # fmt: skip
    """Sign one file under ``answer`` at USED, then export the answer as of that use; the command's output."""
    clock[0] = USED
    sign(ledger, his_key, answer, pki.serial)
    clock[0] = None
    code, out, err = cli(
        ledger, "evidence", "revocation-answer", answer.sha256, "--out",
        str(out_file), "--at", USED.isoformat(), "--serial", pki.serial,
    )  # fmt: skip
    assert (code, err) == (0, [])
    return out


def test_an_exported_ocsp_answer_is_judged_and_verified_by_openssl_as_of_its_use(
    sqlite_ledger: Engine,
    pki: Pki,
    clock: list[datetime | None],
    cli: Cli,
    tmp_path: Path,
) -> None:
    answer = ocsp_answer(pki)
    out_file = tmp_path / "answer.der"
    out = _export_as_of_use(sqlite_ledger, pki, clock, cli, answer, his_key="9201", out_file=out_file)
    assert out_file.read_bytes() == answer.der
    assert out[1] == (
        f"at {USED.isoformat()} (--at): valid at the time of use: thisUpdate {THIS_UPDATE.isoformat()}, "
        f"nextUpdate {NEXT_UPDATE.isoformat()}; used on {USED.isoformat()}"
    )
    command = printed_command(out, "verify it as of its use: ")
    assert f"-attime {int(USED.timestamp())}" in command
    ca = pki.pem("ca", pki.ca)
    as_of_use = openssl(command, CA_pem=ca)
    assert as_of_use.returncode == 0, as_of_use.stderr
    assert "Response verify OK" in as_of_use.stdout + as_of_use.stderr
    assert as_of_use.stdout.startswith(f"0x{pki.serial}: ")
    assert "\ngood\n" in as_of_use.stdout
    # Today the responder's certificate has expired: without -attime the CA's signature cannot be verified.
    today = openssl(command.split(" -attime ")[0], CA_pem=ca)
    assert today.returncode != 0
    assert "certificate has expired" in today.stderr
    # openssl still judges the answer's own dates against today: the printed note says so.
    assert "Status times invalid" in as_of_use.stdout + as_of_use.stderr
    assert any("whatever -attime says" in line for line in out)

    # Judged at a time after its nextUpdate, the same answer is stale at use; by default, at its first use.
    code, out, _ = cli(
        sqlite_ledger, "evidence", "revocation-answer", answer.sha256, "--out",
        str(tmp_path / "again.der"), "--at", str(int(NOW.timestamp())),
    )  # fmt: skip
    assert code == 0
    assert out[1].startswith(f"at {NOW.isoformat()} (--at): stale at use: ")
    code, out, _ = cli(
        sqlite_ledger, "evidence", "revocation-answer", answer.sha256, "--out",
        str(tmp_path / "first.der"),
    )  # fmt: skip
    assert code == 0
    assert out[1].startswith(
        f"at {USED.isoformat()} (when the ledger first relied on it): valid at the time "
    )
    code, _, err = cli(
        sqlite_ledger, "evidence", "revocation-answer", answer.sha256, "--out",
        str(tmp_path / "naive.der"), "--at", "2026-03-04T12:00:00",
    )  # fmt: skip
    assert code == 2
    assert "has no UTC offset" in " ".join(err)
    assert not (tmp_path / "naive.der").exists()


def test_an_exported_crl_is_verified_by_openssl_as_of_its_use(
    sqlite_ledger: Engine,
    pki: Pki,
    clock: list[datetime | None],
    cli: Cli,
    tmp_path: Path,
) -> None:
    answer = crl_answer(pki)
    out = _export_as_of_use(
        sqlite_ledger, pki, clock, cli, answer, his_key="9301", out_file=tmp_path / "ca.crl"
    )
    assert out[1].startswith(f"at {USED.isoformat()} (--at): valid at the time of use: ")
    command = printed_command(out, "verify it as of its use: ")
    files = {"CA_pem": pki.pem("ca", pki.ca), "CERT_pem": pki.pem("hospital", pki.hospital)}
    as_of_use = openssl(command, **files)
    assert as_of_use.returncode == 0, as_of_use.stdout + as_of_use.stderr
    assert f"{files['CERT_pem']}: OK" in as_of_use.stdout
    today = openssl(command.replace(f"-attime {int(USED.timestamp())} ", ""), **files)
    assert today.returncode != 0
    assert "CRL has expired" in today.stdout + today.stderr
