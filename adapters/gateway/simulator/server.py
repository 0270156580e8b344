"""The gateway simulator: a real HTTP(S) server speaking the BHXH API of DOMAIN.md §9, with fault injection.

``GatewaySimulator`` holds the behaviour (tokens, checks, receipts, duplicates, faults) and knows nothing of
sockets; ``SimulatorHTTPServer`` (stdlib ``ThreadingHTTPServer``) feeds it requests. Start it in a thread with
:func:`start_simulator_in_thread` (tests), as a process with ``python -m adapters.gateway.simulator`` or
``vneid-sync simulator serve``.

Gateway API (same paths, headers, fields and answers as the real gateway, per ``bhxh.protocol``):
``POST /api/token/take``; ``POST /api/qd130/checkInKcbQd{3176,4750}``; ``POST /api/qd130/guiHoSoXmlQD{3176,4750}``.

Control API for tests (no authentication: bind it to loopback):

- ``GET  /_sim/health``                      — liveness, which structure validator and verifier are in use
- ``GET  /_sim/stats``                       — counters: requests, accepted, duplicates, rejected per code, …
- ``GET  /_sim/accepted[?ma_lk=&loai_ho_so=]`` — accepted records (no file content)
- ``GET  /_sim/accepted/<maGiaoDich>/file``  — the exact bytes received
- ``POST /_sim/reset``                       — forget records, counters and tokens; faults back to the start
- ``GET|POST /_sim/faults``                  — read / replace the fault configuration (JSON)
- ``POST /_sim/tokens/revoke``               — invalidate every token now
- ``POST /_sim/clock``                       — ``{"advance_s": n}``: move the simulator's clock (token expiry)
- ``POST /_sim/accounts``                    — ``{"accounts": [...]}``: replace the accounts
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import socket
import ssl
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from structlog import get_logger

from adapters.gateway.bhxh import protocol
from adapters.gateway.simulator import checks
from adapters.gateway.simulator.config import Account, AccountStatus, SimulatorConfig
from adapters.gateway.simulator.faults import FaultConfig, FaultDecision, FaultInjector, FaultKind
from adapters.gateway.simulator.store import AcceptedRecord, SimulatorStore
from schemas.domain.values import VIETNAM_TZ

log = get_logger(__name__)

Clock = Callable[[], datetime]
JSON_TYPE = "application/json; charset=utf-8"
_SIM_PREFIX = "/_sim/"
_RAW_FILE_FIELD = re.compile(rf"(?:^|&){protocol.FIELD_FILE}=([^&]*)")


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class SimRequest:
    method: str
    path: str
    query: Mapping[str, list[str]]
    headers: Mapping[str, str]  # lower-case names
    body: bytes


@dataclass(frozen=True, slots=True)
class Reply:
    status: int = 200
    body: bytes = b""
    content_type: str = JSON_TYPE
    headers: Mapping[str, str] = field(default_factory=dict)
    drop_connection: bool = False  # "received but the response is lost"


def json_reply(data: Any, status: int = 200) -> Reply:
    return Reply(status=status, body=json.dumps(data, ensure_ascii=False).encode("utf-8"))


def _result(code: str, message: str, **extra: Any) -> Reply:
    return json_reply(
        {
            protocol.KEY_MA_KET_QUA: code,
            protocol.KEY_MA_GIAO_DICH: extra.pop("ma_giao_dich", None),
            protocol.KEY_THOI_GIAN_TIEP_NHAN: extra.pop("thoi_gian_tiep_nhan", None),
            protocol.KEY_THONG_DIEP: message,
            **extra,
        }
    )


@dataclass(frozen=True, slots=True)
class _IssuedToken:
    username: str
    id_token: str
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class _FileRoute:
    variant: str
    loai_ho_so: str
    endpoint: str  # "checkin" / "send"


class GatewaySimulator:
    """Behaviour of the simulated gateway; thread-safe."""

    def __init__(
        self,
        config: SimulatorConfig | None = None,
        *,
        state_dir: Path | None = None,
        clock: Clock = _utc_now,
    ) -> None:
        self.config = config or SimulatorConfig()
        self.store = SimulatorStore(state_dir, keep_files=self.config.keep_files)
        self.faults = FaultInjector(self.config.faults)
        self.stopping = threading.Event()
        self._clock = clock
        self._lock = threading.Lock()
        self._offset = timedelta(0)
        self._accounts = {account.username: account for account in self.config.accounts}
        self._tokens: dict[str, _IssuedToken] = {}
        self.structure_check = checks.resolve_structure_check(self.config.structure_check)
        trust_store = self.config.trust_store
        self._verifier = (
            checks.SignatureVerifier(trust_store, using=self.config.signature_verifier)
            if trust_store is not None
            else None
        )
        # Every parse, XSD check and signature check runs on this one thread. The HTTP server starts a thread
        # per request: lxml objects cached per thread were rebuilt for every request, and libxml2 state
        # created and freed across short-lived threads crashed the process (a double free) under a worker
        # keeping several requests in flight.
        self._inspector = ThreadPoolExecutor(max_workers=1, thread_name_prefix="simulator-inspect")
        self._routes: dict[str, _FileRoute] = {}
        for variant in self.config.variants:
            self._routes[protocol.checkin_path(variant)] = _FileRoute(
                variant, protocol.LOAI_HO_SO_CHECKIN, "checkin"
            )
            self._routes[protocol.send_path(variant)] = _FileRoute(variant, protocol.LOAI_HO_SO_CLAIM, "send")

    def close(self) -> None:
        self.stopping.set()
        self._inspector.shutdown(wait=True, cancel_futures=True)
        if self._verifier is not None:
            self._verifier.close()
        self.store.close()

    def now(self) -> datetime:
        with self._lock:
            return self._clock() + self._offset

    def wait(self, seconds: float) -> None:
        """Sleep for a fault, waking early when the simulator stops."""
        if seconds > 0:
            self.stopping.wait(seconds)

    # -- dispatch ------------------------------------------------------------------------------------------
    def handle(self, request: SimRequest) -> Reply:
        if request.path.startswith(_SIM_PREFIX):
            return self._control(request)
        if request.path == protocol.TOKEN_PATH or request.path in self._routes:
            if request.method != "POST":
                return Reply(status=405, body=b"Method Not Allowed", content_type="text/plain")
            if request.path == protocol.TOKEN_PATH:
                return self._token_call(request)
            return self._file_call(request, self._routes[request.path])
        return Reply(status=404, body=b"Not Found", content_type="text/plain")

    # -- /api/token/take -----------------------------------------------------------------------------------
    def _token_call(self, request: SimRequest) -> Reply:
        self.store.count("requests.token")
        decision = self.faults.decide(token_call=True)
        early = self._answer_fault(decision)
        if early is not None:
            return early
        if decision.kind is not FaultKind.TIMEOUT:
            self.wait(decision.delay_s)
        reply = self._take_token(request)
        if decision.kind is FaultKind.TIMEOUT:
            self.wait(decision.delay_s)
        return reply

    def _take_token(self, request: SimRequest) -> Reply:
        form = _parse_form(request.body)
        if form is None:
            return self._token_rejected(protocol.RESULT_UNAUTHENTICATED, "Dữ liệu gửi lên không hợp lệ")
        with self._lock:
            account = self._accounts.get(form.get(protocol.FIELD_USERNAME, ""))
        password = form.get(protocol.FIELD_PASSWORD, "")
        if account is None or not secrets.compare_digest(password.upper(), account.password_md5):
            return self._token_rejected(protocol.RESULT_UNAUTHENTICATED, "Tài khoản không tồn tại")
        if account.status is AccountStatus.WRONG_FACILITY:
            return self._token_rejected(protocol.RESULT_WRONG_FACILITY, "Sai mã cơ sở khám chữa bệnh")
        if account.status is AccountStatus.LOCKED:
            return self._token_rejected(protocol.RESULT_FORBIDDEN, "Tài khoản đã bị khóa")
        now = self.now()
        expires_at = now + timedelta(seconds=self.config.token_lifetime_s)
        access_token, id_token = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
        with self._lock:
            self._tokens[access_token] = _IssuedToken(account.username, id_token, expires_at)
        self.store.count("tokens.issued")
        return json_reply(
            {
                protocol.KEY_MA_KET_QUA: protocol.RESULT_OK,
                protocol.KEY_API_KEY: {
                    "access_token": access_token,
                    "id_token": id_token,
                    "token_type": "Bearer",
                    "username": account.username,
                    "expires_in": expires_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
                },
            }
        )

    def _token_rejected(self, code: str, message: str) -> Reply:
        self.store.count(f"tokens.rejected.{code}")
        return json_reply({protocol.KEY_MA_KET_QUA: code, protocol.KEY_THONG_DIEP: message})

    def revoke_tokens(self) -> int:
        with self._lock:
            revoked = len(self._tokens)
            self._tokens.clear()
        return revoked

    # -- check-in and send ---------------------------------------------------------------------------------
    def _file_call(self, request: SimRequest, route: _FileRoute) -> Reply:
        self.store.count(f"requests.{route.endpoint}")
        decision = self.faults.decide(token_call=False)
        if decision.token_storm:
            self.revoke_tokens()
            self.store.count("faults.token_storm")
        early = self._answer_fault(decision)
        if early is not None:
            return early
        if decision.kind is FaultKind.NONE:
            self.wait(decision.delay_s)  # a slow answer (0 when none)
            if decision.delay_s:
                self.store.count("faults.slow")
        reply = self._receive(request, route)
        if decision.kind is FaultKind.TIMEOUT:
            self.store.count("faults.timeout")
            self.wait(decision.delay_s)  # processed; the client has given up by the time we answer
        elif decision.kind is FaultKind.LOST_RESPONSE:
            self.store.count("faults.lost_response")
            return Reply(drop_connection=True)
        return reply

    def _answer_fault(self, decision: FaultDecision) -> Reply | None:
        """Faults that answer instead of processing the request."""
        kind = decision.kind
        if kind in (FaultKind.NONE, FaultKind.TIMEOUT, FaultKind.LOST_RESPONSE):
            return None
        self.store.count(f"faults.{kind}")
        if kind is FaultKind.HTTP_5XX:
            page = f"<html><body><h1>{decision.http_status}</h1>Service error</body></html>".encode()
            return Reply(status=decision.http_status, body=page, content_type="text/html")
        if kind is FaultKind.HTTP_429:
            return Reply(
                status=429, body=b"Too Many Requests", content_type="text/plain", headers={"Retry-After": "1"}
            )
        if kind is FaultKind.MALFORMED:
            return Reply(status=200, body=decision.body, content_type="text/html")
        code = decision.result_code or protocol.RESULT_SYSTEM_ERROR
        self.store.count(f"rejected.{code}")
        return _result(code, "Lỗi hệ thống" if code == protocol.RESULT_SYSTEM_ERROR else "Lỗi giả lập")

    def _receive(self, request: SimRequest, route: _FileRoute) -> Reply:
        try:
            account = self._authenticate(request)
            form = self._checked_form(request, route, account)
            document = checks.decode_base64(form[protocol.FIELD_FILE])
            inspection = self._inspector.submit(
                partial(
                    checks.inspect_document,
                    document,
                    loai_ho_so=route.loai_ho_so,
                    variant=route.variant,
                    verifier=self._verifier,
                    structure_check=self.structure_check,
                )
            ).result()
            if (
                inspection.facility_code is not None
                and inspection.facility_code != form[protocol.FIELD_MA_CSKCB]
            ):
                raise checks.Rejected(checks.CODE_FACILITY_MISMATCH, "MACSKCB trong hồ sơ khác maCSKCB")
        except checks.Rejected as rejected:
            self.store.count(f"rejected.{rejected.code}")
            log.debug("simulator.rejected", endpoint=route.endpoint, ma_ket_qua=rejected.code)
            return _result(rejected.code, rejected.message)
        now = self.now()
        candidate = AcceptedRecord(
            ma_giao_dich=uuid.uuid4().hex.upper(),
            thoi_gian_tiep_nhan=now.astimezone(VIETNAM_TZ).strftime(protocol.RECEIPT_TIME_FORMAT),
            received_at=now.isoformat(),
            endpoint=route.endpoint,
            variant=route.variant,
            loai_ho_so=route.loai_ho_so,
            username=account.username,
            ma_cskcb=form[protocol.FIELD_MA_CSKCB],
            ma_tinh=form[protocol.FIELD_MA_TINH],
            ma_lk=inspection.ma_lk,
            content_hash=inspection.content_hash,
            file_sha256=_sha256(document),
            file_size=len(document),
            tables=",".join(inspection.tables),
            signature_verified=inspection.signature_verified,
        )
        record, duplicate = self.store.accept(candidate, document)
        self.store.count("duplicates" if duplicate else "accepted")
        log.debug(
            "simulator.accepted",
            endpoint=route.endpoint,
            ma_lk=record.ma_lk,
            ma_giao_dich=record.ma_giao_dich,
            duplicate=duplicate,
        )
        if duplicate:
            return _result(
                protocol.RESULT_OK,
                "Hồ sơ đã được tiếp nhận trước đó",
                ma_giao_dich=record.ma_giao_dich,
                thoi_gian_tiep_nhan=record.thoi_gian_tiep_nhan,
                **{protocol.DUPLICATE_FLAG: True},
            )
        return _result(
            protocol.RESULT_OK,
            "Tiếp nhận hồ sơ thành công",
            ma_giao_dich=record.ma_giao_dich,
            thoi_gian_tiep_nhan=record.thoi_gian_tiep_nhan,
        )

    def _authenticate(self, request: SimRequest) -> Account:
        headers = request.headers
        access_token = headers.get(protocol.HEADER_ACCESS_TOKEN.lower(), "")
        with self._lock:
            issued = self._tokens.get(access_token)
            account = self._accounts.get(issued.username) if issued is not None else None
        unauthenticated = checks.Rejected(
            protocol.RESULT_UNAUTHENTICATED, "Token không hợp lệ hoặc đã hết hạn"
        )
        if issued is None or account is None:
            raise unauthenticated
        if not secrets.compare_digest(headers.get(protocol.HEADER_TOKEN_ID.lower(), ""), issued.id_token):
            raise unauthenticated
        if self.now() >= issued.expires_at:
            raise unauthenticated
        password_hash = headers.get(protocol.HEADER_PASSWORD_HASH.lower(), "").upper()
        if not secrets.compare_digest(password_hash, account.password_md5):
            raise unauthenticated
        if account.status is AccountStatus.LOCKED:
            raise checks.Rejected(protocol.RESULT_FORBIDDEN, "Tài khoản đã bị khóa")
        return account

    def _checked_form(self, request: SimRequest, route: _FileRoute, account: Account) -> dict[str, str]:
        bad = checks.CODE_BAD_REQUEST
        content_type = request.headers.get("content-type", "")
        if not content_type.lower().startswith(protocol.FORM_CONTENT_TYPE):
            raise checks.Rejected(bad, f"Content-Type phải là {protocol.FORM_CONTENT_TYPE}")
        form = _parse_form(request.body)
        if form is None:
            raise checks.Rejected(bad, "Dữ liệu form không hợp lệ")
        required = (
            protocol.FIELD_USERNAME,
            protocol.FIELD_LOAI_HO_SO,
            protocol.FIELD_MA_TINH,
            protocol.FIELD_MA_CSKCB,
            protocol.FIELD_FILE,
        )
        for name in required:
            if not form.get(name):
                raise checks.Rejected(bad, f"Thiếu trường {name}")
        if form[protocol.FIELD_USERNAME] != account.username:
            raise checks.Rejected(protocol.RESULT_UNAUTHENTICATED, "username không khớp token")
        if form[protocol.FIELD_LOAI_HO_SO] != route.loai_ho_so:
            raise checks.Rejected(bad, f"loaiHoSo phải là {route.loai_ho_so}")
        if form[protocol.FIELD_MA_CSKCB] != account.facility_code:
            raise checks.Rejected(protocol.RESULT_WRONG_FACILITY, "maCSKCB không thuộc tài khoản")
        if form[protocol.FIELD_MA_TINH] != account.expected_province:
            raise checks.Rejected(bad, "maTinh không khớp cơ sở KCB")
        if self.config.strict_form_encoding:
            raw = _RAW_FILE_FIELD.search(request.body.decode("ascii", errors="replace"))
            if raw is not None and re.search(r"[+/=]", raw.group(1)):
                raise checks.Rejected(bad, "fileHSBase64: '+', '/', '=' phải được mã hóa phần trăm")
        return form

    # -- control API ---------------------------------------------------------------------------------------
    def _control(self, request: SimRequest) -> Reply:
        path = request.path[len(_SIM_PREFIX) :].rstrip("/")
        method = request.method
        if method == "GET" and path == "health":
            return json_reply(self.health())
        if method == "GET" and path == "stats":
            return json_reply(self.stats())
        if method == "GET" and path == "accepted":
            records = self.store.accepted(
                ma_lk=_first(request.query, "ma_lk"), loai_ho_so=_first(request.query, "loai_ho_so")
            )
            return json_reply({"records": [record.to_json() for record in records]})
        match = re.fullmatch(r"accepted/([^/]+)/file", path)
        if method == "GET" and match:
            content = self.store.file(unquote(match.group(1)))
            if content is None:
                return Reply(status=404, body=b"Not Found", content_type="text/plain")
            return Reply(body=content, content_type="application/xml")
        if method == "GET" and path == "faults":
            return json_reply(self.faults.config.to_dict())
        if method == "POST":
            return self._control_post(path, request.body)
        return Reply(status=404, body=b"Not Found", content_type="text/plain")

    def _control_post(self, path: str, body: bytes) -> Reply:
        try:
            data: Any = json.loads(body or b"{}")
            if not isinstance(data, dict):
                raise ValueError("expected a JSON object")
            if path == "reset":
                self.reset()
                return json_reply({"ok": True})
            if path == "faults":
                self.faults.configure(FaultConfig.from_mapping(data))
                return json_reply(self.faults.config.to_dict())
            if path == "tokens/revoke":
                return json_reply({"revoked": self.revoke_tokens()})
            if path == "clock":
                with self._lock:
                    self._offset += timedelta(seconds=float(data.get("advance_s", 0)))
                return json_reply({"now": self.now().isoformat()})
            if path == "accounts":
                accounts = [Account.from_mapping(item) for item in data.get("accounts", [])]
                with self._lock:
                    self._accounts = {account.username: account for account in accounts}
                return json_reply({"accounts": [account.to_json() for account in accounts]})
        except (ValueError, TypeError, KeyError) as exc:
            return json_reply({"error": f"{type(exc).__name__}: {exc}"}, status=400)
        return Reply(status=404, body=b"Not Found", content_type="text/plain")

    def reset(self) -> None:
        """Records, counters, tokens and the clock offset are cleared; faults and accounts return to the
        start configuration."""
        self.store.reset()
        self.revoke_tokens()
        with self._lock:
            self._offset = timedelta(0)
            self._accounts = {account.username: account for account in self.config.accounts}
        self.faults.configure(self.config.faults)

    def health(self) -> dict[str, Any]:
        return {
            "ok": True,
            "variants": list(self.config.variants),
            "structure_check": self.structure_check,
            "signature_verifier": self._verifier.name if self._verifier is not None else None,
        }

    def stats(self) -> dict[str, Any]:
        result: dict[str, Any] = {
            "requests": {},
            "accepted": 0,
            "duplicates": 0,
            "rejected": {},
            "tokens": {"issued": 0, "rejected": {}},
            "faults": {},
        }
        for name, value in self.store.counters().items():
            node = result
            *parents, leaf = name.split(".")
            for part in parents:
                node = node.setdefault(part, {})
            node[leaf] = value
        result["records"] = len(self.store.accepted())
        return result


def _first(query: Mapping[str, list[str]], name: str) -> str | None:
    values = query.get(name)
    return values[0] if values else None


def _parse_form(body: bytes) -> dict[str, str] | None:
    try:
        text = body.decode("ascii")
    except UnicodeDecodeError:
        return None
    parsed = parse_qs(text, keep_blank_values=True)
    return {name: values[0] for name, values in parsed.items()}


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# ----------------------------------------------------------------------------------------------- HTTP layer
class _Handler(BaseHTTPRequestHandler):
    server: SimulatorHTTPServer
    protocol_version = "HTTP/1.1"  # keep-alive, as the client uses it
    timeout = 60  # idle keep-alive connections are closed after this
    disable_nagle_algorithm = True  # headers and body go out as separate writes: no 40 ms delayed-ACK stall
    server_version = "vneid-sync-gateway-simulator"

    def setup(self) -> None:
        if isinstance(self.request, ssl.SSLSocket):
            self.request.settimeout(self.timeout)
            self.request.do_handshake()  # here, in the handler thread, not in the accept loop
        super().setup()

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def _dispatch(self, method: str) -> None:
        simulator = self.server.simulator
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            self._write(Reply(status=411, body=b"Length Required", content_type="text/plain"), close=True)
            return
        length = int(self.headers.get("Content-Length") or 0)
        if length > simulator.config.max_body_bytes:
            self._write(Reply(status=413, body=b"Payload Too Large", content_type="text/plain"), close=True)
            return
        body = self.rfile.read(length) if length else b""
        url = urlsplit(self.path)
        request = SimRequest(
            method=method,
            path=url.path,
            query=parse_qs(url.query),
            headers={name.lower(): value for name, value in self.headers.items()},
            body=body,
        )
        reply = simulator.handle(request)
        if reply.drop_connection:
            self.close_connection = True
            with suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        self._write(reply)

    def _write(self, reply: Reply, *, close: bool = False) -> None:
        try:
            self.send_response(reply.status)
            self.send_header("Content-Type", reply.content_type)
            self.send_header("Content-Length", str(len(reply.body)))
            for name, value in reply.headers.items():
                self.send_header(name, value)
            if close:
                self.send_header("Connection", "close")
                self.close_connection = True
            self.end_headers()
            self.wfile.write(reply.body)
            self.wfile.flush()
        except OSError:  # the client left (it timed out): nothing to answer to
            self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the stdlib's per-request stderr line; requests are counted in the stats instead."""


class SimulatorHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self, address: tuple[str, int], simulator: GatewaySimulator, ssl_context: ssl.SSLContext | None = None
    ) -> None:
        super().__init__(address, _Handler)
        self.simulator = simulator
        self.scheme = "https" if ssl_context is not None else "http"
        if ssl_context is not None:
            self.socket = ssl_context.wrap_socket(
                self.socket, server_side=True, do_handshake_on_connect=False
            )

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        host_text = host.decode() if isinstance(host, bytes) else str(host)
        if ":" in host_text:
            host_text = f"[{host_text}]"
        return f"{self.scheme}://{host_text}:{port}"

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A failed TLS handshake or a client that vanished: not worth a traceback on stderr."""
        log.debug("simulator.connection_error", client=str(client_address[0]) if client_address else None)


def server_tls_context(cert_file: Path, key_file: Path) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(str(cert_file), str(key_file))
    return context


@dataclass
class RunningSimulator:
    """A simulator serving in a background thread; a context manager."""

    server: SimulatorHTTPServer
    simulator: GatewaySimulator
    thread: threading.Thread

    @property
    def url(self) -> str:
        return self.server.url

    def stop(self) -> None:
        self.simulator.stopping.set()  # wake handlers sleeping in a fault
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)
        self.simulator.close()

    def __enter__(self) -> RunningSimulator:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()


def start_simulator_in_thread(
    config: SimulatorConfig | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    state_dir: Path | None = None,
    ssl_context: ssl.SSLContext | None = None,
    clock: Clock = _utc_now,
) -> RunningSimulator:
    """Start serving on ``host:port`` (0: a free port) in a daemon thread; ``.url`` says where."""
    simulator = GatewaySimulator(config, state_dir=state_dir, clock=clock)
    try:
        server = SimulatorHTTPServer((host, port), simulator, ssl_context)
    except BaseException:
        simulator.close()
        raise
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.1}, name="gateway-simulator", daemon=True
    )
    thread.start()
    return RunningSimulator(server=server, simulator=simulator, thread=thread)


@contextmanager
def running_simulator(config: SimulatorConfig | None = None, **options: Any) -> Iterator[RunningSimulator]:
    running = start_simulator_in_thread(config, **options)
    try:
        yield running
    finally:
        running.stop()


LISTENING_PREFIX = "vneid-sync gateway simulator listening on "


def _print_flushed(line: str) -> None:
    print(line, flush=True)


def serve(
    config: SimulatorConfig,
    *,
    host: str,
    port: int,
    state_dir: Path | None,
    ssl_context: ssl.SSLContext | None = None,
    announce: Callable[[str], None] | None = None,
) -> None:
    """Serve in the foreground until interrupted (SIGINT/SIGTERM). ``announce`` gets one line with the URL
    (``LISTENING_PREFIX`` + URL), so a parent process started with ``--port 0`` learns the port."""
    import signal  # noqa: PLC0415 - only the foreground server installs handlers

    simulator = GatewaySimulator(config, state_dir=state_dir)
    server = SimulatorHTTPServer((host, port), simulator, ssl_context)

    def stop(_signum: int, _frame: object) -> None:
        simulator.stopping.set()
        threading.Thread(target=server.shutdown, daemon=True).start()  # shutdown() blocks: not in the handler

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        if host not in ("127.0.0.1", "::1", "localhost"):
            log.warning("simulator.control_api_exposed", host=host)
        log.info("simulator.started", url=server.url, structure_check=simulator.structure_check)
        (announce or _print_flushed)(LISTENING_PREFIX + server.url)
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        server.server_close()
        simulator.close()
