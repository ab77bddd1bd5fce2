"""The README's "Supported versions" table names what the tests run, and the image, compose and
the chart name the servers of tested-versions.json: the Qdrant server the tests start by default,
the Kafka broker of the tests' own broker (connector/dev/kafka-broker.pom.xml)."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from connector.dev.broker import kafka_version
from connector.dev.qdrant_server import SHARED_START
from connector.versions import SUPPORTED_FLOOR, parse_version
from tests.unit.test_lock import pinned_for

ROOT = Path(__file__).resolve().parents[2]
TESTED = json.loads((ROOT / "tested-versions.json").read_text())


def readme_table() -> dict[str, list[str]]:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Supported versions", 1)[1].split("\n## ", 1)[0]
    rows = [line.strip("|").split("|") for line in section.splitlines() if line.startswith("| ")]
    return {cells[0].strip(): [cell.strip() for cell in cells[1:]] for cells in rows[2:]}  # past the head


def lock_version(lock: str, python: str, name: str) -> str:
    return str(pinned_for((ROOT / "requirements" / lock).read_text(), python)[name])


def test_the_table_has_its_rows() -> None:
    assert set(readme_table()) == {"Python", "Qdrant server", "Kafka broker", "qdrant-client", "fastembed"}


def test_python_rows_are_the_tiers_pythons() -> None:
    oldest, ci, newest = readme_table()["Python"]
    tiers = sorted(path.stem.removeprefix("test_python_")
                   for path in (ROOT / "tests" / "versions").glob("test_python_*.py"))
    assert f"{oldest}".replace(".", "") == tiers[0]
    assert f"{newest}".replace(".", "") == tiers[-1]
    assert ci == "3.11"  # .ci/run's, the Dockerfile's
    assert "python:3.11-slim" in (ROOT / "Dockerfile").read_text()


@pytest.mark.parametrize("name", ["qdrant-client", "fastembed"])
def test_library_rows_are_the_locks(name: str) -> None:
    oldest, ci, newest = readme_table()[name]
    assert oldest == lock_version("lowest.txt", "3.10", name)
    assert ci == lock_version("lock.txt", "3.11", name)
    assert newest == lock_version("lock.txt", "3.13", name)


def test_qdrant_row_starts_at_the_floor_and_names_the_image_server() -> None:
    oldest, ci, newest = readme_table()["Qdrant server"]
    floor = parse_version(oldest)
    assert (floor.major, floor.minor) == SUPPORTED_FLOOR
    assert ci == TESTED["qdrant_server"]
    assert parse_version(newest) >= parse_version(ci)


def test_kafka_row_is_the_tested_broker() -> None:
    assert readme_table()["Kafka broker"] == [TESTED["kafka_broker"]] * 3


def test_the_tests_broker_is_the_tested_one() -> None:
    assert kafka_version() == TESTED["kafka_broker"]


def test_the_tests_server_is_the_tested_one() -> None:
    if SHARED_START is None or not SHARED_START.exists():
        pytest.skip("no ../shared/qdrant/start beside the checkout")
    binary = subprocess.run([str(SHARED_START), "--path"], capture_output=True, text=True, timeout=30, check=True)
    said = subprocess.run([binary.stdout.strip(), "--version"], capture_output=True, text=True, timeout=30, check=True)
    assert said.stdout.split()[-1] == TESTED["qdrant_server"]


def test_image_compose_and_chart_name_the_tested_servers() -> None:
    qdrant, kafka = TESTED["qdrant_server"], TESTED["kafka_broker"]
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    images = {name: service["image"] for name, service in compose["services"].items() if "image" in service}
    assert images["qdrant"] == f"qdrant/qdrant:v{qdrant}"
    assert {image for image in images.values() if image.startswith("apache/kafka")} == {f"apache/kafka:{kafka}"}
    values = yaml.safe_load((ROOT / "helm" / "qdrant-change-connector" / "values.yaml").read_text())
    assert values["testedWith"] == {"qdrantServer": qdrant, "kafkaBroker": kafka}
    labels = dict(re.findall(r'tested-(qdrant-server|kafka-broker)="([^"]+)"', (ROOT / "Dockerfile").read_text()))
    assert labels == {"qdrant-server": qdrant, "kafka-broker": kafka}
