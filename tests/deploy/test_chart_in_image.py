"""The chart and the image agree: every Deployment `helm template` renders runs in the image `make image` builds,
with the chart's command, user id, environment, Secrets and emptyDirs, and its readiness probe answers over the
scheme the chart says; the setup Job's command succeeds first.

This is the nearest thing to a kubelet that runs here: `buildah run --isolation chroot` (no OCI runtime, this kind
of machine has no usable cgroups). What differs from a pod, and why:
- the network is the host's, shared with other tests: the chart's ports become free ports (env and probe alike);
- Kafka is the session's broker, ClickHouse a chDB engine in the pod's /tmp emptyDir (CLICKHOUSE_URL=chdb:///tmp/...)
  and PostgreSQL a throwaway server, in place of the chart's in-cluster addresses;
- the root file system is the image's, not mounted read-only: the process runs as the chart's user (10001), to
  which nothing but the chart's emptyDirs (tmpfs here) and the image's world-writable /var/tmp is writable;
- the TLS Secret is a self-signed certificate for 127.0.0.1 (tls.crt, tls.key, ca.crt), mounted read-only.
"""

from __future__ import annotations

import base64
import os
import shutil
import signal
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import httpx
import psycopg
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from callstream_devtools.local_postgres import LocalPostgres

from .conftest import ROOT, Render

# The first test builds the image when its inputs changed (about 7 minutes cold on a 2-core machine, see
# docs/deploy-kubernetes.md): longer than the suite's 300 s per test.
pytestmark = [pytest.mark.integration, pytest.mark.timeout(3600)]
VARIANTS = {"tls-on": [], "tls-off": ["tls.enabled=false"]}
PORT_VARIABLES = ("HTTP_PORT", "GRPC_PORT", "METRICS_PORT", "HEALTH_PORT")
# A cold start of the slowest service (kpi-stream: migrations, recovery, consumer group) on a loaded machine.
READY_WITHIN_S = 180.0


@pytest.fixture(scope="session")
def image() -> str:
    """The image, built once (deploy/image/build.sh reuses it while its inputs' hash is unchanged)."""
    if shutil.which("buildah") is None:
        pytest.skip("buildah not installed: run deploy/local/install-system-packages.sh as root (make tools)")
    built = subprocess.run(["bash", str(ROOT / "deploy" / "image" / "build.sh")], capture_output=True, text=True,
                           timeout=3600)
    assert built.returncode == 0, built.stderr[-4000:]
    return built.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="session")
def tls_secret(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The files of a kubernetes.io/tls Secret (cert-manager adds ca.crt), readable by the pod's user."""
    path = tmp_path_factory.mktemp("tls")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
                    "-keyout", str(path / "tls.key"), "-out", str(path / "tls.crt")],
                   check=True, capture_output=True, timeout=60)
    shutil.copy(path / "tls.crt", path / "ca.crt")
    for file in path.iterdir():
        file.chmod(0o644)
    path.chmod(0o755)
    return path


@pytest.fixture(scope="session")
def databases(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[tuple[str, str], str]]:
    """The database Secrets the chart names (database.qa/hr.existingSecret), on a throwaway PostgreSQL."""
    if not LocalPostgres.available():
        pytest.skip("PostgreSQL not installed: run deploy/local/install-system-packages.sh as root (make tools)")
    with LocalPostgres(tmp_path_factory.mktemp("pg")) as server:
        assert server.url is not None
        with psycopg.connect(server.url.replace("+psycopg", ""), autocommit=True) as conn:
            for name in ("qa", "hr"):
                conn.execute(f"CREATE DATABASE {name}")
        base = server.url.rsplit("/", 1)[0]
        yield {("callstream-qa-db", "DATABASE_URL"): f"{base}/qa", ("callstream-hr-db", "DATABASE_URL"): f"{base}/hr"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Workload:
    """One container of a rendered pod template, run in the image."""

    name: str
    pod: dict[str, Any]
    container: dict[str, Any]
    ports: dict[int, int]  # the chart's port -> the free port used here

    @classmethod
    def of(cls, name: str, pod: dict[str, Any]) -> Workload:
        (container,) = pod["containers"]
        chart_ports = {int(e["value"]) for e in container.get("env", []) if e["name"] in PORT_VARIABLES}
        return cls(name, pod, container, {port: _free_port() for port in sorted(chart_ports)})

    def env(self, secrets: dict[tuple[str, str], str], overrides: dict[str, str]) -> dict[str, str]:
        env: dict[str, str] = {}
        for item in self.container.get("env", []):
            if "value" in item:
                value = str(item["value"])
                env[item["name"]] = str(self.ports.get(int(value), value)) if item["name"] in PORT_VARIABLES else value
            else:
                ref = item["valueFrom"]["secretKeyRef"]
                env[item["name"]] = secrets[(ref["name"], ref["key"])]
        return env | overrides

    def mounts(self, tls_secret: Path) -> list[str]:
        """buildah arguments for the pod's volumes: emptyDir -> tmpfs, the TLS Secret -> its files, read-only."""
        volumes = {v["name"]: v for v in self.pod.get("volumes", [])}
        args: list[str] = []
        for mount in self.container.get("volumeMounts", []):
            volume = volumes[mount["name"]]
            if "emptyDir" in volume:
                args += ["--mount", f"type=tmpfs,destination={mount['mountPath']},tmpfs-mode=1777"]
            elif "secret" in volume:
                args += ["--volume", f"{tls_secret}:{mount['mountPath']}:ro"]
            else:
                raise AssertionError(f"{self.name}: no stand-in for volume {volume}")
        return args

    def user(self) -> str:
        context = self.pod["securityContext"] | self.container.get("securityContext", {})
        return f"{context['runAsUser']}:{context.get('runAsGroup', context['runAsUser'])}"


class InImage:
    """`buildah run` of one workload in a working container of its own (removed afterwards)."""

    def __init__(self, image: str, workload: Workload, env: dict[str, str], tls_secret: Path, log: Path) -> None:
        self.container = subprocess.run(["buildah", "from", "--quiet", "--pull=never", image], check=True,
                                        capture_output=True, text=True, timeout=120).stdout.strip()
        argv = workload.container["command"] + workload.container.get("args", [])
        cmd = ["buildah", "run", "--isolation", "chroot", "--network", "host", "--user", workload.user(),
               *workload.mounts(tls_secret)]
        for key, value in env.items():
            cmd += ["--env", f"{key}={value}"]
        self.log = log
        with log.open("wb") as out:
            # A session of its own: stopping it reaches the service inside the chroot too.
            self.process = subprocess.Popen([*cmd, self.container, "--", *argv], stdout=out, stderr=subprocess.STDOUT,
                                            start_new_session=True)

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-6000:]

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=30)
        subprocess.run(["buildah", "rm", self.container], capture_output=True, timeout=120)


def _probe_once(probe: dict[str, Any], ports: dict[int, int], tls_secret: Path) -> str | None:
    """None when the probe passes, else what it saw."""
    if "httpGet" in probe:
        get = probe["httpGet"]
        url = f"{get['scheme'].lower()}://127.0.0.1:{ports[int(get['port'])]}{get['path']}"
        try:
            response = httpx.get(url, verify=ssl.create_default_context(cafile=tls_secret / "ca.crt"), timeout=5)
        except httpx.HTTPError as exc:
            return f"{url}: {exc!r}"
        return None if response.status_code == 200 else f"{url}: {response.status_code} {response.text[:300]}"
    target = f"127.0.0.1:{ports[int(probe['grpc']['port'])]}"
    # Plain text, as the kubelet's gRPC probe speaks.
    with grpc.insecure_channel(target) as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=probe["grpc"].get("service", "")), timeout=5)
        except grpc.RpcError as exc:
            return f"{target}: {exc.code()}"
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
    return None if status == "SERVING" else f"{target}: {status}"


def _wait_probe(probe: dict[str, Any], ports: dict[int, int], tls_secret: Path, run: InImage) -> None:
    deadline = time.monotonic() + READY_WITHIN_S
    seen = "not probed"
    while time.monotonic() < deadline:
        assert run.process.poll() is None, f"exited {run.process.returncode} before ready:\n{run.output()}"
        failure = _probe_once(probe, ports, tls_secret)
        if failure is None:
            return
        seen = failure
        time.sleep(0.5)  # the kubelet's probes poll too; this is the polling interval, not a synchronisation
    pytest.fail(f"not ready after {READY_WITHIN_S:.0f} s ({seen}):\n{run.output()}")


@pytest.fixture(scope="session", params=list(VARIANTS))
def rendered(request: pytest.FixtureRequest, render: Render) -> tuple[str, list[dict[str, Any]]]:
    return request.param, render(*VARIANTS[request.param])


def _secrets(docs: list[dict[str, Any]], databases: dict[tuple[str, str], str]) -> dict[tuple[str, str], str]:
    secrets = dict(databases)
    for doc in docs:
        if doc["kind"] == "Secret":
            for key, value in doc["data"].items():
                secrets[(doc["metadata"]["name"], key)] = base64.b64decode(value).decode()
    return secrets


@pytest.fixture(scope="session")
def set_up(rendered: tuple[str, list[dict[str, Any]]], image: str, kafka_bootstrap: str, tls_secret: Path,
           databases: dict[tuple[str, str], str], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The setup Job (topics) ran to success in the image, as helm's post-install hook runs it."""
    variant, docs = rendered
    (job,) = [d for d in docs if d["kind"] == "Job"]
    workload = Workload.of("setup", job["spec"]["template"]["spec"])
    env = workload.env(_secrets(docs, databases), {"KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
                                                   "CLICKHOUSE_URL": "chdb:///tmp/chdb"})
    run = InImage(image, workload, env, tls_secret, tmp_path_factory.mktemp(f"setup-{variant}") / "log")
    try:
        code = run.process.wait(timeout=300)
    finally:
        run.stop()
    assert code == 0, run.output()
    return {"variant": variant, "docs": docs}


@pytest.mark.parametrize("component", ["ingest", "routing", "kpi-stream", "qa", "hr"])
def test_deployment_runs_in_the_image_and_gets_ready(
        set_up: dict[str, Any], component: str, image: str, kafka_bootstrap: str, tls_secret: Path,
        databases: dict[tuple[str, str], str], tmp_path: Path) -> None:
    docs = set_up["docs"]
    (deployment,) = [d for d in docs if d["kind"] == "Deployment"
                     and d["metadata"]["labels"]["app.kubernetes.io/component"] == component]
    workload = Workload.of(component, deployment["spec"]["template"]["spec"])
    env = workload.env(_secrets(docs, databases), {"KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
                                                   "CLICKHOUSE_URL": "chdb:///tmp/chdb"})
    assert (env.get("TLS_ENABLED") == "true") is (set_up["variant"] == "tls-on")
    run = InImage(image, workload, env, tls_secret, tmp_path / "log")
    try:
        _wait_probe(workload.container["readinessProbe"], workload.ports, tls_secret, run)
        assert _probe_once(workload.container["livenessProbe"], workload.ports, tls_secret) is None
        if "httpGet" in workload.container["readinessProbe"] and set_up["variant"] == "tls-on":
            # Never half: the TLS port refuses plain HTTP.
            port = workload.ports[int(workload.container["readinessProbe"]["httpGet"]["port"])]
            with pytest.raises(httpx.HTTPError):
                httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).raise_for_status()
    finally:
        run.stop()
