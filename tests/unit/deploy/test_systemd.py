"""deploy/systemd: every unit passes `systemd-analyze verify`, is sandboxed, and runs real vneid-sync commands.

`systemd-analyze verify` refuses a unit whose ExecStart binary does not exist, and /opt/vneid-sync is not
installed on a test machine: the units are copied to a temporary directory with the vneid-sync path replaced
by an existing executable (/bin/true), which changes nothing else in what is verified. The command lines
themselves are checked separately against the real CLI. Missing systemd-analyze: skip locally, fail in CI.
"""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path

import pytest

from tests.services import require_binary
from tests.unit.deploy.commands import check

REPO_ROOT = Path(__file__).resolve().parents[3]
UNITS = REPO_ROOT / "deploy" / "systemd"
EXECUTABLE = "/opt/vneid-sync/.venv/bin/vneid-sync"

SERVICES = [
    "vneid-sync-worker@.service",
    "vneid-sync-beat.service",
    "vneid-sync-flower.service",
    "vneid-sync-metrics.service",
    "vneid-sync-backfill.service",
    "vneid-sync-alerts.service",
]
TIMERS = ["vneid-sync-backfill.timer", "vneid-sync-alerts.timer"]
#: What `systemctl enable` would start: templates are verified through an instance.
VERIFIED_AS = {"vneid-sync-worker@.service": ["vneid-sync-worker@submission.service"]}
HARDENING = {
    "User": "vneid-sync",
    "EnvironmentFile": "/etc/vneid-sync/vneid-sync.env",
    "ProtectSystem": "strict",
    "ReadWritePaths": "/var/lib/vneid-sync",
    "NoNewPrivileges": "yes",
    "PrivateTmp": "yes",
    "ProtectHome": "yes",
    "CapabilityBoundingSet": "",
}


def _directives(unit: str) -> list[tuple[str, str]]:
    pairs = []
    for line in (UNITS / unit).read_text(encoding="utf-8").splitlines():
        if line and not line.startswith(("#", ";", "[")):
            key, _, value = line.partition("=")
            pairs.append((key.strip(), value.strip()))
    return pairs


def _values(unit: str, key: str) -> list[str]:
    return [value for name, value in _directives(unit) if name == key]


def test_the_unit_set_is_complete() -> None:
    present = {path.name for path in UNITS.iterdir() if path.suffix in (".service", ".timer")}
    assert present == set(SERVICES) | set(TIMERS)


@pytest.mark.parametrize("unit", SERVICES)
def test_services_are_sandboxed_and_restart(unit: str) -> None:
    for key, expected in HARDENING.items():
        assert expected in _values(unit, key), f"{unit}: {key}={expected}"
    if _values(unit, "Type") != ["oneshot"]:  # a oneshot is run again by its timer, not restarted
        assert _values(unit, "Restart") == ["on-failure"]
    for exec_start in _values(unit, "ExecStart"):
        assert exec_start.startswith(EXECUTABLE + " "), unit


def _environment_defaults(unit: str, instance: str) -> dict[str, str]:
    """Environment= assignments of the unit, then the shipped per-instance env file (what systemd reads)."""
    values: dict[str, str] = {}
    for line in _values(unit, "Environment"):
        for assignment in shlex.split(line.replace("%i", instance)):
            key, _, value = assignment.partition("=")
            values[key] = value
    override = UNITS / f"worker-{instance}.env"
    if "@" in unit and override.is_file():
        for line in override.read_text(encoding="utf-8").splitlines():
            if line and not line.startswith("#"):
                key, _, value = line.partition("=")
                values[key] = value.strip('"')
    return values


def _expand(command: str, environment: dict[str, str], instance: str) -> list[str]:
    """systemd's ExecStart expansion: ${VAR} stays one word, $VAR splits on whitespace; %i/%H specifiers."""
    words: list[str] = []
    for word in command.replace("%i", instance).replace("%H", "host").split():
        if re.fullmatch(r"\$[A-Z_]+", word):
            words += environment[word[1:]].split()
        else:
            words.append(re.sub(r"\$\{([A-Z_]+)\}", lambda m: environment[m.group(1)], word))
    return words


@pytest.mark.parametrize(
    ("unit", "instance"),
    [(u, "submission") for u in SERVICES] + [("vneid-sync-worker@.service", "discovery")],
)
def test_exec_start_runs_a_real_vneid_sync_command(unit: str, instance: str) -> None:
    environment = _environment_defaults(unit, instance)
    for exec_start in _values(unit, "ExecStart"):
        argv = _expand(exec_start, environment, instance)
        assert argv[0] == EXECUTABLE
        check(argv[1:], f"{unit} ExecStart")


def test_worker_instances_consume_the_intended_queues() -> None:
    unit = "vneid-sync-worker@.service"
    (exec_start,) = _values(unit, "ExecStart")
    submission = check(_expand(exec_start, _environment_defaults(unit, "submission"), "submission")[1:], unit)
    assert submission.params["queues"] == ["submission"]
    discovery = check(_expand(exec_start, _environment_defaults(unit, "discovery"), "discovery")[1:], unit)
    assert discovery.params["queues"] == ["discovery", "backfill"]
    assert discovery.params["concurrency"] == 1


def test_backfill_walks_from_the_legal_start_quietly_then_reports_coverage() -> None:
    unit = "vneid-sync-backfill.service"
    assert _values(unit, "Type") == ["oneshot"]
    environment = _environment_defaults(unit, "")
    backfill, coverage = (_expand(line, environment, "")[1:] for line in _values(unit, "ExecStart"))
    parsed = check(backfill, unit)
    assert parsed.path == ("backfill",)
    assert parsed.params["quiet"] is True
    from worker.config import DeadlineSettings

    assert str(parsed.params["since"])[:10] == DeadlineSettings().legal_start.isoformat()
    report = check(coverage, unit)
    assert report.path == ("coverage",)
    assert str(report.params["out"]).startswith("/var/lib/vneid-sync/"), "inside ReadWritePaths"
    timer = "vneid-sync-backfill.timer"
    assert _values(timer, "Unit") == [unit]
    assert _values(timer, "Persistent") == ["true"]
    assert _values(timer, "OnCalendar")


def test_alert_check_runs_periodically_and_firing_is_not_a_unit_failure() -> None:
    unit = "vneid-sync-alerts.service"
    (exec_start,) = _values(unit, "ExecStart")
    assert check(exec_start.split()[1:], unit).path == ("alerts", "check")
    assert _values(unit, "SuccessExitStatus") == ["1"]
    assert _values("vneid-sync-alerts.timer", "OnUnitActiveSec")


def test_systemd_analyze_verify_accepts_every_unit(tmp_path: Path) -> None:
    analyze = require_binary("systemd-analyze")
    for path in UNITS.iterdir():
        if path.suffix in (".service", ".timer"):
            text = path.read_text(encoding="utf-8").replace(EXECUTABLE, "/bin/true")
            (tmp_path / path.name).write_text(text, encoding="utf-8")
    targets = [name for unit in SERVICES + TIMERS for name in VERIFIED_AS.get(unit, [unit])]
    for name in targets:
        result = subprocess.run(
            [analyze, "verify", "--man=no", str(tmp_path / name)], capture_output=True, text=True, check=False
        )
        # Warnings (an unknown key, a bad calendar) exit 0 but print the unit's name: both count as failures.
        output = (result.stdout + result.stderr).strip()
        ours = [line for line in output.splitlines() if "vneid-sync" in line]
        assert result.returncode == 0, f"{name}:\n{output}"
        assert not ours, f"{name}:\n{output}"
