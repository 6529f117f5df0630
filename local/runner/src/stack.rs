//! The stack's resources, read from CloudFormation outputs: infra/template.yaml is the only list.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::{Context, bail};
use aws_sdk_cloudformation::types::{Capability, Parameter, StackStatus};

/// Path of the template, relative to the workspace root.
pub const TEMPLATE: &str = "infra/template.yaml";

/// The template, compiled in: the functions' timeouts are read from it.
pub const TEMPLATE_BODY: &str = include_str!("../../../infra/template.yaml");

/// The `Timeout` of the `AWS::Lambda::Function` in `template` whose `FunctionName` ends in
/// `-<function>` (the template is plain CloudFormation YAML; resources are indented by two
/// spaces, their properties further).
pub fn function_timeout(template: &str, function: &str) -> anyhow::Result<Duration> {
    let mut blocks: Vec<Vec<&str>> = Vec::new();
    for line in template.lines() {
        let starts_block = line.starts_with("  ")
            && !line.starts_with("   ")
            && !line.trim_start().starts_with('#');
        if starts_block {
            blocks.push(vec![line]);
        } else if let Some(block) = blocks.last_mut() {
            block.push(line);
        }
    }
    let suffix = format!("-{function}");
    for block in &blocks {
        let field = |name: &str| {
            block.iter().find_map(|l| {
                let value = l.trim().strip_prefix(name)?;
                Some(value.split(" #").next().unwrap_or_default().trim())
            })
        };
        if field("Type:") != Some("AWS::Lambda::Function")
            || !field("FunctionName:").is_some_and(|n| n.ends_with(&suffix))
        {
            continue;
        }
        let raw = field("Timeout:")
            .with_context(|| format!("the {function} function in {TEMPLATE} has no Timeout"))?;
        let secs: u64 = raw
            .parse()
            .with_context(|| format!("the {function} function's Timeout {raw:?}"))?;
        return Ok(Duration::from_secs(secs));
    }
    bail!("{TEMPLATE} declares no AWS::Lambda::Function named *{suffix}")
}

/// Names of the queues and tables of one deployed stage.
#[derive(Debug, Clone, PartialEq)]
pub struct StackOutputs {
    pub stack_name: String,
    pub outputs: HashMap<String, String>,
}

impl StackOutputs {
    pub fn get(&self, key: &str) -> anyhow::Result<&str> {
        self.outputs
            .get(key)
            .map(String::as_str)
            .with_context(|| format!("stack {} has no output {key}", self.stack_name))
    }

    /// Reads the outputs of a deployed stack.
    pub async fn load(
        cfn: &aws_sdk_cloudformation::Client,
        stack_name: &str,
    ) -> anyhow::Result<Self> {
        use aws_sdk_cloudformation::error::ProvideErrorMetadata;
        let endpoint = endpoint_description(std::env::var("AWS_ENDPOINT_URL").ok());
        let resp = match cfn.describe_stacks().stack_name(stack_name).send().await {
            Ok(resp) => resp,
            Err(e) => {
                let missing = e.code() == Some("ValidationError")
                    && e.message().is_some_and(|m| m.contains("does not exist"));
                if missing {
                    bail!("{}", missing_stack(stack_name, &endpoint));
                }
                return Err(anyhow::Error::new(e)).with_context(|| {
                    format!("describing stack {stack_name} on {endpoint} (is the endpoint up?)")
                });
            }
        };
        let Some(stack) = resp.stacks().first() else {
            bail!("{}", missing_stack(stack_name, &endpoint));
        };
        let outputs = stack
            .outputs()
            .iter()
            .filter_map(|o| Some((o.output_key()?.to_owned(), o.output_value()?.to_owned())))
            .collect();
        Ok(StackOutputs {
            stack_name: stack_name.to_owned(),
            outputs,
        })
    }

    /// Environment of the functions for this stack (what infra/template.yaml gives them in AWS),
    /// with queue names where the template has URLs: the functions resolve names at start-up.
    /// `MAX_RECEIVE_COUNT` is the deployed executions queue's (its redrive policy), as the
    /// template sets it beside that queue.
    pub async fn function_env(
        &self,
        sdk: &aws_config::SdkConfig,
    ) -> anyhow::Result<HashMap<&'static str, String>> {
        let mut env = self.names_env()?;
        let sqs = aws_sdk_sqs::Client::new(sdk);
        let queue = self.get("ExecutionsQueueName")?;
        let url = tradeflow_aws::resolve_queue_url(&sqs, queue).await?;
        if let Some(max) = max_receive_count(&sqs, &url).await? {
            env.insert("MAX_RECEIVE_COUNT", max.to_string());
        }
        Ok(env)
    }

    /// The table and queue names of [`StackOutputs::function_env`].
    fn names_env(&self) -> anyhow::Result<HashMap<&'static str, String>> {
        let mut env = HashMap::new();
        for (var, output) in [
            ("SIGNALS_QUEUE_URL", "SignalsQueueName"),
            ("SIGNALS_DLQ_URL", "SignalsDlqName"),
            ("EXECUTIONS_QUEUE_URL", "ExecutionsQueueName"),
            ("EXECUTIONS_DLQ_URL", "ExecutionsDlqName"),
            ("PIPELINES_TABLE", "PipelinesTableName"),
            ("LEASES_TABLE", "LeasesTableName"),
            ("EXECUTIONS_TABLE", "ExecutionsTableName"),
            ("ORDERS_TABLE", "OrdersTableName"),
            ("CURSORS_TABLE", "CursorsTableName"),
        ] {
            env.insert(var, self.get(output)?.to_owned());
        }
        // The generator publishes to the signals topic when the stack has one (as on AWS), so
        // the local chain runs the same path: topic -> raw subscription -> signals queue.
        if let Some(arn) = self.outputs.get("SignalsTopicArn") {
            env.insert("SIGNALS_TOPIC_ARN", arn.clone());
        }
        Ok(env)
    }
}

/// The `maxReceiveCount` of the queue at `url` (its redrive policy); `None` without one.
pub async fn max_receive_count(
    sqs: &aws_sdk_sqs::Client,
    url: &str,
) -> anyhow::Result<Option<u32>> {
    use aws_sdk_sqs::types::QueueAttributeName;
    let attrs = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::RedrivePolicy)
        .send()
        .await
        .with_context(|| format!("reading the redrive policy of {url}"))?;
    let Some(raw) = attrs
        .attributes()
        .and_then(|a| a.get(&QueueAttributeName::RedrivePolicy))
    else {
        return Ok(None);
    };
    let policy: serde_json::Value =
        serde_json::from_str(raw).with_context(|| format!("redrive policy of {url}: {raw}"))?;
    // CloudFormation may hand the number over as a string.
    let max = match &policy["maxReceiveCount"] {
        serde_json::Value::Number(n) => n.as_u64(),
        serde_json::Value::String(s) => s.parse().ok(),
        _ => None,
    }
    .and_then(|n| u32::try_from(n).ok())
    .with_context(|| format!("redrive policy of {url} has no maxReceiveCount: {raw}"))?;
    Ok(Some(max))
}

/// Where the SDK sends requests, for messages: the `AWS_ENDPOINT_URL` value, or AWS itself.
pub fn endpoint_description(endpoint_url: Option<String>) -> String {
    match endpoint_url {
        Some(url) if !url.trim().is_empty() => url,
        _ => "AWS (no AWS_ENDPOINT_URL set)".to_owned(),
    }
}

/// The message for a stack name the endpoint does not know: it names the endpoint, since the
/// usual cause is a name typed wrong or another endpoint, not a missing deploy.
pub fn missing_stack(stack_name: &str, endpoint: &str) -> String {
    format!(
        "stack {stack_name} does not exist on {endpoint}; check --stack and AWS_ENDPOINT_URL \
         (local/deploy-stack.sh <stage> creates tradeflow-<stage>)"
    )
}

/// Creates stack `tradeflow-<stage>` from the template with `DeployFunctions=false` (the runner
/// plays Lambda's part) and waits for it. Used by the integration tests, each with its own stage.
pub async fn create_stack(
    cfn: &aws_sdk_cloudformation::Client,
    template_body: &str,
    stage: &str,
) -> anyhow::Result<StackOutputs> {
    let stack_name = format!("tradeflow-{stage}");
    cfn.create_stack()
        .stack_name(&stack_name)
        .template_body(template_body)
        .capabilities(Capability::CapabilityNamedIam)
        .parameters(
            Parameter::builder()
                .parameter_key("Stage")
                .parameter_value(stage)
                .build(),
        )
        .parameters(
            Parameter::builder()
                .parameter_key("DeployFunctions")
                .parameter_value("false")
                .build(),
        )
        .send()
        .await
        .with_context(|| format!("creating stack {stack_name}"))?;
    for _ in 0..300 {
        let resp = cfn.describe_stacks().stack_name(&stack_name).send().await?;
        let status = resp
            .stacks()
            .first()
            .and_then(|s| s.stack_status().cloned());
        match status {
            Some(StackStatus::CreateComplete) => return StackOutputs::load(cfn, &stack_name).await,
            Some(StackStatus::CreateInProgress) | None => {
                tokio::time::sleep(Duration::from_millis(100)).await
            }
            Some(other) => bail!("stack {stack_name} ended {other:?}"),
        }
    }
    bail!("stack {stack_name} did not finish creating in 30 s")
}

pub async fn delete_stack(cfn: &aws_sdk_cloudformation::Client, stage: &str) -> anyhow::Result<()> {
    cfn.delete_stack()
        .stack_name(format!("tradeflow-{stage}"))
        .send()
        .await?;
    Ok(())
}

/// Deletes a throwaway stack whole: the stack, then the tables the template retains
/// (executions, orders; their deletion protection switched off first). Best effort: what is
/// already gone is no error.
pub async fn delete_stack_and_history(
    sdk: &aws_config::SdkConfig,
    stage: &str,
    outputs: &StackOutputs,
) {
    let cfn = aws_sdk_cloudformation::Client::new(sdk);
    let _ = delete_stack(&cfn, stage).await;
    let dynamo = aws_sdk_dynamodb::Client::new(sdk);
    for output in ["ExecutionsTableName", "OrdersTableName"] {
        let Ok(table) = outputs.get(output) else {
            continue;
        };
        let _ = dynamo
            .update_table()
            .table_name(table)
            .deletion_protection_enabled(false)
            .send()
            .await;
        let _ = dynamo.delete_table().table_name(table).send().await;
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn reads_each_function_timeout_from_the_template() {
        for (function, secs) in [
            ("signal-generator", 60),
            ("trigger-dispatcher", 30),
            ("pipeline-executor", 120),
        ] {
            assert_eq!(
                function_timeout(TEMPLATE_BODY, function).unwrap(),
                Duration::from_secs(secs),
                "{function}"
            );
        }
        assert!(function_timeout(TEMPLATE_BODY, "nope").is_err());
    }

    #[test]
    fn a_missing_stack_is_named_with_its_endpoint() {
        let endpoint = endpoint_description(Some("http://127.0.0.1:5204".into()));
        let text = missing_stack("tradeflow-nope", &endpoint);
        assert!(
            text.starts_with("stack tradeflow-nope does not exist on http://127.0.0.1:5204"),
            "{text}"
        );
        for unset in [None, Some(String::new())] {
            assert!(endpoint_description(unset).starts_with("AWS"));
        }
    }
}
