"""deploy/compose.yaml: services, commands, images, healthchecks, dependencies and secrets are consistent.

No Docker engine runs here, so the file is checked as data (PyYAML) against the real CLI and settings model;
`docker compose config -q` runs as well when a working `docker compose` plugin is installed.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.unit.deploy.commands import check
from worker import docs_gen

REPO_ROOT = Path(__file__).resolve().parents[3]
DEPLOY = REPO_ROOT / "deploy"
COMPOSE = DEPLOY / "compose.yaml"

INFRASTRUCTURE = {"postgres", "redis"}
APP_SERVICES = {"migrate", "worker-submission", "worker-discovery", "beat", "flower", "metrics", "simulator"}


def _compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def _services() -> dict[str, dict[str, Any]]:
    services = _compose()["services"]
    assert isinstance(services, dict)
    return services


def _setting_env_vars() -> set[str]:
    """Every VNEID_ variable that sets a setting (destination names filled in as BHXH and SOYT)."""
    names: set[str] = set()
    for setting in docs_gen.all_settings():
        for variable in (setting.env_var, setting.file_env_var):
            if variable:
                names |= {variable.replace("<NAME>", dest) for dest in ("BHXH", "SOYT")}
    return names | {"VNEID_CONFIG"}


def test_the_expected_services_exist() -> None:
    assert set(_services()) == INFRASTRUCTURE | APP_SERVICES


def test_images() -> None:
    services = _services()
    assert services["postgres"]["image"] == "postgres:16"
    assert services["redis"]["image"] == "redis:7"
    for name in APP_SERVICES:
        service = services[name]
        assert service["image"] == "${VNEID_IMAGE:-vneid-sync:latest}", name
        build = service["build"]
        assert (DEPLOY / build["context"] / build["dockerfile"]).resolve() == REPO_ROOT / "Dockerfile", name


@pytest.mark.parametrize("name", sorted(APP_SERVICES))
def test_each_app_command_is_a_real_vneid_sync_command(name: str) -> None:
    command = _services()[name]["command"]
    assert isinstance(command, list), f"{name}: exec form, so no shell re-splits the arguments"
    check(command, f"compose service {name}")


def test_commands_do_what_each_service_is_for() -> None:
    services = _services()
    assert services["migrate"]["command"] == ["db", "upgrade"]
    assert check(services["worker-submission"]["command"], "worker-submission").params["queues"] == [
        "submission"
    ]
    discovery = check(services["worker-discovery"]["command"], "worker-discovery").params
    assert discovery["queues"] == ["discovery", "backfill"]
    assert discovery["concurrency"] == 1
    assert services["beat"]["command"] == ["beat"]
    assert services["metrics"]["command"][0] == "metrics"
    assert services["flower"]["command"][0] == "flower"


@pytest.mark.parametrize("name", sorted(INFRASTRUCTURE | APP_SERVICES - {"migrate"}))
def test_every_long_running_service_has_a_real_healthcheck(name: str) -> None:
    healthcheck = _services()[name]["healthcheck"]
    assert not healthcheck.get("disable"), name
    test = healthcheck["test"]
    assert test[0] == "CMD", f"{name}: exec form"
    if test[1] == "vneid-sync":
        check(test[2:], f"compose healthcheck of {name}")
    assert {"interval", "timeout", "retries"} <= set(healthcheck), name


def test_infrastructure_healthchecks_and_persistence() -> None:
    services = _services()
    assert services["postgres"]["healthcheck"]["test"][1] == "pg_isready"
    assert services["redis"]["healthcheck"]["test"][1:] == ["redis-cli", "ping"]
    redis_command = services["redis"]["command"]
    assert redis_command[redis_command.index("--appendonly") + 1] == "yes", "the broker must survive restarts"
    assert any(v.endswith(":/var/lib/postgresql/data") for v in services["postgres"]["volumes"])
    assert any(v.endswith(":/data") for v in services["redis"]["volumes"])


def test_migrate_runs_once_and_everything_else_waits_for_it() -> None:
    services = _services()
    migrate = services["migrate"]
    assert migrate["restart"] == "no"
    assert migrate["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    for name in APP_SERVICES - {"migrate", "simulator"}:
        depends = services[name]["depends_on"]
        assert depends["migrate"] == {"condition": "service_completed_successfully"}, name
        assert depends["postgres"] == {"condition": "service_healthy"}, name
        assert depends["redis"] == {"condition": "service_healthy"}, name
    assert services["simulator"]["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}


def test_simulator_only_in_the_staging_profile() -> None:
    services = _services()
    assert services["simulator"]["profiles"] == ["staging"]
    assert all("profiles" not in services[name] for name in set(services) - {"simulator"})


def test_secrets_are_declared_mounted_and_referenced_by_real_settings() -> None:
    compose = _compose()
    declared = compose["secrets"]
    known_variables = _setting_env_vars()
    used: set[str] = set()
    for name, service in compose["services"].items():
        mounted = set(service.get("secrets", []))
        assert mounted <= set(declared), f"{name}: undeclared secret"
        used |= mounted
        for variable, value in (service.get("environment") or {}).items():
            if variable.startswith("VNEID_"):
                assert variable in known_variables, f"{name}: {variable} is not a setting"
            if variable.endswith("_FILE"):
                match = re.fullmatch(r"/run/secrets/([a-z_]+)", str(value))
                assert match, f"{name}: {variable} must point under /run/secrets"
                assert match.group(1) in mounted, f"{name}: {variable} names a secret the service lacks"
    assert used == set(declared), "every declared secret is used"
    for secret in declared.values():
        assert secret["file"].startswith("./secrets/"), "secret files live in deploy/secrets (git-ignored)"
    ignored = (DEPLOY / "secrets" / ".gitignore").read_text(encoding="utf-8").split()
    assert ignored[0] == "*"


def test_required_secret_references() -> None:
    services = _services()
    environment = services["worker-submission"]["environment"]
    assert environment["VNEID_DESTINATIONS__BHXH__PASSWORD_FILE"] == "/run/secrets/bhxh_password"
    assert environment["VNEID_SIGNER__PASSPHRASE_FILE"] == "/run/secrets/signer_passphrase"
    assert environment["VNEID_LEDGER__PASSWORD_FILE"] == "/run/secrets/ledger_password"
    assert (
        services["flower"]["environment"]["VNEID_FLOWER__BASIC_AUTH_FILE"] == "/run/secrets/flower_basic_auth"
    )
    assert "VNEID_FLOWER__BASIC_AUTH_FILE" not in environment, "only Flower needs its password"
    # PostgreSQL initialises the role with the same password the ledger connects with.
    assert services["postgres"]["environment"]["POSTGRES_PASSWORD_FILE"] == "/run/secrets/ledger_password"
    user = services["postgres"]["environment"]["POSTGRES_USER"]
    assert f"://{user}@postgres:5432/" in environment["VNEID_LEDGER__DATABASE_URL"]


def test_env_file_and_example() -> None:
    services = _services()
    for name in APP_SERVICES:
        assert services[name]["env_file"] == "vneid-sync.env", name
    example = (DEPLOY / "vneid-sync.env.example").read_text(encoding="utf-8")
    known = _setting_env_vars()
    variables = re.findall(r"^#?\s*(VNEID_[A-Z0-9_]+)=", example, flags=re.MULTILINE)
    assert variables
    for variable in variables:
        assert variable in known, f"vneid-sync.env.example: {variable} is not a setting"
    assert not re.search(r"PASSWORD=|PASSPHRASE=|PIN=|TOKEN=", example), "no secret values in the env file"


def test_volumes_and_configs_are_declared() -> None:
    compose = _compose()
    volumes = set(compose["volumes"])
    for name, service in compose["services"].items():
        for mount in service.get("volumes", []):
            source = mount.split(":", 1)[0]
            assert source in volumes, f"{name}: {source} is not a named volume"
        for config in service.get("configs", []):
            assert config["source"] in compose["configs"], name
    assert compose["configs"]["vneid_config"]["file"] == "./config/config.toml"
    assert (DEPLOY / "config" / "config.toml.example").is_file()


def _working_docker_compose() -> str | None:
    docker = shutil.which("docker")
    if docker is None:
        return None
    probe = subprocess.run([docker, "compose", "version"], capture_output=True, text=True, check=False)
    return docker if probe.returncode == 0 else None


def test_docker_compose_config_accepts_the_file(tmp_path: Path) -> None:
    """Only where the compose plugin works (the docker CLI alone is not enough); skipped otherwise, even in CI."""
    docker = _working_docker_compose()
    if docker is None:
        pytest.skip("no working `docker compose` (plugin missing); the YAML checks above still ran")
    deploy = tmp_path / "deploy"
    shutil.copytree(DEPLOY, deploy, ignore=shutil.ignore_patterns("secrets"))
    (deploy / "vneid-sync.env").write_text((DEPLOY / "vneid-sync.env.example").read_text(encoding="utf-8"))
    (deploy / "config" / "config.toml").write_text(
        (DEPLOY / "config" / "config.toml.example").read_text(encoding="utf-8")
    )
    (deploy / "secrets").mkdir()
    for secret in _compose()["secrets"].values():
        (deploy / secret["file"]).write_text("placeholder")
    result = subprocess.run(
        [docker, "compose", "-f", str(deploy / "compose.yaml"), "--profile", "staging", "config", "-q"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
