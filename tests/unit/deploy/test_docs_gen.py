"""docs/configuration.md is generated from the settings model and must document every setting truthfully."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from worker import docs_gen
from worker.config import load_settings, masked_dump

REPO_ROOT = Path(__file__).resolve().parents[3]
PAGE = REPO_ROOT / "docs" / "configuration.md"


def _leaf_keys(data: dict[str, Any], prefix: str = "") -> set[str]:
    """Dotted keys of every leaf of ``masked_dump`` (an empty table such as ``his.options`` is a leaf)."""
    keys: set[str] = set()
    for key, value in data.items():
        dotted = f"{prefix}.{key}" if prefix else key
        if isinstance(value, dict) and value:
            keys |= _leaf_keys(value, dotted)
        else:
            keys.add(dotted)
    return keys


def test_configuration_page_is_up_to_date() -> None:
    assert PAGE.is_file(), "docs/configuration.md is missing: run `python -m worker.docs_gen`"
    assert PAGE.read_text(encoding="utf-8") == docs_gen.generate(), (
        "docs/configuration.md drifted from worker/config.py: run `python -m worker.docs_gen`"
    )


def test_every_setting_of_the_effective_configuration_is_documented() -> None:
    """An independent oracle: the keys `config show` prints, with the default destination as <name>."""
    dumped = masked_dump(load_settings())
    dumped.pop("effective")
    expected = {
        key.replace("destinations.bhxh.", f"destinations.{docs_gen.NAME_PLACEHOLDER}.")
        for key in _leaf_keys(dumped)
    }
    documented = {setting.toml_key for setting in docs_gen.all_settings()}
    assert documented == expected
    page = PAGE.read_text(encoding="utf-8")
    for setting in docs_gen.all_settings():
        assert f"| `{setting.key}`" in page


def _concrete(env_var: str) -> str:
    return env_var.replace("<NAME>", "BHXH")


def _value(settings: Any, toml_key: str) -> Any:
    node = settings
    for part in toml_key.replace(docs_gen.NAME_PLACEHOLDER, "bhxh").split("."):
        node = node[part] if isinstance(node, dict) else getattr(node, part)
    return node


def _different_value(current: Any) -> Any:
    """A valid value unlike the default: flipped, or one more (every bound in the model allows that)."""
    if isinstance(current, bool):
        return not current
    if current is None:
        return 30
    return current + 1


@pytest.mark.parametrize(
    "setting", [s for s in docs_gen.all_settings() if s.secret], ids=lambda s: s.toml_key
)
def test_documented_secret_file_variable_really_sets_the_secret(
    setting: docs_gen.SettingDoc, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert setting.file_env_var is not None
    secret = tmp_path / "secret"
    secret.write_text("s3cret-from-file\n", encoding="utf-8")
    monkeypatch.setenv(_concrete(setting.file_env_var), str(secret))
    assert _value(load_settings(), setting.toml_key).get_secret_value() == "s3cret-from-file"


@pytest.mark.parametrize(
    "setting",
    [
        s
        for s in docs_gen.all_settings()
        if s.env_var and s.type_name.split(" ")[0] in {"integer", "boolean", "number"}
    ],
    ids=lambda s: s.toml_key,
)
def test_documented_environment_variable_really_sets_the_value(
    setting: docs_gen.SettingDoc, monkeypatch: pytest.MonkeyPatch
) -> None:
    wanted = _different_value(_value(load_settings(), setting.toml_key))
    monkeypatch.setenv(
        _concrete(setting.env_var), str(wanted).lower() if isinstance(wanted, bool) else str(wanted)
    )
    assert _value(load_settings(), setting.toml_key) == wanted


def test_path_settings_named_file_are_plain_environment_values(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`signer.key_file` & co. end in _file but are paths, not secret references: the documented variable
    sets the path itself."""
    paths = [s for s in docs_gen.all_settings() if s.key.endswith("_file")]
    assert paths
    target = tmp_path / "some.file"
    for setting in paths:
        assert setting.file_env_var is None
        with monkeypatch.context() as env:
            env.setenv(_concrete(setting.env_var), str(target))
            assert _value(load_settings(), setting.toml_key) == target


def test_check_mode_reports_drift_and_write_mode_fixes_it(tmp_path: Path) -> None:
    output = tmp_path / "configuration.md"
    assert docs_gen.main(["--output", str(output), "--check"]) == 1  # missing
    output.write_text(
        docs_gen.generate().replace("Configuration reference", "Config reference"), encoding="utf-8"
    )
    assert docs_gen.main(["--output", str(output), "--check"]) == 1  # edited by hand
    assert docs_gen.main(["--output", str(output)]) == 0
    assert docs_gen.main(["--output", str(output), "--check"]) == 0
    assert output.read_text(encoding="utf-8") == docs_gen.generate()


def test_types_and_defaults_are_rendered_for_readers() -> None:
    by_key = {s.toml_key: s for s in docs_gen.all_settings()}
    assert by_key["payload.profile"].type_name == '`"qd4750"` | `"qd3176"`'
    assert by_key["payload.profile"].default == '`"qd3176"`'
    assert by_key["his.url"].type_name == "string (optional)"
    assert by_key["his.url"].default == "not set"
    assert by_key["payload.non_bhyt_tables"].default == '`["XML1", "XML2", "XML3", "XML4", "XML8"]`'
    assert by_key["destinations.<name>.password"].default == "a demo value"  # never the value itself
    assert by_key["destinations.<name>.password"].file_env_var == "VNEID_DESTINATIONS__<NAME>__PASSWORD_FILE"
