# shellcheck shell=bash
# Shared by the local/*.sh scripts (sourced after `set -euo pipefail`).

# shellcheck disable=SC2034 # used by the scripts that source this file
LOCAL_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
REPO_ROOT="$(cd "$LOCAL_DIR/.." && pwd)"
VENV="$LOCAL_DIR/.venv"
STATE_DIR="$LOCAL_DIR/.state"
TEMPLATE="$REPO_ROOT/infra/template.yaml"

log() { printf '[%s] %s\n' "${0##*/}" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# stage_arg STAGE: validates a stage name against the template's AllowedPattern.
stage_arg() {
  local stage="$1"
  [[ $stage =~ ^[a-z0-9][a-z0-9-]*$ && ${#stage} -le 20 ]] \
    || die "stage '$stage' must be lowercase letters, digits and dashes (max 20)"
  printf '%s' "$stage"
}

# require_endpoint: fails fast (instead of botocore's retries) when nothing
# answers at AWS_ENDPOINT_URL. Any HTTP answer counts.
require_endpoint() {
  curl -s -o /dev/null --max-time 5 "$AWS_ENDPOINT_URL" \
    || die "nothing answers at $AWS_ENDPOINT_URL (start the emulator: local/emulator.sh start)"
}
