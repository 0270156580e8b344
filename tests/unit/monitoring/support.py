"""Shared by the monitoring tests: ledger rows built through the repository, a webhook receiver, a scraper,
a minimal SMTP sink (aiosmtpd is not installed), certificates with chosen validity periods and the monitoring
commands as a typer app."""

from __future__ import annotations

import base64
import hashlib
import json
import socketserver
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import IO, Any

import httpx
import sqlalchemy as sa
import typer
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.engine import Engine

from schemas.ports import EncounterRef
from worker.cli import monitor_cmd
from worker.ledger import repository as repo
from worker.ledger.evidence_crypto import EvidenceKeys, encode_key, new_key
from worker.ledger.repository import AttemptResult, WorkItem
from worker.ledger.states import State

FACILITY = "79999"
#: Seals the evidence these ledgers keep (in memory: nothing here reads it back after the test).
EVIDENCE_KEY = new_key()
EVIDENCE_KEYS = EvidenceKeys(EVIDENCE_KEY)
#: ``[evidence]`` naming that key: the alert and metric of the evidence key check that the configured key
#: opens the newest stored evidence, so settings used with these ledgers must name it.
EVIDENCE_SETTINGS = {"key": encode_key(EVIDENCE_KEY)}


# ------------------------------------------------------------------------------------------ ledger


def add_visit(engine: Engine, his_key: str, completed_at: datetime) -> WorkItem:
    """A completed visit the HIS showed: an encounter with a ``discovered`` version."""
    with engine.begin() as conn:
        ref = EncounterRef(his_key=his_key, completed_at=completed_at, changed_at=completed_at)
        registration = repo.register_refs(conn, [ref], facility_code=FACILITY)
        return repo.read_items(conn, registration.version_ids)[0]


def sign(engine: Engine, item: WorkItem) -> WorkItem:
    digest = hashlib.sha256(item.ma_lk.encode()).hexdigest()
    with engine.begin() as conn:
        repo.record_built(conn, item, content_hash=digest, tables=["XML1"], warnings=[])
        signed = f"<GIAMDINHHS>{item.ma_lk}</GIAMDINHHS>".encode()
        [built] = repo.read_items(conn, [item.version_id])
        repo.record_signed(
            conn,
            built,
            signed=signed,
            signed_sha256=hashlib.sha256(signed).hexdigest(),
            cert_serial="abc",
            keys=EVIDENCE_KEYS,
        )
        return repo.read_items(conn, [item.version_id])[0]


def attempt(
    engine: Engine,
    item: WorkItem,
    state: State,
    ma_ket_qua: str | None,
    *,
    destination: str = "bhxh",
    error_code: str | None = None,
) -> None:
    with engine.begin() as conn:
        repo.record_attempt(
            conn,
            item,
            destination=destination,
            result=AttemptResult(state, error_code=error_code),
            http_status=200 if ma_ket_qua else None,
            ma_ket_qua=ma_ket_qua,
            ma_giao_dich=None,
            thoi_gian_tiep_nhan=None,
            request_hash="0" * 64,
            receipt={},
            duplicate=False,
            keys=EVIDENCE_KEYS,
        )


def visit_in_state(engine: Engine, his_key: str, completed_at: datetime, state: State) -> WorkItem:
    """A visit moved through the repository into ``state``."""
    item = add_visit(engine, his_key, completed_at)
    if state is State.DISCOVERED:
        return item
    if state is State.QUARANTINED:
        with engine.begin() as conn:
            repo.record_quarantined(conn, item, source_hash="q" + his_key, issues=[{"rule": "R-NGAY"}])
        return item
    if state is State.HIDDEN:
        with engine.begin() as conn:
            repo.mark_hidden(conn, [item.ma_lk])
        return item
    signed = sign(engine, item)
    if state is State.SIGNED:
        return signed
    codes = {
        State.ACCEPTED: ("200", None),
        State.REJECTED: ("422", "gateway:422"),
        State.DEAD: ("500", "transient:500"),
        State.SUBMITTED: ("500", "transient:500"),
    }
    code, error = codes[state]
    attempt(engine, signed, state, code, error_code=error)
    return signed


def encounter_state(engine: Engine, ma_lk: str) -> str:
    from worker.ledger.schema import encounters

    with engine.connect() as conn:
        return str(
            conn.execute(sa.select(encounters.c.state).where(encounters.c.ma_lk == ma_lk)).scalar_one()
        )


# ------------------------------------------------------------------------------------------ commands


def monitor_cli() -> typer.Typer:
    """The monitoring commands (``health``, ``metrics``, ``alerts``) alone, for ``CliRunner``."""
    app = typer.Typer()

    @app.callback()
    def root() -> None:
        """No options of its own: the commands are its subcommands, as under ``vneid-sync``."""

    monitor_cmd.register(app)
    return app


# ------------------------------------------------------------------------------------------ scraping


Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(url: str) -> Samples:
    """GET the exposition over HTTP and parse it with prometheus-client's own parser."""
    response = httpx.get(url, timeout=10)
    response.raise_for_status()
    assert response.headers["content-type"].startswith("text/plain")
    samples: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def read_until(stream: IO[str], prefix: str, *, max_lines: int = 50) -> str:
    """The first line of a child's output starting with ``prefix`` (log lines may come before it)."""
    seen = []
    for _ in range(max_lines):
        line = stream.readline()
        if not line:
            break
        if line.startswith(prefix):
            return line.strip()
        seen.append(line)
    raise AssertionError(f"no line starting with {prefix!r}; output was: {''.join(seen)}")


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]


# ------------------------------------------------------------------------------------------ webhook


@dataclass
class Received:
    body: dict[str, Any]
    authorization: str | None


@dataclass
class WebhookReceiver:
    url: str
    messages: list[Received] = field(default_factory=list)
    status: int = 204  # what the receiver answers; set 500 to simulate an outage

    def statuses(self) -> list[tuple[str, str]]:
        return [(m.body["condition"], m.body["status"]) for m in self.messages]


@contextmanager
def webhook_receiver() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = json.loads(self.rfile.read(length))
            if receiver.status < 300:
                receiver.messages.append(Received(body, self.headers.get("Authorization")))
            self.send_response(receiver.status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *_args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    receiver.url = f"http://127.0.0.1:{server.server_port}/hook"
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


# ---------------------------------------------------------------------------------------------- SMTP


@dataclass
class SmtpSession:
    commands: list[str] = field(default_factory=list)
    auth: tuple[str, str] | None = None
    auth_over_tls: bool = False
    mail_from: str | None = None
    recipients: list[str] = field(default_factory=list)
    data: bytes = b""


@dataclass
class SmtpSink:
    host: str
    port: int
    sessions: list[SmtpSession] = field(default_factory=list)

    @property
    def delivered(self) -> list[SmtpSession]:
        return [session for session in self.sessions if session.data]


@contextmanager
def smtp_sink(tls: ssl.SSLContext | None) -> Iterator[SmtpSink]:
    """A minimal SMTP server: EHLO, optional STARTTLS (``tls`` given), AUTH PLAIN, MAIL, RCPT, DATA, QUIT."""
    sink = SmtpSink("127.0.0.1", 0)

    class Handler(socketserver.StreamRequestHandler):
        def handle(self) -> None:
            session = SmtpSession()
            sink.sessions.append(session)
            secure = False
            self._reply("220 sink ESMTP")
            while True:
                line = self.rfile.readline()
                if not line:
                    return
                command = line.decode().rstrip("\r\n")
                session.commands.append(command.split(" ", 1)[0].upper())
                verb = command.split(" ", 1)[0].upper()
                if verb in ("EHLO", "HELO"):
                    features = ["250-sink", "250-AUTH PLAIN"]
                    if tls is not None and not secure:
                        features.append("250-STARTTLS")
                    features.append("250 8BITMIME")
                    self._reply("\r\n".join(features))
                elif verb == "STARTTLS" and tls is not None:
                    self._reply("220 go ahead")
                    self.connection = tls.wrap_socket(self.connection, server_side=True)
                    self.rfile = self.connection.makefile("rb")
                    self.wfile = self.connection.makefile("wb", buffering=0)
                    secure = True
                elif verb == "AUTH":
                    _, mechanism, encoded = command.split(" ", 2)
                    assert mechanism.upper() == "PLAIN"
                    _, user, password = base64.b64decode(encoded).decode().split("\0")
                    session.auth, session.auth_over_tls = (user, password), secure
                    self._reply("235 ok")
                elif verb == "MAIL":
                    session.mail_from = command.split(":", 1)[1].strip().split()[0].strip("<>")
                    self._reply("250 ok")
                elif verb == "RCPT":
                    session.recipients.append(command.split(":", 1)[1].strip().strip("<>"))
                    self._reply("250 ok")
                elif verb == "DATA":
                    self._reply("354 end with .")
                    chunks = []
                    while (chunk := self.rfile.readline()) not in (b".\r\n", b""):
                        chunks.append(chunk)
                    session.data = b"".join(chunks)
                    self._reply("250 queued")
                elif verb == "QUIT":
                    self._reply("221 bye")
                    return
                else:
                    self._reply("250 ok")

        def _reply(self, text: str) -> None:
            self.wfile.write(text.encode() + b"\r\n")

    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    sink.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield sink
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@dataclass(frozen=True)
class TlsPair:
    server: ssl.SSLContext
    client: ssl.SSLContext


def localhost_tls(directory: Path) -> TlsPair:
    """A self-signed certificate for 127.0.0.1: the sink's server context and a client context trusting it."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(UTC)
    import ipaddress

    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(hours=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file = directory / "smtp-cert.pem"
    key_file = directory / "smtp-key.pem"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(cert_file, key_file)
    client = ssl.create_default_context(cafile=str(cert_file))
    return TlsPair(server, client)
