//! trigger-dispatcher: SQS batches of signals in, execution requests out.
//!
//! The matching, lease and fan-out logic is [`tradeflow_core::dispatch`]; this crate maps the
//! Lambda event, reports partial batch failures, and turns the batch report into logs and metrics.

use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use tradeflow_core::dispatch::{DispatchReport, Dispatcher, DispatcherConfig, MessageFailure};
use tradeflow_core::ports::SystemClock;
use tradeflow_lambda::{ConfigError, Settings, batch_response, inbound_messages};
use tradeflow_telemetry::{DispatcherMetrics, Telemetry};

pub const FUNCTION_NAME: &str = "trigger-dispatcher";

/// Settings from the environment (see `infra/template.yaml`).
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub pipelines_table: String,
    pub leases_table: String,
    /// URL or name of the executions queue (a name is resolved at start-up).
    pub executions_queue: String,
    pub pipeline_cache_ttl: Duration,
}

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let mut s = Settings::new(lookup);
        let config = Config {
            pipelines_table: s.required("PIPELINES_TABLE"),
            leases_table: s.required("LEASES_TABLE"),
            executions_queue: s.required("EXECUTIONS_QUEUE_URL"),
            pipeline_cache_ttl: Duration::from_secs(s.parsed(
                "PIPELINE_CACHE_TTL_SECS",
                30u64,
                str::parse::<u64>,
            )),
        };
        s.finish(config)
    }
}

pub struct Handler {
    dispatcher: Dispatcher,
    telemetry: Telemetry,
    metrics: DispatcherMetrics,
}

impl Handler {
    pub fn new(dispatcher: Dispatcher, telemetry: Telemetry) -> Self {
        let metrics = DispatcherMetrics::new(&telemetry.meter());
        Handler {
            dispatcher,
            telemetry,
            metrics,
        }
    }

    /// Builds the handler on DynamoDB and SQS.
    pub async fn from_aws(
        sdk: &aws_config::SdkConfig,
        config: &Config,
        telemetry: Telemetry,
    ) -> Result<Self, tradeflow_core::error::QueueError> {
        let dynamo = aws_sdk_dynamodb::Client::new(sdk);
        let sqs = aws_sdk_sqs::Client::new(sdk);
        let queue_url = tradeflow_aws::resolve_queue_url(&sqs, &config.executions_queue).await?;
        let dispatcher = Dispatcher::new(
            Arc::new(tradeflow_aws::DynamoPipelineStore::new(
                dynamo.clone(),
                config.pipelines_table.clone(),
            )),
            Arc::new(tradeflow_aws::DynamoLeaseStore::new(
                dynamo,
                config.leases_table.clone(),
            )),
            Arc::new(tradeflow_aws::SqsQueue::new(sqs, queue_url)),
            Arc::new(SystemClock),
            DispatcherConfig {
                cache_ttl: config.pipeline_cache_ttl,
                ..DispatcherConfig::default()
            },
        );
        Ok(Handler::new(dispatcher, telemetry))
    }

    /// One Lambda invocation: only the failed message ids are returned, so the rest of the batch
    /// is deleted from the queue.
    pub async fn handle(&self, event: SqsEvent) -> Result<SqsBatchResponse, lambda_runtime::Error> {
        let invocation = self.telemetry.start_invocation("pubsub");
        let result = self.process(event).await;
        invocation.finish(result.is_ok());
        self.telemetry.flush().await;
        result
    }

    async fn process(&self, event: SqsEvent) -> Result<SqsBatchResponse, lambda_runtime::Error> {
        let started = Instant::now();
        let total = event.records.len();
        let (messages, missing) = inbound_messages(event)?;
        let mut report = self.dispatcher.dispatch(&messages).await;
        report.received = total;
        for m in missing {
            report.failures.push(MessageFailure {
                message_id: m.message_id,
                label: "missing_body",
                reason: "record has no body".into(),
                poison: true,
            });
        }
        let elapsed = started.elapsed();
        log_report(&report, elapsed);
        self.metrics.record_batch(&report, elapsed);
        Ok(batch_response(report.failed_message_ids(), total)?)
    }
}

fn log_report(report: &DispatchReport, elapsed: Duration) {
    for f in &report.failures {
        if f.poison {
            tracing::warn!(message_id = %f.message_id, reason = f.label, detail = %f.reason, "message rejected; it goes to the DLQ after maxReceiveCount deliveries");
        } else {
            tracing::warn!(message_id = %f.message_id, reason = f.label, detail = %f.reason, "message failed; it will be redelivered");
        }
    }
    tracing::info!(
        received = report.received,
        consumed = report.consumed,
        matched = report.matched,
        enqueued = report.enqueued,
        skipped_running = report.skipped_running,
        already_enqueued = report.already_enqueued,
        deduplicated = report.deduplicated,
        failed = report.failed_message_ids().len(),
        cache_size = report.cache_size,
        cache_refreshed = report.cache_refreshed,
        duration_ms = elapsed.as_secs_f64() * 1000.0,
        "batch dispatched"
    );
}
