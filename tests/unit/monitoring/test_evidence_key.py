"""The evidence key as monitoring sees it before a worker stops on it: the `health` check, the
``vneid_evidence_key_loaded`` gauge and the ``evidence_key_unusable`` alert, with real key files, a real
SQLite ledger whose evidence is sealed through the repository, and a real webhook receiver on 127.0.0.1."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from sqlalchemy.engine import Engine
from typer.testing import CliRunner

from adapters.signers.testpki import generate_ca, issue_signing_certificate
from tests.unit.monitoring.support import EVIDENCE_KEY, monitor_cli, visit_in_state, webhook_receiver
from worker.config import Settings, load_settings
from worker.ledger.evidence_crypto import encode_key, key_id, new_key, write_key_file
from worker.ledger.states import State
from worker.monitoring import alert_machine, alert_model, health, notification
from worker.monitoring.check_result import Status
from worker.monitoring.ledger_metrics import ledger_registry

NOW = datetime.now(UTC)


@pytest.fixture(scope="module")
def certificate() -> x509.Certificate:
    """A valid signing certificate, so that only the evidence key can make an alert fire."""
    return issue_signing_certificate(
        generate_ca(key_size=2048), not_before=NOW - timedelta(days=1)
    ).certificate


@pytest.fixture
def key_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The key that sealed the test ledgers' evidence, named by ``VNEID_EVIDENCE__KEY_FILE``."""
    path = tmp_path / "secrets" / "evidence-key"
    write_key_file(path, EVIDENCE_KEY)
    monkeypatch.setenv("VNEID_EVIDENCE__KEY_FILE", str(path))
    return path


def settings_in(tmp_path: Path, **evidence: object) -> Settings:
    return load_settings(data_dir=tmp_path / "data", evidence=evidence)


def sealed_ledger(engine: Engine) -> Engine:
    """A ledger holding one signed file, sealed with ``EVIDENCE_KEY`` as the pipeline seals it."""
    visit_in_state(engine, "SEALED", NOW - timedelta(hours=1), State.SIGNED)
    return engine


# ------------------------------------------------------------------------------------------- health


def test_key_file_that_opens_the_stored_evidence_is_ok(
    sqlite_ledger: Engine, tmp_path: Path, key_file: Path
) -> None:
    result = health.check_evidence_key(settings_in(tmp_path), engine=sealed_ledger(sqlite_ledger))
    assert result.status is Status.OK, result.detail
    assert result.detail == (
        f"key {key_id(EVIDENCE_KEY)}, opens the newest stored evidence (VNEID_EVIDENCE__KEY_FILE {key_file})"
    )


@pytest.mark.parametrize(
    ("damage", "words"),
    [
        ("removed", "does not exist"),
        ("a directory", "cannot be read (Is a directory)"),
        ("not a key", "key 1 is not base64"),
        ("two keys", "holds 2 keys: one active key"),
        ("another key", "cannot open the newest stored evidence (version 1, sealed with key"),
    ],
)
def test_key_file_damaged_after_the_process_started_fails(
    sqlite_ledger: Engine, tmp_path: Path, key_file: Path, damage: str, words: str
) -> None:
    settings = settings_in(tmp_path)  # loaded while the file was fine, as a running process did
    key_file.unlink()
    if damage == "a directory":
        key_file.mkdir()
    elif damage == "not a key":
        key_file.write_text("@@@@ not a key\n", encoding="ascii")
    elif damage == "two keys":
        key_file.write_text(f"{encode_key(EVIDENCE_KEY)}\n{encode_key(new_key())}\n", encoding="ascii")
    elif damage == "another key":
        write_key_file(key_file, new_key())
    result = health.check_evidence_key(settings, engine=sealed_ledger(sqlite_ledger))
    assert result.status is Status.FAIL
    assert result.detail.startswith("cannot be loaded: ")
    assert words in result.detail
    assert str(key_file) in result.detail
    assert encode_key(EVIDENCE_KEY) not in result.detail  # a key is a secret: ids and paths only


def test_retired_keys_file_is_read_again_too(
    sqlite_ledger: Engine, tmp_path: Path, key_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    retired = tmp_path / "secrets" / "evidence-retired-keys"
    write_key_file(retired, new_key())
    monkeypatch.setenv("VNEID_EVIDENCE__RETIRED_KEYS_FILE", str(retired))
    settings = settings_in(tmp_path)
    ok = health.check_evidence_key(settings, engine=sealed_ledger(sqlite_ledger))
    assert ok.status is Status.OK
    assert "1 retired" in ok.detail
    retired.unlink()
    gone = health.check_evidence_key(settings, engine=sqlite_ledger)
    assert gone.status is Status.FAIL
    assert f"the retired evidence keys file (VNEID_EVIDENCE__RETIRED_KEYS_FILE) {retired} does not exist" in (
        gone.detail
    )


def test_no_key_with_generation_off_fails(sqlite_ledger: Engine, tmp_path: Path) -> None:
    result = health.check_evidence_key(settings_in(tmp_path, generate_key=False), engine=sqlite_ledger)
    assert result.status is Status.FAIL
    assert (
        "evidence.generate_key is false and neither VNEID_EVIDENCE__KEY_FILE nor evidence.key"
        in result.detail
    )


def test_generated_key_warns_and_a_lost_one_fails_once_evidence_exists(
    sqlite_ledger: Engine, tmp_path: Path
) -> None:
    settings = settings_in(tmp_path)
    generated = tmp_path / "data" / "evidence.key"
    fresh = health.check_evidence_key(settings, engine=sqlite_ledger)
    assert fresh.status is Status.WARN
    assert "not created yet: the first worker creates it" in fresh.detail
    assert not generated.exists()  # the check creates nothing

    write_key_file(generated, EVIDENCE_KEY)  # what the first worker did
    kept = health.check_evidence_key(settings, engine=sealed_ledger(sqlite_ledger))
    assert kept.status is Status.WARN
    assert f"key {key_id(EVIDENCE_KEY)}, opens the newest stored evidence" in kept.detail
    assert "back it up" in kept.detail

    generated.unlink()  # lost: a worker would now make a new key that cannot open what is stored
    lost = health.check_evidence_key(settings, engine=sqlite_ledger)
    assert lost.status is Status.FAIL
    assert (
        f"{generated} is missing, yet the ledger holds evidence sealed with key {key_id(EVIDENCE_KEY)}"
        in (lost.detail)
    )


def test_health_command_fails_on_a_key_file_that_holds_no_key(sqlite_ledger: Engine, tmp_path: Path) -> None:
    """Through the command: the key file is read at start (its text is no key yet), the check says why."""
    key_file = tmp_path / "evidence-key"
    key_file.write_text("not-a-key\n", encoding="ascii")
    env = {
        "VNEID_DATA_DIR": str(tmp_path),
        "VNEID_LEDGER__DATABASE_URL": str(sqlite_ledger.url),
        "VNEID_EVIDENCE__KEY_FILE": str(key_file),
        "COLUMNS": "200",
    }
    skip = [arg for name in ("his", "broker", "gateway", "certificate") for arg in ("--skip", name)]
    result = CliRunner().invoke(monitor_cli(), ["health", *skip], env=env)
    assert result.exit_code == 2, result.output
    lines = result.stdout.strip().splitlines()
    assert lines[0].split()[:2] == ["OK", "ledger"]
    assert lines[1].startswith("FAIL  evidence key")
    assert f"{key_file}: key 1 is not base64" in lines[1]
    skipped = CliRunner().invoke(monitor_cli(), ["health", *skip, "--skip", "evidence"], env=env)
    assert skipped.exit_code == 0, skipped.output


# ----------------------------------------------------------------------------------- gauge and alert


def test_gauge_follows_the_key_file(sqlite_ledger: Engine, tmp_path: Path, key_file: Path) -> None:
    registry = ledger_registry(sealed_ledger(sqlite_ledger), settings_in(tmp_path))
    assert registry.get_sample_value("vneid_evidence_key_loaded") == 1.0
    moved = key_file.with_name("evidence-key.moved")
    key_file.rename(moved)
    assert registry.get_sample_value("vneid_evidence_key_loaded") == 0.0  # the next scrape sees it
    moved.rename(key_file)
    assert registry.get_sample_value("vneid_evidence_key_loaded") == 1.0


def test_alert_fires_once_and_resolves_once(
    sqlite_ledger: Engine, tmp_path: Path, key_file: Path, certificate: x509.Certificate
) -> None:
    engine = sealed_ledger(sqlite_ledger)
    moved = key_file.with_name("evidence-key.moved")
    with webhook_receiver() as receiver:
        settings = load_settings(data_dir=tmp_path / "data", alerts={"webhook_url": receiver.url})
        notifiers = notification.notifiers_from_settings(settings)

        def evaluate(minutes: int) -> list[alert_model.Transition]:
            return alert_machine.evaluate_and_notify(
                engine,
                settings,
                notifiers,
                NOW + timedelta(minutes=minutes),
                certificate_reader=lambda: certificate,
            )

        assert evaluate(0) == []  # the key loads: nothing to say
        key_file.rename(moved)
        [fired] = evaluate(5)
        assert (fired.condition, fired.firing, fired.delivered) == ("evidence_key_unusable", True, True)
        assert f"the evidence key is unusable: the evidence key file {key_file} does not exist" in (
            fired.summary
        )
        assert fired.detail["source"] == f"VNEID_EVIDENCE__KEY_FILE {key_file}"
        assert evaluate(10) == []  # still missing: no second message
        assert evaluate(15) == []
        moved.rename(key_file)
        [resolved] = evaluate(20)
        assert (resolved.condition, resolved.firing) == ("evidence_key_unusable", False)
        assert evaluate(25) == []
    assert receiver.statuses() == [("evidence_key_unusable", "firing"), ("evidence_key_unusable", "resolved")]
