#!/usr/bin/env bash
# shellcheck disable=SC2015,SC2016 # `a && ok || bad`: ok always succeeds; JMESPath literals
# local/test-deploy.sh - proves infra/deploy.sh against the moto emulator, as far
# as moto goes (it stores functions but cannot run them):
#   1. `deploy` a fresh stage: build the arm64 zips (local/build-zips.sh), upload
#      them to a code bucket it creates, one create-stack: functions (name, role,
#      memory, timeout, env checked against the template and the stack), event
#      source mappings, schedule;
#   2. `deploy` again with a metrics backend (MetricsBackend=remote-write and a
#      collector layer published on the emulator): an update that keeps the same
#      event source mappings, the functions' OTLP endpoint on localhost and their
#      collector configuration;
#   3. `update-code`: cargo lambda deploy of the zips onto the stage's functions;
#   4. `destroy`: everything gone but the executions and orders tables (retained,
#      deletion protection on), which it lists;
#   5. `destroy --delete-data` without --yes (refused), with --yes: tables gone.
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
OLD_STAGE=deploytestold # a stack created before LegacyExecutionIdsBefore (step 6)
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
    SKIP_BUILD=1 "${DEPLOY[@]}" destroy "$STAGE" --delete-data --yes >/dev/null 2>&1 || true
    SKIP_BUILD=1 "${DEPLOY[@]}" destroy "$OLD_STAGE" --delete-data --yes >/dev/null 2>&1 || true
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

# What the template says about each function: LogicalId name memory timeout arch env-keys
# (an awk reading of the template's layout: two-space indent per level).
expectations() {
  awk -v stage="$1" '
    function flush() { if (fn) print id, name, mem, timeout, arch, keys; fn = 0; env = 0; keys = "" }
    /^[^ #]/ { in_res = ($0 ~ /^Resources:/) }
    in_res && /^  [A-Za-z0-9]+:$/ { flush(); id = $1; sub(/:$/, "", id) }
    in_res && /^    Type: AWS::Lambda::Function$/ { fn = 1 }
    fn && env && !/^          / { env = 0 }
    fn && env && $1 !~ /^#/ { k = $1; sub(/:$/, "", k); keys = keys (keys == "" ? "" : ",") k }
    fn && /^        Variables:/ { env = 1 }
    fn && /^      FunctionName: !Sub / { name = $3; sub(/\$\{Stage\}/, stage, name) }
    fn && /^      MemorySize:/ { mem = $2 }
    fn && /^      Timeout:/ { timeout = $2 }
    fn && /^      Architectures:/ { arch = $2; gsub(/[][]/, "", arch) }
    END { flush() }
  ' "$TEMPLATE"
}
# sorted_csv: a comma-separated list, sorted (byte order).
sorted_csv() { tr ',' '\n' | LC_ALL=C sort | paste -sd, -; }

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
    # (moto's CloudFormation ignores Architectures: not checked)
    got="$(aws lambda get-function-configuration --function-name "$name" --output text \
      --query 'keys(Environment.Variables)' | tr '\t' ',' | sorted_csv)"
    check "$name environment keys = template's" "$(sorted_csv <<<"$keys")" "$got"
  done < <(expectations "$stage")
  local generator="tradeflow-$stage-signal-generator"
  check "$generator SIGNALS_QUEUE_URL = the stack's queue" \
    "$(aws cloudformation describe-stack-resource --stack-name "$stack" --logical-resource-id SignalsQueue \
      --query StackResourceDetail.PhysicalResourceId --output text)" \
    "$(aws lambda get-function-configuration --function-name "$generator" \
      --query Environment.Variables.SIGNALS_QUEUE_URL --output text)"
  local topic
  topic="$(stack_output "$stack" SignalsTopicArn)"
  check "$generator SIGNALS_TOPIC_ARN = the stack's topic (output SignalsTopicArn)" "$topic" \
    "$(aws lambda get-function-configuration --function-name "$generator" \
      --query Environment.Variables.SIGNALS_TOPIC_ARN --output text)"
  check "signals topic -> signals queue, raw delivery" \
    "sqs tradeflow-$stage-signals true" \
    "$(aws sns list-subscriptions-by-topic --topic-arn "$topic" --output text \
      --query 'Subscriptions[].[Protocol, Endpoint, SubscriptionArn]' \
      | while read -r protocol endpoint arn; do
        printf '%s %s %s\n' "$protocol" "${endpoint##*:}" \
          "$(aws sns get-subscription-attributes --subscription-arn "$arn" \
            --query Attributes.RawMessageDelivery --output text)"
      done)"
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
      | grep -o 'events\.amazonaws\.com' | head -1)"
  local executor_arn
  executor_arn="$(aws lambda get-function-configuration --function-name "tradeflow-$stage-pipeline-executor" \
    --query FunctionArn --output text)"
  check "sweep schedule rate(5 minutes), ENABLED, targets the executor" "rate(5 minutes) ENABLED $executor_arn" \
    "$(aws events describe-rule --name "tradeflow-$stage-executor-sweep" --query '[ScheduleExpression, State]' \
      --output text | tr '\t' ' ') $(aws events list-targets-by-rule --rule "tradeflow-$stage-executor-sweep" \
      --query 'Targets[0].Arn' --output text)"
  check "EventBridge may invoke the executor (its sweep)" "events.amazonaws.com" \
    "$(aws lambda get-policy --function-name "tradeflow-$stage-pipeline-executor" --query Policy --output text \
      | grep -o 'events\.amazonaws\.com' | head -1)"
}

esm_count() {
  aws lambda list-event-source-mappings --function-name "$1" --query 'length(EventSourceMappings)' --output text 2>/dev/null || echo 0
}

# check_gone STAGE ROLE_NAMES...: nothing of the stage is left but the retained tables.
GONE_TABLES=(pipelines leases cursors)
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
  gone aws events describe-rule --name "tradeflow-$stage-executor-sweep" || left+=("sweep schedule")
  for name in signals signals-dlq executions executions-dlq; do
    gone aws sqs get-queue-url --queue-name "tradeflow-$stage-$name" || left+=("queue $name")
  done
  for name in "${GONE_TABLES[@]}"; do
    gone aws dynamodb describe-table --table-name "tradeflow-$stage-$name" || left+=("table $name")
  done
  for name in "$@"; do
    gone aws iam get-role --role-name "$name" || left+=("role $name")
  done
  for name in signal-generator trigger-dispatcher pipeline-executor; do
    [[ $(aws logs describe-log-groups --log-group-name-prefix "/aws/lambda/tradeflow-$stage-$name" \
      --query 'length(logGroups)' --output text) == 0 ]] || left+=("log group $name")
  done
  check "destroy $stage leaves none of: stack, functions, mappings, schedule, queues, tables ${GONE_TABLES[*]}, roles, log groups" \
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

step "1. infra/deploy.sh deploy $STAGE (builds the zips; fresh stage, bucket created)"
if run deploy-fresh "${DEPLOY[@]}" deploy "$STAGE"; then ok "deploy $STAGE exits 0"; else bad "deploy $STAGE (log: $LOGS/deploy-fresh.log)"; fi
for fn in signal-generator trigger-dispatcher pipeline-executor; do
  [[ -f target/lambda/arm64/$fn/bootstrap.zip ]] && ok "built target/lambda/arm64/$fn/bootstrap.zip" \
    || bad "no target/lambda/arm64/$fn/bootstrap.zip"
  want="$(cd infra/observability/lambda-collector && ls -- *.yaml | sed 's#^#collector/#' | LC_ALL=C sort | paste -sd,)"
  check "$fn zip carries the collector configurations" "$want" \
    "$(python3 -c 'import sys, zipfile; print(",".join(sorted(n for n in zipfile.ZipFile(sys.argv[1]).namelist() if n.startswith("collector/"))))' \
      "target/lambda/arm64/$fn/bootstrap.zip")"
done
bucket="$(aws s3api list-buckets --query 'Buckets[].Name' --output text | tr '\t' '\n' | grep '^tradeflow-code-' | head -1 || true)"
[[ -n $bucket ]] && ok "code bucket created: $bucket" || bad "no tradeflow-code-* bucket"
# The template is over the 51,200 bytes CloudFormation takes inline: deploy.sh uploads it.
check "the template went to the stack through s3://$bucket/tradeflow/templates/$STAGE/ ($(stat -c %s "$TEMPLATE") bytes)" \
  "$(sha256sum <"$TEMPLATE")" \
  "$(aws s3 cp --only-show-errors "s3://$bucket/tradeflow/templates/$STAGE/template-$(sha256sum "$TEMPLATE" | cut -c1-16).yaml" - | sha256sum)"
check "three zips in s3://$bucket/tradeflow/$STAGE/" 3 \
  "$(aws s3api list-objects-v2 --bucket "$bucket" --prefix "tradeflow/$STAGE/" --query 'length(Contents)' --output text)"
[[ $(grep -c "creating stack tradeflow-$STAGE" "$LOGS/deploy-fresh.log") == 1 ]] \
  && ok "one stack operation (create)" || bad "not exactly one create-stack"
# (describe-stack-resource(s) with --logical-resource-id of a function fails in moto: list them all)
check "functions are resources of the stack" \
  "tradeflow-$STAGE-pipeline-executor tradeflow-$STAGE-signal-generator tradeflow-$STAGE-trigger-dispatcher" \
  "$(aws cloudformation describe-stack-resources --stack-name "tradeflow-$STAGE" --output text \
    --query "sort(StackResources[?ResourceType=='AWS::Lambda::Function'].PhysicalResourceId)" | tr '\t' ' ')"
check "generator code = the built zip" "$(stat -c %s target/lambda/arm64/signal-generator/bootstrap.zip)" \
  "$(aws lambda get-function-configuration --function-name "tradeflow-$STAGE-signal-generator" --query CodeSize --output text)"
check_functions "$STAGE"
check_triggers "$STAGE"
# stack_cutover STAGE: the stack's LegacyExecutionIdsBefore and the dispatcher's variable.
stack_cutover() {
  printf '%s %s' \
    "$(aws cloudformation describe-stacks --stack-name "tradeflow-$1" --output text \
      --query "Stacks[0].Parameters[?ParameterKey=='LegacyExecutionIdsBefore'].ParameterValue | [0]")" \
    "$(aws lambda get-function-configuration --function-name "tradeflow-$1-trigger-dispatcher" \
      --output text --query Environment.Variables.LEGACY_EXECUTION_IDS_BEFORE)"
}
check "a new stack gives every signal the two-half execution ids (LegacyExecutionIdsBefore 0)" "0 0" \
  "$(stack_cutover "$STAGE")"
check "source queues redrive after 5 receives" "5 5" \
  "$(for q in signals executions; do aws sqs get-queue-attributes --queue-url \
    "$(aws sqs get-queue-url --queue-name "tradeflow-$STAGE-$q" --query QueueUrl --output text)" \
    --attribute-names RedrivePolicy --query Attributes.RedrivePolicy --output text | grep -o '"maxReceiveCount": *"\{0,1\}[0-9]*' | grep -o '[0-9]*$'; done | tr '\n' ' ' | sed 's/ $//')"
# (moto returns the parameter's string "true", AWS the boolean: compared in lower case)
check "retained tables have deletion protection" "true true" \
  "$(for t in executions orders; do aws dynamodb describe-table --table-name "tradeflow-$STAGE-$t" \
    --query Table.DeletionProtectionEnabled --output text; done | tr 'A-Z\n' 'a-z ' | sed 's/ $//')"

step "2. infra/deploy.sh deploy $STAGE once more (update, same zips, with a metrics backend)"
uuids="$(aws lambda list-event-source-mappings --query 'sort(EventSourceMappings[].UUID)' --output text)"
# A collector layer of the emulator's own (moto checks the ARN exists; it records no Layers from
# CloudFormation, so the layer itself is checked by tests/integration/template.rs).
layer="$(aws lambda publish-layer-version --layer-name tradeflow-test-collector \
  --zip-file "fileb://target/lambda/arm64/signal-generator/bootstrap.zip" --query LayerVersionArn --output text)"
metrics=(MetricsBackend=remote-write "CollectorLayerArn=$layer" MetricsEndpoint=http://metrics.invalid/api/v1/write)
if run deploy-update env SKIP_BUILD=1 "${DEPLOY[@]}" deploy "$STAGE" "${metrics[@]}"; then ok "deploy $STAGE ${metrics[*]} exits 0"; else bad "deploy $STAGE (log: $LOGS/deploy-update.log)"; fi
check "same event source mappings (not re-created)" "$uuids" \
  "$(aws lambda list-event-source-mappings --query 'sort(EventSourceMappings[].UUID)' --output text)"
check_functions "$STAGE"
for fn in signal-generator trigger-dispatcher pipeline-executor; do
  check "tradeflow-$STAGE-$fn exports to the collector on localhost, configured from its zip" \
    "http://127.0.0.1:4318 /var/task/collector/remote-write.yaml http://metrics.invalid/api/v1/write $STAGE" \
    "$(aws lambda get-function-configuration --function-name "tradeflow-$STAGE-$fn" --output text --query \
      '[Environment.Variables.OTEL_EXPORTER_OTLP_ENDPOINT, Environment.Variables.OPENTELEMETRY_COLLECTOR_CONFIG_URI, Environment.Variables.TRADEFLOW_METRICS_ENDPOINT, Environment.Variables.TRADEFLOW_STAGE]' | tr '\t' ' ')"
done
check "an update keeps LegacyExecutionIdsBefore 0" "0 0" "$(stack_cutover "$STAGE")"

step "3. infra/deploy.sh update-code $STAGE (cargo lambda deploy, code only)"
if run update-code env SKIP_BUILD=1 "${DEPLOY[@]}" update-code "$STAGE"; then ok "update-code $STAGE exits 0"; else bad "update-code $STAGE (log: $LOGS/update-code.log)"; fi
[[ $(grep -c '^\[deploy.sh\] cargo lambda deploy --endpoint-url' "$LOGS/update-code.log") == 3 ]] \
  && ok "cargo lambda deploy --endpoint-url ran for the three functions" || bad "cargo lambda deploy did not run 3 times"
check_functions "$STAGE"

step "4. infra/deploy.sh destroy $STAGE (keeps the history tables)"
roles="$(role_names "$STAGE")"
if run destroy "${DEPLOY[@]}" destroy "$STAGE"; then ok "destroy $STAGE exits 0"; else bad "destroy $STAGE (log: $LOGS/destroy.log)"; fi
# shellcheck disable=SC2086 # one role name per word
check_gone "$STAGE" $roles
for t in executions orders; do
  aws dynamodb describe-table --table-name "tradeflow-$STAGE-$t" >/dev/null 2>&1 \
    && ok "table tradeflow-$STAGE-$t kept" || bad "table tradeflow-$STAGE-$t was deleted"
done
grep -q "kept (DeletionPolicy Retain, with their data): tradeflow-$STAGE-executions tradeflow-$STAGE-orders" "$LOGS/destroy.log" \
  && ok "destroy lists what it kept" || bad "destroy did not list the kept tables"
if run destroy-again "${DEPLOY[@]}" destroy "$STAGE"; then ok "destroy again exits 0"; else bad "second destroy failed"; fi

step "5. infra/deploy.sh destroy $STAGE --delete-data"
if run destroy-data-unconfirmed "${DEPLOY[@]}" destroy "$STAGE" --delete-data </dev/null; then
  bad "--delete-data without --yes and without a terminal should be refused"
else
  aws dynamodb describe-table --table-name "tradeflow-$STAGE-orders" >/dev/null 2>&1 \
    && ok "--delete-data without confirmation refused, tables intact" || bad "tables gone without confirmation"
fi
if run destroy-data "${DEPLOY[@]}" destroy "$STAGE" --delete-data --yes; then ok "destroy --delete-data --yes exits 0"; else bad "destroy --delete-data --yes (log: $LOGS/destroy-data.log)"; fi
GONE_TABLES=(pipelines leases cursors executions orders)
check_gone "$STAGE"

step "6. infra/deploy.sh on a stack created before the two-half execution ids"
# The stack as the previous template made it: no LegacyExecutionIdsBefore, a dispatcher that
# made the legacy ids.
python3 - "$TEMPLATE" "$LOGS/template-before-two-half-ids.yaml" <<'PY'
import re, sys
t = open(sys.argv[1]).read()
t, n = re.subn(r"\n  LegacyExecutionIdsBefore:\n(?:    .*\n)+", "\n", t)
t, m = re.subn(r"\n +LEGACY_EXECUTION_IDS_BEFORE: .*", "", t)
assert (n, m) == (1, 1), (n, m)
open(sys.argv[2], "w").write(t)
PY
aws cloudformation create-stack --stack-name "tradeflow-$OLD_STAGE" \
  --template-body "file://$LOGS/template-before-two-half-ids.yaml" --capabilities CAPABILITY_IAM \
  --parameters "ParameterKey=Stage,ParameterValue=$OLD_STAGE" ParameterKey=DeployFunctions,ParameterValue=false >/dev/null \
  && aws cloudformation wait stack-create-complete --stack-name "tradeflow-$OLD_STAGE" \
  && ok "stack tradeflow-$OLD_STAGE created from the template before LegacyExecutionIdsBefore" \
  || bad "could not create tradeflow-$OLD_STAGE from the earlier template"
if run update-code-old env SKIP_BUILD=1 "${DEPLOY[@]}" update-code "$OLD_STAGE"; then
  bad "update-code onto a stack before the two-half ids should be refused"
else
  grep -q "predates the two-half execution ids; run .* deploy $OLD_STAGE' once" "$LOGS/update-code-old.log" \
    && ok "update-code refused: the stack predates the two-half ids, deploy sets the cutover" \
    || bad "update-code failed without saying why (log: $LOGS/update-code-old.log)"
fi
before=$(date +%s)
if run deploy-old env SKIP_BUILD=1 "${DEPLOY[@]}" deploy "$OLD_STAGE"; then ok "deploy $OLD_STAGE exits 0"; else bad "deploy $OLD_STAGE (log: $LOGS/deploy-old.log)"; fi
after=$(date +%s)
read -r cutover env_cutover <<<"$(stack_cutover "$OLD_STAGE")"
[[ $cutover =~ ^[0-9]+$ ]] && ((cutover >= before + 2 * 86400 && cutover <= after + 2 * 86400)) \
  && ok "the first deploy sets LegacyExecutionIdsBefore two days ahead ($cutover)" \
  || bad "LegacyExecutionIdsBefore = '$cutover', want $((before + 2 * 86400))..$((after + 2 * 86400))"
check "the dispatcher gets the cutover" "$cutover" "$env_cutover"
grep -q "predates the two-half execution ids: signals stamped before $cutover" "$LOGS/deploy-old.log" \
  && ok "deploy says it set the cutover" || bad "deploy did not log the cutover (log: $LOGS/deploy-old.log)"
if run deploy-old-again env SKIP_BUILD=1 "${DEPLOY[@]}" deploy "$OLD_STAGE"; then ok "deploy $OLD_STAGE again exits 0"; else bad "deploy $OLD_STAGE again (log: $LOGS/deploy-old-again.log)"; fi
check "a later deploy keeps the cutover" "$cutover $cutover" "$(stack_cutover "$OLD_STAGE")"
if run destroy-old "${DEPLOY[@]}" destroy "$OLD_STAGE" --delete-data --yes; then ok "destroy $OLD_STAGE --delete-data --yes exits 0"; else bad "destroy $OLD_STAGE (log: $LOGS/destroy-old.log)"; fi

step "7. the compose path's LocalStack ready hook (local/localstack/ready.d/deploy-stack.sh)"
# The hook as compose runs it, with `awslocal` played by the AWS CLI on the emulator and the
# template where compose mounts it: the data plane of stage $HOOK_STAGE, then its TTLs.
HOOK_STAGE=deploytesthook
shim="$LOGS/awslocal-bin"
mkdir -p "$shim"
# (moto finds the bucket of a template URL in its path only for a "localhost" endpoint; the
# CLI's S3 upload reads the endpoint from the environment)
printf '#!/usr/bin/env bash\nexport AWS_ENDPOINT_URL="${AWS_ENDPOINT_URL/127.0.0.1/localhost}"\nexec aws --endpoint-url "$AWS_ENDPOINT_URL" "$@"\n' >"$shim/awslocal"
chmod +x "$shim/awslocal"
if run ready-hook env PATH="$shim:$PATH" TRADEFLOW_STAGE="$HOOK_STAGE" TRADEFLOW_TEMPLATE="$TEMPLATE" \
  bash local/localstack/ready.d/deploy-stack.sh; then
  ok "the ready hook deploys stack tradeflow-$HOOK_STAGE"
else
  bad "the ready hook failed (log: $LOGS/ready-hook.log)"
fi
check "the ready hook's stack has the queues and tables" "signals executions pipelines leases" \
  "$(for q in signals executions; do aws sqs get-queue-url --queue-name "tradeflow-$HOOK_STAGE-$q" >/dev/null 2>&1 && printf '%s ' "$q"; done
    for t in pipelines leases; do aws dynamodb describe-table --table-name "tradeflow-$HOOK_STAGE-$t" >/dev/null 2>&1 && printf '%s ' "$t"; done | sed 's/ $//')"
aws cloudformation delete-stack --stack-name "tradeflow-$HOOK_STAGE" >/dev/null 2>&1 || true

printf '\ntimings:'; printf ' %s;' "${timings[@]}"; printf '\n'
printf 'logs: %s\n' "$LOGS"
echo "deploy test: $passed passed, $failed failed"
((failed == 0))
