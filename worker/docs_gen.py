"""Generate ``docs/configuration.md`` from the settings model (``worker.config.Settings``).

Every setting gets its TOML key, its ``VNEID_…`` environment variable, its type, its default and its
description; secrets are shown with the ``…_FILE`` form that reads them from a file. The page is generated so
it cannot drift from the code: ``python -m worker.docs_gen`` writes it, ``python -m worker.docs_gen --check``
exits 1 when the file on disk differs (CI and a unit test run the check).
"""

from __future__ import annotations

import argparse
import sys
import types
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date, time
from enum import Enum
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, SecretStr
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from worker.config import ENV_PREFIX, Settings

DEFAULT_OUTPUT = Path(__file__).resolve().parent.parent / "docs" / "configuration.md"
#: Placeholder for the key of a ``dict[str, Section]`` setting (``[destinations.<name>]``).
NAME_PLACEHOLDER = "<name>"


@dataclass(frozen=True, slots=True)
class SettingDoc:
    """One leaf setting as the page documents it."""

    section: str  # "" for top-level settings, "destinations.<name>" for keyed sections
    key: str  # name inside its section
    env_var: str
    type_name: str
    default: str
    description: str
    secret: bool

    @property
    def toml_key(self) -> str:
        return f"{self.section}.{self.key}" if self.section else self.key

    @property
    def file_env_var(self) -> str | None:
        """``VNEID_…_FILE``: the variable that names a file holding this secret."""
        return f"{self.env_var}_FILE" if self.secret else None


@dataclass(frozen=True, slots=True)
class SectionDoc:
    name: str  # TOML table name ("" for the top level)
    intro: str
    settings: tuple[SettingDoc, ...]


# ----------------------------------------------------------------------------------------- the model


def _section_model(annotation: Any) -> type[BaseModel] | None:
    return annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None


def _keyed_section_model(annotation: Any) -> type[BaseModel] | None:
    """The value model of ``dict[str, SomeSection]`` (named sub-tables such as destinations)."""
    if get_origin(annotation) is dict:
        key_type, value_type = get_args(annotation)
        if key_type is str:
            return _section_model(value_type)
    return None


def _without_none(annotation: Any) -> tuple[Any, bool]:
    if get_origin(annotation) in (Union, types.UnionType):
        members = [arg for arg in get_args(annotation) if arg is not type(None)]
        optional = len(members) < len(get_args(annotation))
        return (members[0] if len(members) == 1 else Union[tuple(members)]), optional  # noqa: UP007  # runtime-built union
    return annotation, False


def _is_secret(annotation: Any) -> bool:
    inner, _ = _without_none(annotation)
    return inner is SecretStr


def type_name(annotation: Any) -> str:
    """A reader's name for a type: ``integer``, ``path (optional)``, ``"file" | "pkcs11"`` …"""
    inner, optional = _without_none(annotation)
    suffix = " (optional)" if optional else ""
    origin = get_origin(inner)
    if origin is Literal:
        return " | ".join(f'`"{value}"`' for value in get_args(inner)) + suffix
    if isinstance(inner, type) and issubclass(inner, Enum):
        return " | ".join(f'`"{member.value}"`' for member in inner) + suffix
    if origin in (tuple, list):
        items = [arg for arg in get_args(inner) if arg is not Ellipsis]
        item = type_name(items[0]) if items else "value"
        return f"list of {item}s{suffix}"
    if origin is dict:
        return f"table{suffix}"
    simple = {
        str: "string",
        int: "integer",
        float: "number",
        bool: "boolean",
        Path: "path",
        SecretStr: "secret",
        date: "date (`YYYY-MM-DD`)",
        time: "time (`HH:MM:SS`)",
    }
    return simple.get(inner, getattr(inner, "__name__", str(inner))) + suffix


def _literal(value: Any) -> str:
    """A default as it would be written in TOML."""
    if value is None:
        return "not set"
    if isinstance(value, SecretStr):
        return "a demo value" if value.get_secret_value() else "not set"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, Enum):
        return f'`"{value.value}"`'
    if isinstance(value, Path | str):
        return f'`"{value}"`'
    if isinstance(value, date | time):
        return f'`"{value.isoformat()}"`'
    if isinstance(value, tuple | list):
        return "`[" + ", ".join(_literal(item).strip("`") for item in value) + "]`"
    if isinstance(value, dict):
        return "`{}`" if not value else "`{" + ", ".join(f"{k} = …" for k in value) + "}`"
    return f"`{value}`"


def _default(field: FieldInfo) -> Any:
    if field.default_factory is not None:
        return field.default_factory()  # type: ignore[call-arg]  # our factories take no arguments
    return None if field.default is PydanticUndefined else field.default


def _env_var(path: Sequence[str]) -> str:
    return ENV_PREFIX + "__".join(part.upper() for part in path)


def _leaf(section: str, env_path: Sequence[str], key: str, field: FieldInfo) -> SettingDoc:
    return SettingDoc(
        section=section,
        key=key,
        env_var=_env_var([*env_path, key]),
        type_name=type_name(field.annotation),
        default=_literal(_default(field)),
        description=" ".join((field.description or "").split()),
        secret=_is_secret(field.annotation),
    )


def _section_intro(model: type[BaseModel]) -> str:
    doc = model.__doc__ or ""
    return " ".join(doc.split())


def _walk(model: type[BaseModel], section: str, env_path: tuple[str, ...]) -> Iterator[SectionDoc]:
    leaves: list[SettingDoc] = []
    nested: list[SectionDoc] = []
    for key, field in model.model_fields.items():
        sub = _section_model(field.annotation)
        keyed = _keyed_section_model(field.annotation)
        if sub is not None:
            nested.extend(_walk(sub, _join(section, key), (*env_path, key)))
        elif keyed is not None:
            defaults = _default(field) or {}
            names = ", ".join(f"`{name}`" for name in defaults)
            extra = f" Configured by default: {names}." if names else ""
            for doc in _walk(
                keyed, _join(section, f"{key}.{NAME_PLACEHOLDER}"), (*env_path, key, NAME_PLACEHOLDER)
            ):
                intro = doc.intro + (" " if doc.intro else "") + f"One table per {key[:-1]}.{extra}"
                nested.append(SectionDoc(doc.name, intro.strip(), doc.settings))
        else:
            leaves.append(_leaf(section, env_path, key, field))
    if leaves:
        yield SectionDoc(section, _section_intro(model) if section else "", tuple(leaves))
    yield from nested


def _join(section: str, key: str) -> str:
    return f"{section}.{key}" if section else key


def sections(model: type[BaseModel] = Settings) -> list[SectionDoc]:
    """Every section of the settings model with its leaf settings, in declaration order."""
    return list(_walk(model, "", ()))


def all_settings(model: type[BaseModel] = Settings) -> list[SettingDoc]:
    return [setting for section in sections(model) for setting in section.settings]


# ----------------------------------------------------------------------------------------- the page

_PREAMBLE = """\
# Configuration reference

<!-- Generated by `python -m worker.docs_gen` from `worker/config.py`. Do not edit by hand:
     change the settings model (descriptions included) and run `make generate`. -->

vneid-sync reads one typed settings object. Sources, from lowest to highest priority:

1. built-in defaults (the embedded demo setup: SQLite files under `data_dir`, a broker that needs no server);
2. a TOML file named by `--config FILE` or `VNEID_CONFIG` (example: `deploy/config/config.toml.example`);
3. secret files: `VNEID_<KEY>_FILE=/path` reads the secret `<KEY>` from that file (content stripped);
4. environment variables `VNEID_<KEY>`.

Environment variable names are the TOML key in upper case with `__` between levels
(`payload.facility_code` → `VNEID_PAYLOAD__FACILITY_CODE`); case does not matter. Lists and tables are given
as JSON (`VNEID_PAYLOAD__NON_BHYT_TABLES='["XML1","XML8"]'`). Destinations are named tables: `<name>` is the
destination's name (`[destinations.bhxh]` → `VNEID_DESTINATIONS__BHXH__BASE_URL`).

**Secrets** (marked 🔒) are never printed (`vneid-sync config show` masks them). Give them as files readable
only by the service account: `VNEID_DESTINATIONS__BHXH__PASSWORD_FILE=/etc/vneid-sync/secrets/bhxh-password`
(systemd) or `…=/run/secrets/bhxh_password` (Docker Compose secrets). Putting a secret in the TOML file or
directly in the environment works but is discouraged.

A `VNEID_…_FILE` variable is a secret-file reference only for a secret; a setting whose own name ends in
`_file` (a path such as `signer.key_file`) is set like any other: `VNEID_SIGNER__KEY_FILE=/path/key.p12`.

`vneid-sync config show` prints the effective configuration (secrets masked), the best check after an edit.
"""


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ") or "—"


def _env_cell(setting: SettingDoc) -> str:
    if setting.file_env_var is not None:
        return f"`{setting.file_env_var}` (or `{setting.env_var}`)"
    return f"`{setting.env_var}`"


def render(docs: Sequence[SectionDoc]) -> str:
    lines = [_PREAMBLE]
    for section in docs:
        lines.append(f"## `[{section.name}]`" if section.name else "## Top level")
        lines.append("")
        if section.intro:
            lines += [section.intro, ""]
        lines.append("| Key | Environment | Type | Default | Description |")
        lines.append("|---|---|---|---|---|")
        for setting in section.settings:
            lock = " 🔒" if setting.secret else ""
            lines.append(
                f"| `{setting.key}`{lock} | {_env_cell(setting)} | {_cell(setting.type_name)} "
                f"| {_cell(setting.default)} | {_cell(setting.description)} |"
            )
        lines.append("")
    return "\n".join(lines).rstrip("\n") + "\n"


def generate() -> str:
    return render(sections())


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m worker.docs_gen", description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="where the page is written")
    parser.add_argument("--check", action="store_true", help="exit 1 if the page differs; write nothing")
    args = parser.parse_args(argv)
    text = generate()
    output: Path = args.output
    if args.check:
        current = output.read_text(encoding="utf-8") if output.is_file() else None
        if current != text:
            print(
                f"{output} is out of date: run `python -m worker.docs_gen` (or `make generate`)",
                file=sys.stderr,
            )
            return 1
        return 0
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(text, encoding="utf-8")
    print(f"wrote {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
