"""Client of the simulator's control API (``/_sim/…``), for tests, benches and the demo."""

from __future__ import annotations

import ssl
from types import TracebackType
from typing import Any

import httpx

from adapters.gateway.simulator.faults import FaultConfig


class SimulatorAdmin:
    def __init__(
        self, base_url: str, *, verify: ssl.SSLContext | bool = True, timeout_s: float = 10.0
    ) -> None:
        # trust_env off: a proxy named in the environment must not intercept calls to a local simulator
        self._client = httpx.Client(
            base_url=base_url.rstrip("/"), verify=verify, timeout=timeout_s, trust_env=False
        )

    def health(self) -> dict[str, Any]:
        return self._get("/_sim/health")

    def stats(self) -> dict[str, Any]:
        return self._get("/_sim/stats")

    def accepted(self, *, ma_lk: str | None = None, loai_ho_so: str | None = None) -> list[dict[str, Any]]:
        params = {name: value for name, value in (("ma_lk", ma_lk), ("loai_ho_so", loai_ho_so)) if value}
        records: list[dict[str, Any]] = self._get("/_sim/accepted", params=params)["records"]
        return records

    def accepted_file(self, ma_giao_dich: str) -> bytes:
        response = self._client.get(f"/_sim/accepted/{ma_giao_dich}/file")
        response.raise_for_status()
        return response.content

    def reset(self) -> None:
        self._post("/_sim/reset", {})

    def faults(self) -> dict[str, Any]:
        return self._get("/_sim/faults")

    def set_faults(self, faults: FaultConfig | None = None, **settings: Any) -> dict[str, Any]:
        """Replace the fault configuration (``FaultConfig`` or its fields as keywords; none: no faults)."""
        data = faults.to_dict() if faults is not None else FaultConfig.from_mapping(settings).to_dict()
        return self._post("/_sim/faults", data)

    def revoke_tokens(self) -> int:
        revoked: int = self._post("/_sim/tokens/revoke", {})["revoked"]
        return revoked

    def advance_clock(self, seconds: float) -> None:
        self._post("/_sim/clock", {"advance_s": seconds})

    def set_accounts(self, accounts: list[dict[str, Any]]) -> None:
        self._post("/_sim/accounts", {"accounts": accounts})

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> SimulatorAdmin:
        return self

    def __exit__(
        self, _type: type[BaseException] | None, _value: BaseException | None, _tb: TracebackType | None
    ) -> None:
        self.close()

    def _get(self, path: str, params: dict[str, str] | None = None) -> dict[str, Any]:
        response = self._client.get(path, params=params)
        response.raise_for_status()
        data: dict[str, Any] = response.json()
        return data

    def _post(self, path: str, data: dict[str, Any]) -> dict[str, Any]:
        response = self._client.post(path, json=data)
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result
