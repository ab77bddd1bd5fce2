"""docker-compose.yml, the helm chart and the Dockerfile: valid, and wired to real settings.

No Docker engine or cluster runs here: the compose file is validated against the Compose
specification's JSON Schema (shipped in the docker-compose wheel that `scripts/bootstrap --tests`
downloads), and the chart with helm lint, helm template and the Kubernetes schemas of the
kubernetes-validate package.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import zipfile
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from connector.settings import Settings
from connector.versions import parse_version

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "qdrant-change-connector"
COMPOSE_WHEEL = ROOT / ".cache" / "wheels" / "docker_compose-1.29.2-py2.py3-none-any.whl"
HELM = shutil.which("helm") or str(ROOT / ".cache" / "bin" / "helm")
K8S_VERSION = "1.30.0"
SETTINGS_ENV = {f"QCC_{name.upper()}" for name in Settings.model_fields}


def compose_schema() -> dict[str, Any]:
    with zipfile.ZipFile(COMPOSE_WHEEL) as wheel:
        return json.loads(wheel.read("compose/config/compose_spec.json"))


def test_compose_file_is_valid_against_the_compose_spec() -> None:
    document = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    jsonschema.Draft7Validator(compose_schema()).validate(document)


def test_compose_wires_the_connector() -> None:
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    assert services["kafka"]["image"].startswith("apache/kafka:")
    assert services["qdrant"]["image"].startswith("qdrant/qdrant:")
    assert {"6333:6333", "6334:6334"} <= set(services["qdrant"]["ports"])
    env = services["connector"]["environment"]
    assert set(env) <= SETTINGS_ENV, set(env) - SETTINGS_ENV  # every variable is a real setting
    assert env["QCC_KAFKA_BOOTSTRAP_SERVERS"] == "kafka:19092"
    assert env["QCC_QDRANT_URL"] == "http://qdrant:6333"
    topics_script = services["topics"]["command"][0]
    for key in ("QCC_PATCH_TOPIC", "QCC_REEMBED_TOPIC", "QCC_VERIFICATION_TOPIC", "QCC_DEAD_LETTER_TOPIC"):
        assert env[key] in topics_script
    listeners = services["kafka"]["environment"]["KAFKA_ADVERTISED_LISTENERS"]
    assert "kafka:19092" in listeners
    assert "localhost:9092" in listeners
    assert Settings(**{k[4:].lower(): v for k, v in env.items()}).qdrant_url == "http://qdrant:6333"
    for name in ("demo-producer", "tail", "demo-setup"):
        assert services[name]["profiles"] == ["demo"]


def test_compose_qdrant_version_is_an_exact_supported_release() -> None:
    # the connector judges a server by its own table (connector/versions.py), not by how far it is
    # from the client's version; a floating tag (latest) would drift away from what was tested
    image = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]["qdrant"]["image"]
    match = re.fullmatch(r"qdrant/qdrant:v(\d+\.\d+\.\d+)", image)
    assert match, f"pin the Qdrant image to an exact release, not {image!r}"
    assert parse_version(match[1]).refusal() is None, image


def test_dockerfile_is_multi_stage_non_root_with_healthcheck() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert text.count("FROM ") >= 2
    assert "USER 10001" in text
    assert "HEALTHCHECK" in text
    assert 'ENTRYPOINT ["qdrant-change-connector"]' in text
    assert "/livez" in text
    for line in text.splitlines():
        if line.strip().startswith("QCC_"):
            assert line.strip().split("=")[0] in SETTINGS_ENV


def _helm(*args: str) -> str:
    if not Path(HELM).exists():
        pytest.fail("helm is missing: scripts/bootstrap --tests builds it into .cache/bin")
    result = subprocess.run([HELM, *args], capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr + result.stdout
    return result.stdout


NON_DEFAULT = [
    "--set",
    "replicaCount=4",
    "--set",
    "secrets.qdrantApiKey=k3y-v4lue",
    "--set",
    "secrets.kafkaSaslPassword=pw-v4lue",
    "--set",
    "config.kafkaSecurityProtocol=SASL_SSL",
    "--set",
    "config.kafkaSaslMechanism=SCRAM-SHA-512",
    "--set",
    "config.kafkaSaslUsername=connector",
    "--set",
    "serviceMonitor.enabled=true",
    "--set",
    "models.existingClaim=models",
    "--set-string",
    "config.extra.QCC_MAX_EVENT_BYTES=2097152",
]


@pytest.mark.parametrize("values", [[], NON_DEFAULT], ids=["default", "non-default"])
def test_chart_lints_renders_and_validates(values: list[str]) -> None:
    _helm("lint", "--strict", str(CHART), *values)
    manifests = [m for m in yaml.safe_load_all(_helm("template", "rel", str(CHART), *values)) if m]
    kinds = {m["kind"] for m in manifests}
    assert {"Deployment", "ConfigMap", "Service", "PodDisruptionBudget"} <= kinds
    for manifest in manifests:
        if manifest["kind"] == "ServiceMonitor":  # a CRD: no schema in the Kubernetes set
            assert manifest["spec"]["endpoints"][0]["path"] == "/metrics"
            continue
        kubernetes_validate.validate(manifest, K8S_VERSION, strict=True)
    config = next(m for m in manifests if m["kind"] == "ConfigMap")["data"]
    assert set(config) <= SETTINGS_ENV, set(config) - SETTINGS_ENV
    deployment = next(m for m in manifests if m["kind"] == "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["livenessProbe"]["httpGet"]["path"] == "/livez"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    if values:
        assert deployment["spec"]["replicas"] == 4
        secret = next(m for m in manifests if m["kind"] == "Secret")
        assert set(secret["data"]) == {"QCC_QDRANT_API_KEY", "QCC_KAFKA_SASL_PASSWORD"}
        rendered_config = json.dumps(config)
        assert "k3y-v4lue" not in rendered_config
        assert "pw-v4lue" not in rendered_config
        assert config["QCC_MAX_EVENT_BYTES"] == "2097152"
        assert any("secretRef" in source for source in container["envFrom"])
    else:
        assert "Secret" not in kinds


def test_chart_scales_workers_with_lag_up_to_the_partitions() -> None:
    """autoscaling.enabled: a KEDA ScaledObject on the group's lag of both input topics, never
    more workers than partitions; KEDA owns the replica count; the PDB stays."""
    values = ["--set", "autoscaling.enabled=true", "--set", "autoscaling.partitions=6",
              "--set", "autoscaling.maxReplicas=20", "--set", "autoscaling.authenticationRef=kafka-auth"]
    _helm("lint", "--strict", str(CHART), *values)
    manifests = [m for m in yaml.safe_load_all(_helm("template", "rel", str(CHART), *values)) if m]
    by_kind = {m["kind"]: m for m in manifests}
    assert "replicas" not in by_kind["Deployment"]["spec"]
    assert by_kind["PodDisruptionBudget"]["spec"]["maxUnavailable"] == 1
    scaled = by_kind["ScaledObject"]["spec"]
    assert scaled["scaleTargetRef"]["name"] == by_kind["Deployment"]["metadata"]["name"]
    assert (scaled["minReplicaCount"], scaled["maxReplicaCount"]) == (1, 6)
    assert [(t["type"], t["metadata"]["topic"]) for t in scaled["triggers"]] == [
        ("kafka", "qdrant.patches"), ("kafka", "qdrant.reembeds")]
    assert all(t["metadata"]["consumerGroup"] == "qdrant-change-connector" for t in scaled["triggers"])
    assert all(t["authenticationRef"] == {"name": "kafka-auth"} for t in scaled["triggers"])
    default = [m["kind"] for m in yaml.safe_load_all(_helm("template", "rel", str(CHART))) if m]
    assert "ScaledObject" not in default


def test_chart_refuses_bad_values() -> None:
    result = subprocess.run([HELM, "template", "rel", str(CHART), "--set", "config.windowMaxEvents=0"],
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode != 0
    assert "windowMaxEvents" in result.stderr
