"""Every vneid-sync command line in the operations docs is a real command with real options."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from tests.unit.deploy.commands import CommandLineError, check, parse

REPO_ROOT = Path(__file__).resolve().parents[3]
DOCS = ["docs/operations.md", "docs/vi/bat-dau-nhanh.md", "docs/architecture.md"]
_FENCE = re.compile(r"```(?:bash|sh)?\n(.*?)```", re.DOTALL)
#: Inline code that is a whole command line (a synopsis with [optional] parts is not).
_INLINE = re.compile(r"(?<!`)`((?:vneid-sync|docker compose run)[^`\[]*)`(?!`)")
_PREFIXES = (
    ("vneid-sync-admin",),
    ("/opt/vneid-sync/.venv/bin/vneid-sync",),
    ("vneid-sync",),
    ("docker", "compose", "run", "--rm", "migrate"),
)


def _command_lines(text: str) -> list[list[str]]:
    found = []
    blocks = _FENCE.findall(text) + _INLINE.findall(_FENCE.sub("", text))
    for block in blocks:
        for raw in block.replace("\\\n", " ").splitlines():
            line = raw.split(" #", 1)[0].strip()
            if not line or line.startswith("#"):
                continue
            for segment in re.split(r"&&|\|\||;|\|", line):
                try:
                    words = shlex.split(segment)
                except ValueError:
                    continue
                words = [w for w in words if "=" not in w or w.startswith("-")]  # drop VAR=value prefixes
                for prefix in _PREFIXES:
                    if tuple(words[: len(prefix)]) == prefix:
                        argv = words[len(prefix) :]
                        if argv and argv[0] != "…":  # the bare program name is prose, not a command
                            found.append(argv)
                        break
    return found


CASES = [
    (doc, argv) for doc in DOCS for argv in _command_lines((REPO_ROOT / doc).read_text(encoding="utf-8"))
]


def test_the_docs_show_commands() -> None:
    assert len(CASES) > 30


@pytest.mark.parametrize(("doc", "argv"), CASES, ids=[f"{d}:{' '.join(a)[:60]}" for d, a in CASES])
def test_documented_command_parses(doc: str, argv: list[str]) -> None:
    try:
        parse(argv)
    except CommandLineError as exc:
        if re.search(r"'[^']+' does not exist", str(exc)):
            return  # an example path (the CLI checks that the file exists when it runs)
    check(argv, doc)
