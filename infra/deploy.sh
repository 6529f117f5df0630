#!/usr/bin/env bash
# infra/deploy.sh - deploy and tear down a tradeflow stage (stack tradeflow-<STAGE>).
#
#   infra/deploy.sh deploy STAGE [Key=Value ...]
#       1. build the zips (local/build-zips.sh --arm64, the template's architecture);
#       2. upload them to s3://$CODE_BUCKET/tradeflow/STAGE/<function>/arm64-<sha256[:16]>.zip
#          (CODE_BUCKET unset: tradeflow-code-<account>-<region>, created when missing);
#       3. create or update the stack with CodeBucket and the three *CodeKey
#          parameters: functions, roles, log groups, queues, tables, alarms, event
#          source mappings and schedule in one stack operation.
#   infra/deploy.sh update-code STAGE
#       `cargo lambda deploy` of the built zips onto the functions of a deployed
#       stage: code only, seconds instead of a stack update. The stack does not
#       know; the next `deploy` puts its own code back.
#   infra/deploy.sh destroy STAGE [--delete-data [--yes]]
#       delete the stack. The executions and orders tables are retained (the
#       template's DeletionPolicy) and listed; --delete-data deletes them too,
#       after a typed confirmation unless --yes.
#   infra/deploy.sh status STAGE
#       stack status and outputs, each function's state, the retained tables.
#
# Key=Value: template parameters (GeneratorTickers, GeneratorTimeframes,
# MarketData, MarketDataSecretArn, AlarmTopicArn, DataDeletionProtection,
# GeneratorReservedConcurrency (1: scans never overlap; 0: generator paused);
# metrics: MetricsBackend,
# CollectorLayerArn, MetricsEndpoint, AmpWorkspaceArn, MetricsAuthSecretArn, see
# docs/observability.md "On AWS"). Parameters not given take the template's
# default, on an update too: the command line is the whole configuration of the stage.
# Except LegacyExecutionIdsBefore, which deploy keeps from one update to the next (and sets
# once on a stack created before it: legacy_ids_cutover below).
#   infra/deploy.sh deploy prod MetricsBackend=amp \
#     CollectorLayerArn=arn:aws:lambda:REGION:ACCOUNT:layer:opentelemetry-collector-arm64-VERSION:1 \
#     AmpWorkspaceArn=arn:aws:aps:REGION:ACCOUNT:workspace/ws-ID \
#     MetricsEndpoint=https://aps-workspaces.REGION.amazonaws.com/workspaces/ws-ID/api/v1/remote_write
# Target: the AWS account and region of the usual credential chain (AWS_PROFILE,
# AWS_REGION, ...), or any endpoint given as AWS_ENDPOINT_URL (the emulator:
# local/test-deploy.sh). SKIP_BUILD=1 deploys the zips already built.
# Tools: local/setup.sh's venv (pinned awscli, cargo-lambda + zig).
set -euo pipefail

INFRA_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$INFRA_DIR/.." && pwd)"
LOCAL_DIR="$REPO_ROOT/local"
VENV="$LOCAL_DIR/.venv"
TEMPLATE="$INFRA_DIR/template.yaml"
ARCH=arm64 # the template's Architectures
LAMBDA_DIR="${LAMBDA_DIR:-$REPO_ROOT/target/lambda/$ARCH}" # as local/build-zips.sh

# Code-key parameter of the template -> cargo package (binary) -> function name suffix.
CODE_KEYS=(GeneratorCodeKey DispatcherCodeKey ExecutorCodeKey)
declare -A BINARY_OF=(
  [GeneratorCodeKey]=signal-generator
  [DispatcherCodeKey]=trigger-dispatcher
  [ExecutorCodeKey]=pipeline-executor
)
# Tables the template retains (DeletionPolicy: Retain), by name suffix.
RETAINED_TABLES=(executions orders)

log() { printf '[deploy.sh] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

usage() {
  awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "${BASH_SOURCE[0]}" >&2
  exit 2
}

# awscli 1.x ignores AWS_ENDPOINT_URL for some services (sqs: aws/aws-cli#8737);
# hand it over explicitly so nothing leaves for real AWS by accident.
aws() {
  if [[ -n ${AWS_ENDPOINT_URL:-} ]]; then
    command aws --endpoint-url "$AWS_ENDPOINT_URL" "$@"
  else
    command aws "$@"
  fi
}

function_name() { printf 'tradeflow-%s-%s' "$STAGE" "${BINARY_OF[$1]}"; }

# ---------------------------------------------------------------- stack
stack_status() {
  local out
  if out="$(aws cloudformation describe-stacks --stack-name "$STACK" \
    --query 'Stacks[0].StackStatus' --output text 2>&1)"; then
    printf '%s' "$out"
  elif [[ $out == *"does not exist"* ]]; then
    printf 'NONE'
  else
    die "describe-stacks $STACK: $out"
  fi
}

stack_failures() {
  log "latest failure events of $STACK:"
  # shellcheck disable=SC2016 # JMESPath literals
  aws cloudformation describe-stack-events --stack-name "$STACK" --output text \
    --query 'StackEvents[?contains(ResourceStatus, `FAILED`)].[LogicalResourceId, ResourceStatus, ResourceStatusReason] | [0:10]' >&2 || true
}

json_string() {
  local s="${1//\\/\\\\}"
  s="${s//\"/\\\"}"
  printf '"%s"' "$s"
}

# params_json Key=Value...: the --parameters JSON (JSON, not the shorthand: values
# such as GeneratorTickers=AAPL,MSFT have commas). Keys are checked against the template.
params_json() {
  local declared pair key out="" seen=" "
  declared=" $(awk '/^Parameters:/ { p = 1; next } /^[^ #]/ { p = 0 } p && /^  [A-Za-z0-9]+:/ { sub(/:.*/, ""); printf "%s ", $1 }' "$TEMPLATE")"
  for pair in "$@"; do
    key="${pair%%=*}"
    [[ $pair == *=* && $declared == *" $key "* ]] \
      || die "'$pair' is not Key=Value with a parameter of the template:$declared"
    [[ $seen != *" $key "* ]] || die "parameter $key is given twice (deploy.sh sets Stage, DeployFunctions and the code location itself)"
    seen+="$key "
    out+="${out:+,}{\"ParameterKey\":$(json_string "$key"),\"ParameterValue\":$(json_string "${pair#*=}")}"
  done
  printf '[%s]' "$out"
}

# upload_template BUCKET: puts infra/template.yaml into BUCKET under a content-addressed key and
# sets TEMPLATE_URL to it. The template is larger than the 51,200 bytes CloudFormation takes
# inline (--template-body); from S3 it may have up to 1 MB.
upload_template() {
  local bucket="$1" sha key region suffix=amazonaws.com
  sha="$(sha256sum "$TEMPLATE" | cut -c1-16)"
  key="tradeflow/templates/$STAGE/template-$sha.yaml"
  log "aws s3 cp $TEMPLATE s3://$bucket/$key"
  aws s3 cp --only-show-errors "$TEMPLATE" "s3://$bucket/$key"
  # The bucket's own region names its endpoint (whatever region variables say); path style, so
  # a bucket name with dots works too.
  region="$(aws s3api get-bucket-location --bucket "$bucket" --query LocationConstraint --output text)"
  case "$region" in
    None | null | "") region=us-east-1 ;;
    EU) region=eu-west-1 ;;
  esac
  [[ $region == cn-* ]] && suffix=amazonaws.com.cn
  TEMPLATE_URL="https://s3.$region.$suffix/$bucket/$key"
}

# stack_deploy Key=Value...: creates or updates the stack (from TEMPLATE_URL) and waits. create-stack /
# update-stack rather than `aws cloudformation deploy`: same result on AWS, and the
# emulator never fills in Outputs after executing a change set.
stack_deploy() {
  local status params out start=$SECONDS
  status="$(stack_status)"
  case "$status" in
    ROLLBACK_COMPLETE | ROLLBACK_FAILED)
      # Its creation failed: nothing to keep, and it cannot be updated.
      log "$STACK is $status (creation failed earlier); deleting it first"
      aws cloudformation delete-stack --stack-name "$STACK"
      aws cloudformation wait stack-delete-complete --stack-name "$STACK"
      status=NONE ;;
    DELETE_COMPLETE) status=NONE ;;
    *_IN_PROGRESS) die "$STACK is $status; run again when it has finished" ;;
  esac
  params="$(params_json "$@")"
  local common=(--stack-name "$STACK" --template-url "$TEMPLATE_URL" --parameters "$params"
    --capabilities CAPABILITY_IAM --tags "Key=project,Value=tradeflow" "Key=stage,Value=$STAGE")
  if [[ $status == NONE ]]; then
    log "creating stack $STACK ($*)"
    aws cloudformation create-stack "${common[@]}" >/dev/null
    aws cloudformation wait stack-create-complete --stack-name "$STACK" \
      || { stack_failures; die "creating $STACK failed"; }
    log "stack $STACK created in $((SECONDS - start)) s"
  elif out="$(aws cloudformation update-stack "${common[@]}" 2>&1)"; then
    log "updating stack $STACK ($status; $*)"
    aws cloudformation wait stack-update-complete --stack-name "$STACK" \
      || { stack_failures; die "updating $STACK failed"; }
    log "stack $STACK updated in $((SECONDS - start)) s"
  elif [[ $out == *"No updates are to be performed"* ]]; then
    log "stack $STACK is up to date ($status)"
  else
    die "update-stack $STACK: $out"
  fi
}

# stack_parameter KEY: the deployed stack's value of parameter KEY, empty when it has none.
stack_parameter() {
  local value
  value="$(aws cloudformation describe-stacks --stack-name "$STACK" --output text \
    --query "Stacks[0].Parameters[?ParameterKey=='$1'].ParameterValue | [0]")"
  [[ $value == None ]] && value=""
  printf '%s' "$value"
}

# legacy_ids_cutover: the LegacyExecutionIdsBefore this deploy sets (see the template): 0 for a
# new stack (every signal gets the two-half execution ids; given explicitly so the stack lists
# it whatever lists default values); the stack's own
# value once it has one; and for a stack created before the parameter (its dispatcher made the
# legacy ids), two days from now: past the stamp of any signal the old dispatcher could have
# taken (stamps more than a day ahead are rejected), so a redelivered or redriven signal keeps
# the ids of the executions it may already have.
legacy_ids_cutover() {
  local value
  case "$(stack_status)" in
    NONE | ROLLBACK_COMPLETE | ROLLBACK_FAILED | DELETE_COMPLETE) printf 0; return 0 ;;
  esac
  value="$(stack_parameter LegacyExecutionIdsBefore)"
  if [[ -z $value ]]; then
    value=$(($(date +%s) + 2 * 86400))
    log "$STACK predates the two-half execution ids: signals stamped before $value ($(date -u -d "@$value" '+%F %T UTC')) keep the legacy ids (LegacyExecutionIdsBefore)"
  fi
  printf '%s' "$value"
}

# ---------------------------------------------------------------- code
build_zips() {
  [[ $(grep -c "Architectures: \[$ARCH\]" "$TEMPLATE") == "${#CODE_KEYS[@]}" ]] \
    || die "deploy.sh builds $ARCH; the template's functions say otherwise"
  if [[ ${SKIP_BUILD:-0} == 1 ]]; then
    log "SKIP_BUILD=1: using the zips in $LAMBDA_DIR"
  else
    bash "$LOCAL_DIR/build-zips.sh" "--$ARCH" >&2
  fi
  local key
  for key in "${CODE_KEYS[@]}"; do
    [[ -f $LAMBDA_DIR/${BINARY_OF[$key]}/bootstrap.zip ]] \
      || die "missing $LAMBDA_DIR/${BINARY_OF[$key]}/bootstrap.zip (run local/build-zips.sh)"
  done
}

# code_bucket: CODE_BUCKET, or tradeflow-code-<account>-<region> created when missing.
code_bucket() {
  local bucket="${CODE_BUCKET:-}" account region
  if [[ -z $bucket ]]; then
    account="$(aws sts get-caller-identity --query Account --output text)"
    region="${AWS_REGION:-${AWS_DEFAULT_REGION:-$(aws configure get region || true)}}"
    [[ -n $region ]] || die "no region: set AWS_REGION"
    bucket="tradeflow-code-$account-$region"
  fi
  if ! aws s3api head-bucket --bucket "$bucket" >/dev/null 2>&1; then
    [[ -z ${CODE_BUCKET:-} ]] || die "bucket $bucket (CODE_BUCKET) does not exist or is not yours"
    log "creating bucket s3://$bucket"
    if [[ ${region:-} == us-east-1 ]]; then
      aws s3api create-bucket --bucket "$bucket" >/dev/null
    else
      aws s3api create-bucket --bucket "$bucket" \
        --create-bucket-configuration "LocationConstraint=$region" >/dev/null
    fi
    aws s3api put-public-access-block --bucket "$bucket" --public-access-block-configuration \
      BlockPublicAcls=true,IgnorePublicAcls=true,BlockPublicPolicy=true,RestrictPublicBuckets=true
  fi
  printf '%s' "$bucket"
}

# ---------------------------------------------------------------- commands
cmd_deploy() {
  local start=$SECONDS key name bucket zip sha s3key params=()
  # A function of the stage that the stack does not own (the earlier cargo lambda
  # deploy path created them outside the stack) would make the create fail midway.
  local owned=" "
  if [[ $(stack_status) != NONE ]]; then
    owned+="$(aws cloudformation describe-stack-resources --stack-name "$STACK" --output text \
      --query "StackResources[?ResourceType=='AWS::Lambda::Function'].PhysicalResourceId" | tr '\t\n' '  ') "
  fi
  for key in "${CODE_KEYS[@]}"; do
    name="$(function_name "$key")"
    if [[ $owned != *" $name "* ]] && aws lambda get-function --function-name "$name" >/dev/null 2>&1; then
      die "function $name exists outside the stack; delete it (aws lambda delete-function --function-name $name)"
    fi
  done
  build_zips
  bucket="$(code_bucket)"
  params=(Stage="$STAGE" DeployFunctions=true CodeBucket="$bucket")
  for key in "${CODE_KEYS[@]}"; do
    zip="$LAMBDA_DIR/${BINARY_OF[$key]}/bootstrap.zip"
    sha="$(sha256sum "$zip" | cut -c1-16)"
    # Content-addressed: a new build is a new key, so the stack update replaces the code.
    s3key="tradeflow/$STAGE/${BINARY_OF[$key]}/$ARCH-$sha.zip"
    log "aws s3 cp $zip s3://$bucket/$s3key"
    aws s3 cp --only-show-errors "$zip" "s3://$bucket/$s3key"
    params+=("$key=$s3key")
  done
  local arg cutover given=0
  for arg in "$@"; do [[ $arg == LegacyExecutionIdsBefore=* ]] && given=1; done
  if ((!given)); then
    cutover="$(legacy_ids_cutover)"
    params+=("LegacyExecutionIdsBefore=$cutover")
  fi
  upload_template "$bucket"
  stack_deploy "${params[@]}" "$@"
  log "deployed $STACK in $((SECONDS - start)) s"
  cmd_status
}

cmd_update_code() {
  local key name endpoint=() region=()
  [[ $(stack_status) != NONE ]] || die "no stack $STACK; run '$0 deploy $STAGE' first"
  # Code of the two-half execution ids onto a stack whose dispatcher made the legacy ones: only
  # `deploy` sets the cutover that keeps a redelivered signal's ids (legacy_ids_cutover).
  [[ -n $(stack_parameter LegacyExecutionIdsBefore) ]] \
    || die "$STACK predates the two-half execution ids; run '$0 deploy $STAGE' once (it sets LegacyExecutionIdsBefore), then update-code works"
  build_zips
  [[ -n ${AWS_ENDPOINT_URL:-} ]] && endpoint=(--endpoint-url "$AWS_ENDPOINT_URL")
  [[ -n ${AWS_REGION:-} ]] && region=(--region "$AWS_REGION")
  for key in "${CODE_KEYS[@]}"; do
    name="$(function_name "$key")"
    aws lambda get-function --function-name "$name" >/dev/null 2>&1 || die "no function $name"
    local cmd=(cargo lambda deploy "${endpoint[@]}" "${region[@]}" --lambda-dir "$LAMBDA_DIR"
      --binary-name "${BINARY_OF[$key]}" "$name")
    log "${cmd[*]}"
    (cd "$REPO_ROOT" && "${cmd[@]}") >&2
    aws lambda wait function-updated-v2 --function-name "$name"
  done
  log "code updated; the stack still names its own zips (next 'deploy' restores them)"
}

cmd_destroy() {
  local delete_data=0 yes=0 arg start=$SECONDS status table kept=() answer
  for arg in "$@"; do
    case "$arg" in
      --delete-data) delete_data=1 ;;
      --yes) yes=1 ;;
      *) usage ;;
    esac
  done
  if ((delete_data && !yes)); then
    [[ -t 0 ]] || die "--delete-data deletes the executions and orders of $STAGE: confirm with --yes"
    read -r -p "Delete the executions and orders tables of $STAGE with their data? Type the stage name: " answer
    [[ $answer == "$STAGE" ]] || die "not confirmed; nothing deleted"
  fi
  status="$(stack_status)"
  if [[ $status == NONE || $status == DELETE_COMPLETE ]]; then
    log "no stack $STACK"
  else
    log "aws cloudformation delete-stack --stack-name $STACK ($status)"
    aws cloudformation delete-stack --stack-name "$STACK"
    aws cloudformation wait stack-delete-complete --stack-name "$STACK" \
      || { stack_failures; die "deleting $STACK failed"; }
    log "stack $STACK deleted"
  fi
  for table in "${RETAINED_TABLES[@]}"; do
    table="tradeflow-$STAGE-$table"
    aws dynamodb describe-table --table-name "$table" >/dev/null 2>&1 || continue
    if ((delete_data)); then
      log "aws dynamodb delete-table --table-name $table (deletion protection off first)"
      aws dynamodb update-table --table-name "$table" --no-deletion-protection-enabled >/dev/null
      aws dynamodb delete-table --table-name "$table" >/dev/null
      aws dynamodb wait table-not-exists --table-name "$table"
    else
      kept+=("$table")
    fi
  done
  if ((${#kept[@]})); then
    log "kept (DeletionPolicy Retain, with their data): ${kept[*]}"
    log "to delete them too: $0 destroy $STAGE --delete-data"
  fi
  log "destroyed $STAGE in $((SECONDS - start)) s"
}

cmd_status() {
  local status key name table
  status="$(stack_status)"
  echo "stack $STACK: $status"
  if [[ $status != NONE ]]; then
    aws cloudformation describe-stacks --stack-name "$STACK" --output text \
      --query 'Stacks[0].Outputs[].[OutputKey, OutputValue]' | sort | sed 's/^/  /'
  fi
  for key in "${CODE_KEYS[@]}"; do
    name="$(function_name "$key")"
    if aws lambda get-function --function-name "$name" >/dev/null 2>&1; then
      echo "function $name: $(aws lambda get-function-configuration --function-name "$name" --output text \
        --query '[State, LastUpdateStatus, Architectures[0], MemorySize, Timeout, CodeSize]' | tr '\t' ' ')" \
        "(state, update, arch, memory MB, timeout s, code bytes)"
    else
      echo "function $name: absent"
    fi
  done
  for table in "${RETAINED_TABLES[@]}"; do
    table="tradeflow-$STAGE-$table"
    if aws dynamodb describe-table --table-name "$table" >/dev/null 2>&1; then
      echo "table $table: $(aws dynamodb describe-table --table-name "$table" --output text \
        --query '[Table.TableStatus, Table.ItemCount, Table.DeletionProtectionEnabled]' | tr '\t' ' ')" \
        "(status, items, deletion protection)"
    fi
  done
}

# ---------------------------------------------------------------- main
(($# >= 2)) || usage
command_name="$1"; STAGE="$2"; shift 2
[[ $STAGE =~ ^[a-z0-9][a-z0-9-]*$ && ${#STAGE} -le 20 ]] \
  || die "stage '$STAGE' must be lowercase letters, digits and dashes (max 20)"
STACK="tradeflow-$STAGE"

bash "$LOCAL_DIR/setup.sh" >&2
export PATH="$VENV/bin:$PATH"
# awscli 1.x reads only AWS_DEFAULT_REGION, the Rust SDK (cargo lambda) AWS_REGION.
[[ -n ${AWS_REGION:-} && -z ${AWS_DEFAULT_REGION:-} ]] && export AWS_DEFAULT_REGION="$AWS_REGION"
[[ -n ${AWS_DEFAULT_REGION:-} && -z ${AWS_REGION:-} ]] && export AWS_REGION="$AWS_DEFAULT_REGION"
if [[ -n ${AWS_ENDPOINT_URL:-} ]]; then
  curl -s -o /dev/null --max-time 5 "$AWS_ENDPOINT_URL" || die "nothing answers at AWS_ENDPOINT_URL=$AWS_ENDPOINT_URL"
fi

case "$command_name" in
  deploy) cmd_deploy "$@" ;;
  update-code) (($# == 0)) || usage; cmd_update_code ;;
  destroy) cmd_destroy "$@" ;;
  status) (($# == 0)) || usage; cmd_status ;;
  *) usage ;;
esac
