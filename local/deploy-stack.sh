#!/usr/bin/env bash
# local/deploy-stack.sh [stage]  (default: local)
# Creates or updates stack tradeflow-<stage> from infra/template.yaml with
# DeployFunctions=false (queues, tables, alarms; the local runner plays Lambda),
# switches on the TTL each table declares in the template, and writes the stack
# outputs to local/.state/<stage>.env as KEY=value lines (also printed).
# Target: AWS_ENDPOINT_URL (default: the emulator, see local/env.sh).
set -euo pipefail
# shellcheck source=lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

stage="$(stage_arg "${1:-local}")"
stack="tradeflow-${stage}"
env_file="$STATE_DIR/${stage}.env"

"$LOCAL_DIR/setup.sh"
# shellcheck source=env.sh
source "$LOCAL_DIR/env.sh"
require_endpoint
mkdir -p "$STATE_DIR"

stack_status() {
  local out
  if out="$(aws cloudformation describe-stacks --stack-name "$stack" \
    --query 'Stacks[0].StackStatus' --output text 2>&1)"; then
    printf '%s' "$out"
  elif [[ $out == *"does not exist"* ]]; then
    printf 'NONE'
  else
    die "describe-stacks $stack: $out"
  fi
}

start=$SECONDS
params=(
  "ParameterKey=Stage,ParameterValue=${stage}"
  "ParameterKey=DeployFunctions,ParameterValue=false"
  # Local stages are throwaway: delete-stack.sh deletes the retained tables too.
  "ParameterKey=DataDeletionProtection,ParameterValue=false"
)
# create-stack/update-stack, not `aws cloudformation deploy`: the emulator
# executes change sets but never fills in the stack's Outputs afterwards.
status="$(stack_status)"
case "$status" in
  ROLLBACK_COMPLETE | ROLLBACK_FAILED | DELETE_FAILED)
    # A stack whose creation failed cannot be updated: start over.
    log "$stack is $status; deleting it first"
    aws cloudformation delete-stack --stack-name "$stack"
    aws cloudformation wait stack-delete-complete --stack-name "$stack"
    status=NONE
    ;;
  *_IN_PROGRESS)
    die "$stack is $status; try again when it has finished"
    ;;
esac

if [[ $status == NONE || $status == DELETE_COMPLETE ]]; then
  log "creating $stack at $AWS_ENDPOINT_URL ($AWS_REGION)"
  aws cloudformation create-stack --stack-name "$stack" \
    --template-body "file://${TEMPLATE}" --parameters "${params[@]}" \
    --capabilities CAPABILITY_IAM >/dev/null
  aws cloudformation wait stack-create-complete --stack-name "$stack"
elif out="$(aws cloudformation update-stack --stack-name "$stack" \
  --template-body "file://${TEMPLATE}" --parameters "${params[@]}" \
  --capabilities CAPABILITY_IAM 2>&1)"; then
  log "updating $stack ($status) at $AWS_ENDPOINT_URL ($AWS_REGION)"
  aws cloudformation wait stack-update-complete --stack-name "$stack"
elif [[ $out == *"No updates are to be performed"* ]]; then
  log "$stack is up to date ($status)"
else
  die "update-stack $stack: $out"
fi

# TTL: which tables and attributes come from the template, names from the stack.
# "<LogicalId> <attribute>" of each resource whose TimeToLiveSpecification is enabled (the
# template's layout: resources at two spaces of indent, the specification's keys at eight).
ttl_specs="$(awk '
  /^[^ #]/ { in_resources = ($0 ~ /^Resources:/) }
  in_resources && /^  [A-Za-z0-9]+:$/ { id = $1; sub(/:$/, "", id); ttl = 0; attr = ""; on = 0 }
  in_resources && /^      TimeToLiveSpecification:/ { ttl = 1; next }
  ttl && /^        AttributeName:/ { attr = $2 }
  ttl && /^        Enabled: *(true|"true")/ { on = 1 }
  ttl && !/^        / { ttl = 0 }
  ttl && attr != "" && on { print id, attr; ttl = 0 }
' "$TEMPLATE")"
while read -r logical_id attribute; do
  [[ -n $logical_id ]] || continue
  table="$(aws cloudformation describe-stack-resource --stack-name "$stack" \
    --logical-resource-id "$logical_id" \
    --query 'StackResourceDetail.PhysicalResourceId' --output text)"
  read -r ttl_status ttl_attribute < <(aws dynamodb describe-time-to-live --table-name "$table" \
    --query '[TimeToLiveDescription.TimeToLiveStatus, TimeToLiveDescription.AttributeName]' \
    --output text)
  if [[ ($ttl_status == ENABLED || $ttl_status == ENABLING) && $ttl_attribute == "$attribute" ]]; then
    log "TTL already on: $table.$attribute"
  else
    aws dynamodb update-time-to-live --table-name "$table" \
      --time-to-live-specification "Enabled=true,AttributeName=${attribute}" >/dev/null
    log "TTL switched on: $table.$attribute"
  fi
done <<<"$ttl_specs"

tmp="$(mktemp "$STATE_DIR/.${stage}.env.XXXXXX")"
trap 'rm -f "$tmp"' EXIT
# Output keys in SCREAMING_SNAKE_CASE (SignalsDlqName -> SIGNALS_DLQ_NAME), sorted.
aws cloudformation describe-stacks --stack-name "$stack" --output text \
  --query 'Stacks[0].Outputs[].[OutputKey, OutputValue]' \
  | while IFS=$'\t' read -r key value; do
    key="$(sed -E 's/([A-Z]+)([A-Z][a-z])/\1_\2/g; s/([a-z0-9])([A-Z])/\1_\2/g' <<<"$key")"
    printf '%s=%s\n' "${key^^}" "$value"
  done | sort >"$tmp"
grep -q '^SIGNALS_QUEUE_NAME=' "$tmp" \
  || die "stack $stack has no SignalsQueueName output; describe-stacks returned: $(cat "$tmp")"
mv "$tmp" "$env_file"
trap - EXIT

log "$stack ready in $((SECONDS - start)) s; outputs in $env_file:"
cat "$env_file"
