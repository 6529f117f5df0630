#!/usr/bin/env bash
# The demo: installs what it needs, starts the AWS emulator, deploys infra/template.yaml to it,
# seeds sample pipelines and runs the chain with the real function binaries (through
# `cargo lambda watch`), printing live progress and a summary.
#   local/demo.sh                 24 scans, one per second
#   TICKS=60 local/demo.sh        longer
#   KEEP_RUNNING=1 local/demo.sh  leave the emulator (and metrics stack) up afterwards to look around
#   METRICS=1 local/demo.sh       also run vmagent -> Prometheus -> Alertmanager, export the
#                                 functions' metrics to it, print a few of them at the end and
#                                 render the dashboards to local/.state/dashboard.html
# The pipelines are created, and the executions, orders, leases and dead letters shown, with the
# operator's CLI (`tradeflow`, crates/tradeflow-cli).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
cd "$REPO_ROOT"

bash local/setup.sh
source local/env.sh
cleanup() {
  bash local/watch.sh stop || true
  if [[ -z ${KEEP_RUNNING:-} ]]; then
    bash local/emulator.sh stop || true
    [[ -z ${METRICS:-} ]] || bash local/metrics.sh stop || true
  fi
}
trap cleanup EXIT

bash local/emulator.sh start
if [[ -n ${METRICS:-} ]]; then
  bash local/metrics.sh install
  bash local/metrics.sh reset > /dev/null 2>&1 || true # fresh numbers for this run
  bash local/metrics.sh start > /dev/null
  export OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:${OTLP_PORT:-4318}/opentelemetry"
  prometheus="http://127.0.0.1:${PROMETHEUS_PORT:-9090}"
fi
# A clean stage on every run: the demo's counts start from zero.
bash local/delete-stack.sh local > /dev/null 2>&1 || true
bash local/deploy-stack.sh local > /dev/null
cargo build --bins
export TRADEFLOW_STACK=tradeflow-local
tradeflow=target/debug/tradeflow
printf '\n$ tradeflow pipelines create local/seed/pipelines.json\n'
"$tradeflow" pipelines create local/seed/pipelines.json
url="$(bash local/watch.sh start local)"
target/debug/tradeflow-local demo --stack tradeflow-local --file none --watch "$url" --ticks "${TICKS:-24}" --tick-ms "${TICK_MS:-1000}"

# What an operator looks at after the run (README, "Operating").
for cmd in "executions list --limit 8" "orders list --limit 5" "leases list" "dlq list"; do
  printf '\n$ tradeflow %s\n' "$cmd"
  # shellcheck disable=SC2086
  "$tradeflow" $cmd
done

if [[ -n ${METRICS:-} ]]; then
  sleep 3 # vmagent flushes every second; Prometheus answers within about a second after that
  printf '\n$ tradeflow dashboard render --prometheus %s --since 15m --out %s\n' "$prometheus" "$STATE_DIR/dashboard.html"
  "$tradeflow" dashboard render --prometheus "$prometheus" --since 15m --out "$STATE_DIR/dashboard.html"
  printf '\nFrom Prometheus (%s):\n' "$prometheus"
  for q in 'sum(signals_generated_total)' 'sum(signals_consumed_total)' 'sum(pipelines_enqueued_total)' \
           'sum by (status) (pipeline_executions_total)' 'sum(orders_created_total)' \
           'sum by (job) (faas_invocations_total)'; do
    printf '  %-46s %s\n' "$q" "$(curl -s "$prometheus/api/v1/query" --data-urlencode "query=$q" \
      | python3 -c 'import json,sys; r=json.load(sys.stdin)["data"]["result"]; print(", ".join((" ".join(v for k,v in x["metric"].items() if k!="__name__") + "=" if x["metric"] else "") + x["value"][1] for x in r) or "no data")')"
  done
fi
