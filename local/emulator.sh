#!/usr/bin/env bash
# local/emulator.sh start|stop|status - the moto server (every AWS service on
# one port) on 127.0.0.1:${EMULATOR_PORT:-5000}, in the background.
# pid and log: local/.state/emulator-<port>.{pid,log}. start and stop are
# idempotent; status exits 0 when it answers, 1 when not.
set -euo pipefail
# shellcheck source=lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

port="${EMULATOR_PORT:-5000}"
[[ $port =~ ^[0-9]+$ ]] || die "EMULATOR_PORT must be a number, got '$port'"
url="http://127.0.0.1:${port}"
pid_file="$STATE_DIR/emulator-${port}.pid"
log_file="$STATE_DIR/emulator-${port}.log"
ready_timeout=20

answers() { curl -fs -o /dev/null --max-time 2 "$url/moto-api/"; }

# our_pid: prints the pid from the pid file if that process is alive and is
# the moto server we started (pid reuse after a reboot is not mistaken for it).
our_pid() {
  local pid
  [[ -f $pid_file ]] || return 1
  pid="$(<"$pid_file")"
  [[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null \
    && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q moto_server \
    || return 1
  printf '%s' "$pid"
}

start() {
  local pid
  if pid="$(our_pid)"; then
    answers || die "moto_server (pid $pid) is running but $url/moto-api/ does not answer; see $log_file"
    log "already running: $url (pid $pid)"
    return 0
  fi
  rm -f "$pid_file"
  if answers; then
    log "something not started by this script already answers at $url/moto-api/; using it"
    return 0
  fi
  "$LOCAL_DIR/setup.sh"
  mkdir -p "$STATE_DIR"
  # setsid: own session, so the emulator outlives the calling shell's job.
  # moto_server with its DynamoDB backend serialised (local/lib/moto_server_serialised.py says
  # why: unlocked, concurrent transactions fail with HTTP 500).
  setsid "$VENV/bin/python" "$LOCAL_DIR/lib/moto_server_serialised.py" -H 127.0.0.1 -p "$port" \
    </dev/null >"$log_file" 2>&1 &
  pid=$!
  printf '%s\n' "$pid" >"$pid_file"
  local deadline=$((SECONDS + ready_timeout))
  until answers; do
    if ! kill -0 "$pid" 2>/dev/null; then
      rm -f "$pid_file"
      tail -n 20 "$log_file" >&2 || true
      die "moto_server exited during start (port $port in use?); log: $log_file"
    fi
    if ((SECONDS >= deadline)); then
      kill "$pid" 2>/dev/null || true
      rm -f "$pid_file"
      tail -n 20 "$log_file" >&2 || true
      die "moto_server did not answer at $url/moto-api/ within ${ready_timeout} s; log: $log_file"
    fi
    sleep 0.1
  done
  log "started: $url (pid $pid, log $log_file)"
}

stop() {
  local pid
  if ! pid="$(our_pid)"; then
    rm -f "$pid_file"
    log "not running (no emulator started by this script on port $port)"
    return 0
  fi
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 50); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    log "pid $pid ignored SIGTERM for 5 s; sending SIGKILL"
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$pid_file"
  log "stopped (pid $pid)"
}

status() {
  local pid
  if pid="$(our_pid)" && answers; then
    echo "running: $url (pid $pid, log $log_file)"
  elif answers; then
    echo "answering at $url, but not started by this script"
  else
    echo "not running ($url)"
    return 1
  fi
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) echo "usage: ${0##*/} start|stop|status   (port: EMULATOR_PORT, default 5000)" >&2; exit 2 ;;
esac
