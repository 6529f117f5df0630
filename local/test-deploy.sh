#!/usr/bin/env bash
# shellcheck disable=SC2015,SC2016 # `a && ok || bad`: ok always succeeds; JMESPath literals
# local/test-deploy.sh - proves infra/deploy.sh against the moto emulator, as far
# as moto goes (it stores functions but cannot run them):
#   1. build the arm64 zips (local/build-zips.sh, through deploy.sh);
#   2. `deploy` a fresh stage: stack create, `cargo lambda deploy --endpoint-url`
#      creates the three functions (name, role, memory, timeout, env, tags, arch
#      checked against the template and the stack), stack update with the triggers;
#   3. the stack deleted under the functions, `deploy` again: stack created with the
#      triggers at once (event source mappings, schedule checked), roles re-applied;
#   4. `deploy` once more: an update that keeps the same event source mappings;
#   5. `destroy`: stack, functions, mappings, schedule, queues, tables, roles gone;
#   6. `deploy-template` (zips from an S3 bucket, the template creates everything),
#      the refused switch to `deploy`, and `destroy`.
# One line per check, then `deploy test: N passed, M failed`. Exit 1 on a failure.
# Only ever talks to its own emulator: EMULATOR_PORT (default 5030), dummy credentials.
set -euo pipefail
# shellcheck source=lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
cd "$REPO_ROOT"

export EMULATOR_PORT="${EMULATOR_PORT:-5030}"
# Never real AWS, whatever the caller's environment says.
unset AWS_PROFILE AWS_SESSION_TOKEN AWS_DEFAULT_PROFILE
export AWS_ENDPOINT_URL="http://127.0.0.1:${EMULATOR_PORT}"
export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1
bash local/setup.sh
# shellcheck source=env.sh
source local/env.sh

STAGE=deploytest
STAGE_S3=deploytest-s3
BUCKET=tradeflow-deploytest-code
DEPLOY=(bash infra/deploy.sh)
LOGS="$STATE_DIR/test-deploy"
mkdir -p "$LOGS"
rm -f "$LOGS"/*.log

passed=0 failed=0
declare -a timings=()
ok() { passed=$((passed + 1)); printf 'ok   - %s\n' "$*"; }
bad() { failed=$((failed + 1)); printf 'FAIL - %s\n' "$*"; }
note() { printf 'note - %s\n' "$*"; }
step() { printf '\n==> %s\n' "$*"; }
# check DESCRIPTION EXPECTED ACTUAL
check() {
  if [[ $3 == "$2" ]]; then ok "$1"; else bad "$1: expected '$2', got '$3'"; fi
}
# run NAME CMD...: runs a deploy.sh command with its log in $LOGS/NAME.log, timed.
run() {
  local name="$1" start rc=0
  shift
  start=$(date +%s)
  "$@" >"$LOGS/$name.log" 2>&1 || rc=$?
  timings+=("$name: $(($(date +%s) - start)) s")
  return $rc
}

started_emulator=0
cleanup() {
  local rc=$?
  if ((started_emulator)); then
    # Leave nothing behind even after a failed check (best effort, quiet).
    SKIP_BUILD=1 "${DEPLOY[@]}" destroy "$STAGE" >/dev/null 2>&1 || true
    SKIP_BUILD=1 "${DEPLOY[@]}" destroy "$STAGE_S3" >/dev/null 2>&1 || true
    bash local/emulator.sh stop >/dev/null 2>&1 || true
  fi
  exit $rc
}
trap cleanup EXIT

step "moto emulator on $AWS_ENDPOINT_URL"
if curl -fs -o /dev/null --max-time 2 "$AWS_ENDPOINT_URL/moto-api/" \
  && ! bash local/emulator.sh status 2>/dev/null | grep -q '^running'; then
  die "something else answers at $AWS_ENDPOINT_URL; pick a free port with EMULATOR_PORT"
fi
bash local/emulator.sh start
started_emulator=1
# A clean slate in the emulator (it may be ours from an interrupted run).
curl -fs -X POST -o /dev/null "$AWS_ENDPOINT_URL/moto-api/reset"

# What the template says about each function: LogicalId name memory timeout arch env-keys.
expectations() {
  "$VENV/bin/python" - "$TEMPLATE" "$1" <<'PY'
import sys
from cfnlint.decode import decode

template, _ = decode(sys.argv[1])
stage = sys.argv[2]
for lid, res in template["Resources"].items():
    if res.get("Type") != "AWS::Lambda::Function":
        continue
    p = res["Properties"]
    name = p["FunctionName"]["Fn::Sub"].replace("${Stage}", stage)
    keys = ",".join(sorted(p["Environment"]["Variables"]))
    print(lid, name, p["MemorySize"], p["Timeout"], p["Architectures"][0], keys)
PY
}

stack_output() {
  aws cloudformation describe-stacks --stack-name "$1" --output text \
    --query "Stacks[0].Outputs[?OutputKey=='$2'].OutputValue | [0]"
}

# check_functions STAGE: each function as the template and the stack say.
check_functions() {
  local stage="$1" stack="tradeflow-$1" lid name memory timeout arch keys role_key got
  while read -r lid name memory timeout arch keys; do
    if ! aws lambda get-function --function-name "$name" >/dev/null 2>&1; then
      bad "$name exists"
      continue
    fi
    ok "$name exists"
    role_key="${lid%Function}RoleArn"
    check "$name role = stack output $role_key" "$(stack_output "$stack" "$role_key")" \
      "$(aws lambda get-function-configuration --function-name "$name" --query Role --output text)"
    check "$name memory, timeout, runtime, handler" "$memory $timeout provided.al2023 bootstrap" \
      "$(aws lambda get-function-configuration --function-name "$name" --output text \
        --query '[MemorySize, Timeout, Runtime, Handler]' | tr '\t' ' ')"
    if [[ $stage == "$STAGE" ]]; then
      # moto's CloudFormation ignores Architectures; cargo lambda sets it from the binary.
      check "$name architecture" "$arch" \
        "$(aws lambda get-function-configuration --function-name "$name" --query 'Architectures[0]' --output text)"
      check "$name tags" "tradeflow $stage" \
        "$(aws lambda get-function --function-name "$name" --query '[Tags.project, Tags.stage]' --output text | tr '\t' ' ')"
    fi
    got="$(aws lambda get-function-configuration --function-name "$name" --output json \
      --query 'Environment.Variables' | "$VENV/bin/python" -c 'import json,sys; print(",".join(sorted(json.load(sys.stdin))))')"
    check "$name environment keys = template's" "$keys" "$got"
  done < <(expectations "$stage")
  local generator="tradeflow-$stage-signal-generator"
  check "$generator SIGNALS_QUEUE_URL = the stack's queue" \
    "$(aws cloudformation describe-stack-resource --stack-name "$stack" --logical-resource-id SignalsQueue \
      --query StackResourceDetail.PhysicalResourceId --output text)" \
    "$(aws lambda get-function-configuration --function-name "$generator" \
      --query Environment.Variables.SIGNALS_QUEUE_URL --output text)"
  check "$generator GENERATOR_TICKERS (a value with commas) intact" "AAPL,MSFT,NVDA,TSLA,SPY" \
    "$(aws lambda get-function-configuration --function-name "$generator" \
      --query Environment.Variables.GENERATOR_TICKERS --output text)"
}

esm_summary() {
  aws lambda list-event-source-mappings --function-name "$1" --output text \
    --query 'EventSourceMappings[].[EventSourceArn, BatchSize, MaximumBatchingWindowInSeconds, join(`,`, FunctionResponseTypes), ScalingConfig.MaximumConcurrency]' \
    | sed 's/.*://' | tr '\t' ' '
}

# check_triggers STAGE: event source mappings and schedule as the template declares.
check_triggers() {
  local stage="$1" generator_arn
  check "dispatcher mapping: signals queue, batch 20, window 1 s, partial failures, max concurrency 5" \
    "tradeflow-$stage-signals 20 1 ReportBatchItemFailures 5" "$(esm_summary "tradeflow-$stage-trigger-dispatcher")"
  check "executor mapping: executions queue, batch 10, window 0 s, partial failures, max concurrency 10" \
    "tradeflow-$stage-executions 10 0 ReportBatchItemFailures 10" "$(esm_summary "tradeflow-$stage-pipeline-executor")"
  generator_arn="$(aws lambda get-function-configuration --function-name "tradeflow-$stage-signal-generator" \
    --query FunctionArn --output text)"
  check "schedule rate(1 minute), ENABLED, targets the generator" "rate(1 minute) ENABLED $generator_arn" \
    "$(aws events describe-rule --name "tradeflow-$stage-generator-schedule" --query '[ScheduleExpression, State]' \
      --output text | tr '\t' ' ') $(aws events list-targets-by-rule --rule "tradeflow-$stage-generator-schedule" \
      --query 'Targets[0].Arn' --output text)"
  check "EventBridge may invoke the generator" "events.amazonaws.com" \
    "$(aws lambda get-policy --function-name "tradeflow-$stage-signal-generator" --query Policy --output text \
      | "$VENV/bin/python" -c 'import json,sys; print(json.load(sys.stdin)["Statement"][0]["Principal"]["Service"])')"
}

esm_count() {
  aws lambda list-event-source-mappings --function-name "$1" --query 'length(EventSourceMappings)' --output text 2>/dev/null || echo 0
}

# check_gone STAGE ROLE_NAMES...: nothing of the stage is left.
check_gone() {
  local stage="$1" name left=()
  shift
  gone() { ! "$@" >/dev/null 2>&1; }
  gone aws cloudformation describe-stacks --stack-name "tradeflow-$stage" || left+=("stack")
  for name in signal-generator trigger-dispatcher pipeline-executor; do
    gone aws lambda get-function --function-name "tradeflow-$stage-$name" || left+=("function $name")
    [[ $(esm_count "tradeflow-$stage-$name") == 0 ]] || left+=("mappings of $name")
  done
  gone aws events describe-rule --name "tradeflow-$stage-generator-schedule" || left+=("schedule")
  for name in signals signals-dlq executions executions-dlq; do
    gone aws sqs get-queue-url --queue-name "tradeflow-$stage-$name" || left+=("queue $name")
  done
  for name in pipelines leases executions orders cursors; do
    gone aws dynamodb describe-table --table-name "tradeflow-$stage-$name" || left+=("table $name")
  done
  for name in "$@"; do
    gone aws iam get-role --role-name "$name" || left+=("role $name")
  done
  for name in signal-generator trigger-dispatcher pipeline-executor; do
    [[ $(aws logs describe-log-groups --log-group-name-prefix "/aws/lambda/tradeflow-$stage-$name" \
      --query 'length(logGroups)' --output text) == 0 ]] || left+=("log group $name")
  done
  check "destroy $stage leaves nothing (stack, functions, mappings, schedule, queues, tables, roles, log groups)" \
    "" "${left[*]}"
}

role_names() {
  local stack="tradeflow-$1" key
  for key in GeneratorRoleArn DispatcherRoleArn ExecutorRoleArn; do
    stack_output "$stack" "$key" | sed 's|.*/||'
  done
}

step "cfn-lint infra/template.yaml"
if cfn-lint infra/template.yaml; then ok "cfn-lint clean"; else bad "cfn-lint"; fi

step "1+2. infra/deploy.sh deploy $STAGE (builds the zips; fresh stage)"
if run deploy-fresh "${DEPLOY[@]}" deploy "$STAGE"; then ok "deploy $STAGE exits 0"; else bad "deploy $STAGE (log: $LOGS/deploy-fresh.log)"; fi
for fn in signal-generator trigger-dispatcher pipeline-executor; do
  [[ -f target/lambda/arm64/$fn/bootstrap.zip ]] && ok "built target/lambda/arm64/$fn/bootstrap.zip" \
    || bad "no target/lambda/arm64/$fn/bootstrap.zip"
done
grep -q "creating stack tradeflow-$STAGE (.*FunctionTriggers=false" "$LOGS/deploy-fresh.log" \
  && ok "stack created first without triggers (no functions yet)" || bad "stack not created with FunctionTriggers=false"
[[ $(grep -c '^\[deploy.sh\] cargo lambda deploy --endpoint-url' "$LOGS/deploy-fresh.log") == 3 ]] \
  && ok "cargo lambda deploy --endpoint-url ran for the three functions" || bad "cargo lambda deploy did not run 3 times"
check_functions "$STAGE"
check "stack parameters after the fresh deploy" "cargo-lambda true" \
  "$(aws cloudformation describe-stacks --stack-name "tradeflow-$STAGE" --output text \
    --query "Stacks[0].Parameters[?ParameterKey=='FunctionCode' || ParameterKey=='FunctionTriggers'].ParameterValue" | tr '\t' ' ')"
if [[ $(esm_count "tradeflow-$STAGE-trigger-dispatcher") == 1 ]]; then
  check_triggers "$STAGE"
else
  note "moto: the update with FunctionTriggers=true added no event source mappings / schedule (moto's update-stack never creates resources whose condition turned true; AWS does). Checked in step 3 instead."
  grep -q "WARNING: the functions have 0 event source mappings, 0 schedule targets" "$LOGS/deploy-fresh.log" \
    && ok "deploy.sh warns that the triggers are missing" || bad "deploy.sh did not warn about the missing triggers"
fi

step "3. stack deleted under the functions; infra/deploy.sh deploy $STAGE again"
old_roles="$(role_names "$STAGE" | tr '\n' ' ')"
aws cloudformation delete-stack --stack-name "tradeflow-$STAGE"
aws cloudformation wait stack-delete-complete --stack-name "tradeflow-$STAGE"
if run deploy-recreate env SKIP_BUILD=1 "${DEPLOY[@]}" deploy "$STAGE"; then ok "deploy $STAGE exits 0"; else bad "deploy $STAGE (log: $LOGS/deploy-recreate.log)"; fi
grep -q "creating stack tradeflow-$STAGE (.*FunctionTriggers=true" "$LOGS/deploy-recreate.log" \
  && ok "functions exist: stack created with the triggers at once" || bad "stack not created with FunctionTriggers=true"
[[ $(grep -c "update-function-configuration --function-name .* --role" "$LOGS/deploy-recreate.log") == 3 ]] \
  && ok "new roles applied to the existing functions" || bad "roles not re-applied"
[[ $old_roles != "$(role_names "$STAGE" | tr '\n' ' ')" ]] && ok "roles were re-created by the stack" || bad "roles unchanged?"
check_functions "$STAGE"
check_triggers "$STAGE"
grep -q "triggers in place: 2 event source mappings, 1 schedule targets" "$LOGS/deploy-recreate.log" \
  && ok "deploy.sh reports the triggers in place" || bad "deploy.sh did not report the triggers"

step "4. infra/deploy.sh deploy $STAGE once more (update)"
uuids="$(aws lambda list-event-source-mappings --query 'sort(EventSourceMappings[].UUID)' --output text)"
if run deploy-update env SKIP_BUILD=1 "${DEPLOY[@]}" deploy "$STAGE"; then ok "deploy $STAGE exits 0"; else bad "deploy $STAGE (log: $LOGS/deploy-update.log)"; fi
grep -q "step 4/4: triggers already in the stack" "$LOGS/deploy-update.log" \
  && ok "one stack update, triggers kept" || bad "triggers not kept in one update"
check "same event source mappings (not re-created)" "$uuids" \
  "$(aws lambda list-event-source-mappings --query 'sort(EventSourceMappings[].UUID)' --output text)"
check_functions "$STAGE"

step "5. infra/deploy.sh destroy $STAGE"
roles="$(role_names "$STAGE")"
if run destroy "${DEPLOY[@]}" destroy "$STAGE"; then ok "destroy $STAGE exits 0"; else bad "destroy $STAGE (log: $LOGS/destroy.log)"; fi
# shellcheck disable=SC2086 # one role name per word
check_gone "$STAGE" $roles $old_roles
if run destroy-again "${DEPLOY[@]}" destroy "$STAGE"; then ok "destroy again is a no-op (exit 0)"; else bad "second destroy failed"; fi

step "6. infra/deploy.sh deploy-template $STAGE_S3 $BUCKET (the template creates the functions from S3)"
aws s3 mb "s3://$BUCKET" >/dev/null
if run deploy-template env SKIP_BUILD=1 "${DEPLOY[@]}" deploy-template "$STAGE_S3" "$BUCKET"; then
  ok "deploy-template $STAGE_S3 exits 0"
else
  bad "deploy-template $STAGE_S3 (log: $LOGS/deploy-template.log)"
fi
check "three zips in s3://$BUCKET/tradeflow/$STAGE_S3/" 3 \
  "$(aws s3api list-objects-v2 --bucket "$BUCKET" --prefix "tradeflow/$STAGE_S3/" --query 'length(Contents)' --output text)"
# (describe-stack-resource(s) with --logical-resource-id of a function fails in moto: list them all)
check "functions are resources of the stack" \
  "tradeflow-$STAGE_S3-pipeline-executor tradeflow-$STAGE_S3-signal-generator tradeflow-$STAGE_S3-trigger-dispatcher" \
  "$(aws cloudformation describe-stack-resources --stack-name "tradeflow-$STAGE_S3" --output text \
    --query "sort(StackResources[?ResourceType=='AWS::Lambda::Function'].PhysicalResourceId)" | tr '\t' ' ')"
check "generator code = the built zip" "$(stat -c %s target/lambda/arm64/signal-generator/bootstrap.zip)" \
  "$(aws lambda get-function-configuration --function-name "tradeflow-$STAGE_S3-signal-generator" --query CodeSize --output text)"
check_functions "$STAGE_S3"
check_triggers "$STAGE_S3"
if run deploy-template-again env SKIP_BUILD=1 "${DEPLOY[@]}" deploy-template "$STAGE_S3" "$BUCKET"; then
  ok "deploy-template $STAGE_S3 again (update, same zips) exits 0"
else
  bad "deploy-template $STAGE_S3 again (log: $LOGS/deploy-template-again.log)"
fi
if run deploy-switch env SKIP_BUILD=1 "${DEPLOY[@]}" deploy "$STAGE_S3"; then
  bad "deploy on a deploy-template stage should be refused"
else
  grep -q "was deployed by deploy-template" "$LOGS/deploy-switch.log" \
    && ok "switching $STAGE_S3 to cargo lambda deploy is refused (destroy first)" || bad "unexpected failure: $LOGS/deploy-switch.log"
fi
roles="$(role_names "$STAGE_S3")"
if run destroy-template "${DEPLOY[@]}" destroy "$STAGE_S3"; then ok "destroy $STAGE_S3 exits 0"; else bad "destroy $STAGE_S3 (log: $LOGS/destroy-template.log)"; fi
# shellcheck disable=SC2086
check_gone "$STAGE_S3" $roles

printf '\ntimings:'; printf ' %s;' "${timings[@]}"; printf '\n'
printf 'logs: %s\n' "$LOGS"
echo "deploy test: $passed passed, $failed failed"
((failed == 0))
