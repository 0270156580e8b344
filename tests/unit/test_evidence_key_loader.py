"""The one evidence key loader (``worker.evidence_keys``): which source wins, retired keys, the errors, and
that the worker's wiring (``create=True``) and the health check (``create=False``) get the same ring from it,
the health check without ever creating or changing a file. Real key files in a temporary directory."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from worker.bootstrap import evidence_keys
from worker.config import Settings, load_settings
from worker.evidence_keys import (
    EvidenceKeyConfigError,
    GeneratedKeyAbsentError,
    SourceKind,
    load_evidence_keys,
)
from worker.ledger.evidence_crypto import encode_key, key_id, new_key, write_key_file
from worker.monitoring import check_result, evidence_key, health

FILE_KEY, SETTING_KEY, ENV_KEY, GENERATED_KEY = new_key(), new_key(), new_key(), new_key()
RETIRED_IN_FILE, RETIRED_IN_SETTING = new_key(), new_key()


@pytest.fixture(autouse=True)
def no_vneid_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("VNEID_"):
            monkeypatch.delenv(name)


def configured(tmp_path: Path, *, toml_key: bool = True, toml_retired: bool = False) -> Settings:
    """Settings as a process reads them: a TOML file (``evidence.key`` when ``toml_key``) plus the
    environment the test set up."""
    lines = ["[evidence]"]
    if toml_key:
        lines.append(f'key = "{encode_key(SETTING_KEY)}"')
    if toml_retired:
        lines.append(f'retired_keys = "{encode_key(RETIRED_IN_SETTING)}"')
    config = tmp_path / "config.toml"
    config.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return load_settings(config_file=config, data_dir=tmp_path / "data")


def key_file_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "secrets" / "evidence-key"
    write_key_file(path, FILE_KEY)
    monkeypatch.setenv("VNEID_EVIDENCE__KEY_FILE", str(path))
    return path


def generated_file(tmp_path: Path) -> Path:
    return tmp_path / "data" / "evidence.key"


# --------------------------------------------------------------------------------------- precedence


@pytest.mark.parametrize("create", [True, False])
def test_the_key_file_variable_wins_over_the_setting_and_the_generated_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, create: bool
) -> None:
    path = key_file_variable(tmp_path, monkeypatch)
    write_key_file(generated_file(tmp_path), GENERATED_KEY)  # a demo key left from earlier: not used
    loaded = load_evidence_keys(configured(tmp_path, toml_key=True), create=create)
    assert loaded.keys.active_id == key_id(FILE_KEY)
    assert (loaded.source.kind, loaded.source.path) == (SourceKind.FILE, path)
    assert str(loaded.source) == f"VNEID_EVIDENCE__KEY_FILE {path}"
    assert loaded.keys.generated_file is None
    assert not loaded.created


def test_the_key_file_is_read_again_not_taken_from_the_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A long-running process read the file at start; the next process to start reads what is there now."""
    path = key_file_variable(tmp_path, monkeypatch)
    settings = configured(tmp_path, toml_key=False)
    replaced = new_key()
    path.unlink()
    write_key_file(path, replaced)
    assert load_evidence_keys(settings, create=False).keys.active_id == key_id(replaced)
    assert load_evidence_keys(settings, create=True).keys.active_id == key_id(replaced)


@pytest.mark.parametrize("create", [True, False])
def test_a_key_in_the_environment_beats_a_file_reference_as_in_the_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, create: bool
) -> None:
    key_file_variable(tmp_path, monkeypatch)
    monkeypatch.setenv("VNEID_EVIDENCE__KEY", encode_key(ENV_KEY))
    settings = configured(tmp_path, toml_key=False)
    assert settings.evidence.key is not None
    assert settings.evidence.key.get_secret_value() == encode_key(ENV_KEY), "worker.config's own order"
    loaded = load_evidence_keys(settings, create=create)
    assert loaded.keys.active_id == key_id(ENV_KEY)
    assert loaded.source.kind is SourceKind.SETTING


@pytest.mark.parametrize("create", [True, False])
def test_the_setting_wins_over_the_generated_file(tmp_path: Path, create: bool) -> None:
    write_key_file(generated_file(tmp_path), GENERATED_KEY)
    loaded = load_evidence_keys(configured(tmp_path, toml_key=True), create=create)
    assert loaded.keys.active_id == key_id(SETTING_KEY)
    assert str(loaded.source) == "evidence.key"
    assert loaded.keys.generated_file is None


def test_without_a_key_the_generated_file_is_used_and_only_create_makes_it(tmp_path: Path) -> None:
    settings = configured(tmp_path, toml_key=False)
    path = generated_file(tmp_path)
    with pytest.raises(GeneratedKeyAbsentError, match="does not exist yet") as absent:
        load_evidence_keys(settings, create=False)
    assert (absent.value.source.kind, absent.value.source.path) == (SourceKind.GENERATED, path)
    assert not path.parent.exists(), "create=False makes neither the file nor its directory"

    made = load_evidence_keys(settings, create=True)
    assert made.created
    assert made.keys.generated_file == path
    assert str(made.source) == f"generated key file {path}"
    again = load_evidence_keys(settings, create=False)
    assert (again.keys.active_id, again.created) == (made.keys.active_id, False)
    assert again.keys.generated_file == path


# ------------------------------------------------------------------------------------------ retired


@pytest.mark.parametrize("create", [True, False])
def test_retired_keys_file_wins_over_the_setting_and_is_read_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, create: bool
) -> None:
    only_setting = load_evidence_keys(configured(tmp_path, toml_retired=True), create=create).keys
    assert only_setting.retired_ids == (key_id(RETIRED_IN_SETTING),)

    retired = tmp_path / "secrets" / "retired"
    write_key_file(retired, RETIRED_IN_FILE)
    monkeypatch.setenv("VNEID_EVIDENCE__RETIRED_KEYS_FILE", str(retired))
    settings = configured(tmp_path, toml_retired=True)
    ring = load_evidence_keys(settings, create=create).keys
    assert ring.active_id == key_id(SETTING_KEY)
    assert ring.retired_ids == (key_id(RETIRED_IN_FILE),)
    assert ring.ids == {key_id(SETTING_KEY), key_id(RETIRED_IN_FILE)}

    rotated = new_key()  # the file gains a key after the process started: the next start sees both
    retired.write_text(f"{encode_key(RETIRED_IN_FILE)}\n{encode_key(rotated)}\n", encoding="ascii")
    again = load_evidence_keys(settings, create=create).keys
    assert again.retired_ids == tuple(sorted([key_id(RETIRED_IN_FILE), key_id(rotated)]))

    retired.unlink()  # then it goes: the next process to start cannot read it
    with pytest.raises(EvidenceKeyConfigError) as gone:
        load_evidence_keys(settings, create=create)
    assert str(gone.value) == (
        f"the retired evidence keys file (VNEID_EVIDENCE__RETIRED_KEYS_FILE) {retired} does not exist"
    )
    assert str(gone.value.source) == "evidence.key", "the error says where the active key comes from too"


# ------------------------------------------------------------------------------------------- errors


@pytest.mark.parametrize("create", [True, False])
@pytest.mark.parametrize(
    ("text", "words"),
    [
        (None, "the evidence key file {path} does not exist"),
        ("@@@@ not a key\n", "{path}: key 1 is not base64"),
        (f"{encode_key(FILE_KEY)}\n{encode_key(new_key())}\n", "{path} holds 2 keys: one active key"),
        (encode_key(b"short") + "\n", "{path}: key 1 is 5 bytes, not 32"),
    ],
)
def test_a_bad_key_file_names_the_file_and_never_the_text(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, create: bool, text: str | None, words: str
) -> None:
    path = key_file_variable(tmp_path, monkeypatch)
    settings = configured(tmp_path, toml_key=False)  # read while the file was good, as a running process did
    path.unlink()
    if text is not None:
        path.write_text(text, encoding="ascii")
    with pytest.raises(EvidenceKeyConfigError) as raised:
        load_evidence_keys(settings, create=create)
    assert words.format(path=path) in str(raised.value)
    assert str(raised.value.source) == f"VNEID_EVIDENCE__KEY_FILE {path}"
    assert encode_key(FILE_KEY) not in str(raised.value)
    assert isinstance(raised.value, ValueError), "what the wiring raised for a bad key before"
    assert not generated_file(tmp_path).exists(), "a broken key file is never replaced by a generated key"


@pytest.mark.parametrize("create", [True, False])
def test_no_key_and_generation_off_names_the_variable(tmp_path: Path, create: bool) -> None:
    settings = load_settings(data_dir=tmp_path / "data", evidence={"generate_key": False})
    with pytest.raises(
        EvidenceKeyConfigError, match="no evidence key: set VNEID_EVIDENCE__KEY_FILE"
    ) as raised:
        load_evidence_keys(settings, create=create)
    assert raised.value.source.kind is SourceKind.NONE
    assert not (tmp_path / "data").exists()


# ----------------------------------------------------------------------- the worker and health agree


def _scenario(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    if name == "key file":
        key_file_variable(tmp_path, monkeypatch)
        return configured(tmp_path, toml_key=True)
    if name == "key in the environment":
        key_file_variable(tmp_path, monkeypatch)
        monkeypatch.setenv("VNEID_EVIDENCE__KEY", encode_key(ENV_KEY))
        return configured(tmp_path, toml_key=False)
    if name == "setting":
        return configured(tmp_path, toml_key=True, toml_retired=True)
    write_key_file(generated_file(tmp_path), GENERATED_KEY)
    return configured(tmp_path, toml_key=False)


@pytest.mark.parametrize("name", ["key file", "key in the environment", "setting", "generated"])
def test_the_worker_and_the_health_check_load_the_same_ring(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    settings = _scenario(name, tmp_path, monkeypatch)
    report = evidence_key.assess_evidence_key(settings)
    ring = evidence_keys(settings)  # the worker's wiring
    assert report.loaded, report.summary()
    assert report.detail.startswith(f"key {ring.active_id}")
    assert (", 1 retired" in report.detail) == bool(ring.retired_ids)
    assert report.generated == (ring.generated_file is not None)


def test_health_never_creates_nor_changes_a_key_file(tmp_path: Path, sqlite_ledger: Engine) -> None:
    settings = configured(tmp_path, toml_key=False)
    path = generated_file(tmp_path)
    for _ in range(2):
        result = health.check_evidence_key(settings, engine=sqlite_ledger)
        assert result.status is check_result.Status.WARN
        assert result.detail.startswith("not created yet: the first worker creates it")
    assert not path.parent.exists(), "neither the key file nor its directory"

    write_key_file(path, new_key())  # what a worker made, then someone appended a second key to it
    path.write_text(path.read_text(encoding="ascii") + encode_key(new_key()) + "\n", encoding="ascii")
    before = (path.read_bytes(), path.stat().st_mtime_ns, path.stat().st_mode)
    broken = health.check_evidence_key(settings, engine=sqlite_ledger)
    assert broken.status is check_result.Status.FAIL
    assert f"{path} holds 2 keys" in broken.detail
    assert (path.read_bytes(), path.stat().st_mtime_ns, path.stat().st_mode) == before
    assert sorted(p.name for p in path.parent.iterdir()) == ["evidence.key"], "no scratch file either"
