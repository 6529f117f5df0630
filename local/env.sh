# shellcheck shell=bash
# Source me: `source local/env.sh`. Points the AWS CLI/SDKs at the local
# emulator and puts local/.venv/bin on PATH. Sets only what is not already set,
# so `AWS_ENDPOINT_URL=http://localhost:4566 local/deploy-stack.sh` reaches
# LocalStack instead. Changes no shell options (safe in an interactive shell).

_tradeflow_local="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

export EMULATOR_PORT="${EMULATOR_PORT:-5000}"
export AWS_ENDPOINT_URL="${AWS_ENDPOINT_URL:-http://127.0.0.1:${EMULATOR_PORT}}"
export AWS_REGION="${AWS_REGION:-${AWS_DEFAULT_REGION:-us-east-1}}"
export AWS_DEFAULT_REGION="${AWS_DEFAULT_REGION:-$AWS_REGION}"
export AWS_ACCESS_KEY_ID="${AWS_ACCESS_KEY_ID:-test}"
export AWS_SECRET_ACCESS_KEY="${AWS_SECRET_ACCESS_KEY:-test}"

case ":${PATH}:" in
  *":${_tradeflow_local}/.venv/bin:"*) ;;
  *) export PATH="${_tradeflow_local}/.venv/bin:${PATH}" ;;
esac

unset _tradeflow_local

# awscli 1.x sends `aws sqs ...` to queue.amazonaws.com whatever
# AWS_ENDPOINT_URL says (its SSL-common-name override; aws/aws-cli#8737), so
# with dummy credentials a request would leave the machine. This wrapper hands
# AWS_ENDPOINT_URL to the CLI as --endpoint-url unless one is given; the local
# scripts source this file and use it too.
aws() {
  local arg
  for arg in "$@"; do
    [[ $arg == --endpoint-url || $arg == --endpoint-url=* ]] && { command aws "$@"; return; }
  done
  if [[ -n ${AWS_ENDPOINT_URL:-} ]]; then
    command aws --endpoint-url "$AWS_ENDPOINT_URL" "$@"
  else
    command aws "$@"
  fi
}
