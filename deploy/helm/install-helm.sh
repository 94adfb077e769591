#!/usr/bin/env bash
# Installs helm into <repo>/.local/bin/helm with `go install` (an ordinary Go module install through the
# Go module proxy; no Docker, no curl | bash). Idempotent: does nothing when the pinned version is present.
# Needs Go >= 1.22 on PATH. First run: a few minutes of download + compile; later runs: instant.
set -euo pipefail
HELM_VERSION="${HELM_VERSION:-v3.16.4}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BIN="$ROOT/.local/bin"
if [ -x "$BIN/helm" ] && "$BIN/helm" version --short 2>/dev/null | grep -Eq "^(${HELM_VERSION}|${HELM_VERSION%.*})([+.]|\$)"; then
  echo "helm ${HELM_VERSION} already at $BIN/helm"
  exit 0
fi
command -v go >/dev/null || { echo "go not found: install Go (https://go.dev/dl/) or helm itself (https://helm.sh/docs/intro/install/)" >&2; exit 1; }
mkdir -p "$BIN"
echo "installing helm ${HELM_VERSION} into $BIN (go install) ..."
# Version stamp so `helm version` reports the tag (same ldflags as helm's Makefile).
GOBIN="$BIN" CGO_ENABLED=0 go install \
  -ldflags "-X helm.sh/helm/v3/internal/version.version=${HELM_VERSION}" \
  "helm.sh/helm/v3/cmd/helm@${HELM_VERSION}"
"$BIN/helm" version --short
