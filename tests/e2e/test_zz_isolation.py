"""Runs after the other e2e tests in this folder: nothing they started may leak into later tests."""

from __future__ import annotations

import os


def test_demo_stacks_restore_the_environment() -> None:
    assert "VNEID_CONFIG" not in os.environ
