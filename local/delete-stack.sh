#!/usr/bin/env bash
# local/delete-stack.sh [stage]  (default: local)
# Deletes stack tradeflow-<stage> (and with it its queues and tables), waits for
# it to be gone, deletes the executions and orders tables the template retains
# (DeletionPolicy: Retain; a local stage starts clean) and removes
# local/.state/<stage>.env. Idempotent.
set -euo pipefail
# shellcheck source=lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

stage="$(stage_arg "${1:-local}")"
stack="tradeflow-${stage}"

"$LOCAL_DIR/setup.sh"
# shellcheck source=env.sh
source "$LOCAL_DIR/env.sh"
require_endpoint

start=$SECONDS
if out="$(aws cloudformation describe-stacks --stack-name "$stack" \
  --query 'Stacks[0].StackStatus' --output text 2>&1)"; then
  log "deleting $stack ($out) at $AWS_ENDPOINT_URL"
  aws cloudformation delete-stack --stack-name "$stack"
  aws cloudformation wait stack-delete-complete --stack-name "$stack"
  log "deleted $stack in $((SECONDS - start)) s"
elif [[ $out == *"does not exist"* ]]; then
  log "no stack $stack at $AWS_ENDPOINT_URL; nothing to delete"
else
  die "describe-stacks $stack: $out"
fi
for table in executions orders; do
  table="tradeflow-${stage}-${table}"
  aws dynamodb describe-table --table-name "$table" >/dev/null 2>&1 || continue
  aws dynamodb update-table --table-name "$table" --no-deletion-protection-enabled >/dev/null
  aws dynamodb delete-table --table-name "$table" >/dev/null
  log "deleted retained table $table"
done
rm -f "$STATE_DIR/${stage}.env"
