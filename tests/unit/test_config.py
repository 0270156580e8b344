from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from worker.cli.app import main
from worker.config import load_settings, masked_dump


def test_env_overrides_file_and_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[payload]\nfacility_code = "01001"\n[delivery]\nbatch_size = 20\n', encoding="utf-8")
    monkeypatch.setenv("VNEID_DELIVERY__BATCH_SIZE", "40")
    settings = load_settings(config)
    assert settings.payload.facility_code == "01001"
    assert settings.delivery.batch_size == 40
    assert settings.delivery.max_attempts == 8


def test_secret_from_file_is_read_and_masked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = tmp_path / "bhxh-password"
    secret.write_text("Very$ecret-2026\n", encoding="utf-8")
    monkeypatch.setenv("VNEID_DESTINATIONS__BHXH__PASSWORD_FILE", str(secret))
    settings = load_settings()
    assert settings.destinations["bhxh"].password.get_secret_value() == "Very$ecret-2026"
    assert "Very$ecret-2026" not in json.dumps(masked_dump(settings))


def test_secret_from_env_never_appears_in_config_show(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("VNEID_SIGNER__PASSPHRASE", "key-pass-91")
    monkeypatch.setenv("VNEID_LEDGER__DATABASE_URL", "postgresql+psycopg://vneid:db-pass-77@db/ledger")
    for fmt in ("toml", "json"):
        assert main(["config", "show", "--format", fmt]) == 0
        out = capsys.readouterr()
        assert "key-pass-91" not in out.out + out.err
        assert "db-pass-77" not in out.out + out.err
        assert "passphrase" in out.out


def test_unknown_key_is_one_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "config.toml"
    config.write_text("[payload]\nfacility_cod = '79999'\n", encoding="utf-8")
    assert main(["--config", str(config), "config", "show"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "error: invalid configuration: payload.facility_cod: unknown setting"


def test_bad_value_is_one_clear_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("VNEID_PAYLOAD__PROFILE", "qd999")
    assert main(["config", "show"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: invalid configuration: payload.profile")
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_missing_config_file_is_reported(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--config", "/nonexistent/vneid.toml", "config", "show"]) == 1
    assert "config file not found" in capsys.readouterr().err


def test_invalid_settings_raise_validation_error() -> None:
    with pytest.raises(ValidationError):
        load_settings(delivery={"batch_size": 0})


def test_plain_file_settings_are_values_not_secret_references(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    key = tmp_path / "hospital.p12"
    monkeypatch.setenv("VNEID_SIGNER__KEY_FILE", str(key))
    monkeypatch.setenv("VNEID_HIS__MAPPING_FILE", str(tmp_path / "mapping.toml"))
    settings = load_settings()
    assert settings.signer.key_file == key
    assert settings.his.mapping_file == tmp_path / "mapping.toml"


def test_secret_file_reference_for_nested_and_dict_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pin = tmp_path / "pin"
    pin.write_text("123456\n", encoding="utf-8")
    monkeypatch.setenv("VNEID_SIGNER__PIN_FILE", str(pin))
    monkeypatch.setenv("VNEID_LEDGER__PASSWORD_FILE", str(pin))
    settings = load_settings()
    assert settings.signer.pin is not None
    assert settings.signer.pin.get_secret_value() == "123456"
    assert settings.ledger.password is not None


@pytest.mark.parametrize("make_path", [lambda d: d / "missing.key", lambda d: d])  # absent; a directory
def test_unreadable_secret_file_names_the_variable_not_just_the_path(
    make_path: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = make_path(tmp_path)
    monkeypatch.setenv("VNEID_EVIDENCE__KEY_FILE", str(path))
    assert main(["config", "show"]) == 1
    error = capsys.readouterr().err.strip()
    assert error.startswith("error: "), error
    assert "VNEID_EVIDENCE__KEY_FILE: cannot read the secret file" in error
    assert str(path) in error
    assert len(error.splitlines()) == 1
