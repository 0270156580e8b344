"""Who may send what: the accounts, the tokens ``/api/token/take`` issues, and the checks of a file call's
token headers and form fields (DOMAIN.md §9; names and result codes from ``bhxh.protocol``)."""

from __future__ import annotations

import re
import secrets
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from adapters.gateway.bhxh import protocol
from adapters.gateway.simulator import checks
from adapters.gateway.simulator.config import Account, AccountStatus
from adapters.gateway.simulator.wire import Clock, FileRoute, Reply, SimRequest, json_reply, parse_form

_RAW_FILE_FIELD = re.compile(rf"(?:^|&){protocol.FIELD_FILE}=([^&]*)")


@dataclass(frozen=True, slots=True)
class _IssuedToken:
    username: str
    id_token: str
    expires_at: datetime


class TokenDesk:
    """The accounts and the tokens issued to them; thread-safe."""

    def __init__(
        self, accounts: Iterable[Account], *, lifetime_s: float, now: Clock, count: Callable[[str], None]
    ) -> None:
        self._lock = threading.Lock()
        self._lifetime = timedelta(seconds=lifetime_s)
        self._now = now
        self._count = count
        self._accounts = {account.username: account for account in accounts}
        self._tokens: dict[str, _IssuedToken] = {}

    def take(self, request: SimRequest) -> Reply:
        """Answer ``/api/token/take``: a token for a known, usable account, else the gateway's refusal."""
        form = parse_form(request.body)
        if form is None:
            return self._rejected(protocol.RESULT_UNAUTHENTICATED, "Dữ liệu gửi lên không hợp lệ")
        with self._lock:
            account = self._accounts.get(form.get(protocol.FIELD_USERNAME, ""))
        password = form.get(protocol.FIELD_PASSWORD, "")
        if account is None or not secrets.compare_digest(password.upper(), account.password_md5):
            return self._rejected(protocol.RESULT_UNAUTHENTICATED, "Tài khoản không tồn tại")
        if account.status is AccountStatus.WRONG_FACILITY:
            return self._rejected(protocol.RESULT_WRONG_FACILITY, "Sai mã cơ sở khám chữa bệnh")
        if account.status is AccountStatus.LOCKED:
            return self._rejected(protocol.RESULT_FORBIDDEN, "Tài khoản đã bị khóa")
        expires_at = self._now() + self._lifetime
        access_token, id_token = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
        with self._lock:
            self._tokens[access_token] = _IssuedToken(account.username, id_token, expires_at)
        self._count("tokens.issued")
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

    def _rejected(self, code: str, message: str) -> Reply:
        self._count(f"tokens.rejected.{code}")
        return json_reply({protocol.KEY_MA_KET_QUA: code, protocol.KEY_THONG_DIEP: message})

    def authenticate(self, request: SimRequest) -> Account:
        """The account a file call's token headers belong to; raises ``checks.Rejected`` otherwise."""
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
        if self._now() >= issued.expires_at:
            raise unauthenticated
        password_hash = headers.get(protocol.HEADER_PASSWORD_HASH.lower(), "").upper()
        if not secrets.compare_digest(password_hash, account.password_md5):
            raise unauthenticated
        if account.status is AccountStatus.LOCKED:
            raise checks.Rejected(protocol.RESULT_FORBIDDEN, "Tài khoản đã bị khóa")
        return account

    def revoke(self) -> int:
        """Invalidate every token now; how many there were."""
        with self._lock:
            revoked = len(self._tokens)
            self._tokens.clear()
        return revoked

    def replace_accounts(self, accounts: Iterable[Account]) -> None:
        with self._lock:
            self._accounts = {account.username: account for account in accounts}


def checked_form(
    request: SimRequest, route: FileRoute, account: Account, *, strict_encoding: bool
) -> dict[str, str]:
    """The form of a file call, every field present and matching the route and the account; raises
    ``checks.Rejected`` with the gateway's code otherwise."""
    bad = checks.CODE_BAD_REQUEST
    content_type = request.headers.get("content-type", "")
    if not content_type.lower().startswith(protocol.FORM_CONTENT_TYPE):
        raise checks.Rejected(bad, f"Content-Type phải là {protocol.FORM_CONTENT_TYPE}")
    form = parse_form(request.body)
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
    if strict_encoding:
        raw = _RAW_FILE_FIELD.search(request.body.decode("ascii", errors="replace"))
        if raw is not None and re.search(r"[+/=]", raw.group(1)):
            raise checks.Rejected(bad, "fileHSBase64: '+', '/', '=' phải được mã hóa phần trăm")
    return form
