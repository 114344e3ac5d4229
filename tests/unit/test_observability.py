"""The dashboard and the alert rules only use metrics the worker exports; compose runs them."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, get_args

import yaml

from dev.harness.metrics import WorkerMetrics
from stream_app.domain import RejectionCode
from stream_app.worker.metrics import Metrics

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "stream-app.json"
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
METRIC = re.compile(r"\b((?:stream_app|process)_[a-z_]+)\b")
#: Metrics of Prometheus itself rather than of the worker.
PROMETHEUS_OWN = {"up"}


def _exported() -> set[str]:
    metrics = Metrics()
    # Every labelled family with at least one sample, so that its name shows in the text.
    metrics.rejected["invalid_event"] += 1
    metrics.transitions["open"] += 1
    metrics.info["version"] = "0"
    metrics.lag_source = lambda: {("events", 0): 1}
    return {name for name, _ in WorkerMetrics.parse(metrics.render()).samples}


def _dashboard_exprs() -> list[str]:
    dashboard: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]


def _alert_exprs() -> list[str]:
    rules = yaml.safe_load(ALERTS.read_text())
    return [rule["expr"] for group in rules["groups"] for rule in group["rules"]]


def test_dashboard_and_alerts_use_only_exported_metrics() -> None:
    exported = _exported()
    exprs = _dashboard_exprs() + _alert_exprs()
    used = {name for expr in exprs for name in METRIC.findall(expr)}
    assert used - exported == set()
    # They cover what operators page on.
    for name in (
        "stream_app_consumer_lag",
        "stream_app_end_to_end_seconds_bucket",
        "stream_app_events_rejected_total",
        "stream_app_rebalances_total",
        "stream_app_restore_remaining_records",
        "process_resident_memory_bytes",
    ):
        assert name in used, name


def test_alert_rules_are_named_and_described() -> None:
    rules = yaml.safe_load(ALERTS.read_text())["groups"][0]["rules"]
    assert {rule["alert"] for rule in rules} == {
        "StreamAppLagGrowing",
        "StreamAppDeadLetterRate",
        "StreamAppWorkerNotReady",
        "StreamAppRestoreStuck",
        "StreamAppProcessingErrors",
    }
    assert all(rule["annotations"]["summary"] for rule in rules)


def test_the_processing_error_alert_names_codes_the_worker_emits() -> None:
    rules = yaml.safe_load(ALERTS.read_text())["groups"][0]["rules"]
    [rule] = [r for r in rules if r["alert"] == "StreamAppProcessingErrors"]
    [pattern] = re.findall(r'code=~"([^"]+)"', rule["expr"])
    assert set(pattern.split("|")) == {"processing_error", "invalid_internal_record"}
    assert set(pattern.split("|")) <= set(get_args(RejectionCode))


def test_prometheus_and_grafana_run_behind_the_observability_profile() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    for name in ("prometheus", "grafana"):
        assert services[name]["profiles"] == ["observability"]
    for mount in services["prometheus"]["volumes"] + services["grafana"]["volumes"]:
        source = mount.split(":", 1)[0]
        assert (ROOT / source).exists(), source
    scrape = yaml.safe_load((ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text())
    target = scrape["scrape_configs"][0]["static_configs"][0]["targets"][0]
    port = services["worker"]["environment"]["STREAM_APP_WEB_PORT"]
    assert target == f"worker:{port}"
