"""deploy/bin/vneid-sync-admin runs a command as the service account with the units' environment."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[3]
SCRIPT = REPO_ROOT / "deploy" / "bin" / "vneid-sync-admin"
ACCOUNT = "nobody"  # stands in for vneid-sync: any unprivileged account shows the switch


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory the unprivileged account can read (pytest's tmp_path is private to root)."""
    path = Path(tempfile.mkdtemp(prefix="vneid-admin-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path)


def test_script_is_valid_bash() -> None:
    subprocess.run(["bash", "-n", str(SCRIPT)], check=True)
    assert os.access(SCRIPT, os.X_OK)


def test_runs_the_program_as_the_account_with_the_env_file_and_config(shared_dir: Path) -> None:
    if os.geteuid() != 0 or shutil.which("runuser") is None:
        pytest.skip("needs root and runuser (util-linux) to switch accounts")
    try:
        account = pwd.getpwnam(ACCOUNT)
    except KeyError:
        pytest.skip(f"no {ACCOUNT} account on this machine")
    env_file = shared_dir / "vneid-sync.env"
    env_file.write_text("# secrets\nVNEID_LEDGER__PASSWORD_FILE=/etc/vneid-sync/secrets/ledger-password\n")
    config = shared_dir / "config.toml"
    config.write_text("")
    program = shared_dir / "fake-vneid-sync"
    python = shutil.which("python3", path="/usr/bin:/bin")  # the test's own interpreter may sit under /root
    if python is None:
        pytest.skip("no system python3 for the stand-in program")
    program.write_text(
        f"#!{python}\n"
        "import json, os, sys\n"
        "print(json.dumps({'uid': os.getuid(), 'argv': sys.argv[1:], 'cwd': os.getcwd(),\n"
        "    'config': os.environ.get('VNEID_CONFIG'),\n"
        "    'secret_ref': os.environ.get('VNEID_LEDGER__PASSWORD_FILE')}))\n"
    )
    program.chmod(0o755)
    for path in (env_file, config):
        path.chmod(0o644)
    environment = {
        **os.environ,
        "VNEID_ENV_FILE": str(env_file),
        "VNEID_CONFIG": str(config),
        "VNEID_PROGRAM": str(program),
        "VNEID_ACCOUNT": ACCOUNT,
        "VNEID_STATE_DIR": str(shared_dir),
    }
    result = subprocess.run(
        [str(SCRIPT), "coverage", "--since", "2026-01-01", "--format", "json"],
        env=environment,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout)
    assert seen["uid"] == account.pw_uid
    assert seen["argv"] == ["coverage", "--since", "2026-01-01", "--format", "json"]
    assert seen["cwd"] == str(shared_dir)
    assert seen["config"] == str(config)
    assert seen["secret_ref"] == "/etc/vneid-sync/secrets/ledger-password"


def test_refuses_a_missing_environment_file(shared_dir: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("the script refuses to run as non-root before looking at files")
    result = subprocess.run(
        [str(SCRIPT), "db", "upgrade"],
        env={**os.environ, "VNEID_ENV_FILE": str(shared_dir / "absent.env")},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert "absent.env is missing" in result.stderr
