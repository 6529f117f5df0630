#!/usr/bin/env bash
# local/build-zips.sh [--arm64|--x86-64]   (default: --arm64, the template's architecture)
# Release-builds the three Lambda functions with cargo-lambda into deployment
# zips and prints their sizes:
#   cargo lambda build --release --arm64 --output-format zip \
#     -p signal-generator -p trigger-dispatcher -p pipeline-executor --lambda-dir target/lambda/arm64
# Output: target/lambda/<arch>/<function>/bootstrap.zip (one directory per
# architecture, so building both never mixes them up). LAMBDA_DIR overrides it.
# Each zip also carries the collector configurations of
# infra/observability/lambda-collector/ as collector/<backend>.yaml (the
# template's OPENTELEMETRY_COLLECTOR_CONFIG_URI=/var/task/collector/<backend>.yaml).
# The release profile of the root Cargo.toml applies (lto thin, codegen-units 1,
# strip symbols). Idempotent: installs the venv (cargo-lambda + zig) and the
# Rust target if missing; cargo rebuilds only what changed. Recompresses the zips
# with advzip (advancecomp) when it is installed or installable.
set -euo pipefail
# shellcheck source=lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

FUNCTIONS=(signal-generator trigger-dispatcher pipeline-executor)
ADVANCECOMP_VERSION=2.5-1

arch=arm64
case "${1:-}" in
  "" | --arm64) arch=arm64 ;;
  --x86-64 | --x86_64) arch=x86_64 ;;
  -h | --help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  *) die "usage: ${0##*/} [--arm64|--x86-64]" ;;
esac
case $arch in
  arm64) triple=aarch64-unknown-linux-gnu; flag=--arm64 ;;
  x86_64) triple=x86_64-unknown-linux-gnu; flag=--x86-64 ;;
esac
lambda_dir="${LAMBDA_DIR:-$REPO_ROOT/target/lambda/$arch}"

bash "$LOCAL_DIR/setup.sh"
case ":${PATH}:" in
  *":$VENV/bin:"*) ;;
  *) export PATH="$VENV/bin:$PATH" ;;
esac

# cargo-lambda cross-compiles with zig but needs the Rust standard library of
# the target; a fresh machine only has the host's.
if command -v rustup >/dev/null; then
  if ! rustup target list --installed | grep -qx "$triple"; then
    log "adding Rust target $triple"
    rustup target add "$triple"
  fi
fi

packages=()
for fn in "${FUNCTIONS[@]}"; do packages+=(-p "$fn"); done

cd "$REPO_ROOT"
log "cargo lambda build --release $flag --output-format zip ${packages[*]} --lambda-dir $lambda_dir"
start=$(date +%s)
cargo lambda build --release "$flag" --output-format zip "${packages[@]}" --lambda-dir "$lambda_dir"

for fn in "${FUNCTIONS[@]}"; do
  [[ -f $lambda_dir/$fn/bootstrap.zip ]] || die "missing $lambda_dir/$fn/bootstrap.zip after the build"
  python3 "$LOCAL_DIR/lib/zip_collector_config.py" "$lambda_dir/$fn/bootstrap.zip" \
    "$REPO_ROOT/infra/observability/lambda-collector"
done

# Recompress each zip with 7-Zip's deflate (advancecomp's `advzip -z -3`, Debian's package):
# the same standard deflate zip, ~3 % smaller than cargo-lambda's (BENCHMARKS.md, "Function
# package sizes"), ~7 s a zip. Installed with apt-get where this runs as root or with
# passwordless sudo; elsewhere the zips keep cargo-lambda's compression, and this says so.
if ! command -v advzip > /dev/null 2>&1 && command -v apt-get > /dev/null 2>&1; then
  apt_get=()
  if [[ $(id -u) == 0 ]]; then
    apt_get=(apt-get)
  elif command -v sudo > /dev/null 2>&1 && sudo -n true 2> /dev/null; then
    apt_get=(sudo -n apt-get)
  fi
  if ((${#apt_get[@]})); then
    # Pinned to Debian 12's version; another release's mirror has another one, taken then with
    # a log line (the recompression is the same deflate either way).
    log "installing advancecomp=$ADVANCECOMP_VERSION (advzip) with apt-get"
    apt_install() {
      DEBIAN_FRONTEND=noninteractive "${apt_get[@]}" install -y -qq --no-install-recommends "$1" > /dev/null 2>&1
    }
    apt_install "advancecomp=$ADVANCECOMP_VERSION" \
      || { "${apt_get[@]}" update -qq > /dev/null 2>&1 && apt_install "advancecomp=$ADVANCECOMP_VERSION"; } \
      || { log "advancecomp $ADVANCECOMP_VERSION not on this mirror; installing its version" && apt_install advancecomp; } \
      || log "could not install advancecomp"
  fi
fi
if command -v advzip > /dev/null 2>&1; then
  for fn in "${FUNCTIONS[@]}"; do
    advzip --recompress -3 --quiet "$lambda_dir/$fn/bootstrap.zip"
    unzip -tqq "$lambda_dir/$fn/bootstrap.zip" > /dev/null 2>&1 \
      || python3 -c 'import sys, zipfile; assert zipfile.ZipFile(sys.argv[1]).testzip() is None' \
        "$lambda_dir/$fn/bootstrap.zip" \
      || die "$lambda_dir/$fn/bootstrap.zip does not test clean after advzip"
    # Lambda runs `bootstrap` as is: its exec bit must survive the rewrite.
    python3 -c 'import sys, zipfile; i = zipfile.ZipFile(sys.argv[1]).getinfo("bootstrap"); sys.exit(0 if (i.external_attr >> 16) & 0o111 else 1)' \
      "$lambda_dir/$fn/bootstrap.zip" || die "$lambda_dir/$fn/bootstrap.zip: bootstrap lost its exec bit"
  done
  log "recompressed the zips with advzip -z -3 (7-Zip deflate)"
else
  log "advzip not found: the zips keep cargo-lambda's compression (~3 % larger)"
fi

elapsed=$(($(date +%s) - start))
log "built ${#FUNCTIONS[@]} zips ($arch) in ${elapsed} s under $lambda_dir"
# The size table on stdout (Markdown, pasted into BENCHMARKS.md as is).
python3 - "$lambda_dir" "$arch" "${FUNCTIONS[@]}" <<'PY'
import os
import sys
import zipfile

lambda_dir, arch, functions = sys.argv[1], sys.argv[2], sys.argv[3:]
print(f"| function ({arch}) | bootstrap.zip | bootstrap (unzipped) |")
print("|---|---:|---:|")
for fn in functions:
    path = os.path.join(lambda_dir, fn, "bootstrap.zip")
    with zipfile.ZipFile(path) as z:
        unzipped = sum(i.file_size for i in z.infolist() if i.filename == "bootstrap")
    zipped = os.path.getsize(path)
    print(f"| {fn} | {zipped:,} B ({zipped / 1e6:.2f} MB) | {unzipped:,} B ({unzipped / 1e6:.2f} MB) |")
PY
