//! The AWS configuration and the stack's resources, resolved once per command.

use anyhow::{Context as _, bail};
use tradeflow_aws::{
    DynamoExecutionStore, DynamoLeaseStore, DynamoOrderStore, DynamoPipelineStore,
};
use tradeflow_local::stack::StackOutputs;

use crate::cli::Global;
use crate::output::Output;

/// The stack output naming the signals topic.
pub const SIGNALS_TOPIC_OUTPUT: &str = "SignalsTopicArn";

/// A connected command: the SDK clients and the stack's outputs.
pub struct Ctx {
    pub sqs: aws_sdk_sqs::Client,
    pub sns: aws_sdk_sns::Client,
    pub dynamo: aws_sdk_dynamodb::Client,
    pub stack: StackOutputs,
    pub out: Output,
}

impl Ctx {
    /// Loads the standard AWS configuration and reads the stack's outputs (one clear error for a
    /// missing stack or an endpoint that does not answer).
    pub async fn connect(global: &Global) -> anyhow::Result<Ctx> {
        let Some(stack_name) = global.stack.as_deref().filter(|s| !s.trim().is_empty()) else {
            bail!(
                "no stack given: pass --stack NAME or set TRADEFLOW_STACK (e.g. tradeflow-local)"
            );
        };
        let sdk = tradeflow_aws::load_aws_config().await?;
        if sdk.region().is_none() {
            bail!("no AWS region configured: set AWS_REGION or AWS_PROFILE");
        }
        let cfn = aws_sdk_cloudformation::Client::new(&sdk);
        let stack = StackOutputs::load(&cfn, stack_name).await?;
        Ok(Ctx {
            sqs: aws_sdk_sqs::Client::new(&sdk),
            sns: aws_sdk_sns::Client::new(&sdk),
            dynamo: aws_sdk_dynamodb::Client::new(&sdk),
            stack,
            out: Output::new(global.json),
        })
    }

    pub fn output(&self, key: &str) -> anyhow::Result<String> {
        Ok(self.stack.get(key)?.to_owned())
    }

    /// The stack's signals topic (output `SignalsTopicArn`), `None` for a stack deployed before
    /// the topic existed (its generator sends straight to the signals queue).
    pub fn signals_topic(&self) -> Option<&str> {
        self.stack
            .outputs
            .get(SIGNALS_TOPIC_OUTPUT)
            .map(String::as_str)
    }

    pub fn pipelines(&self) -> anyhow::Result<DynamoPipelineStore> {
        Ok(DynamoPipelineStore::new(
            self.dynamo.clone(),
            self.output("PipelinesTableName")?,
        ))
    }

    pub fn executions(&self) -> anyhow::Result<DynamoExecutionStore> {
        Ok(DynamoExecutionStore::new(
            self.dynamo.clone(),
            self.output("ExecutionsTableName")?,
        ))
    }

    pub fn orders(&self) -> anyhow::Result<DynamoOrderStore> {
        Ok(DynamoOrderStore::new(
            self.dynamo.clone(),
            self.output("OrdersTableName")?,
        ))
    }

    pub fn leases(&self) -> anyhow::Result<DynamoLeaseStore> {
        Ok(DynamoLeaseStore::new(
            self.dynamo.clone(),
            self.output("LeasesTableName")?,
        ))
    }

    /// The URL of the queue named by stack output `key`.
    pub async fn queue_url(&self, key: &str) -> anyhow::Result<String> {
        let name = self.output(key)?;
        tradeflow_aws::resolve_queue_url(&self.sqs, &name)
            .await
            .map_err(|e| anyhow::anyhow!("{}", crate::output::short_error(&e)))
            .with_context(|| format!("resolving queue {name}"))
    }
}
