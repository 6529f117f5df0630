#!/usr/bin/env bash
# local/metrics.sh install|start|stop|status|env - the Docker-free metrics stack:
#   vmagent       127.0.0.1:${OTLP_PORT:-4318}          OTLP HTTP/protobuf in at /opentelemetry/v1/metrics,
#                                                        Prometheus naming, one series per function
#                                                        across Lambda environments (stream aggregation,
#                                                        local/metrics/vmagent-aggregation.yml), remote
#                                                        write to Prometheus
#   Prometheus    127.0.0.1:${PROMETHEUS_PORT:-9090}    remote-write receiver, rules of
#                                                        infra/observability/rules/*.yml
#   Alertmanager  127.0.0.1:${ALERTMANAGER_PORT:-9093}  receives Prometheus' alerts
# Point the functions at it with (printed by `start` and `env`):
#   OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318/opentelemetry
# (the exporter appends /v1/metrics).
#
# install: downloads the pinned Debian trixie packages below with a private apt configuration
# (local/.tools/apt: its own sources, lists and cache; /etc/apt is not touched) and extracts them
# into local/.tools/root without installing them (they need only libc). Idempotent: nothing is
# fetched when the extracted tree matches the pins. Also puts Alertmanager's templates where
# the Debian build looks for them (/usr/share/prometheus/alertmanager/*.tmpl, needs root).
# start/stop are idempotent; status exits 0 when all three answer, 1 when not; reload makes
# Prometheus re-read its config and infra/observability/rules/*.yml; versions compares the pins
# with trixie's current candidates.
# State (pids, logs, data): local/.state/metrics/. `stop` keeps the data; `reset` deletes it.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

# Pinned versions (Debian trixie). To move a pin: `local/metrics.sh versions` lists the
# candidates, then edit here.
PINS=(
  "prometheus=2.53.3+ds1-2"
  "promtool=2.53.3+ds1-2"
  "victoria-metrics=1.112.0+ds1-2"
  "prometheus-alertmanager=0.28.1+ds-1"
  "docker-compose=2.26.1-4"
)
DEBIAN_MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"

TOOLS_DIR="$LOCAL_DIR/.tools"
APT_DIR="$TOOLS_DIR/apt"
DEB_DIR="$TOOLS_DIR/debs"
ROOT_DIR="$TOOLS_DIR/root"
BIN_DIR="$ROOT_DIR/usr/bin"
PIN_STAMP="$ROOT_DIR/.pins"
CONFIG_DIR="$LOCAL_DIR/metrics"
RUN_DIR="$STATE_DIR/metrics${METRICS_INSTANCE:+-$METRICS_INSTANCE}"
AM_TEMPLATE_DIR=/usr/share/prometheus/alertmanager

prom_port="${PROMETHEUS_PORT:-9090}"
otlp_port="${OTLP_PORT:-4318}"
am_port="${ALERTMANAGER_PORT:-9093}"
for p in "$prom_port" "$otlp_port" "$am_port"; do
  [[ $p =~ ^[0-9]+$ ]] || die "ports must be numbers, got '$p'"
done
prom_url="http://127.0.0.1:${prom_port}"
otlp_url="http://127.0.0.1:${otlp_port}"
am_url="http://127.0.0.1:${am_port}"
ready_timeout=30

apt_() {
  apt-get -q \
    -o Dir::Etc::SourceList=/dev/null \
    -o Dir::Etc::SourceParts="$APT_DIR/sources.list.d" \
    -o Dir::Etc::Preferences=/dev/null \
    -o Dir::Etc::PreferencesParts="$APT_DIR/preferences.d" \
    -o Dir::State::Lists="$APT_DIR/lists" \
    -o Dir::Cache="$APT_DIR/cache" \
    -o Acquire::Languages=none \
    -o Acquire::IndexTargets::deb::DEP-11::DefaultEnabled=false \
    -o Acquire::IndexTargets::deb::DEP-11-icons::DefaultEnabled=false \
    -o Acquire::IndexTargets::deb::DEP-11-icons-small::DefaultEnabled=false \
    -o APT::Sandbox::User=root \
    "$@"
}

apt_setup() {
  mkdir -p "$APT_DIR/sources.list.d" "$APT_DIR/preferences.d" "$APT_DIR/lists/partial" \
    "$APT_DIR/cache/archives/partial"
  cat >"$APT_DIR/sources.list.d/trixie.sources" <<EOF
Types: deb
URIs: $DEBIAN_MIRROR
Suites: trixie
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
  [[ -f /usr/share/keyrings/debian-archive-keyring.gpg ]] \
    || die "the Debian archive keyring is missing (apt-get install debian-archive-keyring)"
}

# deb_file NAME=VERSION: the file apt-get download writes for it (epoch ':' is '%3a').
deb_file() {
  local name="${1%%=*}" version="${1#*=}"
  printf '%s/%s_%s_%s.deb' "$DEB_DIR" "$name" "${version//:/%3a}" "$(dpkg --print-architecture)"
}

installed() {
  [[ -f $PIN_STAMP && "$(<"$PIN_STAMP")" == "${PINS[*]}" ]] \
    && [[ -x $BIN_DIR/prometheus && -x $BIN_DIR/promtool && -x $BIN_DIR/vmagent \
      && -x $BIN_DIR/prometheus-alertmanager \
      && -x $ROOT_DIR/usr/libexec/docker/cli-plugins/docker-compose ]]
}

install_am_template() {
  local src_dir="$ROOT_DIR/usr/share/prometheus/alertmanager" f stale=0
  [[ -f $src_dir/default.tmpl ]] || die "default.tmpl missing from the extracted alertmanager package"
  for f in "$src_dir"/*.tmpl; do
    cmp -s "$f" "$AM_TEMPLATE_DIR/${f##*/}" || stale=1
  done
  ((stale)) || return 0
  # The Debian build reads its templates (default.tmpl, email.tmpl) from this absolute path only.
  if ! { mkdir -p "$AM_TEMPLATE_DIR" && cp "$src_dir"/*.tmpl "$AM_TEMPLATE_DIR/"; } 2>/dev/null; then
    die "cannot write $AM_TEMPLATE_DIR (Alertmanager needs its templates there; run as root once)"
  fi
  log "installed Alertmanager's templates into $AM_TEMPLATE_DIR"
}

install() {
  mkdir -p "$TOOLS_DIR"
  exec 8>"$TOOLS_DIR/install.lock"
  flock 8 # concurrent callers wait for one install
  if installed; then
    install_am_template
    exec 8>&- # release the lock (the daemons started next must not inherit it)
    log "tools up to date: $ROOT_DIR (${PINS[*]})"
    return 0
  fi
  if ! command -v apt-get >/dev/null || ! command -v dpkg-deb >/dev/null; then
    die "apt-get and dpkg-deb are required (Debian or Ubuntu)"
  fi
  local start=$SECONDS pin missing=()
  mkdir -p "$DEB_DIR"
  for pin in "${PINS[@]}"; do
    [[ -s $(deb_file "$pin") ]] || missing+=("$pin")
  done
  if ((${#missing[@]})); then
    apt_setup
    log "fetching the trixie package index (private apt config in $APT_DIR)"
    apt_ update >/dev/null
    log "downloading ${missing[*]}"
    if ! (cd "$DEB_DIR" && apt_ download "${missing[@]}" >/dev/null); then
      log "available versions now:"
      for pin in "${missing[@]}"; do
        apt_ policy "${pin%%=*}" 2>/dev/null | sed -n '1,3p' >&2
      done
      die "could not download the pinned versions; update PINS in $0"
    fi
  fi
  rm -rf "$ROOT_DIR"
  mkdir -p "$ROOT_DIR"
  for pin in "${PINS[@]}"; do
    dpkg-deb -x "$(deb_file "$pin")" "$ROOT_DIR"
  done
  printf '%s\n' "${PINS[*]}" >"$PIN_STAMP"
  installed || die "extracted packages lack an expected binary under $ROOT_DIR"
  install_am_template
  exec 8>&-
  log "installed ${PINS[*]} in $((SECONDS - start)) s"
}

versions() {
  apt_setup
  apt_ update >/dev/null
  local pin
  for pin in "${PINS[@]}"; do
    printf '%s pinned %s, candidate %s\n' "${pin%%=*}" "${pin#*=}" \
      "$(apt_ policy "${pin%%=*}" | awk '/Candidate:/ {print $2}')"
  done
}

# --- processes -----------------------------------------------------------------------------

pid_file() { printf '%s/%s.pid' "$RUN_DIR" "$1"; }
log_file() { printf '%s/%s.log' "$RUN_DIR" "$1"; }

# our_pid NAME BINARY: the pid from NAME's pid file if that process is alive and runs BINARY
# (compared with symlinks resolved: local/.tools may be a link to another checkout's).
our_pid() {
  local file pid
  file="$(pid_file "$1")"
  [[ -f $file ]] || return 1
  pid="$(<"$file")"
  [[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null \
    && [[ "$(readlink "/proc/$pid/exe" 2>/dev/null)" == "$(readlink -f "$2")" ]] \
    || return 1
  printf '%s' "$pid"
}

answers() { curl -fs -o /dev/null --max-time 2 "$1"; }

# launch NAME BINARY READY_URL ARGS...: starts BINARY in its own session unless ours already runs.
launch() {
  local name="$1" binary="$2" ready="$3" pid
  shift 3
  if pid="$(our_pid "$name" "$binary")"; then
    answers "$ready" || die "$name (pid $pid) runs but $ready does not answer; see $(log_file "$name")"
    log "$name already running (pid $pid)"
    return 0
  fi
  rm -f "$(pid_file "$name")"
  if answers "$ready"; then
    die "something not started by this script already answers at $ready; stop it or choose another port"
  fi
  # setsid: own session, so it outlives the calling shell's job; no inherited descriptors but 0-2.
  setsid "$binary" "$@" </dev/null >"$(log_file "$name")" 2>&1 8>&- 9>&- &
  pid=$!
  printf '%s\n' "$pid" >"$(pid_file "$name")"
  local deadline=$((SECONDS + ready_timeout))
  until answers "$ready"; do
    if ! kill -0 "$pid" 2>/dev/null; then
      rm -f "$(pid_file "$name")"
      tail -n 20 "$(log_file "$name")" >&2 || true
      die "$name exited during start (port in use?); log: $(log_file "$name")"
    fi
    if ((SECONDS >= deadline)); then
      kill "$pid" 2>/dev/null || true
      rm -f "$(pid_file "$name")"
      tail -n 20 "$(log_file "$name")" >&2 || true
      die "$name did not answer at $ready within ${ready_timeout} s; log: $(log_file "$name")"
    fi
    sleep 0.1
  done
  log "$name started (pid $pid, log $(log_file "$name"))"
}

halt() {
  local name="$1" binary="$2" pid
  if ! pid="$(our_pid "$name" "$binary")"; then
    rm -f "$(pid_file "$name")"
    return 0
  fi
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 100); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    log "$name (pid $pid) ignored SIGTERM for 10 s; sending SIGKILL"
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$(pid_file "$name")"
  log "$name stopped (pid $pid)"
}

render_configs() {
  mkdir -p "$RUN_DIR"
  sed -e "s#\.\./\.\./infra/#$REPO_ROOT/infra/#" \
    -e "s#127\.0\.0\.1:9093#127.0.0.1:${am_port}#" \
    -e "s#127\.0\.0\.1:9090#127.0.0.1:${prom_port}#" \
    -e "s#127\.0\.0\.1:4318#127.0.0.1:${otlp_port}#" \
    "$CONFIG_DIR/prometheus.yml" >"$RUN_DIR/prometheus.yml"
  "$BIN_DIR/promtool" check config --syntax-only "$RUN_DIR/prometheus.yml" >/dev/null \
    || die "invalid Prometheus config: $RUN_DIR/prometheus.yml"
}

start() {
  install
  render_configs
  mkdir -p "$RUN_DIR/alertmanager-data" "$RUN_DIR/prometheus-data" "$RUN_DIR/vmagent-data"
  launch alertmanager "$BIN_DIR/prometheus-alertmanager" "$am_url/-/ready" \
    --config.file="$CONFIG_DIR/alertmanager.yml" \
    --storage.path="$RUN_DIR/alertmanager-data" \
    --web.listen-address="127.0.0.1:${am_port}" \
    --cluster.listen-address=
  launch prometheus "$BIN_DIR/prometheus" "$prom_url/-/ready" \
    --config.file="$RUN_DIR/prometheus.yml" \
    --storage.tsdb.path="$RUN_DIR/prometheus-data" \
    --storage.tsdb.retention.time=7d \
    --web.listen-address="127.0.0.1:${prom_port}" \
    --web.enable-remote-write-receiver \
    --web.enable-lifecycle \
    --web.enable-admin-api
  launch vmagent "$BIN_DIR/vmagent" "$otlp_url/health" \
    -httpListenAddr="127.0.0.1:${otlp_port}" \
    -remoteWrite.url="$prom_url/api/v1/write" \
    -remoteWrite.forcePromProto \
    -remoteWrite.flushInterval=1s \
    -remoteWrite.tmpDataPath="$RUN_DIR/vmagent-data" \
    -remoteWrite.relabelConfig="$CONFIG_DIR/vmagent-relabel.yml" \
    -remoteWrite.streamAggr.config="$CONFIG_DIR/vmagent-aggregation.yml" \
    -opentelemetry.usePrometheusNaming
  print_env
}

stop() {
  halt vmagent "$BIN_DIR/vmagent"
  halt prometheus "$BIN_DIR/prometheus"
  halt alertmanager "$BIN_DIR/prometheus-alertmanager"
  log "stopped (data kept in $RUN_DIR)"
}

status() {
  local ok=0 name url
  for name in prometheus vmagent alertmanager; do
    case $name in
      prometheus) url="$prom_url/-/ready" ;;
      vmagent) url="$otlp_url/health" ;;
      alertmanager) url="$am_url/-/ready" ;;
    esac
    if answers "$url"; then
      log "$name: ready ($url)"
    else
      log "$name: not answering at $url"
      ok=1
    fi
  done
  return "$ok"
}

# reload: re-renders the Prometheus config and makes Prometheus re-read it and the rule files.
reload() {
  render_configs
  curl -fsS -X POST --max-time 10 "$prom_url/-/reload" \
    || die "Prometheus at $prom_url did not reload; see $(log_file prometheus)"
  log "prometheus reloaded $RUN_DIR/prometheus.yml and $REPO_ROOT/infra/observability/rules/*.yml"
}

print_env() {
  printf 'OTEL_EXPORTER_OTLP_ENDPOINT=%s/opentelemetry\n' "$otlp_url"
  printf 'PROMETHEUS_URL=%s\n' "$prom_url"
  printf 'ALERTMANAGER_URL=%s\n' "$am_url"
  # The vmagent binary, for the test that runs the AWS aggregation gateway's command line.
  printf 'TRADEFLOW_VMAGENT_BIN=%s\n' "$BIN_DIR/vmagent"
}

case "${1:-}" in
  install) install ;;
  start) start ;;
  stop) stop ;;
  status) status ;;
  env) print_env ;;
  reload) reload ;;
  versions) versions ;;
  reset)
    stop
    rm -rf "$RUN_DIR"
    log "deleted $RUN_DIR"
    ;;
  *) die "usage: $0 install|start|stop|status|env|reload|versions|reset" ;;
esac
