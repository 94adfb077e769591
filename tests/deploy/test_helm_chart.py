"""Tests for the Helm chart in deploy/helm/callstream.

Structural tests run everywhere (no helm needed). Rendering tests need a `helm` binary on PATH or in
.local/bin/ (deploy/helm/install-helm.sh, run by `make install`); every rendered object is checked against the
Kubernetes 1.33 API schemas (kubernetes-validate). tests/deploy/test_chart_in_image.py runs what they render.
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from .conftest import Render

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "helm" / "callstream"
TEMPLATES = CHART / "templates"
SERVICES = ["ingest", "routing", "kpi-stream", "qa", "hr"]


# ---------------------------------------------------------------- structural (no helm)


def _values() -> dict[str, Any]:
    return yaml.safe_load((CHART / "values.yaml").read_text())


def test_chart_yaml_is_v2_with_conditional_deps() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["apiVersion"] == "v2"
    assert chart["name"] == "callstream"
    deps = {d["name"]: d for d in chart["dependencies"]}
    assert set(deps) == {"kafka", "clickhouse", "postgresql"}
    values = _values()
    for name, dep in deps.items():
        assert dep["condition"] == f"{name}.enabled"
        assert values[name]["enabled"] is False, f"{name} must be off by default"
    assert not list((CHART / "charts").glob("*.tgz")) if (CHART / "charts").exists() else True


def test_templates_are_text() -> None:
    files = list(TEMPLATES.rglob("*.*"))
    assert files
    for f in files:
        f.read_text(encoding="utf-8")


_VALUES_REF = re.compile(r"\.Values((?:\.[A-Za-z_][A-Za-z0-9_]*)+)")


def test_every_values_reference_exists() -> None:
    values = _values()
    missing = []
    for f in sorted(TEMPLATES.rglob("*.*")):
        for m in _VALUES_REF.finditer(f.read_text()):
            node: Any = values
            for key in m.group(1).strip(".").split("."):
                if not isinstance(node, dict) or key not in node:
                    missing.append(f"{f.name}: .Values{m.group(1)}")
                    break
                node = node[key]
    assert not missing, missing


def test_values_schema_describes_every_value_the_templates_read() -> None:
    """values.schema.json refuses properties it does not list: a value added without it fails every install."""
    schema = json.loads((CHART / "values.schema.json").read_text())
    undescribed = []
    for f in sorted(TEMPLATES.rglob("*.*")):
        for m in _VALUES_REF.finditer(f.read_text()):
            node: Any = schema
            for key in m.group(1).strip(".").split("."):
                if key not in node.get("properties", {}):
                    undescribed.append(f"{f.name}: .Values{m.group(1)}")
                    break
                node = node["properties"][key]
    assert not undescribed, undescribed


def test_service_templates_share_one_workload_definition() -> None:
    for svc in SERVICES:
        text = (TEMPLATES / f"{svc}.yaml").read_text()
        assert 'include "callstream.workload"' in text
        assert "securityContext" not in text, f"{svc}.yaml must use the shared helper"


def test_every_service_has_values() -> None:
    values = _values()
    for key in ["ingest", "routing", "kpiStream", "qa", "hr"]:
        cfg = values[key]
        assert cfg["resources"]["limits"] and cfg["resources"]["requests"]
        assert cfg["replicas"] >= 1
    assert values["tls"]["enabled"] is True
    assert values["clickhouseUrl"].startswith("https://")


def test_routing_runs_a_leader_and_a_hot_standby() -> None:
    """Pods start as standbys and elect one writer; readiness probes the Router service, which only the leader
    serves, while liveness probes the process (a standby is alive but not ready)."""
    routing = _values()["routing"]
    assert routing["replicas"] >= 2 and routing["role"] == "standby"
    assert routing["leaseTimeoutS"] >= 3 * routing["heartbeatIntervalS"]
    assert routing["pdb"]["minAvailable"] >= 1
    text = (TEMPLATES / "routing.yaml").read_text()
    assert '"readinessService" "callstream.routing.v1.Router"' in text and "ROUTING_ROLE" in text
    helpers = (TEMPLATES / "_helpers.tpl").read_text()
    assert "with .readinessService" in helpers.split("readinessProbe:")[1].split("livenessProbe")[0]


# ---------------------------------------------------------------- rendering (needs helm)


VARIANTS = {
    "defaults": [],
    "deps-on": ["kafka.enabled=true", "clickhouse.enabled=true", "postgresql.enabled=true"],
    "tls-off": ["tls.enabled=false"],
    "replicas-3": [f"{key}.replicas=3" for key in ("ingest", "routing", "kpiStream", "qa", "hr")],
    "autoscaling": ["ingest.autoscaling.enabled=true", "kpiStream.autoscaling.enabled=true"],
    "sources": ["ingest.sources.webhooks.existingSecret=pbx-tokens", "ingest.sources.ami.host=pbx.example",
                "ingest.sources.ami.username=callstream", "ingest.sources.ami.existingSecret=pbx-ami",
                "ingest.sources.esl.host=fs.example", "ingest.sources.esl.port=8022",
                "ingest.sources.esl.existingSecret=pbx-esl", "networkPolicy.switchCidrs={10.1.0.0/16}"],
    "servicemonitor": ["serviceMonitor.enabled=true", "auth.existingSecret=my-token"],
}
KUBERNETES_VERSION = "1.33.0"
# Custom resources of operators the chart can use; kubernetes-validate ships only the core API's schemas.
CUSTOM_KINDS = {("monitoring.coreos.com/v1", "ServiceMonitor")}


def _env(deployment: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_helm_lint(helm: str, chart_copy: Path, variant: str) -> None:
    args = [helm, "lint", "--strict", str(chart_copy)]
    for value in VARIANTS[variant]:
        args += ["--set", value]
    result = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_rendered_objects_are_valid_kubernetes_1_33(render: Render, variant: str) -> None:
    checked = 0
    for doc in render(*VARIANTS[variant]):
        if (doc["apiVersion"], doc["kind"]) in CUSTOM_KINDS:
            continue
        try:
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{doc['kind']} {doc['metadata']['name']}: {exc.message} at {list(exc.path)}")
        checked += 1
    assert checked >= 20


@pytest.mark.parametrize(("value", "message"), [
    ("tls.enabled=yes", "tls.enabled: Invalid type. Expected: boolean"),
    ("ingest.replicas=0", "ingest.replicas: Must be greater than or equal to 1"),
    ("kpiStream.port=70000", "kpiStream.port: Must be less than or equal to 65535"),
    ("kafkaBootstrap=kafka.svc", "kafkaBootstrap: Does not match pattern"),
    ("image.pullPolicy=Sometimes", "image.pullPolicy: image.pullPolicy must be one of"),
    ("ingest.sources.ami.host=pbx", "ingest.sources.ami.existingSecret: String length must be greater than"),
    ("routing.heartbeatIntervalS=10", "routing.heartbeatIntervalS: Must be less than or equal to 5"),
    ("ingets.replicas=2", "Additional property ingets is not allowed"),
])
def test_bad_values_fail_with_the_path_named(helm: str, chart_copy: Path, value: str, message: str) -> None:
    result = subprocess.run([helm, "template", "rel", str(chart_copy), "--set", value],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert message in result.stderr, result.stderr


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_rendered_objects(render: Render, variant: str) -> None:
    docs = render(*VARIANTS[variant])
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for d in docs:
        by_kind.setdefault(d["kind"], []).append(d)

    deployments = {d["metadata"]["labels"]["app.kubernetes.io/component"]: d for d in by_kind["Deployment"]}
    assert set(deployments) == set(SERVICES)
    tls = "tls-off" not in variant
    for name, dep in deployments.items():
        pod = dep["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] == 10001
        assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
        assert any(v["name"] == "tmp" and "emptyDir" in v for v in pod["volumes"])
        (c,) = pod["containers"]
        sc = c["securityContext"]
        assert sc["readOnlyRootFilesystem"] is True
        assert sc["allowPrivilegeEscalation"] is False
        assert sc["capabilities"]["drop"] == ["ALL"]
        assert c["livenessProbe"] and c["readinessProbe"], name
        assert c["resources"]["limits"]["cpu"] and c["resources"]["limits"]["memory"]
        assert any(m["mountPath"] == "/tmp" for m in c["volumeMounts"])
        env = _env(dep)
        assert env["TLS_ENABLED"]["value"] == str(tls).lower()
        assert ("TLS_CERT_FILE" in env) is tls and ("TLS_KEY_FILE" in env) is tls
        assert c["image"].startswith(f"ghcr.io/callstream/{name}:")
        if "httpGet" in c["readinessProbe"]:  # the probes speak what the server serves
            for probe in (c["livenessProbe"], c["readinessProbe"]):
                assert probe["httpGet"]["scheme"] == ("HTTPS" if tls else "HTTP")
        expected_replicas = 3 if variant == "replicas-3" else None
        autoscaled = variant == "autoscaling" and name in ("ingest", "kpi-stream")
        assert ("replicas" in dep["spec"]) is not autoscaled
        if expected_replicas:
            assert dep["spec"]["replicas"] == expected_replicas
    _assert_grpc_probes_plain_text_health(deployments["routing"])
    _assert_faust_writes_into_an_empty_dir(deployments["kpi-stream"])
    for name in ["qa", "hr"]:
        assert "secretKeyRef" in _env(deployments[name])["DATABASE_URL"]["valueFrom"]
    _assert_hr_reads_the_kpi_api(by_kind, deployments["hr"], tls)
    _assert_ingest_sources(by_kind, deployments["ingest"], variant == "sources")

    hpas = {h["spec"]["scaleTargetRef"]["name"] for h in by_kind.get("HorizontalPodAutoscaler", [])}
    if variant == "autoscaling":
        assert hpas == {deployments["ingest"]["metadata"]["name"], deployments["kpi-stream"]["metadata"]["name"]}
    else:
        assert not hpas

    policies = by_kind["NetworkPolicy"]
    components = {p["metadata"].get("labels", {}).get("app.kubernetes.io/component") for p in policies}
    assert set(SERVICES) <= components
    deny = [p for p in policies if p["spec"]["podSelector"] == {}]
    assert deny and deny[0]["spec"]["policyTypes"] == ["Ingress"]

    jobs = by_kind["Job"]
    assert len(jobs) == 1
    assert "post-install" in jobs[0]["metadata"]["annotations"]["helm.sh/hook"]
    assert "topics apply" in " ".join(jobs[0]["spec"]["template"]["spec"]["containers"][0]["command"])
    _assert_helm_test_reaches_every_service(by_kind, tls)

    assert any(p["metadata"]["name"].endswith("kpi-stream") for p in by_kind["PodDisruptionBudget"])
    secrets = by_kind.get("Secret", [])
    assert bool(secrets) is ("auth.existingSecret=my-token" not in VARIANTS[variant])
    _assert_dashboards_shipped(by_kind)
    # issue 17 item 9: ingest hashes caller numbers with a secret salt from the Secret, never the public default.
    salt_ref = _env(deployments["ingest"])["CALLER_SALT"]["valueFrom"]["secretKeyRef"]
    for secret in secrets:
        if secret["metadata"]["name"] == salt_ref["name"]:
            assert len(base64.b64decode(secret["data"][salt_ref["key"]])) == 40

    stubs = [d for d in by_kind.get("ConfigMap", []) if d["metadata"]["name"].endswith("-stub")]
    assert bool(stubs) is (variant == "deps-on")
    if variant == "deps-on":
        assert _env(deployments["ingest"])["KAFKA_BOOTSTRAP_SERVERS"]["value"] == "rel-kafka:9092"
    assert bool(by_kind.get("ServiceMonitor")) is (variant == "servicemonitor")
    if os.environ.get("CALLSTREAM_DEBUG_HELM"):
        print(yaml.safe_dump_all(docs))


def _assert_grpc_probes_plain_text_health(routing: dict[str, Any]) -> None:
    """The kubelet's gRPC probe speaks no TLS: it probes the plain-text health port the service opens."""
    (c,) = routing["spec"]["template"]["spec"]["containers"]
    health_port = int(_env(routing)["HEALTH_PORT"]["value"])
    assert health_port != int(_env(routing)["GRPC_PORT"]["value"])
    assert c["livenessProbe"]["grpc"] == {"port": health_port}
    assert c["readinessProbe"]["grpc"] == {"port": health_port, "service": "callstream.routing.v1.Router"}
    assert {"name": "health", "containerPort": health_port} in c["ports"]


def _assert_faust_writes_into_an_empty_dir(kpi: dict[str, Any]) -> None:
    pod = kpi["spec"]["template"]["spec"]
    empty_dirs = {v["name"] for v in pod["volumes"] if "emptyDir" in v}
    mounts = [m["mountPath"] for m in pod["containers"][0]["volumeMounts"] if m["name"] in empty_dirs]
    datadir = _env(kpi)["APP_DATADIR"]["value"]
    assert any(datadir.startswith(mount + "/") for mount in mounts), (datadir, mounts)


def _assert_ingest_sources(by_kind: dict[str, list[dict[str, Any]]], ingest: dict[str, Any], on: bool) -> None:
    """Webhook tokens, AMI and event-socket clients come from values, and the egress policy lets exactly the
    switch ports out (to the switches' CIDRs)."""
    env = _env(ingest)
    if not on:
        assert not {"INGEST_SOURCES", "AMI_HOST", "ESL_HOST"} & set(env)
        return
    assert env["INGEST_SOURCES"]["valueFrom"]["secretKeyRef"] == {"name": "pbx-tokens", "key": "INGEST_SOURCES"}
    assert env["AMI_HOST"]["value"] == "pbx.example" and env["AMI_PORT"]["value"] == "5038"
    assert env["AMI_SECRET"]["valueFrom"]["secretKeyRef"] == {"name": "pbx-ami", "key": "AMI_SECRET"}
    assert env["ESL_HOST"]["value"] == "fs.example" and env["ESL_PORT"]["value"] == "8022"
    assert env["ESL_PASSWORD"]["valueFrom"]["secretKeyRef"] == {"name": "pbx-esl", "key": "ESL_PASSWORD"}
    (policy,) = [p for p in by_kind["NetworkPolicy"]
                 if p["metadata"].get("labels", {}).get("app.kubernetes.io/component") == "ingest"]
    switch_rules = [r for r in policy["spec"]["egress"] if r.get("to") and "ipBlock" in r["to"][0]]
    assert switch_rules == [{"to": [{"ipBlock": {"cidr": "10.1.0.0/16"}}],
                             "ports": [{"port": 5038, "protocol": "TCP"}, {"port": 8022, "protocol": "TCP"}]}]


def _assert_helm_test_reaches_every_service(by_kind: dict[str, list[dict[str, Any]]], tls: bool) -> None:
    """`helm test`'s pod asks every HTTP Service's /readyz (in the scheme they serve) and routing's health port,
    and the ingress policies let it in."""
    (pod,) = [p for p in by_kind["Pod"] if p["metadata"]["annotations"]["helm.sh/hook"] == "test"]
    args = pod["spec"]["containers"][0]["command"]
    services = {s["metadata"]["labels"]["app.kubernetes.io/component"]: s for s in by_kind["Service"]}
    scheme = "https" if tls else "http"
    expected = {f"{scheme}://{s['metadata']['name']}:{s['spec']['ports'][0]['port']}/readyz"
                for name, s in services.items() if name != "routing"}
    assert set(args[3:]) == expected
    test_labels = pod["metadata"]["labels"]
    for policy in by_kind["NetworkPolicy"]:
        if policy["metadata"].get("labels", {}).get("app.kubernetes.io/component") in SERVICES:
            assert any(peer.get("podSelector", {}).get("matchLabels", {}).items() <= test_labels.items()
                       for rule in policy["spec"]["ingress"] for peer in rule.get("from", [])
                       if peer.get("podSelector")), policy["metadata"]["name"]


def _assert_dashboards_shipped(by_kind: dict[str, list[dict[str, Any]]]) -> None:
    (dashboards,) = [c for c in by_kind["ConfigMap"] if c["metadata"]["name"].endswith("-dashboards")]
    grafana = ROOT / "deploy" / "grafana" / "dashboards"
    expected = {p.name: json.loads(p.read_text()) for p in grafana.glob("*.json")}
    assert len(expected) == 5
    assert {name: json.loads(text) for name, text in dashboards["data"].items()} == expected


def _assert_hr_reads_the_kpi_api(by_kind: dict[str, list[dict[str, Any]]], hr: dict[str, Any], tls: bool) -> None:
    """The forecast's path: HR has the KPI API's address, a reader token listed with role hr, the CA to verify
    kpi-stream's certificate, and the network policies let exactly that traffic through."""
    env = {e["name"]: e for e in hr["spec"]["template"]["spec"]["containers"][0]["env"]}
    (kpi_service,) = [s for s in by_kind["Service"]
                      if s["metadata"]["labels"]["app.kubernetes.io/component"] == "kpi-stream"]
    port = kpi_service["spec"]["ports"][0]["port"]
    assert env["KPI_API_URL"]["value"] == f"{'https' if tls else 'http'}://{kpi_service['metadata']['name']}:{port}"
    token_ref = env["KPI_API_TOKEN"]["valueFrom"]["secretKeyRef"]
    assert ("KPI_API_CA_FILE" in env) is tls
    for secret in by_kind.get("Secret", []):  # the generated token Secret (absent with auth.existingSecret)
        if secret["metadata"]["name"] == token_ref["name"]:
            data = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
            assert f"{data[token_ref['key']]}:hr" in data["API_TOKENS"].split(",")
    policies = {p["metadata"].get("labels", {}).get("app.kubernetes.io/component"): p
                for p in by_kind["NetworkPolicy"] if p["spec"]["podSelector"]}
    hr_labels = hr["spec"]["selector"]["matchLabels"]
    assert any(peer.get("podSelector", {}).get("matchLabels") == hr_labels
               for rule in policies["kpi-stream"]["spec"]["ingress"] for peer in rule.get("from", []))
    kpi_labels = kpi_service["spec"]["selector"]
    assert any(peer.get("podSelector", {}).get("matchLabels") == kpi_labels
               for rule in policies["hr"]["spec"]["egress"] for peer in rule.get("to", []))
