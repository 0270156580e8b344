"""A small, real hash-signing HTTP service speaking ``protocol`` v1: for tests, the demo and integrators.

It holds one RSA key (PKCS#12 or PEM, loaded like the ``file`` key source), checks a bearer token in constant
time, and signs SHA-256 hashes with RSASSA-PKCS1-v1_5 (it builds the DigestInfo: the worker sends bare hashes).
HTTP/1.1 keep-alive, one thread per connection (stdlib ``ThreadingHTTPServer``). It is a reference, not a
hardened HSM front-end: bind it to loopback or put TLS and network policy in front of it.

Run it: ``vneid-sync remote-signer serve --key KEY --cert CERT --port 8790`` (token from ``--token-file`` or
``signer.remote_token``), or in-process: ``with start_reference_server(material, token) as server: server.url``.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import threading
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from pydantic import SecretStr
from structlog import get_logger

from adapters.signers.keyfiles import KeyMaterial
from adapters.signers.remote import protocol

log = get_logger(__name__)


@dataclass
class ServerStats:
    """What the server has seen (tests use it to check keep-alive and auth)."""

    connections: int = 0
    signatures: int = 0
    rejected: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def count(self, name: str) -> None:
        with self._lock:
            setattr(self, name, getattr(self, name) + 1)


#: A too-large body up to this size is read and dropped instead of closing the connection under the client.
_DRAIN_LIMIT = 1024 * 1024


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, address: tuple[str, int], material: KeyMaterial, token: bytes) -> None:
        super().__init__(address, _Handler)
        self.material = material
        self.token = token
        self.stats = ServerStats()
        der = serialization.Encoding.DER
        self.certificate_body = json.dumps(
            {
                "certificate": base64.b64encode(material.certificate.public_bytes(der)).decode("ascii"),
                "chain": [base64.b64encode(c.public_bytes(der)).decode("ascii") for c in material.chain],
            }
        ).encode("utf-8")

    def process_request(self, request: Any, client_address: Any) -> None:
        self.stats.count("connections")
        super().process_request(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: every response carries Content-Length
    disable_nagle_algorithm = True  # small responses in two writes would otherwise wait for delayed ACKs
    server: _Server
    server_version = "vneid-sync-reference-signer"
    sys_version = ""

    # -- plumbing ----------------------------------------------------------------------------------------
    def _send(self, status: int, body: bytes, *, extra: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for name, value in (extra or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def _error(self, status: int, reason: str, *, extra: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps({"error": reason}).encode("utf-8"), extra=extra)

    def _authorised(self) -> bool:
        header = self.headers.get("Authorization", "")
        scheme, _, presented = header.partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(
            presented.strip().encode("utf-8"), self.server.token
        ):
            return True
        self.server.stats.count("rejected")
        self._error(
            HTTPStatus.UNAUTHORIZED, "missing or wrong bearer token", extra={"WWW-Authenticate": "Bearer"}
        )
        return False

    def _read_body(self) -> bytes | None:
        try:
            length = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            length = -1
        if length < 0 or length > protocol.MAX_REQUEST_BYTES:
            if 0 <= length <= _DRAIN_LIMIT:
                self.rfile.read(length)  # drained: the connection stays usable for the client's next request
            else:
                # Closing with unread data makes the kernel reset the connection: say so before closing.
                self.close_connection = True
            extra = {"Connection": "close"} if self.close_connection else None
            self._error(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "request body missing or too large", extra=extra)
            return None
        return self.rfile.read(length)

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        log.debug("remote_signer.request", method=self.command, path=self.path, status=str(code))

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("remote_signer.http_event", detail=format % args if args else format)

    # -- endpoints ---------------------------------------------------------------------------------------
    def do_GET(self) -> None:
        if self.path == protocol.HEALTH_PATH:
            self._send(HTTPStatus.OK, b'{"status": "ok"}')
        elif self.path == protocol.CERTIFICATE_PATH:
            if self._authorised():
                self._send(HTTPStatus.OK, self.server.certificate_body)
        else:
            self._error(HTTPStatus.NOT_FOUND, "no such endpoint")

    def do_POST(self) -> None:
        body = self._read_body()
        if body is None:
            return
        if self.path != protocol.SIGN_HASH_PATH:
            self._error(HTTPStatus.NOT_FOUND, "no such endpoint")
            return
        if not self._authorised():
            return
        try:
            request = json.loads(body)
            algorithm = request["hash_algorithm"]
            digest = base64.b64decode(request["hash"], validate=True)
        except (ValueError, KeyError, TypeError, binascii.Error):
            self._error(HTTPStatus.BAD_REQUEST, "expected JSON {hash_algorithm, hash (base64)}")
            return
        if algorithm != protocol.HASH_ALGORITHM or len(digest) != protocol.HASH_LENGTH:
            self._error(
                HTTPStatus.BAD_REQUEST, f"hash must be a bare {protocol.HASH_ALGORITHM} digest (32 bytes)"
            )
            return
        signature = self.server.material.private_key.sign(
            digest, padding.PKCS1v15(), Prehashed(hashes.SHA256())
        )
        self.server.stats.count("signatures")
        self._send(
            HTTPStatus.OK,
            json.dumps(
                {
                    "signature": base64.b64encode(signature).decode("ascii"),
                    "signature_algorithm": protocol.SIGNATURE_ALGORITHM,
                }
            ).encode("utf-8"),
        )

    def do_PUT(self) -> None:
        self._error(HTTPStatus.METHOD_NOT_ALLOWED, "method not allowed")

    def do_DELETE(self) -> None:
        self._error(HTTPStatus.METHOD_NOT_ALLOWED, "method not allowed")

    def do_PATCH(self) -> None:
        self._error(HTTPStatus.METHOD_NOT_ALLOWED, "method not allowed")


class ReferenceSigningServer:
    """The service bound to ``host:port`` (port 0 picks a free one); ``serve_forever`` or ``start``/``stop``."""

    def __init__(
        self, material: KeyMaterial, token: SecretStr | str, *, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        secret = token.get_secret_value() if isinstance(token, SecretStr) else token
        if len(secret) < 16:
            raise ValueError("the bearer token must be at least 16 characters")
        self._server = _Server((host, port), material, secret.encode("utf-8"))
        self._thread: threading.Thread | None = None

    @property
    def host(self) -> str:
        return str(self._server.server_address[0])

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def stats(self) -> ServerStats:
        return self._server.stats

    def serve_forever(self) -> None:
        log.info("remote_signer.listening", url=self.url)
        try:
            self._server.serve_forever(poll_interval=0.2)
        finally:
            self._server.server_close()

    def start(self) -> Self:
        """Serve from a daemon thread (tests, demo); ``stop`` ends it."""
        self._thread = threading.Thread(target=self.serve_forever, name="reference-signer", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is None:  # never started: ``shutdown`` would wait for a loop that is not running
            self._server.server_close()
            return
        self._server.shutdown()
        self._thread.join(timeout=5)
        self._thread = None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def start_reference_server(
    material: KeyMaterial, token: SecretStr | str, *, host: str = "127.0.0.1", port: int = 0
) -> ReferenceSigningServer:
    """Start the service in a background thread; use as a context manager to stop it."""
    return ReferenceSigningServer(material, token, host=host, port=port).start()
