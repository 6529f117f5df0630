#!/usr/bin/env bash
# The test command (README, .ci/run): installs what it needs, starts the AWS emulator and
# `cargo lambda watch`, then runs formatting, lints, the template lint, every unit, handler and
# integration test against the real emulator, and a short demo run. Cleans up after itself.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
cd "$REPO_ROOT"

# Ports of their own, so a demo or a metrics stack already running on the defaults is left alone.
export EMULATOR_PORT="${EMULATOR_PORT:-5010}"
export WATCH_PORT="${WATCH_PORT:-9410}"
export METRICS_INSTANCE=test PROMETHEUS_PORT="${PROMETHEUS_PORT:-9290}" OTLP_PORT="${OTLP_PORT:-4518}" \
  ALERTMANAGER_PORT="${ALERTMANAGER_PORT:-9293}"
bash local/setup.sh
source local/env.sh

cleanup() {
  bash local/metrics.sh stop || true
  bash local/watch.sh stop || true
  bash local/emulator.sh stop || true
}
trap cleanup EXIT

step() { printf '\n==> %s\n' "$*" >&2; }

step "rustfmt and clippy"
rustup component add rustfmt clippy > /dev/null 2>&1 || true
cargo fmt --all --check
cargo clippy --workspace --all-targets --quiet -- -D warnings

step "cfn-lint infra/template.yaml"
cfn-lint infra/template.yaml

step "AWS emulator (moto) on $AWS_ENDPOINT_URL"
bash local/emulator.sh start

step "metrics stack: vmagent (OTLP in) -> Prometheus -> Alertmanager"
bash local/metrics.sh install
bash local/metrics.sh reset > /dev/null 2>&1 || true
bash local/metrics.sh start > /dev/null
export PROMETHEUS_URL="http://127.0.0.1:$PROMETHEUS_PORT"
otlp_endpoint="http://127.0.0.1:$OTLP_PORT/opentelemetry"
export TRADEFLOW_VMAGENT_BIN
TRADEFLOW_VMAGENT_BIN="$(bash local/metrics.sh env | sed -n 's/^TRADEFLOW_VMAGENT_BIN=//p')"

step "Chromium for the dashboard page test (Debian's chromium package)"
# crates/tradeflow-cli/tests/dashboard.rs opens the page `tradeflow dashboard render` writes in
# headless Chromium. Installed here (as root, or with passwordless sudo); only when apt cannot be
# used does the test skip its browser part, and it says why.
if ! command -v chromium > /dev/null 2>&1; then
  apt_get=()
  if [[ $(id -u) == 0 ]]; then
    apt_get=(apt-get)
  elif command -v sudo > /dev/null 2>&1 && sudo -n true 2> /dev/null; then
    apt_get=(sudo -n apt-get)
  fi
  if ((${#apt_get[@]})) && command -v apt-get > /dev/null 2>&1; then
    DEBIAN_FRONTEND=noninteractive "${apt_get[@]}" install -y -qq --no-install-recommends chromium > /dev/null 2>&1 \
      || { "${apt_get[@]}" update -qq > /dev/null \
        && DEBIAN_FRONTEND=noninteractive "${apt_get[@]}" install -y -qq --no-install-recommends chromium > /dev/null; }
  fi
fi
if command -v chromium > /dev/null 2>&1; then
  export CHROMIUM
  CHROMIUM="$(command -v chromium)"
  unset TRADEFLOW_BROWSER_SKIP
else
  export TRADEFLOW_BROWSER_SKIP="chromium is not installed and apt-get cannot be used here (not root, no passwordless sudo)"
  printf 'SKIP (browser part of the dashboard test): %s\n' "$TRADEFLOW_BROWSER_SKIP" >&2
fi

step "stack for the end-to-end test through cargo lambda watch"
bash local/deploy-stack.sh watch-e2e > /dev/null
watch_url="$(bash local/watch.sh start watch-e2e)"

step "unit, handler and integration tests (the ignored emulator, watch and metrics tests included)"
RUST_LOG="${RUST_LOG:-warn}" TRADEFLOW_OTLP_ENDPOINT="$otlp_endpoint" \
  TRADEFLOW_WATCH_URL="$watch_url" TRADEFLOW_WATCH_STACK=tradeflow-watch-e2e \
  cargo test --workspace -- --include-ignored 2>&1 | tee "$STATE_DIR/cargo-test.log"

step "demo smoke run (in-process, 8 scans over 40 s: several 15-s aggregation intervals, so rates have data)"
bash local/deploy-stack.sh demo-smoke > /dev/null
OTEL_EXPORTER_OTLP_ENDPOINT="$otlp_endpoint" \
  target/debug/tradeflow-local demo --stack tradeflow-demo-smoke --ticks 8 --tick-ms 5000

step "every dashboard panel and rule: parses, promtool rule tests, returns data on the live Prometheus"
bash local/check-observability.sh --live "$PROMETHEUS_URL"

step "release arm64 packages and the deploy script against the emulator (local/test-deploy.sh)"
bash local/test-deploy.sh

# One closing line over every test binary (the last cargo line is an empty doc-test run). With
# --include-ignored nothing should be left ignored; a number here means a test was not run.
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($i ~ /^passed;?$/) p += $(i-1); if ($i ~ /^failed;?$/) f += $(i-1); if ($i ~ /^ignored;?$/) g += $(i-1) } }
     END { printf "cargo test: %d passed, %d failed, %d ignored\n", p, f, g }' "$STATE_DIR/cargo-test.log"
