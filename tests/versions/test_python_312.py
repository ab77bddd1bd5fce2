"""The quick tier on Python 3.12 with requirements/lock.txt installed, the lock CI installs."""

from __future__ import annotations

import pytest

from tests.versions.pythons import run_quick_tier

pytestmark = pytest.mark.versions


def test_the_quick_tier_passes() -> None:
    run_quick_tier("3.12", "lock.txt")
