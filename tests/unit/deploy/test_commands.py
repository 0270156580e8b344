"""The command-line checker the deployment tests rely on must itself tell real commands from made-up ones."""

from __future__ import annotations

import pytest

from tests.unit.deploy.commands import CommandLineError, parse


def test_real_commands_parse_with_their_values() -> None:
    parsed = parse(["worker", "--queue", "discovery", "--queue", "backfill", "--concurrency", "1"])
    assert parsed.path == ("worker",)
    assert [str(q) for q in parsed.params["queues"]] == ["discovery", "backfill"]  # type: ignore[attr-defined]
    assert parse(["db", "upgrade"]).path == ("db", "upgrade")
    assert parse(["--config", "/etc/vneid-sync/config.toml", "beat"]).path == ("beat",)


@pytest.mark.parametrize(
    "argv",
    [
        ["wrokers"],  # no such command
        ["db", "downgrade-all"],  # no such subcommand
        ["db"],  # a group needs a subcommand
        ["worker", "--queues", "submission"],  # no such option
        ["worker", "--queue", "discovery,backfill"],  # not a queue name: the option repeats instead
        ["worker", "--concurrency", "two"],  # not an integer
    ],
)
def test_made_up_command_lines_are_rejected(argv: list[str]) -> None:
    with pytest.raises(CommandLineError):
        parse(argv)
