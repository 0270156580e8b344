"""Fault decisions: reproducible per seed, bounded, validated."""

from __future__ import annotations

import pytest

from adapters.gateway.simulator.faults import MAX_DELAY_S, FaultConfig, FaultInjector, FaultKind


def _kinds(injector: FaultInjector, count: int) -> list[FaultKind]:
    return [injector.decide(token_call=False).kind for _ in range(count)]


def test_same_seed_same_faults() -> None:
    config = FaultConfig(seed=7, http_5xx=0.2, http_429=0.1, lost_response=0.1, timeout=0.1)
    first, second = FaultInjector(config), FaultInjector(config)
    sequence = _kinds(first, 200)
    assert sequence == _kinds(second, 200)
    assert {FaultKind.NONE, FaultKind.HTTP_5XX, FaultKind.HTTP_429, FaultKind.LOST_RESPONSE} <= set(sequence)
    first.configure(config)  # reconfiguring restarts the sequence
    assert _kinds(first, 200) == sequence


def test_rates_are_respected_roughly() -> None:
    injector = FaultInjector(FaultConfig(seed=1, http_5xx=0.3))
    failures = sum(kind is FaultKind.HTTP_5XX for kind in _kinds(injector, 2000))
    assert 500 < failures < 700


def test_max_faults_bounds_the_injection() -> None:
    injector = FaultInjector(FaultConfig(http_5xx=1.0, max_faults=2))
    assert _kinds(injector, 5) == [FaultKind.HTTP_5XX] * 2 + [FaultKind.NONE] * 3
    assert injector.injected == 2


def test_token_calls_are_spared_unless_asked() -> None:
    spared = FaultInjector(FaultConfig(http_5xx=1.0))
    assert spared.decide(token_call=True).kind is FaultKind.NONE
    hit = FaultInjector(FaultConfig(http_5xx=1.0, on_token_calls=True))
    assert hit.decide(token_call=True).kind is FaultKind.HTTP_5XX


def test_file_only_faults_never_hit_token_calls() -> None:
    injector = FaultInjector(FaultConfig(lost_response=1.0, on_token_calls=True))
    assert injector.decide(token_call=True).kind is FaultKind.NONE


def test_forced_result_code_and_storm() -> None:
    decision = FaultInjector(FaultConfig(result_codes={"403": 1.0}, token_storm=1.0)).decide(token_call=False)
    assert (decision.kind, decision.result_code, decision.token_storm) == (FaultKind.RESULT_CODE, "403", True)


@pytest.mark.parametrize(
    "settings",
    [
        {"http_5xx": 1.5},
        {"http_5xx": -0.1},
        {"http_5xx": 0.6, "timeout": 0.6},
        {"timeout_s": MAX_DELAY_S + 1},
        {"slow_s": -1},
        {"max_faults": -1},
        {"result_codes": {"403": 2}},
        {"http5xx": 0.1},  # a typo must not silently disable a fault
    ],
)
def test_invalid_configurations_are_refused(settings: dict[str, object]) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - each case has its own message
        FaultConfig.from_mapping(settings)


def test_round_trip_through_a_mapping() -> None:
    config = FaultConfig(seed=3, result_codes={"999": 0.5}, slow=0.1, max_faults=4)
    assert FaultConfig.from_mapping(config.to_dict()) == config
