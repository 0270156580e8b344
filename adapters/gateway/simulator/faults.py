"""Fault injection of the gateway simulator: what goes wrong, how often, reproducibly and within bounds.

One decision per request, drawn from a seeded RNG with a fixed number of draws per decision, so a given
seed and request order always produce the same faults. At most one "answer" fault per request (5xx, 429,
``maKetQua`` 500 or another forced code, non-JSON body, timeout, lost response); a token storm and a slow
answer can come on top. ``max_faults`` stops the injection after that many faults, so a test can say
"the first request fails, the rest succeed" with a rate of 1.0 and ``max_faults=1``.

Delays are capped (``MAX_DELAY_S``) and every wait ends early when the simulator stops.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from enum import StrEnum
from typing import Any, Self, TypeVar

MAX_DELAY_S = 120.0
_T = TypeVar("_T")
_HTTP_5XX_STATUSES = (500, 502, 503, 504)
_MALFORMED_BODIES = (
    b"<html><head><title>502 Bad Gateway</title></head><body>Bad Gateway</body></html>",
    b'{"maKetQua":"20',
    b"Service Unavailable",
    b"",
)


class FaultKind(StrEnum):
    NONE = "none"
    HTTP_5XX = "http_5xx"  # an HTML 5xx page, request not processed
    HTTP_429 = "http_429"  # too many requests, request not processed
    RESULT_500 = "result_500"  # HTTP 200, maKetQua 500 (system error), not processed
    RESULT_CODE = "result_code"  # HTTP 200 with a forced maKetQua from result_codes, not processed
    MALFORMED = "malformed"  # HTTP 200 with a body that is not JSON, not processed
    TIMEOUT = "timeout"  # processed and stored, the answer comes after timeout_s (client gave up)
    LOST_RESPONSE = "lost_response"  # processed and stored, the connection is dropped without an answer


@dataclass(frozen=True, slots=True)
class FaultConfig:
    """Rates are probabilities per request in [0, 1]; the answer faults together may not exceed 1."""

    seed: int | None = None
    http_5xx: float = 0.0
    http_429: float = 0.0
    result_500: float = 0.0
    result_codes: Mapping[str, float] = field(default_factory=dict)  # e.g. {"403": 1.0, "422": 0.1}
    malformed: float = 0.0
    timeout: float = 0.0
    lost_response: float = 0.0
    token_storm: float = 0.0  # revoke every token before the request is checked
    slow: float = 0.0
    slow_s: float = 0.5
    timeout_s: float = 5.0
    on_token_calls: bool = False  # also inject 5xx/429/malformed/timeout/slow into /api/token/take
    max_faults: int | None = None

    def __post_init__(self) -> None:
        for name in ("http_5xx", "http_429", "result_500", "malformed", "timeout", "lost_response"):
            _check_rate(name, getattr(self, name))
        for code, rate in self.result_codes.items():
            _check_rate(f"result_codes[{code}]", rate)
        _check_rate("token_storm", self.token_storm)
        _check_rate("slow", self.slow)
        if self.answer_fault_total > 1.0 + 1e-9:
            raise ValueError("the answer fault rates add up to more than 1")
        for name in ("slow_s", "timeout_s"):
            value = getattr(self, name)
            if not 0 <= value <= MAX_DELAY_S:
                raise ValueError(f"{name} must be between 0 and {MAX_DELAY_S} seconds")
        if self.max_faults is not None and self.max_faults < 0:
            raise ValueError("max_faults must not be negative")

    @property
    def answer_fault_total(self) -> float:
        return (
            self.http_5xx
            + self.http_429
            + self.result_500
            + sum(self.result_codes.values())
            + self.malformed
            + self.timeout
            + self.lost_response
        )

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> Self:
        """From JSON/TOML data; unknown keys are an error (a typo must not silently disable a fault)."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown fault settings: {', '.join(unknown)}")
        values = dict(data)
        if "result_codes" in values:
            values["result_codes"] = {
                str(code): float(rate) for code, rate in dict(values["result_codes"]).items()
            }
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["result_codes"] = dict(self.result_codes)
        return data


def _check_rate(name: str, rate: float) -> None:
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"{name} must be a probability between 0 and 1")


@dataclass(frozen=True, slots=True)
class FaultDecision:
    kind: FaultKind = FaultKind.NONE
    http_status: int = 200
    result_code: str | None = None  # RESULT_500 / RESULT_CODE
    body: bytes = b""  # MALFORMED
    delay_s: float = 0.0  # TIMEOUT: answer delay; otherwise the slow-answer delay before processing
    token_storm: bool = False

    @property
    def is_fault(self) -> bool:
        return self.kind is not FaultKind.NONE or self.token_storm or self.delay_s > 0


NO_FAULT = FaultDecision()


class FaultInjector:
    """Thread-safe source of fault decisions for one simulator."""

    def __init__(self, config: FaultConfig | None = None) -> None:
        self._lock = threading.Lock()
        self._config = config or FaultConfig()
        self._rng = random.Random(self._config.seed)  # noqa: S311 - reproducible test faults, not security
        self._injected = 0

    @property
    def config(self) -> FaultConfig:
        with self._lock:
            return self._config

    @property
    def injected(self) -> int:
        with self._lock:
            return self._injected

    def configure(self, config: FaultConfig) -> None:
        """Replace the configuration; the RNG restarts from the new seed and the fault budget is refilled."""
        with self._lock:
            self._config = config
            self._rng = random.Random(config.seed)  # noqa: S311 - reproducible test faults, not security
            self._injected = 0

    def decide(self, *, token_call: bool) -> FaultDecision:
        with self._lock:
            config = self._config
            # Always the same four draws, so the sequence depends only on the seed and the request order.
            storm_draw, slow_draw, answer_draw, pick_draw = (self._rng.random() for _ in range(4))
            if config.max_faults is not None and self._injected >= config.max_faults:
                return NO_FAULT
            if token_call and not config.on_token_calls:
                return NO_FAULT
            storm = not token_call and storm_draw < config.token_storm
            slow_s = config.slow_s if slow_draw < config.slow else 0.0
            decision = self._answer_fault(config, answer_draw, pick_draw, token_call=token_call)
            decision = FaultDecision(
                kind=decision.kind,
                http_status=decision.http_status,
                result_code=decision.result_code,
                body=decision.body,
                delay_s=decision.delay_s or slow_s,
                token_storm=storm,
            )
            if decision.is_fault:
                self._injected += 1
            return decision

    @staticmethod
    def _answer_fault(config: FaultConfig, draw: float, pick: float, *, token_call: bool) -> FaultDecision:
        candidates: list[tuple[float, FaultDecision]] = [
            (config.http_5xx, FaultDecision(FaultKind.HTTP_5XX, _pick(_HTTP_5XX_STATUSES, pick))),
            (config.http_429, FaultDecision(FaultKind.HTTP_429, 429)),
            (config.malformed, FaultDecision(FaultKind.MALFORMED, body=_pick(_MALFORMED_BODIES, pick))),
            (config.timeout, FaultDecision(FaultKind.TIMEOUT, delay_s=config.timeout_s)),
        ]
        if not token_call:  # these describe the file calls only
            candidates += [
                (config.result_500, FaultDecision(FaultKind.RESULT_500, result_code="500")),
                *(
                    (rate, FaultDecision(FaultKind.RESULT_CODE, result_code=code))
                    for code, rate in sorted(config.result_codes.items())
                ),
                (config.lost_response, FaultDecision(FaultKind.LOST_RESPONSE)),
            ]
        threshold = 0.0
        for rate, decision in candidates:
            threshold += rate
            if draw < threshold:
                return decision
        return NO_FAULT


def _pick(options: tuple[_T, ...], draw: float) -> _T:
    return options[min(int(draw * len(options)), len(options) - 1)]
