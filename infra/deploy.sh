#!/usr/bin/env bash
# infra/deploy.sh - deploy and tear down a tradeflow stage (stack tradeflow-<STAGE>).
#
#   infra/deploy.sh deploy STAGE [Key=Value ...]
#       cargo lambda deploy path (the default):
#       1. build the zips (local/build-zips.sh, the template's architecture);
#       2. create/update the stack with DeployFunctions=true FunctionCode=cargo-lambda:
#          queues, tables, alarms, log groups, IAM roles (FunctionTriggers=false
#          until the three functions exist);
#       3. `cargo lambda deploy` each function: name, role (stack output), memory,
#          timeout, runtime and environment come from the function resources of
#          infra/template.yaml resolved against the stack; tags project, stage;
#       4. update the stack with FunctionTriggers=true: event source mappings and
#          schedule, as the template declares them.
#       Later runs: one stack update (triggers stay), then new code/config.
#   infra/deploy.sh deploy-template STAGE BUCKET [Key=Value ...]
#       template path: build the zips, upload them to s3://BUCKET/tradeflow/STAGE/
#       (content-addressed keys), create/update the stack with FunctionCode=s3:
#       the template creates everything, functions included.
#   infra/deploy.sh destroy STAGE
#       delete the stack (triggers, queues, tables, roles, log groups; the
#       functions too on the template path), then the functions cargo lambda
#       deploy created (only those tagged project=tradeflow, stage=STAGE).
#   infra/deploy.sh status STAGE
#       stack status and outputs, and each function's state.
#
# Key=Value: template parameters (GeneratorTickers, GeneratorTimeframes,
# MarketData). Parameters not given take the template's default, on an update
# too: the command line is the whole configuration of the stage.
# Target: the AWS account and region of the usual credential chain (AWS_PROFILE,
# AWS_REGION, ...), or any endpoint given as AWS_ENDPOINT_URL (the emulator:
# local/test-deploy.sh). SKIP_BUILD=1 deploys the zips already built.
# Tools: local/setup.sh's venv (pinned awscli, cargo-lambda + zig, cfn-lint).
set -euo pipefail

INFRA_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$INFRA_DIR/.." && pwd)"
LOCAL_DIR="$REPO_ROOT/local"
VENV="$LOCAL_DIR/.venv"
TEMPLATE="$INFRA_DIR/template.yaml"
PROJECT_TAG=tradeflow

# Function resources of the template -> the cargo package (binary) built for it.
# The only mapping kept here; everything else about a function is in the template.
declare -A BINARY_OF=(
  [GeneratorFunction]=signal-generator
  [DispatcherFunction]=trigger-dispatcher
  [ExecutorFunction]=pipeline-executor
)

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

# ---------------------------------------------------------------- helper (python)
# Reads the template with cfn-lint's decoder (understands !Ref, !Sub, ...).
#   describe STAGE                      -> "LogicalId<TAB>name<TAB>arch<TAB>code-key parameter" per function
#   deploy-args ID STACK RESOURCES ENV  -> NUL-separated: function name, then cargo lambda deploy flags;
#                                          writes the environment to ENV (KEY=value lines)
#   params-json K=V...                  -> CloudFormation --parameters JSON (checked against the template)
#   count-triggers                      -> "N event source mappings, M schedule targets" the template declares
read -r -d '' HELPER <<'PY' || true
import json
import re
import sys

from cfnlint.decode import decode

PSEUDO = ("AWS::Region", "AWS::AccountId", "AWS::Partition", "AWS::StackName", "AWS::URLSuffix")


def fail(msg):
    print(f"template helper: {msg}", file=sys.stderr)
    sys.exit(1)


def load(path):
    template, errors = decode(path)
    if errors or template is None:
        fail("; ".join(str(e) for e in errors) or f"cannot read {path}")
    return template


def norm(expr):
    """Canonical JSON of an intrinsic (GetAtt as a list) for comparisons."""
    if isinstance(expr, dict):
        out = {}
        for k, v in expr.items():
            if k == "Fn::GetAtt" and isinstance(v, str):
                v = v.split(".", 1)
            out[k] = norm(v)
        return out
    if isinstance(expr, list):
        return [norm(v) for v in expr]
    return expr


class Context:
    def __init__(self, template, params, resources=None, outputs=None, stack_arn=None, stack_name=None):
        self.template = template
        self.params = params
        self.resources = resources or {}
        self.outputs = outputs or {}
        self.pseudo = {}
        if stack_arn:
            _, partition, _, region, account, _ = stack_arn.split(":", 5)
            self.pseudo = {
                "AWS::Partition": partition,
                "AWS::Region": region,
                "AWS::AccountId": account,
                "AWS::StackName": stack_name,
                "AWS::URLSuffix": "amazonaws.com.cn" if partition == "aws-cn" else "amazonaws.com",
            }

    def ref(self, name):
        if name in self.params:
            return self.params[name]
        if name in self.pseudo:
            return self.pseudo[name]
        if name in self.resources:
            return self.resources[name]
        fail(f"cannot resolve Ref {name} (not a parameter, or not a resource of the stack)")

    def get_att(self, expr):
        # A GetAtt is resolved through the output that exports the same expression.
        want = json.dumps(norm(expr), sort_keys=True)
        for key, output in (self.template.get("Outputs") or {}).items():
            if json.dumps(norm(output.get("Value")), sort_keys=True) == want:
                if key not in self.outputs:
                    fail(f"stack has no output {key} (for {want})")
                return self.outputs[key]
        fail(f"no output of the template exports {want}; add one so deploy.sh can read it")

    def resolve(self, value):
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, (str, int, float)):
            return str(value)
        if isinstance(value, dict) and len(value) == 1:
            (key, arg), = value.items()
            if key == "Ref":
                return self.ref(arg)
            if key == "Fn::GetAtt":
                return self.get_att(value)
            if key == "Fn::Sub" and isinstance(arg, str):
                def sub(m):
                    inner = m.group(1)
                    if inner.startswith("!"):
                        return "${" + inner[1:] + "}"
                    if "." in inner:
                        return self.get_att({"Fn::GetAtt": inner.split(".", 1)})
                    return self.ref(inner)
                return re.sub(r"\$\{([^}]+)\}", sub, arg)
        fail(f"cannot resolve {json.dumps(norm(value))}; deploy.sh resolves literals, Ref, GetAtt (via an output) and Sub")


def functions(template):
    return [(lid, r) for lid, r in template["Resources"].items() if r.get("Type") == "AWS::Lambda::Function"]


def describe(path, stage):
    template = load(path)
    ctx = Context(template, {"Stage": stage})
    for lid, res in functions(template):
        props = res.get("Properties", {})
        arch = (props.get("Architectures") or ["x86_64"])[0]
        key = (props.get("Code") or {}).get("S3Key")
        key_param = key["Ref"] if isinstance(key, dict) and "Ref" in key else "-"
        print(f"{lid}\t{ctx.resolve(props['FunctionName'])}\t{arch}\t{key_param}")


# Properties of AWS::Lambda::Function that cargo lambda deploy receives, that
# are checked to hold anyway, or that do not apply; anything else is refused.
PASSED = {"FunctionName", "Role", "MemorySize", "Timeout", "Runtime", "Architectures", "Environment"}
CHECKED = {"Handler", "LoggingConfig", "Code", "Description"}


def deploy_args(path, logical_id, stack_json, resources_json, env_out):
    template = load(path)
    with open(stack_json) as f:
        stack = json.load(f)["Stacks"][0]
    with open(resources_json) as f:
        # (the emulator lists some resources, e.g. alarms, without ids)
        resources = {
            r["LogicalResourceId"]: r.get("PhysicalResourceId", "")
            for r in json.load(f)["StackResources"]
            if "LogicalResourceId" in r
        }
    params = {p["ParameterKey"]: p.get("ParameterValue", "") for p in stack.get("Parameters") or []}
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs") or []}
    ctx = Context(template, params, resources, outputs, stack["StackId"], stack["StackName"])

    res = template["Resources"].get(logical_id)
    if not res or res.get("Type") != "AWS::Lambda::Function":
        fail(f"{logical_id} is not an AWS::Lambda::Function of the template")
    props = res.get("Properties", {})
    unknown = sorted(set(props) - PASSED - CHECKED)
    if unknown:
        fail(f"{logical_id}: cargo lambda deploy cannot apply {', '.join(unknown)}; teach infra/deploy.sh or drop it")
    name = ctx.resolve(props["FunctionName"])
    if props.get("Handler", "bootstrap") != "bootstrap":
        fail(f"{logical_id}: Handler must be bootstrap")
    logging = props.get("LoggingConfig") or {}
    if set(logging) - {"LogGroup"}:
        fail(f"{logical_id}: LoggingConfig other than LogGroup is not supported by cargo lambda deploy")
    if "LogGroup" in logging and ctx.resolve(logging["LogGroup"]) != f"/aws/lambda/{name}":
        fail(f"{logical_id}: cargo lambda deploy logs to /aws/lambda/{name}, the template says {ctx.resolve(logging['LogGroup'])}")
    # The name the stack exports must be the one we deploy (the triggers use it).
    for key, output in (template.get("Outputs") or {}).items():
        value = json.dumps(norm(output.get("Value")))
        if f'"Ref": "{logical_id}"' in value and key in outputs and outputs[key] != name:
            fail(f"output {key} = {outputs[key]} but {logical_id} is named {name}")

    variables = ((props.get("Environment") or {}).get("Variables")) or {}
    lines = []
    for key in variables:
        value = ctx.resolve(variables[key])
        if "\n" in value or "'" in value:
            fail(f"{logical_id}: environment value of {key} has a newline or a quote")
        lines.append(f"{key}='{value}'")
    with open(env_out, "w") as f:
        f.write("\n".join(lines) + "\n")

    args = [name, "--iam-role", ctx.resolve(props["Role"])]
    if "MemorySize" in props:
        args += ["--memory", ctx.resolve(props["MemorySize"])]
    if "Timeout" in props:
        args += ["--timeout", ctx.resolve(props["Timeout"])]
    if "Runtime" in props:
        args += ["--runtime", ctx.resolve(props["Runtime"])]
    if variables:
        args += ["--env-file", env_out]
    sys.stdout.write("\0".join(args) + "\0")


def count_triggers(path):
    template = load(path)
    resources = template["Resources"].values()
    esm = sum(1 for r in resources if r.get("Type") == "AWS::Lambda::EventSourceMapping")
    targets = sum(
        len((r.get("Properties") or {}).get("Targets") or [])
        for r in resources
        if r.get("Type") == "AWS::Events::Rule"
    )
    print(f"{esm} event source mappings, {targets} schedule targets")


def params_json(path, pairs):
    template = load(path)
    declared = set(template.get("Parameters") or {})
    given = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or key not in declared:
            fail(f"'{pair}' is not Key=Value with a parameter of the template ({', '.join(sorted(declared))})")
        if key in given:
            fail(f"parameter {key} is given twice (deploy.sh sets Stage, DeployFunctions, FunctionCode, FunctionTriggers and the code location itself)")
        given[key] = value
    print(json.dumps([{"ParameterKey": k, "ParameterValue": v} for k, v in given.items()]))


mode, path, *rest = sys.argv[1:]
if mode == "describe":
    describe(path, *rest)
elif mode == "deploy-args":
    deploy_args(path, *rest)
elif mode == "count-triggers":
    count_triggers(path)
elif mode == "params-json":
    params_json(path, rest)
else:
    fail(f"unknown mode {mode}")
PY

helper() { "$VENV/bin/python" -c "$HELPER" "$1" "$TEMPLATE" "${@:2}"; }

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

# stack_param KEY: the stack's current value of a parameter ("" if none).
stack_param() {
  aws cloudformation describe-stacks --stack-name "$STACK" --output text \
    --query "Stacks[0].Parameters[?ParameterKey=='$1'].ParameterValue | [0]" | sed 's/^None$//'
}

stack_failures() {
  log "latest failure events of $STACK:"
  # shellcheck disable=SC2016 # JMESPath literals
  aws cloudformation describe-stack-events --stack-name "$STACK" --output text \
    --query 'StackEvents[?contains(ResourceStatus, `FAILED`)].[LogicalResourceId, ResourceStatus, ResourceStatusReason] | [0:10]' >&2 || true
}

# stack_deploy Key=Value...: creates or updates the stack and waits. create-stack /
# update-stack rather than `aws cloudformation deploy`: same result on AWS, and the
# emulator never fills in Outputs after executing a change set.
stack_deploy() {
  local status params
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
  params="$(helper params-json "$@")"
  local tags=("Key=project,Value=$PROJECT_TAG" "Key=stage,Value=$STAGE")
  local start=$SECONDS out
  if [[ $status == NONE ]]; then
    log "creating stack $STACK ($*)"
    aws cloudformation create-stack --stack-name "$STACK" --template-body "file://$TEMPLATE" \
      --parameters "$params" --capabilities CAPABILITY_IAM --tags "${tags[@]}" >/dev/null
    aws cloudformation wait stack-create-complete --stack-name "$STACK" \
      || { stack_failures; die "creating $STACK failed"; }
    log "stack $STACK created in $((SECONDS - start)) s"
  elif out="$(aws cloudformation update-stack --stack-name "$STACK" --template-body "file://$TEMPLATE" \
    --parameters "$params" --capabilities CAPABILITY_IAM --tags "${tags[@]}" 2>&1)"; then
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

# ---------------------------------------------------------------- functions
# Fills FN_IDS, FN_NAME[id], FN_ARCH[id], FN_KEY_PARAM[id] from the template.
declare -a FN_IDS=()
declare -A FN_NAME=() FN_ARCH=() FN_KEY_PARAM=()
read_functions() {
  local id name arch key
  while IFS=$'\t' read -r id name arch key; do
    [[ -n ${BINARY_OF[$id]:-} ]] || die "template function $id has no cargo package in BINARY_OF (infra/deploy.sh)"
    FN_IDS+=("$id"); FN_NAME[$id]=$name; FN_ARCH[$id]=$arch; FN_KEY_PARAM[$id]=$key
  done < <(helper describe "$STAGE")
  ((${#FN_IDS[@]} == ${#BINARY_OF[@]})) || die "template has ${#FN_IDS[@]} functions, deploy.sh knows ${#BINARY_OF[@]}"
}

function_exists() { aws lambda get-function --function-name "$1" >/dev/null 2>&1; }

# The triggers, counted where they act (Lambda, EventBridge), against the template.
check_triggers() {
  local want have
  want="$(helper count-triggers)"
  have="$(count_triggers)"
  if [[ $have != "$want" ]]; then
    # On AWS the stack creates them. The moto emulator does not when they come
    # with an update: its update-stack never adds resources whose condition has
    # become true.
    log "WARNING: the functions have $have; the template declares $want (an emulator?)"
  else
    log "triggers in place: $have"
  fi
}

# "N event source mappings, M schedule targets" of the stage's functions.
count_triggers() {
  local id name arn esm=0 targets=0 n
  for id in "${FN_IDS[@]}"; do
    name="${FN_NAME[$id]}"
    arn="$(aws lambda get-function-configuration --function-name "$name" --query FunctionArn --output text 2>/dev/null)" || continue
    n="$(aws lambda list-event-source-mappings --function-name "$name" --query 'length(EventSourceMappings)' --output text)"
    esm=$((esm + n))
    n="$(aws events list-rule-names-by-target --target-arn "$arn" --query 'length(RuleNames)' --output text)"
    targets=$((targets + n))
  done
  echo "$esm event source mappings, $targets schedule targets"
}

# The one architecture of the template's functions -> build flag and zip directory.
ARCH=""
build_zips() {
  local id
  ARCH="${FN_ARCH[${FN_IDS[0]}]}"
  for id in "${FN_IDS[@]}"; do
    [[ ${FN_ARCH[$id]} == "$ARCH" ]] || die "functions of mixed architectures are not supported"
  done
  [[ $ARCH == arm64 || $ARCH == x86_64 ]] || die "unknown architecture $ARCH"
  LAMBDA_DIR="$REPO_ROOT/target/lambda/$ARCH"
  if [[ ${SKIP_BUILD:-0} == 1 ]]; then
    log "SKIP_BUILD=1: using the zips in $LAMBDA_DIR"
  else
    bash "$LOCAL_DIR/build-zips.sh" "$([[ $ARCH == arm64 ]] && echo --arm64 || echo --x86-64)" >&2
  fi
  for id in "${FN_IDS[@]}"; do
    [[ -f $LAMBDA_DIR/${BINARY_OF[$id]}/bootstrap.zip ]] \
      || die "missing $LAMBDA_DIR/${BINARY_OF[$id]}/bootstrap.zip (run local/build-zips.sh)"
  done
}

# ---------------------------------------------------------------- commands
cmd_deploy() {
  local start=$SECONDS id triggers=true mode deployed
  if [[ $(stack_status) != NONE ]]; then
    deployed="$(stack_param DeployFunctions)"; mode="$(stack_param FunctionCode)"
    [[ $deployed == true && ${mode:-s3} == s3 ]] \
      && die "$STACK was deployed by deploy-template (FunctionCode=s3); run '$0 destroy $STAGE' first"
  fi
  log "step 1/4: build the zips"
  build_zips
  for id in "${FN_IDS[@]}"; do function_exists "${FN_NAME[$id]}" || triggers=false; done
  local fixed=(Stage="$STAGE" DeployFunctions=true FunctionCode=cargo-lambda
    CodeBucket= GeneratorCodeKey= DispatcherCodeKey= ExecutorCodeKey=)

  log "step 2/4: stack (FunctionTriggers=$triggers: the triggers need the functions to exist)"
  stack_deploy "${fixed[@]}" FunctionTriggers="$triggers" "$@"

  log "step 3/4: cargo lambda deploy the functions"
  local tmp; tmp="$(mktemp -d)"
  # shellcheck disable=SC2064 # expand now
  trap "rm -rf '$tmp'" EXIT
  aws cloudformation describe-stacks --stack-name "$STACK" --output json >"$tmp/stack.json"
  aws cloudformation describe-stack-resources --stack-name "$STACK" --output json >"$tmp/resources.json"
  local endpoint=() region=()
  [[ -n ${AWS_ENDPOINT_URL:-} ]] && endpoint=(--endpoint-url "$AWS_ENDPOINT_URL")
  [[ -n ${AWS_REGION:-} ]] && region=(--region "$AWS_REGION")
  for id in "${FN_IDS[@]}"; do
    local spec=() name attempt
    mapfile -d '' spec < <(helper deploy-args "$id" "$tmp/stack.json" "$tmp/resources.json" "$tmp/$id.env")
    ((${#spec[@]} > 0)) || die "no deploy arguments for $id"
    name="${spec[0]}"
    local cmd=(cargo lambda deploy "${endpoint[@]}" "${region[@]}"
      --lambda-dir "$LAMBDA_DIR" --binary-name "${BINARY_OF[$id]}"
      "${spec[@]:1}" --tag "project=$PROJECT_TAG,stage=$STAGE" "$name")
    log "${cmd[*]}   # env: $(tr '\n' ' ' <"$tmp/$id.env")"
    # A role CloudFormation has just created can take seconds to be assumable by
    # Lambda; cargo lambda retries that only for roles it creates itself.
    for attempt in 1 2 3 4; do
      (cd "$REPO_ROOT" && "${cmd[@]}") >&2 && break
      ((attempt < 4)) || die "cargo lambda deploy $name failed $attempt times"
      log "cargo lambda deploy $name failed (attempt $attempt); retrying in $((attempt * 10)) s"
      sleep $((attempt * 10))
    done
    aws lambda wait function-active-v2 --function-name "$name"
    aws lambda wait function-updated-v2 --function-name "$name"
    # cargo lambda deploy changes the role of an existing function only together
    # with another setting; a role the stack replaced must still be applied.
    local want_role="" i current_role
    for ((i = 1; i < ${#spec[@]} - 1; i++)); do
      [[ ${spec[i]} == --iam-role ]] && want_role="${spec[i + 1]}"
    done
    current_role="$(aws lambda get-function-configuration --function-name "$name" --query Role --output text)"
    if [[ -n $want_role && $current_role != "$want_role" ]]; then
      log "aws lambda update-function-configuration --function-name $name --role $want_role   # was $current_role"
      aws lambda update-function-configuration --function-name "$name" --role "$want_role" >/dev/null
      aws lambda wait function-updated-v2 --function-name "$name"
    fi
  done

  if [[ $triggers == false ]]; then
    log "step 4/4: stack with FunctionTriggers=true (event source mappings, schedule)"
    stack_deploy "${fixed[@]}" FunctionTriggers=true "$@"
  else
    log "step 4/4: triggers already in the stack"
  fi
  check_triggers
  log "deployed $STACK in $((SECONDS - start)) s"
  cmd_status
}

cmd_deploy_template() {
  local bucket="$1"; shift
  local start=$SECONDS id mode deployed
  if [[ $(stack_status) != NONE ]]; then
    deployed="$(stack_param DeployFunctions)"; mode="$(stack_param FunctionCode)"
    [[ $deployed == true && $mode == cargo-lambda ]] \
      && die "$STACK was deployed by 'deploy' (FunctionCode=cargo-lambda); run '$0 destroy $STAGE' first"
  fi
  local in_stack=""
  if [[ $(stack_status) != NONE ]]; then
    in_stack=" $(aws cloudformation describe-stack-resources --stack-name "$STACK" --output text \
      --query "StackResources[?ResourceType=='AWS::Lambda::Function'].PhysicalResourceId") "
  fi
  for id in "${FN_IDS[@]}"; do
    if function_exists "${FN_NAME[$id]}" && [[ $in_stack != *[[:space:]]"${FN_NAME[$id]}"[[:space:]]* ]]; then
      die "function ${FN_NAME[$id]} exists outside the stack (cargo lambda deploy?); run '$0 destroy $STAGE' first"
    fi
  done
  build_zips
  local params=(Stage="$STAGE" DeployFunctions=true FunctionCode=s3 FunctionTriggers=true CodeBucket="$bucket")
  for id in "${FN_IDS[@]}"; do
    local zip="$LAMBDA_DIR/${BINARY_OF[$id]}/bootstrap.zip" sha key
    sha="$(sha256sum "$zip" | cut -c1-16)"
    # Content-addressed: a new build is a new key, so the stack update replaces the code.
    key="tradeflow/$STAGE/${BINARY_OF[$id]}/$ARCH-$sha.zip"
    log "aws s3 cp $zip s3://$bucket/$key"
    aws s3 cp --only-show-errors "$zip" "s3://$bucket/$key"
    params+=("${FN_KEY_PARAM[$id]}=$key")
  done
  stack_deploy "${params[@]}" "$@"
  check_triggers
  log "deployed $STACK in $((SECONDS - start)) s"
  cmd_status
}

cmd_destroy() {
  local start=$SECONDS id name tags status leftover=0
  status="$(stack_status)"
  if [[ $status == NONE || $status == DELETE_COMPLETE ]]; then
    log "no stack $STACK"
  else
    # Stack first: its triggers stop before the functions go, and no resource of
    # the stack (the schedule's permission) refers to an already deleted function.
    log "aws cloudformation delete-stack --stack-name $STACK ($status)"
    aws cloudformation delete-stack --stack-name "$STACK"
    aws cloudformation wait stack-delete-complete --stack-name "$STACK" \
      || { stack_failures; die "deleting $STACK failed"; }
    log "stack $STACK deleted"
  fi
  for id in "${FN_IDS[@]}"; do
    name="${FN_NAME[$id]}"
    function_exists "$name" || continue
    tags="$(aws lambda get-function --function-name "$name" --output json --query 'Tags' \
      | "$VENV/bin/python" -c 'import json,sys; t=json.load(sys.stdin) or {}; print(t.get("project",""), t.get("stage",""))')"
    if [[ $tags == "$PROJECT_TAG $STAGE" ]]; then
      log "aws lambda delete-function --function-name $name"
      aws lambda delete-function --function-name "$name" >/dev/null
    else
      log "leaving $name: not tagged project=$PROJECT_TAG stage=$STAGE (tags: $tags)"
      leftover=1
    fi
  done
  ((leftover == 0)) || die "some functions were left in place"
  log "destroyed $STAGE in $((SECONDS - start)) s"
}

cmd_status() {
  local status id name
  status="$(stack_status)"
  echo "stack $STACK: $status"
  if [[ $status != NONE ]]; then
    aws cloudformation describe-stacks --stack-name "$STACK" --output text \
      --query 'Stacks[0].Outputs[].[OutputKey, OutputValue]' | sort | sed 's/^/  /'
  fi
  for id in "${FN_IDS[@]}"; do
    name="${FN_NAME[$id]}"
    if function_exists "$name"; then
      echo "function $name: $(aws lambda get-function-configuration --function-name "$name" --output text \
        --query '[State, LastUpdateStatus, Architectures[0], MemorySize, Timeout, CodeSize]' | tr '\t' ' ')" \
        "(state, update, arch, memory MB, timeout s, code bytes)"
    else
      echo "function $name: absent"
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
read_functions

case "$command_name" in
  deploy) cmd_deploy "$@" ;;
  deploy-template)
    (($# >= 1)) || usage
    cmd_deploy_template "$@" ;;
  destroy) (($# == 0)) || usage; cmd_destroy ;;
  status) (($# == 0)) || usage; cmd_status ;;
  *) usage ;;
esac
