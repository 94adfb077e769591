#!/usr/bin/env bash
# Builds Asterisk from the vendored source tarball into a cache folder outside the repo, once per tarball.
#   build.sh TARBALL PREFIX
# The flags are the ones shared/vendor/README.md checked on this machine kind: no bundled pjproject and no
# sound packages (both would be downloaded at build time, which fails here), no XML docs, no CPU-specific
# code (the cache may be reused on another machine of the same kind). A stamp file is written last, so an
# interrupted build is redone, never half-used.
set -euo pipefail
TARBALL="$(realpath "$1")"
PREFIX="$2"
STAMP="$PREFIX/.complete"
[ -f "$STAMP" ] && { echo "asterisk already built in $PREFIX"; exit 0; }
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
  need=()
  for pkg in build-essential libedit-dev libjansson-dev libxml2-dev uuid-dev libsqlite3-dev libssl-dev pkg-config; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need+=("$pkg")
  done
  if [ ${#need[@]} -gt 0 ]; then
    echo "installing ${need[*]} from Debian's packages"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  fi
fi
WORK="$(mktemp -d "${TMPDIR:-/tmp}/asterisk-build.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
tar xzf "$TARBALL" -C "$WORK" --strip-components=1
cd "$WORK"
rm -rf "$PREFIX"
./configure --prefix="$PREFIX" --without-pjproject-bundled --without-pjproject --with-jansson \
  --disable-xmldoc >"$WORK/configure.log" 2>&1 || { tail -40 "$WORK/configure.log"; exit 1; }
make menuselect.makeopts >/dev/null
menuselect/menuselect --disable CORE-SOUNDS-EN-GSM --disable MOH-OPSOUND-WAV --disable BUILD_NATIVE \
  menuselect.makeopts >/dev/null
make -j"$(nproc)" >"$WORK/make.log" 2>&1 || { tail -60 "$WORK/make.log"; exit 1; }
make install >"$WORK/install.log" 2>&1 || { tail -40 "$WORK/install.log"; exit 1; }
basename "$TARBALL" >"$STAMP"
echo "asterisk built in $PREFIX"
