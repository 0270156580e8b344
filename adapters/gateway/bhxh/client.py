"""The BHXH gateway client: implements ``schemas.ports.Gateway`` for one destination (DOMAIN.md §9, §12.1).

One ``submit`` = token (cached), then the check-in or send call with the exact signed bytes, classified.
Transient failures are retried a few times inside the call with short waits, a 401 triggers one re-login and
one retry; everything else is returned at once. The method never raises for gateway outcomes.

Logged: destination, kind, SHA-256 of the signed bytes, HTTP status, ``maKetQua``, ``maGiaoDich``, timings.
Never logged: the file, the form, tokens, the password (hash) or ``thongDiep`` (it may echo patient data).
"""

from __future__ import annotations

import hashlib
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

from structlog import get_logger
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_result,
    stop_after_attempt,
    stop_after_delay,
    wait_exponential,
    wait_random,
)

from adapters.gateway.bhxh import protocol
from adapters.gateway.bhxh.classify import (
    Classified,
    classify_send_response,
    classify_token_response,
    classify_transport_error,
)
from adapters.gateway.bhxh.config import BhxhGatewayConfig
from adapters.gateway.bhxh.http import GatewayHttp, HttpAnswer, NoAnswerError
from adapters.gateway.bhxh.rate_limit import TokenBucket
from adapters.gateway.bhxh.token_cache import AccessToken, Grant, TokenCache, TokenKey, utc_now
from adapters.user_agent import USER_AGENT
from schemas.ports import DocumentKind, GatewayReceipt, Outcome

log = get_logger(__name__)


class TokenUnavailableError(Exception):
    """The token call failed; carries the classified failure (codes only, no personal data)."""

    def __init__(self, failure: Classified) -> None:
        super().__init__(
            f"token call failed: {failure.outcome} http={failure.http_status} code={failure.ma_ket_qua}"
        )
        self.failure = failure


@dataclass
class _SubmitState:
    attempts: int = 0
    relogin_used: bool = False


#: Told about every token call: ``(destination, result, maKetQua)``, ``result`` being ``ok`` or the failure's
#: outcome (``config``, ``transient`` …). Plain values only: the worker's metrics are wired in from above.
TokenRequestCallback = Callable[[str, str, str | None], None]


class BhxhGateway:
    """``schemas.ports.Gateway`` for a destination speaking the BHXH API (BHXH itself or a compatible hub)."""

    def __init__(
        self,
        config: BhxhGatewayConfig,
        *,
        token_cache: TokenCache | None = None,
        rate_limiter: TokenBucket | None = None,
        sleep: Callable[[float], None] = time.sleep,
        on_token_request: TokenRequestCallback | None = None,
    ) -> None:
        self.name = config.name
        self._config = config
        self._tokens = token_cache or TokenCache(
            refresh_margin=timedelta(seconds=config.token_refresh_margin_s)
        )
        self._token_key: TokenKey = (config.name, config.username)
        self._rate = rate_limiter or TokenBucket(config.rate_per_s)
        self._sleep = sleep
        self._on_token_request = on_token_request
        self._password_md5 = protocol.password_md5(config.password.get_secret_value())
        self._http = GatewayHttp(
            config.base_url,
            tls=_tls_context(config),
            timeout_s=config.timeout_s,
            connect_timeout_s=config.connect_timeout_s,
            max_connections=config.max_connections,
            trust_env=config.trust_env,
            user_agent=USER_AGENT,
        )
        if not config.verify_tls:
            log.warning("gateway.tls_verification_disabled", destination=self.name)
        if self._http.proxy:
            log.info("gateway.proxy", destination=self.name, proxy=_without_credentials(self._http.proxy))

    @property
    def config(self) -> BhxhGatewayConfig:
        return self._config

    # -- the port --------------------------------------------------------------------------------------
    def submit(self, signed: bytes, kind: DocumentKind) -> GatewayReceipt:
        request_sha256 = hashlib.sha256(signed).hexdigest()
        started = time.monotonic()
        state = _SubmitState()
        file_base64 = protocol.encode_file(signed)
        retrying = Retrying(
            stop=stop_after_attempt(self._config.transient_attempts)
            | stop_after_delay(self._config.retry_budget_s),
            # exponential from retry_initial_wait_s, capped, plus up to retry_initial_wait_s of jitter
            wait=wait_exponential(
                multiplier=self._config.retry_initial_wait_s, max=self._config.retry_max_wait_s
            )
            + wait_random(0, self._config.retry_initial_wait_s),
            retry=retry_if_result(lambda result: result.outcome is Outcome.TRANSIENT),
            retry_error_callback=_last_result,
            before_sleep=lambda retry_state: self._log_retry(retry_state, kind, request_sha256),
            sleep=self._sleep,
        )
        result: Classified = retrying(self._attempt, file_base64, kind, state)
        elapsed_ms = (time.monotonic() - started) * 1000
        log.info(
            "gateway.submit",
            destination=self.name,
            kind=str(kind),
            request_sha256=request_sha256,
            outcome=str(result.outcome),
            http_status=result.http_status,
            ma_ket_qua=result.ma_ket_qua,
            ma_giao_dich=result.ma_giao_dich,
            duplicate=result.duplicate,
            error=result.error,
            attempts=state.attempts,
            relogin=state.relogin_used,
            elapsed_ms=round(elapsed_ms, 1),
        )
        return GatewayReceipt(
            outcome=result.outcome,
            http_status=result.http_status,
            ma_ket_qua=result.ma_ket_qua,
            ma_giao_dich=result.ma_giao_dich,
            thoi_gian_tiep_nhan=result.thoi_gian_tiep_nhan,
            thong_diep=result.thong_diep,
            request_sha256=request_sha256,
            elapsed_ms=elapsed_ms,
            duplicate=result.duplicate,
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> BhxhGateway:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # -- one attempt: token, post, one re-login on 401 -------------------------------------------------
    def _attempt(self, file_base64: str, kind: DocumentKind, state: _SubmitState) -> Classified:
        state.attempts += 1
        try:
            token = self._token()
            result = self._post_file(token, file_base64, kind)
            # One re-login per attempt: only a 401 right after a fresh login counts as AUTH. (Per submit
            # would turn a token revoked again between two transient retries into a stopped destination.)
            if result.outcome is Outcome.AUTH:
                state.relogin_used = True
                self._tokens.invalidate(self._token_key, token)
                log.info("gateway.relogin", destination=self.name, ma_ket_qua=result.ma_ket_qua)
                result = self._post_file(self._token(), file_base64, kind)
        except TokenUnavailableError as exc:
            return exc.failure
        return result

    def _token(self) -> AccessToken:
        return self._tokens.get(self._token_key, self._take_token)

    def _take_token(self) -> Grant:
        """``POST /api/token/take``; raises :class:`TokenUnavailableError` with a classified failure."""
        body = protocol.encode_form(
            {
                protocol.FIELD_USERNAME: self._config.username,
                protocol.FIELD_PASSWORD: self._password_md5,
            }
        )
        started = time.monotonic()
        try:
            response = self._request(self._config.token_path, body, headers={})
        except NoAnswerError as failure:
            error = type(failure.cause).__name__
            outcome = classify_transport_error(
                failure.cause, body_sent=False
            )  # a token call is safe to repeat
            log.warning("gateway.token.transport_error", destination=self.name, error=error)
            self._token_requested(outcome.value, None)
            raise TokenUnavailableError(Classified(outcome=outcome, error=error)) from None
        answer = classify_token_response(response.status, response.content, now=utc_now())
        log.info(
            "gateway.token.answer",
            destination=self.name,
            http_status=response.status,
            ok=answer.grant is not None,
            ma_ket_qua=answer.failure.ma_ket_qua if answer.failure else None,
            elapsed_ms=round((time.monotonic() - started) * 1000, 1),
        )
        if answer.failure is not None:
            self._token_requested(answer.failure.outcome.value, answer.failure.ma_ket_qua)
            raise TokenUnavailableError(answer.failure)
        assert answer.grant is not None
        self._token_requested("ok", protocol.RESULT_OK)
        return answer.grant

    def _token_requested(self, result: str, ma_ket_qua: str | None) -> None:
        if self._on_token_request is not None:
            self._on_token_request(self.name, result, ma_ket_qua)

    def _post_file(self, token: AccessToken, file_base64: str, kind: DocumentKind) -> Classified:
        is_checkin = kind is DocumentKind.CHECKIN
        body = protocol.encode_form(
            {
                protocol.FIELD_USERNAME: self._config.username,
                protocol.FIELD_LOAI_HO_SO: protocol.LOAI_HO_SO_CHECKIN
                if is_checkin
                else protocol.LOAI_HO_SO_CLAIM,
                protocol.FIELD_MA_TINH: self._config.province_code,
                protocol.FIELD_MA_CSKCB: self._config.facility_code,
                protocol.FIELD_FILE: file_base64,
            }
        )
        headers = {
            protocol.HEADER_ACCESS_TOKEN: token.access_token,
            protocol.HEADER_TOKEN_ID: token.id_token,
            protocol.HEADER_PASSWORD_HASH: self._password_md5,
        }
        path = self._config.checkin_path if is_checkin else self._config.send_path
        try:
            response = self._request(path, body, headers=headers)
        except NoAnswerError as failure:
            error = type(failure.cause).__name__
            outcome = classify_transport_error(failure.cause, body_sent=failure.body_sent)
            log.warning(
                "gateway.transport_error",
                destination=self.name,
                kind=str(kind),
                error=error,
                body_sent=failure.body_sent,
                outcome=str(outcome),
            )
            return Classified(outcome=outcome, error=error)
        return classify_send_response(response.status, response.content)

    def _request(self, path: str, body: bytes, *, headers: dict[str, str]) -> HttpAnswer:
        self._rate.acquire()
        return self._http.post(path, body, {"Content-Type": protocol.FORM_CONTENT_TYPE, **headers})

    def _log_retry(self, retry_state: RetryCallState, kind: DocumentKind, request_sha256: str) -> None:
        outcome = retry_state.outcome
        result = outcome.result() if outcome is not None and not outcome.failed else None
        log.info(
            "gateway.retry",
            destination=self.name,
            kind=str(kind),
            request_sha256=request_sha256,
            attempt=retry_state.attempt_number,
            http_status=result.http_status if isinstance(result, Classified) else None,
            ma_ket_qua=result.ma_ket_qua if isinstance(result, Classified) else None,
            error=result.error if isinstance(result, Classified) else None,
            wait_s=round(retry_state.upcoming_sleep, 3),
        )


def _last_result(retry_state: RetryCallState) -> Classified:
    """When the in-call retries are used up, return the last (transient) result instead of raising."""
    assert retry_state.outcome is not None
    result = retry_state.outcome.result()
    assert isinstance(result, Classified)
    return result


def _tls_context(config: BhxhGatewayConfig) -> ssl.SSLContext | None:
    """None: no verification. Otherwise the configured CA bundle, or the system's trust store (where a
    hospital adds its own CA; ``SSL_CERT_FILE``/``SSL_CERT_DIR`` apply when ``trust_env`` is on)."""
    if not config.verify_tls:
        return None
    if config.ca_bundle is not None:
        return ssl.create_default_context(cafile=str(config.ca_bundle))
    if not config.trust_env:  # the system's store as compiled in, whatever SSL_CERT_FILE says
        defaults = ssl.get_default_verify_paths()
        cafile = defaults.openssl_cafile if Path(defaults.openssl_cafile).is_file() else None
        return ssl.create_default_context(cafile=cafile, capath=defaults.openssl_capath)
    return ssl.create_default_context()


def _without_credentials(url: str) -> str:
    """A proxy URL fit for a log line: ``user:password@`` dropped."""
    parts = urlsplit(url)
    if not parts.hostname:
        return url
    return parts._replace(netloc=parts.hostname + (f":{parts.port}" if parts.port else "")).geturl()
