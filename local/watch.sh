#!/usr/bin/env bash
# Serves the real function binaries through `cargo lambda watch` (Runtime + Invoke APIs) for a
# deployed stage, so the local runner can invoke them exactly as Lambda would.
#   local/watch.sh start [stage]   (default stage: local)   -> prints the invoke URL
#   local/watch.sh stop
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
source "$LOCAL_DIR/env.sh"

WATCH_PORT="${WATCH_PORT:-9400}"
PID_FILE="$STATE_DIR/watch-$WATCH_PORT.pid"
STAGE_FILE="$STATE_DIR/watch-$WATCH_PORT.stage"
LOG_FILE="$STATE_DIR/watch-$WATCH_PORT.log"
URL="http://127.0.0.1:$WATCH_PORT"

running() { [[ -f $PID_FILE ]] && kill -0 "$(cat "$PID_FILE")" 2>/dev/null; }

case "${1:-}" in
  start)
    stage="$(stage_arg "${2:-local}")"
    mkdir -p "$STATE_DIR"
    if running; then
      if [[ $(cat "$STAGE_FILE" 2>/dev/null) == "$stage" ]]; then
        log "already running at $URL for stage $stage"; echo "$URL"; exit 0
      fi
      log "running for another stage: restarting for $stage"
      "$0" stop
    fi
    cd "$REPO_ROOT"
    log "building the function binaries"
    cargo build --quiet --bins
    env_file="$STATE_DIR/functions-$stage.env"
    target/debug/tradeflow-local env --stack "tradeflow-$stage" > "$env_file"
    # The emulator's address and dummy credentials reach the functions as well.
    {
      echo "AWS_ENDPOINT_URL=$AWS_ENDPOINT_URL"
      echo "AWS_REGION=$AWS_REGION"
      echo "AWS_ACCESS_KEY_ID=$AWS_ACCESS_KEY_ID"
      echo "AWS_SECRET_ACCESS_KEY=$AWS_SECRET_ACCESS_KEY"
      echo "RUST_LOG=${FUNCTIONS_RUST_LOG:-warn}"
      [[ -n ${OTEL_EXPORTER_OTLP_ENDPOINT:-} ]] && echo "OTEL_EXPORTER_OTLP_ENDPOINT=$OTEL_EXPORTER_OTLP_ENDPOINT"
      true
    } >> "$env_file"
    log "starting cargo lambda watch on $URL (log: $LOG_FILE)"
    setsid cargo lambda watch --ignore-changes --invoke-address 127.0.0.1 --invoke-port "$WATCH_PORT" \
      --env-file "$env_file" > "$LOG_FILE" 2>&1 < /dev/null &
    echo $! > "$PID_FILE"
    echo "$stage" > "$STAGE_FILE"
    for _ in $(seq 1 600); do
      running || { tail -20 "$LOG_FILE" >&2; die "cargo lambda watch exited (port $WATCH_PORT taken?)"; }
      if grep -q "starting Runtime server" "$LOG_FILE" && curl -s -o /dev/null --max-time 1 "$URL/"; then
        sleep 0.3
        running || { tail -20 "$LOG_FILE" >&2; die "cargo lambda watch exited (port $WATCH_PORT taken?)"; }
        echo "$URL"; exit 0
      fi
      sleep 0.1
    done
    tail -20 "$LOG_FILE" >&2
    die "cargo lambda watch did not answer on $URL within 60 s"
    ;;
  stop)
    if running; then
      pid="$(cat "$PID_FILE")"
      kill -- "-$pid" 2>/dev/null || kill "$pid" 2>/dev/null || true
      for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -9 -- "-$pid" 2>/dev/null || true
      log "stopped"
    fi
    rm -f "$PID_FILE" "$STAGE_FILE"
    ;;
  *) echo "usage: $0 start [stage] | stop" >&2; exit 2 ;;
esac
