"""The Prometheus rules and the Grafana dashboard in deploy/ use only what the bridge exports,
parse, and fire when they should (promtool, from Debian's ``prometheus`` package)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import trustme
from deploy_helpers import DEPLOY, load_yaml
from prometheus_client.parser import text_string_to_metric_families

from e2e.test_four_flows import CASE_ID, RECORD_ID, _play
from primero_progres.stack import Stack

RULES = DEPLOY / "prometheus" / "alerts.yml"
DASHBOARD = DEPLOY / "grafana" / "primero-progres.json"
RULE_TESTS = Path(__file__).resolve().parent / "prometheus" / "alerts.test.yml"
METRIC_NAME = re.compile(r"\bprimero_progres_[a-z0-9_]+")
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def promtool() -> str:
    found = shutil.which("promtool")
    assert found, "promtool (Debian package prometheus) is needed to check the rules"
    return found


def rule_expressions() -> dict[str, str]:
    groups = load_yaml(RULES)["groups"]
    return {rule["alert"]: rule["expr"] for group in groups for rule in group["rules"]}


def dashboard_expressions() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]


def _certificate(directory: Path) -> Path:
    leaf = trustme.CA().issue_cert(
        "bridge.example.org", not_after=datetime.now(UTC) + timedelta(days=365)
    )
    path = directory / "client.pem"
    leaf.private_key_and_cert_chain_pem.write_to_path(str(path))
    return path


async def _metrics_after_the_four_flows(tmp_path: Path) -> str:
    async with Stack(tmp_path, dtp_client_cert=_certificate(tmp_path)) as stack:
        await _play(stack)
        answer = await stack.http.get(f"{stack.bridge_url}/metrics")
        assert answer.status_code == 200
        return str(answer.text)


def _exported(text: str) -> dict[str, list[Any]]:
    """Every name a query may use -> its samples (none for a labelled metric not yet used)."""
    suffixes = {
        "counter": ("_total",),
        "histogram": ("_bucket", "_count", "_sum"),
        "gauge": ("",),
    }
    names: dict[str, list[Any]] = {}
    for family in text_string_to_metric_families(text):
        for suffix in suffixes.get(family.type, ("",)):
            names.setdefault(family.name + suffix, [])
        for sample in family.samples:
            names.setdefault(sample.name, []).append(sample)
    return names


async def test_rules_and_dashboard_use_only_metrics_the_bridge_exports(tmp_path: Path) -> None:
    text = await _metrics_after_the_four_flows(tmp_path)
    exported = _exported(text)
    used = set()
    for expression in [*rule_expressions().values(), *dashboard_expressions()]:
        used.update(METRIC_NAME.findall(expression))
    assert len(used) >= 12
    missing = sorted(name for name in used if name not in exported)
    assert missing == [], "used by deploy/prometheus or deploy/grafana, absent from /metrics"

    def value(name: str, **labels: str) -> float:
        [sample] = [
            s for s in exported[name] if all(s.labels.get(k) == v for k, v in labels.items())
        ]
        return float(sample.value)

    # what the flows did is in it: both peers called, polls completed, nothing waiting or dead
    assert value("primero_progres_peer_request_duration_seconds_count", peer="primero") > 0
    assert value("primero_progres_peer_request_duration_seconds_count", peer="dtp") > 0
    assert value("primero_progres_peer_failing_since_timestamp_seconds", peer="dtp") == 0
    assert value("primero_progres_poll_interval_seconds", flow="primero-decision") == 900
    last_poll = "primero_progres_last_poll_completed_timestamp_seconds"
    assert value(last_poll, flow="primero-referral") > 0
    assert value("primero_progres_oldest_waiting_job_age_seconds", flow="progres-referral") == 0
    expiry = value("primero_progres_client_certificate_expiry_timestamp_seconds", peer="dtp")
    assert abs(expiry - (datetime.now(UTC) + timedelta(days=365)).timestamp()) < 3600
    # counters a rule takes the increase of exist from zero (a first failure is an increase)
    failed = "primero_progres_alert_notifications_total"
    assert value(failed, event="dead_letters", outcome="failed") == 0
    assert value("primero_progres_peer_errors_total", peer="dtp", failure="tls") == 0
    # labels are names, codes and classes: no intervention number, case id or job id
    labels = " ".join(
        str(v) for samples in exported.values() for s in samples for v in s.labels.values()
    )
    assert "PRTITV" not in labels and "DEMO-" not in labels
    assert CASE_ID not in labels and RECORD_ID not in labels
    assert UUID.findall(labels) == []


def test_promtool_accepts_the_rules() -> None:
    result = subprocess.run(
        [promtool(), "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(rule_expressions())} rules found" in result.stdout


# promtool evaluates every rule test minute by minute: 8 s of CPU alone, over 60 s when the
# suite runs in parallel on a loaded machine (load 12 on two cores)
@pytest.mark.timeout(360)
def test_promtool_rule_tests_pass() -> None:
    result = subprocess.run(
        [promtool(), "test", "rules", RULE_TESTS.name],
        cwd=RULE_TESTS.parent,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout
    tested = set(re.findall(r"alertname: (\w+)", RULE_TESTS.read_text(encoding="utf-8")))
    assert tested == set(rule_expressions()), "every rule has a promtool test"


def test_the_dashboard_queries_are_valid_promql(tmp_path: Path) -> None:
    # promtool parses expressions in rule files only: check each query as a recording rule
    rules = {
        "groups": [
            {
                "name": "dashboard",
                "rules": [
                    {"record": f"dashboard:query_{n}", "expr": expr}
                    for n, expr in enumerate(dashboard_expressions())
                ],
            }
        ]
    }
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(json.dumps(rules), encoding="utf-8")
    result = subprocess.run(
        [promtool(), "check", "rules", str(path)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    assert dashboard["uid"] == "primero-progres"
    assert all(panel["datasource"]["uid"] == "${DS_PROMETHEUS}" for panel in dashboard["panels"])
