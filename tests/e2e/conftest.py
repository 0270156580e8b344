"""End-to-end fixtures: the demo stack (simulator, remote signer, demo HIS, real Celery workers)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from worker.demo import DemoPlan, DemoStack

#: VNEID_CONFIG as the session found it: e2e stacks must leave it so.
INITIAL_VNEID_CONFIG = os.environ.get("VNEID_CONFIG")


@pytest.fixture
def make_stack(tmp_path: Path) -> Iterator[Callable[..., DemoStack]]:
    """Build a DemoStack; it and its processes are stopped after the test, VNEID_CONFIG restored."""
    stacks: list[DemoStack] = []
    saved = os.environ.get("VNEID_CONFIG")

    def build(**plan_fields: object) -> DemoStack:
        plan = DemoPlan(directory=tmp_path / f"stack{len(stacks)}", **plan_fields)  # type: ignore[arg-type]
        stack = DemoStack(plan, progress=lambda _message: None).__enter__()
        stacks.append(stack)
        return stack

    yield build
    for stack in stacks:
        stack.close()
    if saved is None:
        os.environ.pop("VNEID_CONFIG", None)
    else:
        os.environ["VNEID_CONFIG"] = saved
