//! trigger-dispatcher: SQS batches of signals in, execution requests out.
//!
//! The matching, lease and fan-out logic is [`tradeflow_core::dispatch`], the SQS batch path and
//! everything around an invocation are [`tradeflow_lambda`]'s; this crate builds the dispatcher
//! and turns the batch report into logs and metrics.

use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use tradeflow_core::dispatch::{DispatchReport, Dispatcher, DispatcherConfig};
use tradeflow_core::ports::SystemClock;
use tradeflow_lambda::{BatchError, ConfigError, Deadline, Function, Settings, process_batch};
use tradeflow_telemetry::{DispatcherMetrics, TRIGGER_PUBSUB, Telemetry};

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
    metrics: DispatcherMetrics,
}

impl Handler {
    pub fn new(dispatcher: Dispatcher, telemetry: &Telemetry) -> Self {
        Handler {
            dispatcher,
            metrics: DispatcherMetrics::new(&telemetry.meter()),
        }
    }

    /// Builds the handler on DynamoDB and SQS.
    pub async fn from_aws(
        sdk: &aws_config::SdkConfig,
        config: &Config,
        telemetry: &Telemetry,
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
}

impl Function for Handler {
    const NAME: &'static str = FUNCTION_NAME;
    const TRIGGER: &'static str = TRIGGER_PUBSUB;
    type Event = SqsEvent;
    type Response = SqsBatchResponse;
    type Error = BatchError;

    /// One batch of signals: only the failed message ids are returned, so the rest of the batch
    /// is deleted from the queue.
    async fn handle(
        &self,
        event: SqsEvent,
        deadline: Deadline,
    ) -> Result<SqsBatchResponse, BatchError> {
        let started = Instant::now();
        process_batch(
            event,
            |messages| async move { self.dispatcher.dispatch(&messages, deadline).await },
            |report: &DispatchReport| {
                let elapsed = started.elapsed();
                log_report(report, elapsed);
                self.metrics.record_batch(report, elapsed);
            },
        )
        .await
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use aws_lambda_events::event::sqs::SqsMessage;
    use std::collections::HashMap;
    use tradeflow_core::fakes::{
        ManualClock, MemoryLeaseStore, MemoryPipelineStore, MemoryQueue, fixtures,
    };

    fn record(id: Option<&str>, body: Option<&str>) -> SqsMessage {
        let mut m = SqsMessage::default();
        m.message_id = id.map(str::to_owned);
        m.body = body.map(str::to_owned);
        m
    }

    fn event(records: Vec<SqsMessage>) -> SqsEvent {
        let mut e = SqsEvent::default();
        e.records = records;
        e
    }

    fn handler() -> (Handler, Arc<MemoryQueue>) {
        let pipeline = fixtures::pipeline("p1", "u1", &["AAPL"], serde_json::json!([]));
        let queue = Arc::new(MemoryQueue::default());
        let dispatcher = Dispatcher::new(
            Arc::new(MemoryPipelineStore::with([pipeline])),
            Arc::new(MemoryLeaseStore::default()),
            queue.clone(),
            Arc::new(ManualClock::at(1_000)),
            DispatcherConfig::default(),
        );
        (
            Handler::new(dispatcher, &Telemetry::init(FUNCTION_NAME)),
            queue,
        )
    }

    const SIGNAL: &str = r#"{"signal_id":"s1","signal_type":"rsi_oversold","source":"t","timestamp":900,
        "tickers":[{"ticker":"AAPL","signal":"BULLISH","confidence":80,"reasoning":null}],"metadata":{"timeframe":"5"}}"#;

    #[tokio::test]
    async fn only_the_bad_records_are_reported_failed() {
        let (h, queue) = handler();
        let resp = h
            .handle(
                event(vec![
                    record(Some("good"), Some(SIGNAL)),
                    record(Some("bad-json"), Some("{")),
                    record(Some("no-body"), None),
                ]),
                Deadline::none(),
            )
            .await
            .unwrap();
        let failed: Vec<_> = resp
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.as_str())
            .collect();
        assert_eq!(failed, vec!["bad-json", "no-body"]);
        assert_eq!(queue.bodies().len(), 1);
        // The response serializes as Lambda expects.
        let json = serde_json::to_value(&resp).unwrap();
        assert_eq!(json["batchItemFailures"][0]["itemIdentifier"], "bad-json");
    }

    #[tokio::test]
    async fn a_batch_where_every_record_failed_is_an_error() {
        let (h, _) = handler();
        assert!(
            h.handle(
                event(vec![
                    record(Some("a"), Some("x")),
                    record(Some("b"), Some("y"))
                ]),
                Deadline::none()
            )
            .await
            .is_err()
        );
        assert!(
            h.handle(event(vec![record(None, Some(SIGNAL))]), Deadline::none())
                .await
                .is_err()
        );
        assert!(
            h.handle(event(vec![]), Deadline::none())
                .await
                .unwrap()
                .batch_item_failures
                .is_empty()
        );
    }

    #[test]
    fn config_reports_every_missing_setting_and_reads_the_cache_ttl() {
        let err = Config::from_lookup(|_| None).unwrap_err().to_string();
        for var in ["PIPELINES_TABLE", "LEASES_TABLE", "EXECUTIONS_QUEUE_URL"] {
            assert!(err.contains(var), "{err}");
        }
        let env = HashMap::from([
            ("PIPELINES_TABLE", "p"),
            ("LEASES_TABLE", "l"),
            ("EXECUTIONS_QUEUE_URL", "q"),
            ("PIPELINE_CACHE_TTL_SECS", "5"),
        ]);
        let c = Config::from_lookup(|k| env.get(k).map(|v| (*v).to_owned())).unwrap();
        assert_eq!(c.pipeline_cache_ttl, Duration::from_secs(5));
        let bad = HashMap::from([("PIPELINE_CACHE_TTL_SECS", "soon")]);
        assert!(
            Config::from_lookup(|k| bad.get(k).map(|v| (*v).to_owned()))
                .unwrap_err()
                .to_string()
                .contains("PIPELINE_CACHE_TTL_SECS")
        );
    }
}
