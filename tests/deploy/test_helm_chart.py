"""Tests for the Helm chart in deploy/helm/callstream.

Structural tests run everywhere (no helm needed). Rendering tests need a `helm` binary on PATH
(or in .local/bin/, which deploy/helm/install-helm.sh fills with `go install helm.sh/helm/v3/cmd/helm`).
"""

from __future__ import annotations

import base64
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

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
    files = list(TEMPLATES.iterdir())
    assert files
    for f in files:
        f.read_text(encoding="utf-8")


_VALUES_REF = re.compile(r"\.Values((?:\.[A-Za-z_][A-Za-z0-9_]*)+)")


def test_every_values_reference_exists() -> None:
    values = _values()
    missing = []
    for f in sorted(TEMPLATES.iterdir()):
        for m in _VALUES_REF.finditer(f.read_text()):
            node: Any = values
            for key in m.group(1).strip(".").split("."):
                if not isinstance(node, dict) or key not in node:
                    missing.append(f"{f.name}: .Values{m.group(1)}")
                    break
                node = node[key]
    assert not missing, missing


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


def _helm() -> str | None:
    found = shutil.which("helm")
    if found:
        return found
    local = ROOT / ".local" / "bin" / "helm"
    return str(local) if local.exists() else None


@pytest.fixture(scope="module")
def helm() -> str:
    path = _helm()
    if path is None:
        pytest.skip(
            "helm not on PATH: run deploy/helm/install-helm.sh (go install helm.sh/helm/v3/cmd/helm into .local/bin) "
            "or install it from https://helm.sh/docs/intro/install/"
        )
    return path


@pytest.fixture(scope="module")
def chart_copy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The chart with stub subcharts: the real Bitnami charts are not vendored and fetching them needs the
    network, but helm refuses to render a chart whose declared dependencies are absent (even disabled ones)."""
    dst = tmp_path_factory.mktemp("chart") / "callstream"
    shutil.copytree(CHART, dst, symlinks=False)
    deps = yaml.safe_load((CHART / "Chart.yaml").read_text())["dependencies"]
    for dep in deps:
        stub = dst / "charts" / dep["name"]
        (stub / "templates").mkdir(parents=True)
        version = dep["version"].replace("x", "0")
        (stub / "Chart.yaml").write_text(yaml.safe_dump({"apiVersion": "v2", "name": dep["name"], "version": version}))
        (stub / "templates" / "stub.yaml").write_text(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-" + dep["name"] + "-stub\n"
        )
    yield dst


def _render(helm: str, chart: Path, *sets: str) -> list[dict[str, Any]]:
    args = [helm, "template", "rel", str(chart), "--namespace", "cs"]
    for s in sets:
        args += ["--set", s]
    out = subprocess.run(args, check=True, capture_output=True, text=True, timeout=120).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def test_helm_lint(helm: str, chart_copy: Path) -> None:
    result = subprocess.run([helm, "lint", str(chart_copy)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


VARIANTS = {
    "defaults": [],
    "deps-on": ["kafka.enabled=true", "clickhouse.enabled=true", "postgresql.enabled=true"],
    "tls-off": ["tls.enabled=false"],
    "servicemonitor": ["serviceMonitor.enabled=true", "auth.existingSecret=my-token"],
}


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_rendered_objects(helm: str, chart_copy: Path, variant: str) -> None:
    docs = _render(helm, chart_copy, *VARIANTS[variant])
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
        env = {e["name"]: e for e in c["env"]}
        assert ("TLS_CERT_FILE" in env) is tls and ("TLS_KEY_FILE" in env) is tls
        assert c["image"].startswith(f"ghcr.io/callstream/{name}:")
    assert "grpc" in deployments["routing"]["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]
    for name in ["qa", "hr"]:
        env = {e["name"]: e for e in deployments[name]["spec"]["template"]["spec"]["containers"][0]["env"]}
        assert "secretKeyRef" in env["DATABASE_URL"]["valueFrom"]
    _assert_hr_reads_the_kpi_api(by_kind, deployments["hr"], tls)

    policies = by_kind["NetworkPolicy"]
    components = {p["metadata"].get("labels", {}).get("app.kubernetes.io/component") for p in policies}
    assert set(SERVICES) <= components
    deny = [p for p in policies if p["spec"]["podSelector"] == {}]
    assert deny and deny[0]["spec"]["policyTypes"] == ["Ingress"]

    jobs = by_kind["Job"]
    assert len(jobs) == 1
    assert "post-install" in jobs[0]["metadata"]["annotations"]["helm.sh/hook"]
    assert "topics apply" in " ".join(jobs[0]["spec"]["template"]["spec"]["containers"][0]["command"])

    assert any(p["metadata"]["name"].endswith("kpi-stream") for p in by_kind["PodDisruptionBudget"])
    secrets = by_kind.get("Secret", [])
    assert bool(secrets) is ("auth.existingSecret=my-token" not in VARIANTS[variant])
    # issue 17 item 9: ingest hashes caller numbers with a secret salt from the Secret, never the public default.
    ingest_env = {e["name"]: e for e in deployments["ingest"]["spec"]["template"]["spec"]["containers"][0]["env"]}
    salt_ref = ingest_env["CALLER_SALT"]["valueFrom"]["secretKeyRef"]
    for secret in secrets:
        if secret["metadata"]["name"] == salt_ref["name"]:
            assert len(base64.b64decode(secret["data"][salt_ref["key"]])) == 40

    stubs = [d for d in by_kind.get("ConfigMap", []) if d["metadata"]["name"].endswith("-stub")]
    assert bool(stubs) is (variant == "deps-on")
    if variant == "deps-on":
        env = {e["name"]: e for e in deployments["ingest"]["spec"]["template"]["spec"]["containers"][0]["env"]}
        assert env["KAFKA_BOOTSTRAP_SERVERS"]["value"] == "rel-kafka:9092"
    assert bool(by_kind.get("ServiceMonitor")) is (variant == "servicemonitor")
    if os.environ.get("CALLSTREAM_DEBUG_HELM"):
        print(yaml.safe_dump_all(docs))


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
