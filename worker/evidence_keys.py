"""The one loader of the evidence key ring, for the processes that seal and open evidence
(``worker.bootstrap.evidence_keys``, ``create=True``) and for the monitoring that says whether a process
starting now could (``worker.monitoring.evidence_key.assess_evidence_key``, ``create=False``). Which source
wins, the decoding, the "exactly one active key" rule and the retired keys are written here once, so the two cannot drift.

Where the active key comes from, first match wins:

1. ``VNEID_EVIDENCE__KEY_FILE``: the file is read again at each call, not taken from the settings, which
   read it when the process started; a file removed, made unreadable or replaced since then is what the next
   process to start will meet, and what monitoring must see.
2. ``evidence.key`` (the TOML file, a value given in code, or ``VNEID_EVIDENCE__KEY`` itself; a value in the
   environment beats a ``_FILE`` reference as everywhere in ``worker.config``).
3. ``data_dir/evidence.key``, generated on first use when ``evidence.generate_key`` (the demo).

The retired keys follow the same rule (``VNEID_EVIDENCE__RETIRED_KEYS_FILE``, else ``evidence.retired_keys``).
Errors name the variable, setting or file and the key's position, never a key.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from worker.config import ENV_PREFIX, Settings, secret_file_reference
from worker.ledger.evidence_crypto import EvidenceKeyError, EvidenceKeys, decode_keys, load_or_create_key_file

KEY_FILE_VARIABLE = f"{ENV_PREFIX}EVIDENCE__KEY_FILE"
RETIRED_KEYS_FILE_VARIABLE = f"{ENV_PREFIX}EVIDENCE__RETIRED_KEYS_FILE"


class SourceKind(StrEnum):
    FILE = "file"  # VNEID_EVIDENCE__KEY_FILE
    SETTING = "setting"  # evidence.key
    GENERATED = "generated"  # data_dir/evidence.key
    NONE = "none"  # nothing configured and generation off


@dataclass(frozen=True, slots=True)
class KeySource:
    """Where the active key comes from (a path or a setting's name: never the key)."""

    kind: SourceKind
    path: Path | None = None

    def __str__(self) -> str:
        if self.kind is SourceKind.FILE:
            return f"{KEY_FILE_VARIABLE} {self.path}"
        if self.kind is SourceKind.SETTING:
            return "evidence.key"
        if self.kind is SourceKind.GENERATED:
            return f"generated key file {self.path}"
        return "no key configured"


class EvidenceKeyConfigError(EvidenceKeyError, ValueError):
    """The configured key ring cannot be loaded (one line naming the variable, setting or file).

    A ``ValueError`` too: a key that is not base64 or a setting holding two keys always raised one."""

    def __init__(self, message: str, *, source: KeySource) -> None:
        super().__init__(message)
        self.source = source


class GeneratedKeyAbsentError(EvidenceKeyError):
    """``create=False`` and the generated key file does not exist yet: the first worker will create it."""

    def __init__(self, source: KeySource) -> None:
        super().__init__(
            f"the generated key file {source.path} does not exist yet: the first worker creates it"
        )
        self.source = source


@dataclass(frozen=True, slots=True)
class LoadedKeys:
    keys: EvidenceKeys
    source: KeySource
    created: bool = False  # this call created the generated key file


def generated_key_file(settings: Settings) -> Path:
    return settings.data_dir / "evidence.key"


def _file_reference(setting: str) -> Path | None:
    """The file ``VNEID_EVIDENCE__<SETTING>_FILE`` names, unless ``VNEID_EVIDENCE__<SETTING>`` itself is set
    (the settings took that value then: the environment beats a file reference)."""
    direct = f"{ENV_PREFIX}EVIDENCE__{setting}".upper()
    if any(name.upper() == direct for name in os.environ):
        return None
    for name, value in os.environ.items():
        if secret_file_reference(name) == ["evidence", setting.lower()]:
            return Path(value)
    return None


def key_source(settings: Settings) -> KeySource:
    """The precedence of the module docstring."""
    path = _file_reference("KEY")
    if path is not None:
        return KeySource(SourceKind.FILE, path)
    if settings.evidence.key is not None:
        return KeySource(SourceKind.SETTING)
    if settings.evidence.generate_key:
        return KeySource(SourceKind.GENERATED, generated_key_file(settings))
    return KeySource(SourceKind.NONE)


def _read_keys(path: Path, *, what: str, source: KeySource) -> list[bytes]:
    try:
        text = path.read_text(encoding="ascii")
    except FileNotFoundError:
        raise EvidenceKeyConfigError(f"{what} {path} does not exist", source=source) from None
    except PermissionError:
        raise EvidenceKeyConfigError(
            f"{what} {path} cannot be read by this account (permission denied)", source=source
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not a base64 key file"
        raise EvidenceKeyConfigError(f"{what} {path} cannot be read ({reason})", source=source) from None
    return _decode(text, setting=str(path), source=source)


def _decode(text: str, *, setting: str, source: KeySource) -> list[bytes]:
    try:
        return decode_keys(text, setting=setting)
    except ValueError as exc:  # names the setting and the key's position, never the text
        raise EvidenceKeyConfigError(str(exc), source=source) from None


def _one_key(keys: list[bytes], where: str, source: KeySource) -> bytes:
    if len(keys) != 1:
        raise EvidenceKeyConfigError(
            f"{where} holds {len(keys)} keys: one active key, earlier ones in retired_keys", source=source
        )
    return keys[0]


def _retired_keys(settings: Settings, source: KeySource) -> list[bytes]:
    path = _file_reference("RETIRED_KEYS")
    if path is not None:
        return _read_keys(
            path, what=f"the retired evidence keys file ({RETIRED_KEYS_FILE_VARIABLE})", source=source
        )
    if settings.evidence.retired_keys is None:
        return []
    return _decode(
        settings.evidence.retired_keys.get_secret_value(), setting="evidence.retired_keys", source=source
    )


def _generated_key(path: Path, source: KeySource, *, create: bool) -> tuple[bytes, bool]:
    created = False
    if not path.exists():
        if not create:
            raise GeneratedKeyAbsentError(source)
        try:
            _, created = load_or_create_key_file(path)
        except OSError as exc:
            raise EvidenceKeyConfigError(
                f"the generated evidence key file {path} cannot be created ({exc.strerror or type(exc).__name__})",
                source=source,
            ) from None
        except ValueError:
            pass  # another process created a file that holds no single key: the read below says what is wrong
    # Read the way every other key file is read, whoever created it: one set of messages for one set of rules.
    active = _one_key(
        _read_keys(path, what="the generated evidence key file", source=source), str(path), source
    )
    return active, created


def load_evidence_keys(settings: Settings, *, create: bool) -> LoadedKeys:
    """The key ring as a process starting now builds it. ``create=False`` never creates nor modifies a file:
    a generated key file that does not exist yet raises ``GeneratedKeyAbsentError``. Any other problem raises
    ``EvidenceKeyConfigError``, whose ``source`` says where the active key was to come from."""
    source = key_source(settings)
    retired = _retired_keys(settings, source)
    created = False
    if source.kind is SourceKind.FILE:
        assert source.path is not None  # a FILE source always names its file
        active = _one_key(
            _read_keys(source.path, what="the evidence key file", source=source), str(source.path), source
        )
    elif source.kind is SourceKind.SETTING:
        assert settings.evidence.key is not None  # what makes the source a SETTING
        active = _one_key(_decode(settings.evidence.key.get_secret_value(), setting="evidence.key", source=source),
                          "evidence.key", source)  # fmt: skip
    elif source.kind is SourceKind.GENERATED:
        assert source.path is not None  # a GENERATED source always names its file
        active, created = _generated_key(source.path, source, create=create)
    else:
        raise EvidenceKeyConfigError(
            f"no evidence key: set {KEY_FILE_VARIABLE} to a key file (`vneid-sync evidence new-key --out FILE`), "
            f"since evidence.generate_key is false and neither {KEY_FILE_VARIABLE} nor evidence.key is set",
            source=source,
        )
    generated_file = source.path if source.kind is SourceKind.GENERATED else None
    return LoadedKeys(EvidenceKeys(active, retired, generated_file=generated_file), source, created)
