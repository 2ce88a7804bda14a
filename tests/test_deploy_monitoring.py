"""deploy/: the Prometheus alert rules and the Grafana dashboard load, and they name only metrics
that /metrics exports (a renamed metric would leave an alert that never fires)."""

import functools
import json
import os
from pathlib import Path
import re
import shutil
import subprocess

from django.conf import settings
from prometheus_client.metrics import MetricWrapperBase
import pytest
import yaml

from core import metrics
from crmsync.metrics import PipelineState

ROOT = Path(settings.BASE_DIR)
DEPLOY = ROOT / "deploy"
RULES = DEPLOY / "prometheus" / "alerts.yml"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "crmsync.json"
# Prometheus's own series an expression may name besides ours.
PROMETHEUS_SERIES = {"up"}
PROMQL_WORDS = {
    "and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset",
    "sum", "min", "max", "avg", "count", "stddev", "stdvar", "topk", "bottomk", "quantile", "count_values", "group",
    "rate", "irate", "increase", "delta", "idelta", "deriv", "predict_linear", "histogram_quantile", "absent",
    "absent_over_time", "avg_over_time", "max_over_time", "min_over_time", "sum_over_time", "count_over_time",
    "last_over_time", "quantile_over_time", "time", "vector", "scalar", "clamp_min", "clamp_max", "abs", "round",
    "label_replace", "label_join", "changes", "resets", "timestamp", "inf", "nan", "label_values",
}


def exported_series() -> set[str]:
    """Every series name a scrape can carry: the families of core.metrics as the exposition
    names their samples, and the gauges /metrics reads at scrape time."""
    suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_sum", "_count"], "gauge": [""]}
    definitions = [value for value in vars(metrics).values() if isinstance(value, MetricWrapperBase)]
    names = set()
    for family in [f for d in [*definitions, metrics._worker_sweep()] for f in d.describe()]:
        names |= {family.name + suffix for suffix in suffixes[family.type]}
    return names | {family.name for family in PipelineState().collect()}


def series_named(expr: str) -> set[str]:
    """The series an expression reads: identifiers that are not PromQL's own words, once label
    matchers, strings, ranges and grouping labels are taken out."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', "", expr)
    text = re.sub(r"\{[^}]*\}", "", text)
    text = re.sub(r"\[[^\]]*\]", "", text)
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text)
    text = re.sub(r"\$\w+", "", text)  # Grafana's variables
    text = re.sub(r"\b\d+(\.\d+)?(e[+-]?\d+)?\b", "", text)
    return {word for word in re.findall(r"[A-Za-z_:][A-Za-z0-9_:]*", text) if word.lower() not in PROMQL_WORDS}


def rules() -> list[dict]:
    return [rule for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]]


def dashboard_exprs(dashboard: dict) -> list[str]:
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel.get("targets", [])]
    # label_values(<series>, <label>): the series
    exprs += [re.sub(r"label_values\(([^,]+),[^)]*\)", r"\1", v["definition"])
              for v in dashboard["templating"]["list"] if v["type"] == "query"]
    return exprs


# --- Alert rules -----------------------------------------------------------------------------


def test_every_alert_rule_is_complete_and_named_once():
    loaded = rules()
    names = [rule["alert"] for rule in loaded]

    assert len(names) == len(set(names)), names
    for rule in loaded:
        assert rule["expr"].strip(), rule["alert"]
        assert rule["labels"]["severity"] in {"warning", "critical"}, rule["alert"]
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], rule["alert"]
        assert re.fullmatch(r"\d+[smh]", rule.get("for", "0m")), rule["alert"]


def test_the_rules_cover_the_alerts_crmsync_ships_with():
    names = {rule["alert"] for rule in rules()}

    assert {
        "CrmsyncPushErrorRateHigh", "CrmsyncQueueBacklogHigh", "CrmsyncSubmissionsStuck",
        "CrmsyncLeadStuckInRetries", "CrmsyncNoSuccessfulPushes", "CrmsyncAuthErrors", "CrmsyncDestinationPaused",
        "CrmsyncRateLimitedOften", "CrmsyncDailyBudgetNearlySpent", "CrmsyncDeadLetters", "CrmsyncWorkerDown",
        "CrmsyncRejectedShareHigh",
    } <= names


@pytest.mark.django_db
def test_alert_expressions_name_only_exported_metrics():
    exported = exported_series()
    for rule in rules():
        named = series_named(rule["expr"])
        assert named, rule["alert"]
        assert named <= exported | PROMETHEUS_SERIES, (rule["alert"], named - exported)


@pytest.fixture
def needs_promtool():
    """promtool (Prometheus's own checker). .ci/run takes it from Debian's prometheus package and
    sets CRMSYNC_REQUIRE_PROMTOOL, so in CI these never skip; elsewhere they skip without it."""
    if not shutil.which("promtool"):
        if os.environ.get("CRMSYNC_REQUIRE_PROMTOOL"):
            pytest.fail("CRMSYNC_REQUIRE_PROMTOOL is set but promtool is not on the PATH")
        pytest.skip("promtool is not installed (the schema checks above still run)")


def promtool(*args: str) -> None:
    result = subprocess.run(["promtool", *args], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_accepts_the_rules_and_the_configuration(needs_promtool, tmp_path):
    promtool("check", "rules", str(RULES))
    # The configuration names the paths it has in the container: point them here.
    (tmp_path / "token").write_text("token")
    config = (DEPLOY / "prometheus" / "prometheus.yml").read_text()
    config = config.replace("/etc/prometheus/alerts.yml", str(RULES)).replace("/prometheus/crmsync_metrics_token",
                                                                              str(tmp_path / "token"))
    (tmp_path / "prometheus.yml").write_text(config)
    promtool("check", "config", str(tmp_path / "prometheus.yml"))


def test_the_alerts_fire_when_their_conditions_hold_and_only_then(needs_promtool):
    """deploy/prometheus/alerts_test.yml: series in, alerts out (error rate, no success, dead
    letters, stuck lead, paused destination, worker down, 429 share, daily budget)."""
    promtool("test", "rules", str(DEPLOY / "prometheus" / "alerts_test.yml"))


def test_prometheus_scrapes_metrics_and_loads_the_rules():
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    [job] = config["scrape_configs"]

    assert job["metrics_path"] == "/metrics"
    assert job["authorization"]["credentials_file"]
    assert [Path(path).name for path in config["rule_files"]] == [RULES.name]


# --- Grafana ---------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_dashboard_parses_and_names_only_exported_metrics():
    dashboard = json.loads(DASHBOARD.read_text())
    exported = exported_series()

    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    cells = [(x, y) for panel in dashboard["panels"] for g in [panel["gridPos"]]
             for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])]
    assert len(cells) == len(set(cells)), "panels overlap"
    assert max(x for x, _ in cells) < 24
    exprs = dashboard_exprs(dashboard)
    assert len(exprs) > 20
    for expr in exprs:
        assert series_named(expr) <= exported, (expr, series_named(expr) - exported)
    # every family /metrics exports is on some panel
    shown = set().union(*(series_named(expr) for expr in exprs))
    family = functools.partial(re.sub, r"_(bucket|sum|count|total)$", "")
    missing = {family(name) for name in exported} - {family(name) for name in shown}
    assert not missing


def test_the_dashboard_uses_the_provisioned_datasource():
    dashboard = json.loads(DASHBOARD.read_text())
    [datasource] = yaml.safe_load((DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yml").read_text())["datasources"]
    [variable] = [v for v in dashboard["templating"]["list"] if v["type"] == "datasource"]

    assert variable["current"]["value"] == datasource["uid"]
    for panel in dashboard["panels"]:
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == "${datasource}", panel["title"]


# --- docker compose's monitoring profile -------------------------------------------------------


def test_the_monitoring_profile_runs_prometheus_and_grafana_on_the_files_of_deploy():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    provider = yaml.safe_load((DEPLOY / "grafana" / "provisioning" / "dashboards" / "crmsync.yml").read_text())

    for name in ("prometheus", "grafana"):
        assert services[name]["profiles"] == ["monitoring"]
        for mount in services[name]["volumes"]:
            host = mount.split(":")[0]
            if host.startswith("./"):
                assert (ROOT / host).exists(), mount
    mounts = dict(m.split(":")[:2] for m in services["grafana"]["volumes"])
    assert mounts["./deploy/grafana/dashboards"] == provider["providers"][0]["options"]["path"]
    # the web and worker processes' counts meet on one volume, which /metrics adds up
    assert "appvar:/app/var" in services["web"]["volumes"] and "appvar:/app/var" in services["worker"]["volumes"]
    assert "profiles" not in services["web"] and "profiles" not in services["worker"]
