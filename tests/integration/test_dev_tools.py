"""The development tools' own output: what a user sees when the broker jars are fetched."""

from __future__ import annotations

from pathlib import Path

import pytest

from connector.dev import broker


def test_fetching_the_broker_jars_writes_no_terminal_codes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    # a fresh cache folder makes Maven run (from its local repository when it has the jars)
    monkeypatch.setenv("QCC_KAFKA_CACHE", str(tmp_path / "kafka"))
    libs = broker.broker_jars()
    out, err = capfd.readouterr()
    assert (libs / ".complete").is_file()
    assert any(libs.glob("kafka_*.jar"))
    assert "\x1b" not in out
    assert "\x1b" not in err
