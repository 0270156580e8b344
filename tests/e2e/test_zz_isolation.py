"""Runs after the other e2e tests in this folder: nothing they started may leak into later tests."""

from __future__ import annotations

import os

from tests.e2e.conftest import INITIAL_VNEID_CONFIG


def test_demo_stacks_restore_the_environment() -> None:
    assert os.environ.get("VNEID_CONFIG") == INITIAL_VNEID_CONFIG
