"""The deployment recipes in deploy/: Kubernetes manifests, systemd units, supervisor, the
compose monitoring profile and the Grafana dashboard parse and name what README promises."""

from __future__ import annotations

import configparser
import json
import re
import shutil
import subprocess

import pytest

from consumer.app import CHECKPOINT_WAIT
from tests.conftest import ROOT

yaml = pytest.importorskip("yaml")
DEPLOY = ROOT / "deploy"
METRIC_SOURCES = [ROOT / "api" / "metrics.py", ROOT / "consumer" / "metrics.py",
                  ROOT / "published" / "tenantmetrics.py"]


def _config_variables() -> set[str]:
    return set(re.findall(r'"(ML_[A-Z_]+)"', (ROOT / "runtime" / "config.py").read_text()))


def _manifests() -> list[dict]:
    documents = []
    for path in sorted((DEPLOY / "kubernetes").glob("*.yaml")):
        documents += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return documents


def test_kubernetes_manifests_parse_and_have_every_resource():
    kinds = [(d["kind"], d.get("metadata", {}).get("name")) for d in _manifests()]
    for expected in [("Deployment", "totara-ml-web"), ("Deployment", "totara-ml-worker"),
                     ("Service", "totara-ml"), ("ConfigMap", "totara-ml-config"),
                     ("Secret", "totara-ml-secrets"), ("ScaledObject", "totara-ml-worker"),
                     ("TriggerAuthentication", "totara-ml-rabbitmq-management")]:
        assert expected in kinds
    kustomization = next(d for d in _manifests() if d["kind"] == "Kustomization")
    files = {p.name for p in (DEPLOY / "kubernetes").glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == files
    assert "HorizontalPodAutoscaler" not in {kind for kind, _ in kinds}  # not on CPU


def test_kubernetes_web_probes_livez_and_readyz_and_the_worker_is_autoscaled():
    by_name = {(d["kind"], d["metadata"]["name"]): d for d in _manifests() if "metadata" in d}
    web = by_name[("Deployment", "totara-ml-web")]["spec"]["template"]["spec"]["containers"][0]
    assert web["livenessProbe"]["httpGet"]["path"] == "/livez"
    assert web["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert web["command"][:3] == ["gunicorn", "-c", "deploy/gunicorn.conf.py"]
    worker = by_name[("Deployment", "totara-ml-worker")]["spec"]["template"]["spec"]
    assert worker["containers"][0]["command"][:3] == ["python", "-m", "consumer"]
    scaled = by_name[("ScaledObject", "totara-ml-worker")]["spec"]
    assert scaled["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                        "name": "totara-ml-worker"}
    # On the events queue's depth, counting the trainings in progress (management API), and
    # never below one worker: the retrain timer runs in the workers.
    [trigger] = scaled["triggers"]
    assert trigger["type"] == "rabbitmq" and trigger["metadata"]["protocol"] == "http"
    assert trigger["metadata"]["mode"] == "QueueLength"
    assert trigger["metadata"]["queueName"] == "totara_ml.events"
    assert scaled["minReplicaCount"] >= 1
    auth = by_name[("TriggerAuthentication", trigger["authenticationRef"]["name"])]["spec"]
    [ref] = auth["secretTargetRef"]
    assert by_name[("Secret", ref["name"])]["stringData"][ref["key"]].startswith("http://")
    service = by_name[("Service", "totara-ml")]["spec"]
    assert service["selector"] == by_name[("Deployment", "totara-ml-web")]["spec"]["selector"][
        "matchLabels"]


def test_kubernetes_variables_are_known_and_the_key_is_only_in_the_secret():
    by_name = {d["metadata"]["name"]: d for d in _manifests() if "metadata" in d}
    config = by_name["totara-ml-config"]["data"]
    secret = by_name["totara-ml-secrets"]["stringData"]
    assert set(config) | set(secret) <= _config_variables()
    assert "ML_TOTARA_KEY" in secret and "ML_TOTARA_KEY" not in config
    assert all(isinstance(value, str) for value in config.values())


def _unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    parser.optionxform = str  # systemd keys are case-sensitive
    parser.read_string((DEPLOY / "systemd" / name).read_text())
    return parser


def test_systemd_units_run_the_api_and_numbered_workers():
    web = _unit("totara-ml-web.service")
    assert "gunicorn -c deploy/gunicorn.conf.py" in web["Service"]["ExecStart"]
    assert web["Service"]["EnvironmentFile"] == "/etc/totara-ml/totara-ml.env"
    worker = _unit("totara-ml-worker@.service")
    assert worker["Service"]["ExecStart"].endswith("python -m consumer")
    assert worker["Service"]["Environment"] == "ML_METRICS_PORT=9101 ML_WORKER_INSTANCE=%i"
    for unit in (web, worker):
        assert unit["Service"]["User"] == "totara-ml"
        assert unit["Install"]["WantedBy"] == "multi-user.target"
    env = dict(line.split("=", 1) for line in (DEPLOY / "systemd" / "totara-ml.env")
               .read_text().splitlines() if line and not line.startswith("#"))
    assert set(env) <= _config_variables()


def test_supervisor_config_has_the_web_and_worker_programs():
    parser = configparser.ConfigParser(interpolation=None)
    parser.read_string((DEPLOY / "supervisor" / "totara-ml.conf").read_text())
    web, worker = parser["program:totara-ml-web"], parser["program:totara-ml-worker"]
    assert "gunicorn -c deploy/gunicorn.conf.py" in web["command"]
    assert worker["command"].endswith("python -m consumer")
    assert int(worker["numprocs"]) >= 2 and "%(process_num)" in worker["process_name"]
    names = set(re.findall(r"(ML_[A-Z_]+)=", web["environment"] + worker["environment"]))
    assert names <= _config_variables() and "ML_TOTARA_KEY" in names


def test_compose_monitoring_profile_starts_prometheus_and_grafana_provisioned():
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    for name in ("prometheus", "grafana"):
        assert services[name]["profiles"] == ["monitoring"]
        for volume in services[name]["volumes"]:
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), source
    prometheus = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    jobs = {job["job_name"] for job in prometheus["scrape_configs"]}
    assert jobs == {"totara-ml-web", "totara-ml-worker"}


def _defined_metrics() -> set[str]:
    names = set()
    for path in METRIC_SOURCES:
        names |= set(re.findall(r'"(totara_ml_[a-z0-9_]+)"', path.read_text()))
    return names


def _panels(dashboard: dict) -> list[dict]:
    return [p for p in dashboard["panels"] if p["type"] != "row"]


def test_dashboard_is_grafana_json_with_the_promised_panels():
    dashboard = json.loads((DEPLOY / "grafana" / "totara-ml-dashboard.json").read_text())
    assert dashboard["uid"] and dashboard["title"] and dashboard["schemaVersion"] >= 30
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for p in dashboard["panels"]:
        grid = p["gridPos"]
        assert grid["x"] + grid["w"] <= 24 and grid["h"] > 0
    titles = " | ".join(p["title"].lower() for p in _panels(dashboard))
    for word in ("traffic", "latency", "fallback", "training runs", "duration", "quality",
                 "failures"):
        assert word in titles
    assert dashboard["templating"]["list"][0]["type"] == "datasource"


def test_dashboard_queries_use_only_metrics_the_service_exports():
    dashboard = json.loads((DEPLOY / "grafana" / "totara-ml-dashboard.json").read_text())
    defined = _defined_metrics()
    used = set()
    for p in _panels(dashboard):
        assert p["targets"]
        for target in p["targets"]:
            expr = target["expr"]
            assert expr.count("(") == expr.count(")") and expr.count("{") == expr.count("}")
            used |= set(re.findall(r"totara_ml_[a-z0-9_]+", expr))
    for name in used:
        base = re.sub(r"_(total|bucket|sum|count)$", "", name)
        assert base in defined or name in defined, name
    assert len(used) >= 10


def _promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.skip("promtool is not installed (Debian: apt-get install prometheus)")
    return found


def test_prometheus_config_and_every_dashboard_query_pass_promtool(tmp_path):
    promtool = _promtool()
    checked = subprocess.run([promtool, "check", "config", "--syntax-only",
                              str(DEPLOY / "prometheus" / "prometheus.yml")],
                             capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    dashboard = json.loads((DEPLOY / "grafana" / "totara-ml-dashboard.json").read_text())
    # Each query as a recording rule: promtool parses the PromQL of every one.
    rules = [{"record": f"dashboard:query_{index}",
              "expr": target["expr"].replace("$__rate_interval", "5m")}
             for index, target in enumerate(t for p in _panels(dashboard) for t in p["targets"])]
    path = tmp_path / "queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    checked = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True,
                             text=True, timeout=60)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def _with_defaults(text: str) -> str:
    """What compose makes of ``text`` when no variable is set: ``${V:-d}`` gives ``d``."""
    return re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", text)


def test_compose_publishes_prometheus_and_grafana_on_loopback_only_by_default():
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    for name in ("prometheus", "grafana"):
        for port in services[name]["ports"]:
            assert _with_defaults(port).startswith("127.0.0.1:"), (name, port)


def test_compose_has_no_default_password():
    text = (ROOT / "docker-compose.yml").read_text()
    assert "change-me" not in text
    # Every password variable is either required (``:?``) or refused empty at the start.
    for name in re.findall(r"\$\{([A-Z_]*PASSWORD)[^}]*\}", text):
        assert re.search(r"\$\{" + name + r"(:\?[^}]+|:-)\}", text), name
    grafana = yaml.safe_load(text)["services"]["grafana"]
    assert grafana["environment"]["GF_SECURITY_ADMIN_PASSWORD"] == "${GRAFANA_ADMIN_PASSWORD:-}"
    guard = " ".join(grafana["entrypoint"])
    assert 'test -n "$$GF_SECURITY_ADMIN_PASSWORD"' in guard and "GRAFANA_ADMIN_PASSWORD" in guard
    rabbit = yaml.safe_load(text)["services"]["rabbitmq"]["environment"]
    assert rabbit["RABBITMQ_DEFAULT_PASS"].startswith("${RABBITMQ_PASSWORD:?")


def test_alert_rules_pass_promtool_and_their_unit_tests_fire_each_alert():
    promtool = _promtool()
    rules = DEPLOY / "prometheus" / "alerts.yml"
    prometheus = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    assert prometheus["rule_files"] == [rules.name]
    checked = subprocess.run([promtool, "check", "config", str(DEPLOY / "prometheus" /
                                                                 "prometheus.yml")],
                             capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = subprocess.run([promtool, "test", "rules", str(DEPLOY / "prometheus" /
                                                             "alerts_test.yml")],
                            capture_output=True, text=True, timeout=60)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    alerts = [r["alert"] for g in yaml.safe_load(rules.read_text())["groups"] for r in g["rules"]]
    unit_tests = yaml.safe_load((DEPLOY / "prometheus" / "alerts_test.yml").read_text())
    fired = {case["alertname"] for test in unit_tests["tests"]
             for case in test["alert_rule_test"] if case["exp_alerts"]}
    assert fired == set(alerts)


def test_alert_rules_use_only_metrics_the_service_exports():
    text = (DEPLOY / "prometheus" / "alerts.yml").read_text()
    used = set(re.findall(r"totara_ml_[a-z0-9_]+", text))
    for name in used:
        base = re.sub(r"_(total|bucket|sum|count)$", "", name)
        assert base in _defined_metrics() or name in _defined_metrics(), name
    assert len(used) >= 8



def _seconds(text: str) -> float:
    """A compose duration (``630s``, ``10m30s``) or a plain number of seconds."""
    units = {"h": 3600, "m": 60, "s": 1, "": 1}
    return sum(float(n) * units[u] for n, u in re.findall(r"([\d.]+)([hms]?)", str(text)))


def _group(pattern: str, text: str) -> str | None:
    found = re.search(pattern, text, re.M)
    return found.group(1) if found else None


def _stop_graces() -> dict[str, tuple[str | None, str]]:
    """Per recipe: (the worker's ML_WORKER_STOP_GRACE, the process manager's stop timeout)."""
    by_name = {(d["kind"], d["metadata"]["name"]): d for d in _manifests() if "metadata" in d}
    pod = by_name[("Deployment", "totara-ml-worker")]["spec"]["template"]["spec"]
    env = {e["name"]: e["value"] for e in pod["containers"][0].get("env", [])}
    parser = configparser.ConfigParser(interpolation=None)
    parser.read_string((DEPLOY / "supervisor" / "totara-ml.conf").read_text())
    supervised = parser["program:totara-ml-worker"]
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]["worker"]
    return {
        "kubernetes": (env.get("ML_WORKER_STOP_GRACE"), pod["terminationGracePeriodSeconds"]),
        "systemd": (_group(r"^ML_WORKER_STOP_GRACE=(\S+)",
                           (DEPLOY / "systemd" / "totara-ml.env").read_text()),
                    _unit("totara-ml-worker@.service")["Service"]["TimeoutStopSec"]),
        "supervisor": (_group(r'ML_WORKER_STOP_GRACE="([^"]+)"', supervised["environment"]),
                       supervised["stopwaitsecs"]),
        "compose": (compose["environment"].get("ML_WORKER_STOP_GRACE"),
                    compose["stop_grace_period"]),
    }


def test_every_recipe_gives_a_stopping_worker_its_grace_and_a_margin_beyond_it():
    for recipe, (grace, timeout) in _stop_graces().items():
        assert grace is not None, f"{recipe} does not set ML_WORKER_STOP_GRACE"
        # Long enough for most fits to finish and be acked (docs/scaling.md: minutes for
        # millions of interactions); the manager kills only after the hand-back had its time.
        assert float(grace) >= 300, recipe
        # Past the grace a fit may take CHECKPOINT_WAIT to checkpoint, before the kill.
        assert _seconds(timeout) >= float(grace) + CHECKPOINT_WAIT + 5, recipe
