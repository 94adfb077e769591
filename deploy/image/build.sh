#!/usr/bin/env bash
# Builds the Callstream image from the root Containerfile with buildah (no Docker engine, no registry) and
# prints its reference (last line of stdout), e.g. localhost/callstream:3f2a...
#
# Cached by the hash of its inputs (Containerfile, .containerignore, pyproject.toml, uv.lock, libs/,
# services/ and apps/ without tests, this script and the base): an image with that tag in the container storage
# (/var/lib/containers for root) is reused, so a warm run takes about a second. The base:
#   BASE_IMAGE set   -> used as is (e.g. docker.io/library/python:3.11-slim-bookworm with a registry);
#   BASE_IMAGE unset -> a Debian bookworm minbase with python3 made by mmdebstrap, kept in
#                       ~/.cache/callstream/image/ and imported with podman (no registry needed).
# Needs buildah (and podman + mmdebstrap for the local base): deploy/local/install-system-packages.sh.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
CACHE="${CALLSTREAM_CACHE:-$HOME/.cache/callstream}/image"
NAME="${IMAGE_NAME:-localhost/callstream}"
mkdir -p "$CACHE"
tools=(buildah)
[ -n "${BASE_IMAGE:-}" ] || tools+=(podman mmdebstrap)
for tool in "${tools[@]}"; do
  command -v "$tool" >/dev/null || { echo "$tool not found: run deploy/local/install-system-packages.sh as root" >&2; exit 1; }
done

if [ -z "${BASE_IMAGE:-}" ]; then
  # The base's packages: python3 and its venv module (the build stage makes uv's venv with it),
  # CA certificates (TLS to Kafka, ClickHouse, PostgreSQL and the KPI API).
  packages="python3,python3-venv,ca-certificates"
  base_key="$(echo "bookworm $packages" | sha256sum | cut -c1-16)"
  BASE_IMAGE="localhost/callstream-base:bookworm-$base_key"
  if ! podman image exists "$BASE_IMAGE"; then
    tarball="$CACHE/base-bookworm-$base_key.tar"
    if [ ! -f "$tarball" ] || [ ! -s "$tarball" ]; then
      echo "making the base ($packages) with mmdebstrap ..." >&2
      # --format=tar: mmdebstrap infers the format from the name, and "*.tar.part" (written aside, so an
      # interrupted run never leaves a half tarball under the cached name) made it write a directory tree,
      # which `podman import` then refused. The rm clears such a tree left by an earlier run.
      rm -rf "$tarball" "$tarball.part"
      mmdebstrap --quiet --format=tar --variant=minbase --include="$packages" bookworm "$tarball.part" >&2
      mv "$tarball.part" "$tarball"
    fi
    podman import --quiet "$tarball" "$BASE_IMAGE" >&2
  fi
fi

inputs_hash() {
  cd "$ROOT"
  {
    echo "$BASE_IMAGE"
    find Containerfile .containerignore pyproject.toml uv.lock deploy/image/build.sh libs services apps -type f \
      -not -path '*/tests/*' -not -path '*/__pycache__/*' -not -path '*/.*_cache/*' -print0 \
      | sort -z | xargs -0 sha256sum
  } | sha256sum | cut -c1-16
}
TAG="$NAME:$(inputs_hash)"
if buildah inspect --type image "$TAG" >/dev/null 2>&1; then
  echo "image $TAG is up to date" >&2
else
  echo "building $TAG from $BASE_IMAGE ..." >&2
  start=$(date +%s)
  # chroot isolation: no OCI runtime (this kind of machine has no usable cgroups). The uv cache mount
  # (RUN --mount=type=cache) lives in buildah's storage and makes a rebuild after a code change quick.
  # The host's CA bundle reaches the build stage as a secret (never a layer): PyPI through a TLS-inspecting
  # proxy verifies against it.
  ca_bundle="${BUILD_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}"
  secret=()
  [ -s "$ca_bundle" ] && secret=(--secret "id=build-ca,src=$ca_bundle")
  buildah bud --quiet --isolation chroot --layers --build-arg "BASE_IMAGE=$BASE_IMAGE" "${secret[@]}" \
    --tag "$TAG" --file "$ROOT/Containerfile" "$ROOT" >&2
  echo "built $TAG in $(( $(date +%s) - start )) s" >&2
fi
echo "$TAG"
