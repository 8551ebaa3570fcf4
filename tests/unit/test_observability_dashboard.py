"""infra/: the Grafana dashboard queries exactly the metric names the code exposes; Prometheus scrapes its port."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import yaml

from pipelines.config import PROJECT_ROOT, ObservabilitySettings
from pipelines.observability import metrics as m
from pipelines.observability.metrics import series_names

DASHBOARD = PROJECT_ROOT / "infra" / "grafana" / "featurestream-dashboard.json"
PROMETHEUS = PROJECT_ROOT / "infra" / "prometheus" / "prometheus.yml"

PROMQL_FUNCTIONS = {
    "sum",
    "min",
    "max",
    "avg",
    "count",
    "rate",
    "irate",
    "increase",
    "histogram_quantile",
    "time",
    "label_values",
    "clamp_min",
    "abs",
}
_IDENTIFIER = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")


def metric_names(expr: str) -> set[str]:
    """Metric names a PromQL expression reads: identifiers left once strings, label matchers, grouping label
    lists, range selectors, template variables and function names are taken out."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    expr = re.sub(r"\{[^}]*\}", "", expr)
    expr = re.sub(r"\b(by|without|on|ignoring)\s*\([^)]*\)", "", expr)
    expr = re.sub(r"\[[^\]]*\]", "", expr)
    expr = re.sub(r"\$\{?\w+\}?", "", expr)
    expr = re.sub(r"label_values\(\s*([A-Za-z_:][A-Za-z0-9_:]*)\s*,\s*\w+\s*\)", r"\1", expr)
    names = set()
    for match in _IDENTIFIER.finditer(expr):
        token = match.group()
        called = expr[match.end() :].lstrip().startswith("(")
        if called:
            assert token in PROMQL_FUNCTIONS, f"unexpected PromQL function {token!r} in {expr!r}"
        else:
            names.add(token)
    return names


def expressions(dashboard: dict[str, Any]) -> Iterator[str]:
    def panels(items: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        for panel in items:
            yield panel
            yield from panels(panel.get("panels", []))

    for panel in panels(dashboard["panels"]):
        for target in panel.get("targets", []):
            yield target["expr"]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            query = variable["query"]
            yield query["query"] if isinstance(query, dict) else query


def test_the_name_parser_finds_metrics_and_ignores_promql_syntax() -> None:
    expr = (
        'histogram_quantile(0.95, sum by (le) (rate(featurestream_end_to_end_latency_seconds_bucket{query=~"$query"}'
        "[5m]))) / time() - featurestream_watermark_timestamp_seconds"
    )
    assert metric_names(expr) == {
        "featurestream_end_to_end_latency_seconds_bucket",
        "featurestream_watermark_timestamp_seconds",
    }
    assert metric_names("label_values(featurestream_records_read_total, query)") == {m.RECORDS_READ}
    # A histogram's bare name, or a counter without _total, is not a series the endpoint exposes.
    assert not metric_names(f"rate({m.END_TO_END_LATENCY}[5m])") <= series_names()
    assert not metric_names("rate(featurestream_records_read[5m])") <= series_names()
    assert f"{m.END_TO_END_LATENCY}_sum" in series_names() and f"{m.BATCH_DURATION}_count" in series_names()


def test_every_dashboard_query_uses_exposed_metric_names_only() -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    used: set[str] = set()
    for expr in expressions(dashboard):
        names = metric_names(expr)
        assert names, f"no metric in {expr!r}"
        unknown = names - series_names()
        assert not unknown, f"{expr!r} uses {sorted(unknown)}, not exposed by pipelines/observability/metrics.py"
        used |= names
    # Every metric has a panel: histograms through one of their series, the rest by name.
    for name in m.METRIC_NAMES:
        series = {f"{name}_bucket", f"{name}_sum", f"{name}_count"} if name in m.HISTOGRAMS else {name}
        assert used & series, f"{name} is exposed but no dashboard panel shows it"


def test_the_dashboard_is_a_grafana_dashboard_with_the_issue_panels() -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    assert dashboard["uid"] and dashboard["schemaVersion"] >= 36
    titles = " | ".join(panel["title"].lower() for panel in dashboard["panels"])
    for needed in ("throughput", "dead letters", "latency", "lag", "model version", "drift psi", "precision", "state"):
        assert needed in titles
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        if panel["type"] != "row":
            grid = panel["gridPos"]
            assert grid["x"] + grid["w"] <= 24 and grid["h"] > 0
            assert panel["targets"], panel["title"]


def test_prometheus_scrapes_the_default_metrics_port() -> None:
    config = yaml.safe_load(PROMETHEUS.read_text(encoding="utf-8"))
    job = next(job for job in config["scrape_configs"] if job["job_name"] == "featurestream")
    targets = [target for group in job["static_configs"] for target in group["targets"]]
    defaults = ObservabilitySettings()
    assert targets == [f"{defaults.metrics_host}:{defaults.metrics_port}"]
    assert job["metrics_path"] == "/metrics"
