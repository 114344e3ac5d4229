"""The docs' tables of routes, metrics and settings say what the code does."""

from __future__ import annotations

import re
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from stream_app import __version__
from stream_app.settings import SETTINGS, settings_table
from stream_app.worker.metrics import Metrics

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
CONTRACT = (ROOT / "docs" / "contract.md").read_text()
WEB = (ROOT / "stream_app" / "worker" / "web.py").read_text()


def _section(text: str, heading: str) -> str:
    return text.split(heading, 1)[1].split("\n## ", 1)[0]


def _routes(table: str) -> set[str]:
    return set(re.findall(r"^\| `GET (/[^`]*)` \|", table, flags=re.MULTILINE))


def test_the_http_routes_in_the_readme_and_the_contract_are_the_served_ones() -> None:
    served = {
        path.replace("{integration_id}", "{integrationId}").replace(
            "{application_id}", "{applicationId}"
        )
        for path in re.findall(r'@app\.page\("([^"]+)"\)', WEB)
    }
    assert served == _routes(_section(README, "## HTTP"))
    assert served == _routes(_section(CONTRACT, "## 7. HTTP"))


def test_the_contract_lists_every_metric_the_worker_exports() -> None:
    exported = {
        family.name
        for family in text_string_to_metric_families(Metrics().render())
        if not family.name.startswith("process_")
    }
    documented = {
        re.sub(r"_total$", "", name)
        for name in re.findall(r"^\| `(stream_app_[a-z_]+)", _section(CONTRACT, "## 7. HTTP"),
                               flags=re.MULTILINE)
    }  # fmt: skip
    assert documented == exported


def test_the_readme_settings_table_is_the_one_generated_from_the_declarations() -> None:
    table = _section(README, "## Settings").split("| variable |", 1)[1].split("\n\n", 1)[0]
    assert "| variable |" + table + "\n" == settings_table()
    rows = re.findall(r"^\| `(STREAM_APP_[A-Z_]+)` \|", table, re.MULTILINE)
    assert rows == [setting.env for setting in SETTINGS]


def test_the_readme_metrics_sample_is_what_this_version_exports() -> None:
    sample = _section(README, "### Monitoring").split("```text", 1)[1].split("```", 1)[0]
    names = {re.sub(r"_(total|count|sum|bucket)$", "", line.split("{")[0].split()[0])
             for line in sample.strip().splitlines()}  # fmt: skip
    exported = {family.name for family in text_string_to_metric_families(Metrics().render())}
    assert names <= exported
    assert f'version="{__version__}"' in sample
