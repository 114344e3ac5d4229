"""deploy/k8s/ stays in step with the settings the code reads and with the worker's HTTP views."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from stream_app import __version__
from stream_app.settings import ENV_DEFAULTS, OPTIONAL_ENV, ProcessingGuarantee, Settings

K8S = Path(__file__).resolve().parents[2] / "deploy" / "k8s"


@pytest.fixture(scope="module")
def manifests() -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    # The applied folder and the example Secret beside it (examples/, never applied).
    for path in sorted([*K8S.glob("*.yaml"), *K8S.glob("examples/*.yaml")]):
        for document in yaml.safe_load_all(path.read_text()):
            found[document["kind"]] = document
    return found


@pytest.fixture(scope="module")
def container(manifests: dict[str, dict[str, Any]]) -> dict[str, Any]:
    (worker,) = manifests["StatefulSet"]["spec"]["template"]["spec"]["containers"]
    assert isinstance(worker, dict)
    return worker


@pytest.fixture(scope="module")
def env(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {entry["name"]: entry for entry in container["env"]}


def _plain(env: dict[str, dict[str, Any]]) -> dict[str, str]:
    return {name: str(entry["value"]) for name, entry in env.items() if "value" in entry}


def test_sets_only_settings_the_code_reads(env: dict[str, dict[str, Any]]) -> None:
    unknown = {name for name in env if name.startswith("STREAM_APP_")} - set(ENV_DEFAULTS)

    assert not unknown, f"the StatefulSet sets variables the worker never reads: {sorted(unknown)}"


def test_sets_every_setting_but_the_optional_ones(env: dict[str, dict[str, Any]]) -> None:
    missing = set(ENV_DEFAULTS) - OPTIONAL_ENV - set(env)

    assert not missing, f"the StatefulSet leaves these to their defaults: {sorted(missing)}"


def test_plain_values_are_valid_settings(env: dict[str, dict[str, Any]], tmp_path: Path) -> None:
    values = _plain(env)
    # The mounted secret stands in for the file the pod would read.
    password = tmp_path / "password"
    password.write_text("x")
    values["STREAM_APP_SASL_PASSWORD_FILE"] = str(password)
    values["STREAM_APP_SASL_USERNAME"] = "from-the-secret"

    settings = Settings.from_env(values)

    assert settings.processing_guarantee is ProcessingGuarantee.EXACTLY_ONCE
    assert settings.security.protocol.uses_sasl


def test_instance_id_is_the_pod_name_and_is_advertised_through_the_service(
    manifests: dict[str, dict[str, Any]],
    container: dict[str, Any],
    env: dict[str, dict[str, Any]],
) -> None:
    field = env["STREAM_APP_INSTANCE_ID"]["valueFrom"]["fieldRef"]["fieldPath"]
    service = manifests["Service"]
    statefulset = manifests["StatefulSet"]

    assert field == "metadata.name"
    assert service["spec"]["clusterIP"] == "None"
    assert statefulset["spec"]["serviceName"] == service["metadata"]["name"]
    args = container["args"]
    assert args[0] == "worker"
    web_host = args[args.index("--web-host") + 1]
    assert web_host == f"$(STREAM_APP_INSTANCE_ID).{service['metadata']['name']}"


def test_probes_port_and_volume_match_the_settings(
    manifests: dict[str, dict[str, Any]],
    container: dict[str, Any],
    env: dict[str, dict[str, Any]],
) -> None:
    plaintext = {"STREAM_APP_SECURITY_PROTOCOL": "PLAINTEXT", "STREAM_APP_SASL_PASSWORD_FILE": ""}
    settings = Settings.from_env({**_plain(env), **plaintext})
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    statefulset = manifests["StatefulSet"]["spec"]

    assert ports["http"] == settings.web_port
    assert container["livenessProbe"]["httpGet"] == {"path": "/livez", "port": "http"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    mounts = {mount["name"]: mount["mountPath"] for mount in container["volumeMounts"]}
    claims = {claim["metadata"]["name"] for claim in statefulset["volumeClaimTemplates"]}
    assert mounts["data"] == str(settings.data_dir)
    assert "data" in claims
    # Longer than a stop's final commit (a commit every 100 ms), with room.
    assert statefulset["template"]["spec"]["terminationGracePeriodSeconds"] >= 30
    service_port = manifests["Service"]["spec"]["ports"][0]
    assert service_port["port"] == settings.web_port


def test_secret_example_holds_what_the_statefulset_reads(
    manifests: dict[str, dict[str, Any]], env: dict[str, dict[str, Any]]
) -> None:
    secret = manifests["Secret"]
    volumes = manifests["StatefulSet"]["spec"]["template"]["spec"]["volumes"]
    (mounted,) = [v["secret"] for v in volumes if "secret" in v]
    keys = set(secret["stringData"])

    assert mounted["secretName"] == secret["metadata"]["name"]
    assert {item["key"] for item in mounted["items"]} <= keys
    for entry in env.values():
        ref = entry.get("valueFrom", {}).get("secretKeyRef")
        if ref:
            assert ref["name"] == secret["metadata"]["name"]
            assert ref["key"] in keys
    password_file = env["STREAM_APP_SASL_PASSWORD_FILE"]["value"]
    assert password_file.rsplit("/", 1)[1] in {item["path"] for item in mounted["items"]}


def test_disruption_budget_selects_the_worker_pods(manifests: dict[str, dict[str, Any]]) -> None:
    labels = manifests["StatefulSet"]["spec"]["template"]["metadata"]["labels"]
    budget = manifests["PodDisruptionBudget"]["spec"]

    assert budget["selector"]["matchLabels"].items() <= labels.items()
    assert budget["maxUnavailable"] == 1


def test_the_applied_folder_holds_no_secret() -> None:
    # `kubectl apply -f deploy/k8s/` must not make the example's placeholder values live.
    kinds = {
        doc["kind"] for path in K8S.glob("*.yaml") for doc in yaml.safe_load_all(path.read_text())
    }
    assert "Secret" not in kinds


def test_the_pod_meets_the_restricted_pod_security_profile(
    manifests: dict[str, dict[str, Any]], container: dict[str, Any]
) -> None:
    pod = manifests["StatefulSet"]["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    security = container["securityContext"]
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    assert security["readOnlyRootFilesystem"] is True
    mounts = {mount["mountPath"] for mount in container["volumeMounts"]}
    assert "/tmp" in mounts  # the only other place the worker may write
    assert container["startupProbe"]["httpGet"]["path"] == "/livez"
    assert pod["topologySpreadConstraints"][0]["topologyKey"] == "kubernetes.io/hostname"


def test_the_image_tag_is_the_version(container: dict[str, Any]) -> None:
    assert container["image"] == f"stream-app:{__version__}"
