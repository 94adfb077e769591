#!/usr/bin/env bash
# Installs the system tools Callstream needs on a Debian machine when they are missing:
# Java 17+ and Maven (the Kafka broker), PostgreSQL (the QA/HR tests' production database),
# Chromium (the wallboard test drives it headless), buildah/podman/mmdebstrap (`make image` builds the
# container image without a Docker engine or registry; the chart-and-image test runs it).
# Without root (or apt-get) it only says what is missing; `callstream doctor` says it again in detail.
set -euo pipefail
missing=()
command -v java >/dev/null 2>&1 || missing+=(openjdk-17-jre-headless)
command -v mvn >/dev/null 2>&1 || missing+=(maven)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
for tool in buildah podman mmdebstrap; do command -v "$tool" >/dev/null 2>&1 || missing+=("$tool"); done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing ${missing[*]} from Debian's packages"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  echo "missing system packages: ${missing[*]} (install them, e.g. apt-get install ${missing[*]})" >&2
  case " ${missing[*]} " in *" maven "*|*" openjdk"*) exit 1 ;; esac
fi
