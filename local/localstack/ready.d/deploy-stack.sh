#!/bin/bash
# LocalStack ready hook (local/compose.yaml mounts this directory at
# /etc/localstack/init/ready.d): once LocalStack is up, deploy the data plane of
# infra/template.yaml as stack tradeflow-local (DeployFunctions=false: the compose
# runner plays Lambda, its event source mappings and schedule), as local/deploy-stack.sh
# does on the Docker-free path, including the TTLs LocalStack's CloudFormation may skip.
# The compose healthcheck of LocalStack waits for this hook
# (/_localstack/init/ready), so the runner starts on a deployed stack.
set -euo pipefail
stage="${TRADEFLOW_STAGE:-local}"
stack="tradeflow-${stage}"
# The template is larger than the 51,200 bytes CloudFormation takes inline: `deploy` uploads
# it to a bucket first (the AWS CLI refuses it without one).
bucket="tradeflow-${stage}-templates"
awslocal s3api head-bucket --bucket "$bucket" >/dev/null 2>&1 \
  || awslocal s3api create-bucket --bucket "$bucket" >/dev/null
# TRADEFLOW_TEMPLATE: where compose mounts infra/template.yaml (local/test-deploy.sh runs this
# hook against the emulator with the repository's own).
awslocal cloudformation deploy \
  --stack-name "$stack" \
  --template-file "${TRADEFLOW_TEMPLATE:-/opt/tradeflow/template.yaml}" \
  --s3-bucket "$bucket" \
  --s3-prefix templates \
  --capabilities CAPABILITY_IAM \
  --no-fail-on-empty-changeset \
  --parameter-overrides "Stage=${stage}" DeployFunctions=false DataDeletionProtection=false
for table in leases executions; do
  awslocal dynamodb update-time-to-live --table-name "tradeflow-${stage}-${table}" \
    --time-to-live-specification "Enabled=true,AttributeName=ttl" >/dev/null 2>&1 || true
done
echo "tradeflow: stack $stack deployed"
