"""deploy/config/*.example load through the real settings model, so they cannot drift into invalid."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from worker import docs_gen
from worker.config import load_settings

REPO_ROOT = Path(__file__).resolve().parents[3]
CONFIG_EXAMPLE = REPO_ROOT / "deploy" / "config" / "config.toml.example"
SECRETS_EXAMPLE = REPO_ROOT / "deploy" / "config" / "secrets.env.example"


@pytest.fixture
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The example alone decides: no VNEID_ variable of the test machine leaks in."""
    import os

    for name in list(os.environ):
        if name.startswith("VNEID_"):
            monkeypatch.delenv(name)


@pytest.mark.usefixtures("clean_environment")
def test_config_example_is_a_valid_production_configuration() -> None:
    settings = load_settings(CONFIG_EXAMPLE)
    assert settings.ledger_url.startswith("postgresql+psycopg://")
    assert settings.broker_url.startswith("redis://")
    assert settings.his.adapter == "sql_mapping"
    assert settings.signer.source == "pkcs11"
    bhxh = settings.destinations["bhxh"]
    assert bhxh.base_url == "https://egw.baohiemxahoi.gov.vn"
    assert bhxh.primary
    assert bhxh.verify_tls
    assert list(settings.destinations) == ["bhxh"], "the provincial hub stays commented out"
    assert settings.logging.format == "json"
    # No secret in the file: every secret comes from a VNEID_…_FILE variable.
    for secret in (
        settings.ledger.password,
        settings.his.password,
        settings.signer.pin,
        settings.signer.passphrase,
    ):
        assert secret is None
    assert bhxh.password.get_secret_value() == "demo-password", "the gateway password is not in the file"


def _uncomment_block(text: str, header: str) -> str:
    """The example with one commented alternative block switched on (and the active block of the same
    table name removed), to prove the alternatives are valid too."""
    lines = text.splitlines()
    start = lines.index(f"# {header}")
    block = []
    for line in lines[start:]:
        if not line.startswith("# ") or (block and line.startswith("# [") and line != f"# {header}"):
            break
        block.append(line[2:])
    rest = lines[:start] + lines[start + len(block) :]
    if header == "[signer]":
        active = rest.index("[signer]")
        end = next(i for i in range(active + 1, len(rest)) if rest[i].startswith("#") or not rest[i])
        rest = rest[:active] + rest[end:]
    return "\n".join([*rest, "", *block]) + "\n"


@pytest.mark.usefixtures("clean_environment")
def test_commented_alternatives_are_valid(tmp_path: Path) -> None:
    text = CONFIG_EXAMPLE.read_text(encoding="utf-8")
    hub = tmp_path / "hub.toml"
    hub.write_text(_uncomment_block(text, "[destinations.soyt]"), encoding="utf-8")
    settings = load_settings(hub)
    assert settings.destinations["soyt"].primary is False
    assert settings.destinations["bhxh"].primary is True
    file_signer = tmp_path / "file-signer.toml"
    file_signer.write_text(_uncomment_block(text, "[signer]"), encoding="utf-8")
    assert load_settings(file_signer).signer.source == "file"


def test_every_section_of_the_model_appears_in_the_example() -> None:
    text = CONFIG_EXAMPLE.read_text(encoding="utf-8")
    tables = set(re.findall(r"^#?\s*\[([a-z_.]+)\]", text, flags=re.MULTILINE))
    for section in docs_gen.sections():
        if section.name:
            expected = section.name.replace(docs_gen.NAME_PLACEHOLDER, "bhxh")
            assert expected in tables, f"[{expected}] missing from config.toml.example"


def test_secrets_example_names_only_real_secret_files() -> None:
    secret_files = {
        s.file_env_var.replace("<NAME>", name)
        for s in docs_gen.all_settings()
        if s.file_env_var
        for name in ("BHXH", "SOYT")
    }
    text = SECRETS_EXAMPLE.read_text(encoding="utf-8")
    assignments = re.findall(r"^#?\s*(VNEID_[A-Z0-9_]+)=(\S+)$", text, flags=re.MULTILINE)
    assert assignments
    for variable, path in assignments:
        assert variable in secret_files, f"{variable} is not the _FILE form of a secret setting"
        assert path.startswith("/etc/vneid-sync/secrets/"), variable
    named = {variable for variable, _ in assignments}
    for needed in (
        "VNEID_DESTINATIONS__BHXH__PASSWORD_FILE",
        "VNEID_SIGNER__PASSPHRASE_FILE",
        "VNEID_SIGNER__PIN_FILE",
        "VNEID_FLOWER__BASIC_AUTH_FILE",
        "VNEID_LEDGER__PASSWORD_FILE",
    ):
        assert needed in named
