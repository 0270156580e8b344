"""A test CA's status services on a real HTTP server (127.0.0.1, port 0): OCSP, CRL and caIssuers.

The answers are made by ``adapters.signers.testpki`` and signed like a CA's; what the server does wrong is
switched per test (a forged signer, a stale answer, a wrong nonce, a down service). Every request is counted
by path, so tests can prove what was (not) asked. Time comes from a ``Clock`` shared with the checker.
``ca_services`` is the fixture of one test's CA (re-exported by the signers' conftests); ``guarded`` puts a fake
signer behind the real revocation guard, checking against it.
"""

from __future__ import annotations

import socket
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp

from adapters.signers.revocation import (
    RevocationChecker,
    RevocationConfig,
    RevocationGuardedSigner,
    RevocationPolicy,
)
from adapters.signers.testpki import (
    Issued,
    RevokedEntry,
    TestPkiFiles,
    certificate_revocation_list,
    create_test_pki,
    issue_signing_certificate,
    ocsp_error_response,
    ocsp_response,
)
from tests.fakes import FakeSigner
from tests.unit.signers.support import PkiSet

OCSP_PATH = "/ocsp"
CRL_PATH = "/ca.crl"
CA_ISSUERS_PATH = "/ca.cer"
#: What the guarded fake signers sign: the revocation guard does not look at the document.
UNSIGNED = b"<GIAMDINHHS><CHUKYDONVI/></GIAMDINHHS>"


@dataclass
class Clock:
    """The one "now" of a test: the CA's answers and the checker's freshness rules both read it."""

    # Whole seconds: OCSP and CRL times (GeneralizedTime) carry no fractions.
    now: datetime = field(default_factory=lambda: datetime.now(UTC).replace(microsecond=0))

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


def dead_url(path: str) -> str:
    """A URL on a port nothing listens on (bound, then closed): connecting is refused, as with a CA that is
    down or blocked by the hospital firewall."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}{path}"


@dataclass
class CaServices:
    """What the test CA's server answers; change the attributes to change its behaviour."""

    ca: Issued
    clock: Clock
    revoked: dict[int, RevokedEntry] = field(default_factory=dict)
    ocsp_revoked: dict[int, RevokedEntry] | None = None  # what OCSP answers say, when not ``revoked``
    #: Who signs OCSP answers: the CA (None), a delegated responder, or an impostor using the CA's name.
    ocsp_signer: Issued | None = None
    include_signer_certificate: bool = False
    ocsp_responder_id: ocsp.OCSPResponderEncoding = ocsp.OCSPResponderEncoding.HASH
    ocsp_validity: timedelta = timedelta(days=1)  # nextUpdate - thisUpdate
    ocsp_age: timedelta = timedelta(0)  # how long before "now" thisUpdate lies (stale answers)
    ocsp_error: ocsp.OCSPResponseStatus | None = None  # answer tryLater etc. instead
    ocsp_http_status: int = 200
    echo_nonce: bool = True
    forged_nonce: bytes | None = None  # echo this instead of the request's nonce (a replayed answer)
    known_serials: frozenset[int] | None = None  # others are answered "unknown"
    crl_signer: Issued | None = None  # None: the CA
    crl_validity: timedelta = timedelta(days=7)
    crl_age: timedelta = timedelta(0)
    crl_http_status: int = 200
    requests: Counter[str] = field(default_factory=Counter)
    base_url: str = ""

    @property
    def ocsp_url(self) -> str:
        return self.base_url + OCSP_PATH

    @property
    def crl_url(self) -> str:
        return self.base_url + CRL_PATH

    @property
    def ca_issuers_url(self) -> str:
        return self.base_url + CA_ISSUERS_PATH

    def issue(self, *, ocsp_url: str | None = "", crl_url: str | None = "", **options: Any) -> Issued:
        """A hospital certificate of this CA whose AIA/CRLDP name this server ("" → this server's URL)."""
        return issue_signing_certificate(
            self.ca,
            ocsp_url=self.ocsp_url if ocsp_url == "" else ocsp_url,
            crl_url=self.crl_url if crl_url == "" else crl_url,
            **options,
        )

    def revoke(self, certificate: x509.Certificate, reason: x509.ReasonFlags | None, *, at: datetime) -> None:
        self.revoked[certificate.serial_number] = (at, reason)

    # -- answers ---------------------------------------------------------------------------------------
    def answer_ocsp(self, body: bytes) -> tuple[int, bytes]:
        if self.ocsp_http_status != 200:
            return self.ocsp_http_status, b""
        if self.ocsp_error is not None:
            return 200, ocsp_error_response(self.ocsp_error)
        request = ocsp.load_der_ocsp_request(body)
        if self.forged_nonce is not None:
            request = _with_nonce(request, self.forged_nonce)
        this_update = self.clock.now - self.ocsp_age
        signer = self.ocsp_signer or self.ca
        return 200, ocsp_response(
            request,
            signer=signer,
            revoked=self.revoked if self.ocsp_revoked is None else self.ocsp_revoked,
            this_update=this_update,
            next_update=this_update + self.ocsp_validity,
            known_serials=self.known_serials,
            echo_nonce=self.echo_nonce,
            include_signer_certificate=self.include_signer_certificate,
            responder_id=self.ocsp_responder_id,
        )

    def answer_crl(self) -> tuple[int, bytes]:
        if self.crl_http_status != 200:
            return self.crl_http_status, b""
        last_update = self.clock.now - self.crl_age
        return 200, self.crl(last_update=last_update)

    def crl(self, *, last_update: datetime | None = None) -> bytes:
        last_update = last_update or self.clock.now
        return certificate_revocation_list(
            self.crl_signer or self.ca,
            self.revoked,
            last_update=last_update,
            next_update=last_update + self.crl_validity,
        )


def ocsp_request_for_serial(ca: x509.Certificate, serial: int) -> ocsp.OCSPRequest:
    """A request for the certificate ``serial`` of ``ca`` without the certificate itself (the CertID is all a
    responder reads): for answers about the ``cert_serial`` a test writes into signed events."""
    name_hash = hashes.Hash(hashes.SHA1())  # CertID hashing, as responders do (RFC 5019)
    name_hash.update(ca.subject.public_bytes())
    key_hash = x509.SubjectKeyIdentifier.from_public_key(ca.public_key()).digest  # SHA-1 of the key bits
    builder = ocsp.OCSPRequestBuilder().add_certificate_by_hash(
        name_hash.finalize(), key_hash, serial, hashes.SHA1()
    )
    return builder.build()


def _with_nonce(request: ocsp.OCSPRequest, nonce: bytes) -> ocsp.OCSPRequest:
    """The same request with another nonce, so the answer echoes a nonce we never sent."""
    builder = ocsp.OCSPRequestBuilder().add_certificate_by_hash(
        request.issuer_name_hash, request.issuer_key_hash, request.serial_number, request.hash_algorithm
    )
    return builder.add_extension(x509.OCSPNonce(nonce), critical=False).build()


def _handler(services: CaServices) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _reply(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            services.requests[self.path] += 1
            if self.path != OCSP_PATH:
                self._reply(404, b"", "text/plain")
                return
            status, answer = services.answer_ocsp(body)
            self._reply(status, answer, "application/ocsp-response")

        def do_GET(self) -> None:
            services.requests[self.path] += 1
            if self.path == CRL_PATH:
                status, answer = services.answer_crl()
                self._reply(status, answer, "application/pkix-crl")
            elif self.path == CA_ISSUERS_PATH:
                der = services.ca.certificate.public_bytes(serialization.Encoding.DER)
                self._reply(200, der, "application/pkix-cert")
            else:
                self._reply(404, b"", "text/plain")

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: the counters are what the tests read."""

    return Handler


@contextmanager
def serve_ca(ca: Issued, clock: Clock) -> Iterator[CaServices]:
    """The CA's services on 127.0.0.1 (port 0), for the duration of the block."""
    services = CaServices(ca=ca, clock=clock)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(services))
    server.daemon_threads = True
    services.base_url = f"http://127.0.0.1:{server.server_address[1]}"
    # A short poll interval: shutdown() waits up to one interval, at the end of every test.
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), name="test-ca", daemon=True)
    thread.start()
    try:
        yield services
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
def ca_services(pki: PkiSet) -> Iterator[CaServices]:
    """The test PKI's CA serving OCSP, CRL and caIssuers on 127.0.0.1 for one test, on a clock of its own."""
    with serve_ca(pki.ca, Clock()) as services:
        yield services


def guarded(
    services: CaServices,
    pki: PkiSet,
    cache: Path,
    certificate: x509.Certificate,
    policy: RevocationPolicy = RevocationPolicy.WARN,
    **config: Any,
) -> RevocationGuardedSigner:
    """A fake signer of ``certificate`` behind the real revocation guard, which asks ``services`` (their clock)
    and keeps its answers in ``cache``."""
    checker = RevocationChecker(
        RevocationConfig(policy=policy, trust_store=pki.ca_certificate, cache_dir=cache, **config),
        clock=services.clock,
    )
    return RevocationGuardedSigner(FakeSigner(certificate), checker, policy)


def key_naming(services: CaServices, directory: Path, *, reachable: bool = True) -> TestPkiFiles:
    """A hospital key whose certificate names these OCSP and CRL services (or dead addresses)."""
    return create_test_pki(
        directory,
        ca=services.ca,
        ocsp_url=services.ocsp_url if reachable else dead_url(OCSP_PATH),
        crl_url=services.crl_url if reachable else dead_url(CRL_PATH),
    )
