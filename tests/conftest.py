"""Shared fixtures for the domain tests (helpers live in tests/builders.py)."""

from __future__ import annotations

import pytest

from builders import Account, World
from jiefeng.policy.schema import Policy, default_policy


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
