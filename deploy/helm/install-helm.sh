#!/usr/bin/env bash
# Installs helm with `go install` (an ordinary Go module install through the Go module proxy; no Docker, no
# curl | bash) into a cache outside the repository, ~/.cache/callstream/helm/<version>/helm (CALLSTREAM_CACHE
# moves it; CI keeps that directory between runs), and links <repo>/.local/bin/helm to it. `make install`
# runs it, so the chart tests of `make test` find helm instead of skipping.
# Idempotent: does nothing when the pinned version is cached. Needs Go >= 1.22 on PATH.
# First run: a few minutes of download + compile (measured in docs/deploy-kubernetes.md); later: instant.
set -euo pipefail
HELM_VERSION="${HELM_VERSION:-v3.16.4}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
CACHED="${CALLSTREAM_CACHE:-$HOME/.cache/callstream}/helm/$HELM_VERSION"
LINK="$ROOT/.local/bin/helm"
if ! [ -x "$CACHED/helm" ]; then
  if ! command -v go >/dev/null; then
    if ! [ -x /usr/local/go/bin/go ]; then
      echo "go not found: install Go >= 1.22 (https://go.dev/dl/) or helm itself (https://helm.sh/docs/intro/install/)" >&2
      # --if-go (make install): a machine without Go still installs the rest; the chart tests then skip, saying so.
      [ "${1:-}" = "--if-go" ] && exit 0
      exit 1
    fi
    PATH="/usr/local/go/bin:$PATH"
  fi
  mkdir -p "$CACHED"
  echo "installing helm ${HELM_VERSION} into $CACHED (go install) ..."
  # Version stamp so `helm version` reports the tag (same ldflags as helm's Makefile).
  GOBIN="$CACHED" CGO_ENABLED=0 go install \
    -ldflags "-X helm.sh/helm/v3/internal/version.version=${HELM_VERSION}" \
    "helm.sh/helm/v3/cmd/helm@${HELM_VERSION}"
fi
mkdir -p "$(dirname "$LINK")"
ln -sfn "$CACHED/helm" "$LINK"
echo "helm $("$LINK" version --short) at $LINK -> $CACHED/helm"
