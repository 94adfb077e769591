"""The Helm chart rendered by a real helm (deploy/helm/install-helm.sh builds it; `make install` runs that)."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "helm" / "callstream"
Render = Callable[..., list[dict[str, Any]]]


def _helm() -> str | None:
    found = shutil.which("helm")
    if found:
        return found
    local = ROOT / ".local" / "bin" / "helm"
    return str(local) if local.exists() else None


@pytest.fixture(scope="session")
def helm() -> str:
    path = _helm()
    if path is None:
        pytest.skip(
            "helm not on PATH: run deploy/helm/install-helm.sh (go install helm.sh/helm/v3/cmd/helm, linked into "
            ".local/bin) or install it from https://helm.sh/docs/intro/install/"
        )
    return path


@pytest.fixture(scope="session")
def chart_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
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
    return dst


@pytest.fixture(scope="session")
def render(helm: str, chart_copy: Path) -> Render:
    """`render("tls.enabled=false", ...)`: the objects `helm template` makes with those --set values."""

    def rendered(*sets: str) -> list[dict[str, Any]]:
        args = [helm, "template", "rel", str(chart_copy), "--namespace", "cs"]
        for s in sets:
            args += ["--set", s]
        out = subprocess.run(args, check=True, capture_output=True, text=True, timeout=120).stdout
        return [d for d in yaml.safe_load_all(out) if d]

    return rendered
