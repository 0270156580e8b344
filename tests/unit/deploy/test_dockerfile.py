"""The Dockerfile cannot be built here (no Docker engine), so what can be checked by reading is checked."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

from tests.unit.deploy.commands import check

REPO_ROOT = Path(__file__).resolve().parents[3]
DOCKERFILE = REPO_ROOT / "Dockerfile"
DOCKERIGNORE = REPO_ROOT / ".dockerignore"
VENV = "/opt/vneid-sync/.venv"


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text(encoding="utf-8"))
    pairs = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            instruction, _, arguments = stripped.partition(" ")
            pairs.append((instruction.upper(), arguments.strip()))
    return pairs


def _stages() -> dict[str, list[tuple[str, str]]]:
    stages: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] = []
    for instruction, arguments in _instructions():
        if instruction == "FROM":
            name = arguments.split(" AS ")[-1].strip() if " AS " in arguments else arguments
            current = stages.setdefault(name, [])
        current.append((instruction, arguments))
    return stages


def test_multi_stage_build_from_the_lock_file() -> None:
    stages = _stages()
    assert {"builder", "runtime"} <= set(stages)
    assert stages["runtime"][0][1].startswith("python:${PYTHON_VERSION}-slim")
    assert ("ARG", "PYTHON_VERSION=3.11") in _instructions()
    builder_runs = " ".join(args for instruction, args in stages["builder"] if instruction == "RUN")
    assert "uv sync --frozen" in builder_runs, "install exactly what uv.lock pins"
    assert f"UV_PROJECT_ENVIRONMENT={VENV}" in " ".join(args for i, args in stages["builder"] if i == "ENV")
    assert any(i == "COPY" and f"--from=builder {VENV} {VENV}" in a for i, a in stages["runtime"])


def test_runtime_has_the_xml_security_libraries_and_runs_unprivileged() -> None:
    runtime = _stages()["runtime"]
    runs = " ".join(args for instruction, args in runtime if instruction == "RUN")
    for package in ("libxml2", "libxmlsec1", "libxmlsec1-openssl", "xmlsec1", "ca-certificates", "tzdata"):
        assert re.search(rf"(?<![\w-]){re.escape(package)}(?![\w-])", runs), package
    assert "--uid 10001" in runs, "compose secrets are chowned to 10001 (deploy/secrets/README.md)"
    assert "10001" in (REPO_ROOT / "deploy" / "secrets" / "README.md").read_text(encoding="utf-8")
    assert ("USER", "vneid-sync") in runtime
    assert not any(i == "USER" and a in ("root", "0") for i, a in runtime)


def test_entrypoint_and_healthcheck_are_real_commands() -> None:
    instructions = dict(_instructions())
    assert json.loads(instructions["ENTRYPOINT"]) == ["vneid-sync"]
    healthcheck = instructions["HEALTHCHECK"]
    command = json.loads(healthcheck[healthcheck.index("CMD") + len("CMD") :].strip())
    assert command[0] == "vneid-sync"
    check(command[1:], "Dockerfile HEALTHCHECK")


def test_the_build_context_holds_the_packages_and_nothing_secret() -> None:
    patterns = [
        line.strip()
        for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert patterns[0] == "**", "allow-list: deploy/secrets, .env files and var/ never reach the daemon"
    allowed = {p[1:] for p in patterns if p.startswith("!")}
    pyproject = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    packages = pyproject["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"]
    copied = {a.split()[0] for i, a in _stages()["builder"] if i == "COPY" and not a.startswith("--")}
    for package in packages:
        assert package in allowed, f".dockerignore must let {package}/ through"
        assert package in copied, f"the builder must COPY {package}/"
    for needed in ("pyproject.toml", "uv.lock", "README.md"):  # README: the package's readme metadata
        assert needed in allowed
    assert not any("secret" in p or p.endswith(".env") for p in allowed)
