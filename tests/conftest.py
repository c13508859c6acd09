"""Shared fixtures for the domain tests (helpers live in tests/builders.py)."""

from __future__ import annotations

import os

import pytest

from builders import Account, World
from jiefeng.domain import invariants
from jiefeng.policy.schema import Policy, default_policy

# Every fold in the tests asserts the state's invariants after each event and advance (see
# jiefeng.domain.invariants); processes the tests start do too, through the environment.
invariants.ENABLED = True
os.environ["JIEFENG_CHECK_INVARIANTS"] = "1"


def pytest_report_header() -> str:
    from jiefeng import native

    compiled = native.compiled_modules()
    return (f"jiefeng domain: {len(compiled)} of {len(native.NATIVE_MODULES)} hot modules "
            "compiled (make native)" if compiled else "jiefeng domain: Python sources")


@pytest.fixture
def policy() -> Policy:
    return default_policy()


@pytest.fixture
def world() -> World:
    return World()


@pytest.fixture
def account(world: World) -> Account:
    """Account A1, opened 2026-01-05 10:00 +08:00 with a 10,000.00 line (statement 1st, due 9th)."""
    return world.account("A1")
