"""The gateway checks of ``vneid-sync health``: a real token call per enabled destination, and the clock
against the gateway's HTTP ``Date`` header, taken from the same token answer.

The check takes a real token for the configured account. Whether the gateway keeps older tokens of the
account valid is not documented (DOMAIN.md §9.6); if it does not, a running worker's next call gets a 401
and logs in again once (the client's normal path), so run this check on demand, not every few seconds.
"""

from __future__ import annotations

import ssl
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

import httpx

from adapters.gateway.bhxh import protocol
from adapters.gateway.bhxh.classify import classify_token_response
from adapters.gateway.bhxh.config import BhxhGatewayConfig
from worker.config import DestinationSettings, Settings
from worker.monitoring.check_result import CheckResult, Status
from worker.monitoring.errors import describe_error

#: Clock difference to the gateway above which the clock check warns (tokens, receipts and deadlines all
#: depend on the time; TCVN 14423:2026 §4.8 asks for synchronised clocks).
MAX_CLOCK_SKEW = timedelta(seconds=60)
#: Timeout of each network probe; a health check must answer quickly even when a service hangs.
PROBE_TIMEOUT_S = 10.0


@dataclass(frozen=True, slots=True)
class TokenProbe:
    """The answer of one ``POST /api/token/take``: classified, plus the gateway's clock."""

    ok: bool
    outcome: str
    http_status: int | None
    ma_ket_qua: str | None
    server_date: datetime | None  # the HTTP Date header
    local_midpoint: datetime  # our clock half-way through the call
    error: str | None = None


def probe_token(
    name: str, destination: DestinationSettings, *, facility_code: str, timeout_s: float = PROBE_TIMEOUT_S
) -> TokenProbe:
    """Take a token the way the gateway client does (same config, paths, password hash and classification).

    Written against ``adapters.gateway.bhxh`` public helpers because the client keeps its token call private.
    """
    config = BhxhGatewayConfig.from_settings(name, destination, default_facility_code=facility_code)
    verify: ssl.SSLContext | bool = config.verify_tls
    if config.verify_tls and config.ca_bundle is not None:
        verify = ssl.create_default_context(cafile=str(config.ca_bundle))
    body = protocol.encode_form(
        {
            protocol.FIELD_USERNAME: config.username,
            protocol.FIELD_PASSWORD: protocol.password_md5(config.password.get_secret_value()),
        }
    )
    before = datetime.now(UTC)
    started = time.monotonic()
    try:
        with httpx.Client(
            base_url=config.base_url, verify=verify, timeout=timeout_s, follow_redirects=False
        ) as client:
            response = client.post(
                config.token_path, content=body, headers={"Content-Type": protocol.FORM_CONTENT_TYPE}
            )
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        return TokenProbe(False, "transport", None, None, None, before, describe_error(exc))
    midpoint = before + timedelta(seconds=(time.monotonic() - started) / 2)
    answer = classify_token_response(response.status_code, response.content, now=datetime.now(UTC))
    failure = answer.failure
    return TokenProbe(
        ok=answer.grant is not None,
        outcome="accepted" if failure is None else failure.outcome.value,
        http_status=response.status_code,
        ma_ket_qua=failure.ma_ket_qua if failure is not None else "200",
        server_date=_http_date(response.headers.get("Date")),
        local_midpoint=midpoint,
    )


def _http_date(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def judge_token(name: str, probe: TokenProbe) -> CheckResult:
    check = f"gateway token ({name})"
    if probe.ok:
        return CheckResult(check, Status.OK, f"token issued (HTTP {probe.http_status})")
    if probe.error is not None:
        return CheckResult(check, Status.FAIL, f"unreachable: {probe.error}")
    return CheckResult(
        check,
        Status.FAIL,
        f"refused: {probe.outcome}, HTTP {probe.http_status}, maKetQua {probe.ma_ket_qua or '-'}"
        + (" — check the account, password and facility code" if probe.outcome == "config" else ""),
    )


def judge_clock(name: str, probe: TokenProbe, *, max_skew: timedelta = MAX_CLOCK_SKEW) -> CheckResult:
    check = f"clock skew ({name})"
    if probe.error is not None:
        return CheckResult(check, Status.WARN, "unknown: the gateway did not answer")
    if probe.server_date is None:
        return CheckResult(check, Status.WARN, "unknown: the gateway sent no Date header")
    skew = (probe.server_date - probe.local_midpoint).total_seconds()
    # The Date header has a resolution of one second: differences below that are noise.
    detail = f"{round(skew):+d} s against the gateway's clock"
    if abs(skew) > max_skew.total_seconds():
        return CheckResult(
            check, Status.WARN, detail + f" (over {max_skew.total_seconds():.0f} s: check NTP)"
        )
    return CheckResult(check, Status.OK, detail)


def check_gateways(settings: Settings, *, max_skew: timedelta = MAX_CLOCK_SKEW) -> list[CheckResult]:
    results: list[CheckResult] = []
    for name, destination in settings.destinations.items():
        if not destination.enabled:
            continue
        try:
            probe = probe_token(name, destination, facility_code=settings.payload.facility_code)
        except Exception as exc:  # e.g. an unreadable CA bundle: reported as FAIL
            results.append(CheckResult(f"gateway token ({name})", Status.FAIL, describe_error(exc)))
            continue
        results.append(judge_token(name, probe))
        results.append(judge_clock(name, probe, max_skew=max_skew))
    if not results:
        results.append(CheckResult("gateway", Status.FAIL, "no enabled destination is configured"))
    return results
