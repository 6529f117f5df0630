#!/usr/bin/env bash
# The demo: installs what it needs, starts the AWS emulator, deploys infra/template.yaml to it,
# seeds sample pipelines and runs the chain with the real function binaries (through
# `cargo lambda watch`), printing live progress and a summary.
#   local/demo.sh                 24 scans, one per second
#   TICKS=60 local/demo.sh        longer
#   KEEP_RUNNING=1 local/demo.sh  leave the emulator up afterwards to look around
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
cd "$REPO_ROOT"

bash local/setup.sh
source local/env.sh
cleanup() {
  bash local/watch.sh stop || true
  [[ -n ${KEEP_RUNNING:-} ]] || bash local/emulator.sh stop || true
}
trap cleanup EXIT

bash local/emulator.sh start
# A clean stage on every run: the demo's counts start from zero.
bash local/delete-stack.sh local > /dev/null 2>&1 || true
bash local/deploy-stack.sh local > /dev/null
cargo build --bins
url="$(bash local/watch.sh start local)"
target/debug/tradeflow-local demo --stack tradeflow-local --watch "$url" --ticks "${TICKS:-24}" --tick-ms "${TICK_MS:-1000}"
