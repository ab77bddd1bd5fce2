"""The rows of docs/errors.md that run on the prepared local-mode ``store`` (the bulk tools'
mistakes), held as tests/unit/test_cli_errors.py holds every other row."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit.test_cli_errors import STORE_ROWS, check_row, prepared, row_id  # noqa: F401 - prepared: a fixture


def test_there_are_store_rows() -> None:
    assert len(STORE_ROWS) >= 20


@pytest.mark.parametrize(("env", "args", "code", "said"), STORE_ROWS, ids=[row_id(r) for r in STORE_ROWS])
def test_a_mistake_on_the_store_is_one_line_and_its_code(env: str, args: str, code: int, said: str, tmp_path: Path,
                                                        prepared: Path) -> None:  # noqa: F811 - the fixture
    check_row(env, args, code, said, tmp_path, prepared)
