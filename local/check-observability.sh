#!/usr/bin/env bash
# local/check-observability.sh [--live PROMETHEUS_URL] [--allowlist FILE] [--verbose]
# The dashboard and rule checks of docs/observability.md ("Checking"). The checks are Rust:
# `cargo xtask check-observability` (xtask/src/observability.rs); this wrapper only makes sure
# promtool and docker-compose are extracted (local/metrics.sh install) unless PROMTOOL is set.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
[[ -n ${PROMTOOL:-} || -x local/.tools/root/usr/bin/promtool ]] || bash local/metrics.sh install >&2
exec cargo run --quiet --package xtask -- check-observability "$@"
