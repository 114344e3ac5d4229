"""docker-compose.yml and deploy/Dockerfile stay in step with the code (no Docker needed)."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from stream_app.settings import ENV_DEFAULTS, OPTIONAL_ENV, ProcessingGuarantee, Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
POM = ROOT / "deploy" / "kafka" / "pom.xml"
MAVEN_NS = {"m": "http://maven.apache.org/POM/4.0.0"}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(loaded, dict)
    return loaded


@pytest.fixture(scope="module")
def worker(compose: dict[str, Any]) -> dict[str, Any]:
    service = compose["services"]["worker"]
    assert isinstance(service, dict)
    return service


@pytest.fixture(scope="module")
def worker_env(worker: dict[str, Any]) -> dict[str, str]:
    return _environment(worker)


def _environment(service: Mapping[str, Any]) -> dict[str, str]:
    """A service's environment as name -> value, in either compose spelling (map or list)."""
    raw = service.get("environment", {})
    if isinstance(raw, list):
        pairs = (entry.split("=", 1) for entry in raw)
        return {name: value for name, value in pairs}
    return {name: "" if value is None else str(value) for name, value in raw.items()}


def _kafka_service(compose: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    services = compose["services"]
    matches = [
        (name, service)
        for name, service in services.items()
        if str(service.get("image", "")).startswith("apache/kafka:")
    ]
    assert len(matches) == 1, "expected exactly one apache/kafka service"
    return matches[0]


def test_worker_sets_only_settings_the_code_reads(worker_env: dict[str, str]) -> None:
    configured = {name for name in worker_env if name.startswith("STREAM_APP_")}

    unknown = configured - set(ENV_DEFAULTS)

    assert not unknown, f"compose sets variables the worker never reads: {sorted(unknown)}"


def test_worker_sets_every_setting_the_code_reads(worker_env: dict[str, str]) -> None:
    # Credentials and the HTTP token are left out: the compose broker is PLAINTEXT.
    missing = set(ENV_DEFAULTS) - OPTIONAL_ENV - set(worker_env)

    assert not missing, f"compose leaves these settings to their defaults: {sorted(missing)}"


def test_worker_settings_are_valid(worker_env: dict[str, str]) -> None:
    settings = Settings.from_env(worker_env)

    assert settings.processing_guarantee is ProcessingGuarantee.EXACTLY_ONCE
    assert settings.partitions >= 1


def test_kafka_image_matches_the_local_broker_version(compose: dict[str, Any]) -> None:
    _, kafka = _kafka_service(compose)
    version = ET.parse(POM).getroot().findtext("m:properties/m:kafka.version", None, MAVEN_NS)

    assert version, "deploy/kafka/pom.xml has no <kafka.version>"
    assert kafka["image"] == f"apache/kafka:{version}"


def test_worker_broker_points_at_the_kafka_service(
    compose: dict[str, Any], worker: dict[str, Any], worker_env: dict[str, str]
) -> None:
    name, kafka = _kafka_service(compose)
    hosts = {name, kafka.get("hostname", name)}
    advertised = {
        match.group(1, 2)
        for match in re.finditer(
            r"//([^:,]+):(\d+)", _environment(kafka)["KAFKA_ADVERTISED_LISTENERS"]
        )
    }
    brokers = Settings.from_env(worker_env).bootstrap_servers

    for entry in brokers:
        host, _, port = entry.rpartition(":")
        assert host in hosts, f"{entry} is not the {name} service"
        assert (host, port) in advertised, f"{entry} is not an advertised listener of {name}"
    depends_on = worker.get("depends_on", {})
    assert name in depends_on


def test_worker_publishes_its_web_port_and_keeps_its_state_in_a_volume(
    worker: dict[str, Any], worker_env: dict[str, str]
) -> None:
    settings = Settings.from_env(worker_env)
    published = {str(port).rsplit(":", 1)[-1] for port in worker.get("ports", [])}
    mounts = {str(volume).split(":")[1] for volume in worker.get("volumes", [])}

    assert str(settings.web_port) in published
    assert str(settings.data_dir) in mounts


def test_dockerfile_builds_the_worker_the_compose_file_runs(worker: dict[str, Any]) -> None:
    dockerfile = DOCKERFILE.read_text()

    assert worker["build"]["dockerfile"] == "deploy/Dockerfile"
    assert re.search(r"^FROM python:3\.11-slim\b", dockerfile, re.MULTILINE)
    assert re.search(r"^RUN pip install \.", dockerfile, re.MULTILINE)
    assert 'ENTRYPOINT ["stream-app"]' in dockerfile
    assert worker.get("command", ["worker"])[0] == "worker"


def test_worker_healthcheck_is_valid_python(worker: dict[str, Any]) -> None:
    test = worker["healthcheck"]["test"]

    assert test[:3] == ["CMD", "python", "-c"]
    compile(test[3], "<healthcheck>", "exec")
