"""The gateway simulator: a real HTTP(S) server speaking the BHXH API of DOMAIN.md §9, with fault injection.

``GatewaySimulator`` holds the behaviour (routes, faults, receipts, duplicates, the control API) and knows
nothing of sockets; ``serving.SimulatorHTTPServer`` feeds it requests (start it with
``serving.start_simulator_in_thread``, ``python -m adapters.gateway.simulator`` or ``vneid-sync simulator
serve``). Accounts, tokens and the form checks live in ``access``; the request and reply values in ``wire``.

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
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from structlog import get_logger

from adapters.gateway.bhxh import protocol
from adapters.gateway.simulator import checks
from adapters.gateway.simulator.access import TokenDesk, checked_form
from adapters.gateway.simulator.config import Account, SimulatorConfig
from adapters.gateway.simulator.faults import FaultConfig, FaultDecision, FaultInjector, FaultKind
from adapters.gateway.simulator.store import AcceptedRecord, SimulatorStore
from adapters.gateway.simulator.wire import (
    NOT_FOUND,
    Clock,
    FileRoute,
    Reply,
    SimRequest,
    first_value,
    json_reply,
    result_reply,
    utc_now,
)
from schemas.domain.values import VIETNAM_TZ

log = get_logger(__name__)

_SIM_PREFIX = "/_sim/"


class GatewaySimulator:
    """Behaviour of the simulated gateway; thread-safe."""

    def __init__(
        self,
        config: SimulatorConfig | None = None,
        *,
        state_dir: Path | None = None,
        clock: Clock = utc_now,
    ) -> None:
        self.config = config or SimulatorConfig()
        self.store = SimulatorStore(state_dir, keep_files=self.config.keep_files)
        self.faults = FaultInjector(self.config.faults)
        self.stopping = threading.Event()
        self._clock = clock
        self._lock = threading.Lock()
        self._offset = timedelta(0)
        self.tokens = TokenDesk(
            self.config.accounts,
            lifetime_s=self.config.token_lifetime_s,
            now=self.now,
            count=self.store.count,
        )
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
        self._routes: dict[str, FileRoute] = {}
        for variant in self.config.variants:
            self._routes[protocol.checkin_path(variant)] = FileRoute(
                variant, protocol.LOAI_HO_SO_CHECKIN, "checkin"
            )
            self._routes[protocol.send_path(variant)] = FileRoute(variant, protocol.LOAI_HO_SO_CLAIM, "send")

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
        return NOT_FOUND

    # -- /api/token/take -----------------------------------------------------------------------------------
    def _token_call(self, request: SimRequest) -> Reply:
        self.store.count("requests.token")
        decision = self.faults.decide(token_call=True)
        early = self._answer_fault(decision)
        if early is not None:
            return early
        if decision.kind is not FaultKind.TIMEOUT:
            self.wait(decision.delay_s)
        reply = self.tokens.take(request)
        if decision.kind is FaultKind.TIMEOUT:
            self.wait(decision.delay_s)
        return reply

    def revoke_tokens(self) -> int:
        return self.tokens.revoke()

    # -- check-in and send ---------------------------------------------------------------------------------
    def _file_call(self, request: SimRequest, route: FileRoute) -> Reply:
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
        return result_reply(code, "Lỗi hệ thống" if code == protocol.RESULT_SYSTEM_ERROR else "Lỗi giả lập")

    def _receive(self, request: SimRequest, route: FileRoute) -> Reply:
        try:
            account = self.tokens.authenticate(request)
            form = checked_form(request, route, account, strict_encoding=self.config.strict_form_encoding)
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
            return result_reply(rejected.code, rejected.message)
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
            return result_reply(
                protocol.RESULT_OK,
                "Hồ sơ đã được tiếp nhận trước đó",
                ma_giao_dich=record.ma_giao_dich,
                thoi_gian_tiep_nhan=record.thoi_gian_tiep_nhan,
                **{protocol.DUPLICATE_FLAG: True},
            )
        return result_reply(
            protocol.RESULT_OK,
            "Tiếp nhận hồ sơ thành công",
            ma_giao_dich=record.ma_giao_dich,
            thoi_gian_tiep_nhan=record.thoi_gian_tiep_nhan,
        )

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
                ma_lk=first_value(request.query, "ma_lk"), loai_ho_so=first_value(request.query, "loai_ho_so")
            )
            return json_reply({"records": [record.to_json() for record in records]})
        match = re.fullmatch(r"accepted/([^/]+)/file", path)
        if method == "GET" and match:
            content = self.store.file(unquote(match.group(1)))
            if content is None:
                return NOT_FOUND
            return Reply(body=content, content_type="application/xml")
        if method == "GET" and path == "faults":
            return json_reply(self.faults.config.to_dict())
        if method == "POST":
            return self._control_post(path, request.body)
        return NOT_FOUND

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
                self.tokens.replace_accounts(accounts)
                return json_reply({"accounts": [account.to_json() for account in accounts]})
        except (ValueError, TypeError, KeyError) as exc:
            return json_reply({"error": f"{type(exc).__name__}: {exc}"}, status=400)
        return NOT_FOUND

    def reset(self) -> None:
        """Records, counters, tokens and the clock offset are cleared; faults and accounts return to the
        start configuration."""
        self.store.reset()
        self.revoke_tokens()
        with self._lock:
            self._offset = timedelta(0)
        self.tokens.replace_accounts(self.config.accounts)
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


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
