"""Typed configuration: defaults < TOML file (``--config`` / ``VNEID_CONFIG``) < ``*_FILE`` secrets < ``VNEID_*`` env.

Secrets are ``SecretStr`` and can be given directly in the environment or, better, as a file named by the same
variable with a ``_FILE`` suffix (``VNEID_DESTINATIONS__BHXH__PASSWORD_FILE=/run/secrets/bhxh``). They are never
printed: ``masked_dump`` is what ``config show`` prints. The defaults are the embedded ones: SQLite files under
``data_dir`` and a broker that needs no server, so the demo runs on a fresh machine.
"""

from __future__ import annotations

import os
import typing
from contextvars import ContextVar
from datetime import date, time, timedelta
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from adapters.gateway.settings import DestinationSettings
from adapters.his.settings import HisSettings
from adapters.settings import Section
from adapters.signers.settings import SignerSettings
from schemas.spec import Profile

__all__ = [
    "DestinationSettings",
    "HisSettings",
    "Settings",
    "SignerSettings",
    "load_settings",
    "masked_dump",
]

ENV_PREFIX = "VNEID_"
_config_file: ContextVar[Path | None] = ContextVar("vneid_config_file", default=None)


class LedgerSettings(Section):
    database_url: str | None = Field(
        None,
        description="SQLAlchemy URL of the ledger; default: SQLite under data_dir. PostgreSQL in production.",
    )
    password: SecretStr | None = Field(None, description="Ledger database password, if not in the URL.")
    pool_size: int = Field(5, ge=1, le=64, description="Connections kept open to the ledger per process.")


class BrokerSettings(Section):
    url: str | None = Field(
        None,
        description="Celery broker URL; default: an embedded SQLite broker (no server). Redis in production.",
    )
    password: SecretStr | None = Field(None, description="Broker password, if not in the URL.")
    visibility_timeout_s: int = Field(
        7200, ge=60, description="Redis visibility timeout; must exceed any countdown/ETA used by retries."
    )


class PayloadSettings(Section):
    facility_code: str = Field("79999", min_length=5, max_length=5, description="MACSKCB (5 characters).")
    profile: Profile = Field(Profile.QD3176, description="Table profile: qd3176 (live gateway) or qd4750.")
    xml8_for_every_visit: bool = Field(False, description="Send XML8 for every visit, not only 03/04/06.")
    checkin_for_non_bhyt: bool = Field(False, description="Send XML0 check-ins for non-BHYT visits too.")
    non_bhyt_tables: tuple[str, ...] = Field(
        ("XML1", "XML2", "XML3", "XML4", "XML8"), description="Tables sent for patients not using BHYT."
    )
    inner_xml_declaration: bool = Field(True, description="Keep <?xml …?> on each inner document.")
    hiv_filter: Literal["sskdt_only", "always", "never"] = Field(
        "sskdt_only", description="Drop XML6 and HIV-restricted lines: for non-BHYT sends, always, or never."
    )

    @field_validator("non_bhyt_tables")
    @classmethod
    def _known_tables(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        allowed = {f"XML{n}" for n in (*range(1, 12), 13, 14, 15)}
        unknown = sorted(set(value) - allowed)
        if unknown:
            raise ValueError(f"unknown tables: {', '.join(unknown)}")
        return value


class DeliverySettings(Section):
    batch_size: int = Field(50, ge=1, le=1000, description="Encounters per submission task.")
    submit_concurrency: int = Field(
        4,
        ge=1,
        le=32,
        description="Gateway requests in flight per batch (each destination's `max_connections` caps the "
        "connections; its `rate_per_s` still applies per worker process).",
    )
    max_attempts: int = Field(8, ge=1, description="Transient failures before a version goes dead.")
    backoff_base_s: float = Field(
        30.0, gt=0, description="First retry delay; doubles per attempt (with jitter)."
    )
    backoff_cap_s: float = Field(3600.0, gt=0, description="Longest retry delay.")
    discovery_interval_s: int = Field(60, ge=5, description="How often the beat runs watermark discovery.")
    sweep_interval_s: int = Field(
        900, ge=30, description="Date-range sweep that catches what the watermark missed."
    )
    sweep_days: int = Field(7, ge=1, description="How far back each periodic sweep compares HIS and ledger.")
    stuck_after_s: int = Field(900, ge=5, description="A row in flight longer than this is re-enqueued.")
    evidence_retention_days: int | None = Field(
        None,
        ge=1,
        description="Purge the signed bytes and receipt of accepted visits completed more than N days ago "
        "(nightly, audited; `vneid-sync evidence purge`). Default: keep forever. Medical-record law asks "
        "for years (≥ 10): check with your legal counsel.",
    )
    replay_rate_per_s: float = Field(5.0, gt=0, description="Default pace of `vneid-sync replay`.")


class EvidenceSettings(Section):
    """Encryption at rest of the signed files and receipts kept in the ledger (AES-256-GCM key ring).

    A key is 32 random bytes written base64 (`vneid-sync evidence new-key`); its id is derived from it. Keys
    are secrets: give them as files (`VNEID_EVIDENCE__KEY_FILE`, `VNEID_EVIDENCE__RETIRED_KEYS_FILE`). Losing a
    key loses the evidence it sealed: back every key up off the server."""

    key: SecretStr | None = Field(
        None,
        description="Active key (base64 of 32 bytes): seals new evidence and opens what it sealed (secret).",
    )
    retired_keys: SecretStr | None = Field(
        None,
        description="Earlier keys, base64, one per line: open the evidence they sealed, seal nothing (secret).",
    )
    generate_key: bool = Field(
        True,
        description="Without `key`, create one once in data_dir/evidence.key (0600) and warn: for the demo. "
        "Set false in production: a missing key then stops every process instead.",
    )


class DeadlineSettings(Section):
    legal_start: date = Field(date(2026, 1, 1), description="QĐ 31: every visit from this date.")
    target_hours: float = Field(3.0, gt=0, description="Send within this many hours of the visit end.")
    claim_working_days: int = Field(7, ge=1, description="TT 48 Đ7: payment request within N working days.")
    display_hours: float = Field(24.0, gt=0, description="VNeID display deadline (BHXH's duty).")
    holidays_file: Path | None = Field(None, description="One ISO date per line: non-working days.")


class LoggingSettings(Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("INFO", description="Log level.")
    format: Literal["auto", "json", "console"] = Field(
        "auto", description="auto: console on a TTY, else JSON."
    )


class MetricsSettings(Section):
    enabled: bool = Field(True, description="Serve Prometheus metrics.")
    host: str = Field("127.0.0.1", description="Address the metrics servers bind to.")
    port: int = Field(9464, ge=0, le=65535, description="Port of the ledger exporter (`vneid-sync metrics`).")
    worker_port: int = Field(
        9465,
        ge=0,
        le=65535,
        description="Port of a worker's in-process metrics (0: off); distinct from `port`.",
    )


class AlertSettings(Section):
    webhook_url: str | None = Field(None, description="POST alert transitions as JSON to this URL.")
    webhook_token: SecretStr | None = Field(None, description="Bearer token for the webhook (secret).")
    smtp_host: str | None = Field(None, description="SMTP server for alert e-mails.")
    smtp_port: int = Field(587, description="SMTP port (STARTTLS).")
    smtp_user: str | None = Field(None, description="SMTP login.")
    smtp_password: SecretStr | None = Field(None, description="SMTP password (secret).")
    email_from: str | None = Field(None, description="Sender address of alert e-mails.")
    email_to: tuple[str, ...] = Field((), description="Recipients of alert e-mails.")


class AuditSettings(Section):
    """Anchors of the audit chain: its head (last event id and row hash) sent off the server on a schedule, so
    that a rewrite of the whole chain by someone with the database owner's rights can be found
    (`vneid-sync audit verify --anchors FILE`). Off while neither recipient is set. E-mail goes through the
    `[alerts]` SMTP server and sender; send anchors to someone other than the alerts' recipients."""

    anchor_webhook_url: str | None = Field(
        None,
        description="POST each anchor as JSON to this URL (a system the database owner does not control).",
    )
    anchor_webhook_token: SecretStr | None = Field(
        None,
        description="Bearer token for the anchor webhook (secret); the alerts' token is never sent there.",
    )
    anchor_email_to: tuple[str, ...] = Field(
        (),
        description="E-mail each anchor to these addresses (e.g. the director's mailbox), through the [alerts] "
        "SMTP server and sender.",
    )
    anchor_every_h: float = Field(
        24.0, gt=0, description="Send an anchor this often (hours), from the scheduler (`vneid-sync beat`)."
    )
    anchor_stale_after_h: float | None = Field(
        None,
        gt=0,
        description="Alert `audit_anchor_stale` when no anchor has reached a recipient for this many hours "
        "(the scheduler stopped, or every send fails). Not set: anchor_every_h + 2.",
    )

    @model_validator(mode="after")
    def _stale_after_a_period(self) -> AuditSettings:
        if self.anchor_stale_after_h is not None and self.anchor_stale_after_h <= self.anchor_every_h:
            # A limit within one period fires between two punctual anchors.
            raise ValueError(
                f"audit.anchor_stale_after_h ({self.anchor_stale_after_h:g}) must be more than "
                f"audit.anchor_every_h ({self.anchor_every_h:g})"
            )
        return self

    @property
    def anchors_enabled(self) -> bool:
        return bool(self.anchor_webhook_url or self.anchor_email_to)

    @property
    def anchor_stale_after(self) -> timedelta:
        """The age past which the last anchor is stale: a period plus 2 hours unless set (the beat's task
        can wait behind a long discovery in the queue)."""
        hours = self.anchor_stale_after_h
        return timedelta(hours=hours if hours is not None else self.anchor_every_h + 2)


class FlowerSettings(Section):
    port: int = Field(5555, description="Flower's HTTP port.")
    address: str = Field("127.0.0.1", description="Address Flower binds to (0.0.0.0 in a container).")
    basic_auth: SecretStr | None = Field(None, description="user:password for Flower (secret).")


def _default_destinations() -> dict[str, DestinationSettings]:
    return {"bhxh": DestinationSettings()}


def _is_secret_field(model: type[BaseModel], path: list[str]) -> bool:
    """Whether ``path`` (lower-case parts) names a ``SecretStr`` setting, walking nested models and dicts."""
    annotation: Any = model
    parts = list(path)
    while parts:
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            field = annotation.model_fields.get(parts.pop(0))
            if field is None:
                return False
            annotation = field.annotation
            continue
        args = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        if typing.get_origin(annotation) is dict and len(args) == 2:
            parts.pop(0)  # the dict key, e.g. a destination name
            annotation = args[1]
        elif len(args) == 1:
            annotation = args[0]
        else:
            return False
    args = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
    return annotation is SecretStr or args == [SecretStr]


def secret_file_reference(env_key: str) -> list[str] | None:
    """For ``VNEID_A__B_FILE`` naming a secret ``a.b``, the path ``["a", "b"]``; else ``None`` (a plain
    setting such as ``signer.key_file`` is an ordinary value, not a reference)."""
    key = env_key.lower()
    prefix = ENV_PREFIX.lower()
    if not (key.startswith(prefix) and key.endswith("_file")):
        return None
    path = key[len(prefix) : -len("_file")].split("__")
    return path if _is_secret_field(Settings, path) else None


class _EnvWithoutFileRefs(EnvSettingsSource):
    """The environment, minus secret ``*_FILE`` references (those are read by ``_SecretFilesSource``)."""

    def _load_env_vars(self) -> Any:
        loaded = super()._load_env_vars()
        return {key: value for key, value in loaded.items() if secret_file_reference(key) is None}


class _SecretFilesSource(PydanticBaseSettingsSource):
    """Reads ``VNEID_<PATH>_FILE`` variables: the file's content (stripped) becomes the value of ``<PATH>``."""

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:  # pragma: no cover
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for key, value in os.environ.items():
            path = secret_file_reference(key)
            if path is None:
                continue
            try:
                content = Path(value).read_text(encoding="utf-8").strip()
            except OSError as exc:
                # Named after the variable: the bare OSError does not say which secret is missing.
                raise type(exc)(
                    exc.errno, f"{key}: cannot read the secret file ({exc.strerror})", value
                ) from None
            node = result
            for part in path[:-1]:
                node = node.setdefault(part, {})
            node[path[-1]] = content
        return result


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_nested_delimiter="__", extra="forbid", frozen=True, validate_default=True
    )

    data_dir: Path = Field(Path("var"), description="Where embedded databases, keys and evidence live.")
    his: HisSettings = HisSettings()
    ledger: LedgerSettings = LedgerSettings()
    broker: BrokerSettings = BrokerSettings()
    destinations: dict[str, DestinationSettings] = Field(default_factory=_default_destinations)
    signer: SignerSettings = SignerSettings()
    payload: PayloadSettings = PayloadSettings()
    delivery: DeliverySettings = DeliverySettings()
    evidence: EvidenceSettings = EvidenceSettings()
    deadlines: DeadlineSettings = DeadlineSettings()
    logging: LoggingSettings = LoggingSettings()
    metrics: MetricsSettings = MetricsSettings()
    alerts: AlertSettings = AlertSettings()
    audit: AuditSettings = AuditSettings()
    flower: FlowerSettings = FlowerSettings()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [
            init_settings,
            _EnvWithoutFileRefs(
                settings_cls, env_prefix=ENV_PREFIX, env_nested_delimiter="__", case_sensitive=False
            ),
            _SecretFilesSource(settings_cls),
        ]
        config_file = _config_file.get()
        if config_file is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=config_file))
        return tuple(sources)

    # -- derived values: embedded defaults resolved against data_dir -------------------------------------
    @property
    def ledger_url(self) -> str:
        return self.ledger.database_url or f"sqlite:///{(self.data_dir / 'ledger.sqlite3').resolve()}"

    @property
    def broker_url(self) -> str:
        return self.broker.url or f"sqla+sqlite:///{(self.data_dir / 'broker.sqlite3').resolve()}"

    @property
    def his_url(self) -> str:
        return self.his.url or f"sqlite:///{(self.data_dir / 'demo-his.sqlite3').resolve()}"


#: Short names accepted for the two URLs people set most (``VNEID_BROKER_URL=redis://…``).
ENV_ALIASES = {"VNEID_BROKER_URL": "VNEID_BROKER__URL", "VNEID_DATABASE_URL": "VNEID_LEDGER__DATABASE_URL"}


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Load settings; ``config_file`` (or ``VNEID_CONFIG``) names an optional TOML file."""
    for alias, canonical in ENV_ALIASES.items():
        if os.environ.get(alias) and not os.environ.get(canonical):
            os.environ[canonical] = os.environ[alias]
    path = config_file or (Path(os.environ["VNEID_CONFIG"]) if os.environ.get("VNEID_CONFIG") else None)
    if path is not None and not path.is_file():
        raise FileNotFoundError(f"config file not found: {path}")
    token = _config_file.set(path)
    try:
        return Settings(**overrides)
    finally:
        _config_file.reset(token)


def _mask(value: Any) -> Any:
    if isinstance(value, SecretStr):
        return "**********" if value.get_secret_value() else ""
    if isinstance(value, BaseModel):
        return {name: _mask(getattr(value, name)) for name in type(value).model_fields}
    if isinstance(value, dict):
        return {key: _mask(item) for key, item in value.items()}
    if isinstance(value, tuple | list):
        return [_mask(item) for item in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, date | time):
        return value.isoformat()
    if isinstance(value, str):
        return _redact_url(value)
    return value


def masked_dump(settings: Settings) -> dict[str, Any]:
    """The effective configuration as plain data, every secret replaced by asterisks."""
    dumped: dict[str, Any] = _mask(settings)
    dumped["effective"] = {
        "ledger_url": _redact_url(settings.ledger_url),
        "broker_url": _redact_url(settings.broker_url),
        "his_url": _redact_url(settings.his_url),
    }
    return dumped


def _redact_url(url: str) -> str:
    """Hide a password embedded in a URL (``scheme://user:pw@host``)."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    credentials, _, host = rest.rpartition("@")
    user = credentials.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}"
