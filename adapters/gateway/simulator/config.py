"""Configuration of the gateway simulator: accounts, token lifetime, checks, faults (JSON or TOML files)."""

from __future__ import annotations

import json
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from enum import StrEnum
from pathlib import Path
from typing import Any, Self

from adapters.gateway.bhxh import protocol
from adapters.gateway.simulator.checks import SignatureVerifierName, StructureCheck
from adapters.gateway.simulator.faults import FaultConfig


class AccountStatus(StrEnum):
    ACTIVE = "active"
    LOCKED = "locked"  # token call answers 403; a send with a token issued before the lock too
    WRONG_FACILITY = "wrong_facility"  # token call answers 402


@dataclass(frozen=True, slots=True)
class Account:
    username: str
    password_md5: str = field(repr=False)  # upper-case hex, as the client sends it
    facility_code: str
    province_code: str | None = None  # maTinh expected; default: first 2 characters of facility_code
    status: AccountStatus = AccountStatus.ACTIVE

    @classmethod
    def with_password(
        cls, username: str, password: str, facility_code: str, *, status: AccountStatus = AccountStatus.ACTIVE
    ) -> Self:
        return cls(username, protocol.password_md5(password), facility_code, status=status)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> Self:
        """``{username, password | password_md5, facility_code, province_code?, status?}``."""
        values = dict(data)
        if "password" in values:
            values["password_md5"] = protocol.password_md5(str(values.pop("password")))
        values["password_md5"] = str(values["password_md5"]).upper()
        if "status" in values:
            values["status"] = AccountStatus(values["status"])
        return cls(**values)

    @property
    def expected_province(self) -> str:
        return self.province_code or self.facility_code[:2]

    def to_json(self) -> dict[str, Any]:
        return {
            "username": self.username,
            "facility_code": self.facility_code,
            "province_code": self.expected_province,
            "status": str(self.status),
        }


def demo_account() -> Account:
    """Matches the defaults of ``adapters.gateway.settings.DestinationSettings``, so the demo works unconfigured."""
    return Account.with_password("79999_BV", "demo-password", "79999")


@dataclass(frozen=True, slots=True)
class SimulatorConfig:
    accounts: tuple[Account, ...] = field(default_factory=lambda: (demo_account(),))
    token_lifetime_s: float = 3600.0
    variants: tuple[str, ...] = protocol.VARIANTS
    trust_store: Path | None = None  # PEM CA bundle; None: signatures are required but not verified
    signature_verifier: SignatureVerifierName = "xmlsec1"  # or "signers" (in process; see checks.py)
    structure_check: StructureCheck = "auto"  # auto: XSD via schemas once available, else minimal
    strict_form_encoding: bool = True  # reject fileHSBase64 with unencoded '+', '/', '='
    keep_files: bool = True  # store the received bytes (GET /_sim/accepted/<maGiaoDich>/file)
    max_body_bytes: int = 64 * 1024 * 1024
    faults: FaultConfig = field(default_factory=FaultConfig)

    def __post_init__(self) -> None:
        if self.token_lifetime_s <= 0:
            raise ValueError("token_lifetime_s must be positive")
        unknown = sorted(set(self.variants) - set(protocol.VARIANTS))
        if unknown:
            raise ValueError(f"unknown variants: {', '.join(unknown)}")

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> Self:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown simulator settings: {', '.join(unknown)}")
        values = dict(data)
        if "accounts" in values:
            values["accounts"] = tuple(Account.from_mapping(item) for item in values["accounts"])
        if "variants" in values:
            values["variants"] = tuple(str(item) for item in values["variants"])
        if values.get("trust_store") is not None:
            values["trust_store"] = Path(values["trust_store"])
        if "faults" in values:
            values["faults"] = FaultConfig.from_mapping(values["faults"])
        return cls(**values)

    def with_faults(self, faults: FaultConfig) -> SimulatorConfig:
        return replace(self, faults=faults)


def read_mapping(path: Path) -> dict[str, Any]:
    """A JSON (``.json``) or TOML (anything else) file as a mapping."""
    text = path.read_text(encoding="utf-8")
    data: Any = json.loads(text) if path.suffix.lower() == ".json" else tomllib.loads(text)
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a table/object at the top level")
    return data


def load_faults(path: Path) -> FaultConfig:
    """A fault file: the fault settings at the top level, or under a ``[faults]`` table."""
    data = read_mapping(path)
    return FaultConfig.from_mapping(data.get("faults", data))


def load_simulator_config(path: Path) -> SimulatorConfig:
    return SimulatorConfig.from_mapping(read_mapping(path))


def resolve_config(
    *,
    config_file: Path | None = None,
    faults_file: Path | None = None,
    trust_store: Path | None = None,
    token_lifetime_s: float | None = None,
    accounts: tuple[Account, ...] | None = None,
    fault_overrides: Mapping[str, Any] | None = None,
) -> SimulatorConfig:
    """Command-line view: a config file, then a faults file, then single options, each overriding the last."""
    config = load_simulator_config(config_file) if config_file is not None else SimulatorConfig()
    faults = load_faults(faults_file) if faults_file is not None else config.faults
    if fault_overrides:
        faults = FaultConfig.from_mapping({**faults.to_dict(), **fault_overrides})
    changes: dict[str, Any] = {"faults": faults}
    if trust_store is not None:
        changes["trust_store"] = trust_store
    if token_lifetime_s is not None:
        changes["token_lifetime_s"] = token_lifetime_s
    if accounts:
        changes["accounts"] = accounts
    return replace(config, **changes)
