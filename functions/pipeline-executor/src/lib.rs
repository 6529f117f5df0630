//! pipeline-executor: runs each execution request at most once and records it.
//!
//! The run logic is [`tradeflow_core::execute`], the SQS batch path and everything around an
//! invocation are [`tradeflow_lambda`]'s; this crate builds the executor and turns each message's
//! report into logs and metrics.

use std::sync::Arc;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use tradeflow_core::execute::{Executor, MessageReport, Outcome};
use tradeflow_core::ports::SystemClock;
use tradeflow_core::steps::BuiltinSteps;
use tradeflow_core::vocab::Timeframe;
use tradeflow_lambda::{
    BatchError, ConfigError, Deadline, Function, MarketSource, Settings, process_batch,
};
use tradeflow_telemetry::{ExecutorMetrics, TRIGGER_PUBSUB, Telemetry};

pub const FUNCTION_NAME: &str = "pipeline-executor";

#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub pipelines_table: String,
    pub executions_table: String,
    pub leases_table: String,
    pub orders_table: String,
    pub market: MarketSource,
    /// Timeframe of the market snapshot when the signal carries none.
    pub default_timeframe: Timeframe,
}

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let mut s = Settings::new(lookup);
        let config = Config {
            pipelines_table: s.required("PIPELINES_TABLE"),
            executions_table: s.required("EXECUTIONS_TABLE"),
            leases_table: s.required("LEASES_TABLE"),
            orders_table: s.required("ORDERS_TABLE"),
            market: MarketSource::from_settings(&mut s),
            default_timeframe: s.parsed("DEFAULT_TIMEFRAME", Timeframe::M5, Timeframe::parse),
        };
        s.finish(config)
    }
}

pub struct Handler {
    executor: Executor,
    metrics: ExecutorMetrics,
}

impl Handler {
    pub fn new(executor: Executor, telemetry: &Telemetry) -> Self {
        Handler {
            executor,
            metrics: ExecutorMetrics::new(&telemetry.meter()),
        }
    }

    pub fn from_aws(
        sdk: &aws_config::SdkConfig,
        config: &Config,
        telemetry: &Telemetry,
    ) -> Result<Self, tradeflow_core::market::MarketDataError> {
        let dynamo = aws_sdk_dynamodb::Client::new(sdk);
        let market = config.market.build()?;
        let orders = Arc::new(tradeflow_aws::DynamoOrderStore::new(
            dynamo.clone(),
            config.orders_table.clone(),
        ));
        let executor = Executor::new(
            Arc::new(tradeflow_aws::DynamoPipelineStore::new(
                dynamo.clone(),
                config.pipelines_table.clone(),
            )),
            Arc::new(tradeflow_aws::DynamoExecutionStore::new(
                dynamo.clone(),
                config.executions_table.clone(),
            )),
            Arc::new(tradeflow_aws::DynamoLeaseStore::new(
                dynamo,
                config.leases_table.clone(),
            )),
            BuiltinSteps::new(market, orders, config.default_timeframe),
            Arc::new(SystemClock),
        );
        Ok(Handler::new(executor, telemetry))
    }
}

impl Function for Handler {
    const NAME: &'static str = FUNCTION_NAME;
    const TRIGGER: &'static str = TRIGGER_PUBSUB;
    type Event = SqsEvent;
    type Response = SqsBatchResponse;
    type Error = BatchError;

    /// One batch of execution requests: only the failed message ids are returned, so the rest of
    /// the batch is deleted from the queue.
    async fn handle(
        &self,
        event: SqsEvent,
        deadline: Deadline,
    ) -> Result<SqsBatchResponse, BatchError> {
        process_batch(
            event,
            |messages| async move { self.executor.execute_batch(&messages, deadline).await },
            |reports: &Vec<MessageReport>| {
                for report in reports {
                    log_report(report);
                    self.metrics.record(report);
                }
            },
        )
        .await
    }
}

fn log_report(r: &MessageReport) {
    let ms = r.duration.as_secs_f64() * 1000.0;
    match &r.outcome {
        Outcome::Finished(record) => tracing::info!(
            message_id = %r.message_id,
            execution_id = %record.execution_id,
            pipeline_id = %record.pipeline_id,
            ticker = %record.ticker,
            status = record.status.as_str(),
            decision = record.decision.as_deref().unwrap_or(""),
            order_id = record.order_id.as_deref().unwrap_or(""),
            attempts = record.attempts,
            error = record.error.as_deref().unwrap_or(""),
            duration_ms = ms,
            "execution finished"
        ),
        Outcome::Duplicate(status) => {
            tracing::info!(message_id = %r.message_id, status = status.as_str(), "duplicate delivery of a finished execution; nothing ran")
        }
        Outcome::InProgressElsewhere => {
            tracing::info!(message_id = %r.message_id, "another attempt took the execution over; this attempt's result was not written")
        }
        Outcome::Retry {
            label: "in_progress",
            reason,
        } => {
            tracing::info!(message_id = %r.message_id, reason = "in_progress", detail = %reason, "execution is running in another attempt; redelivered later (taken over if that attempt died)")
        }
        Outcome::Retry { label, reason } => {
            tracing::warn!(message_id = %r.message_id, reason = *label, detail = %reason, "execution failed transiently; it will be redelivered")
        }
        Outcome::Rejected { reason } => {
            tracing::warn!(message_id = %r.message_id, reason = "invalid_request", detail = %reason, "message rejected; it goes to the DLQ after maxReceiveCount deliveries")
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use aws_lambda_events::event::sqs::SqsMessage;
    use std::collections::HashMap;
    use tradeflow_core::fakes::*;
    use tradeflow_core::market::SyntheticFeed;

    fn record(id: &str, body: Option<String>) -> SqsMessage {
        let mut m = SqsMessage::default();
        m.message_id = Some(id.into());
        m.body = body;
        m
    }

    fn request() -> String {
        let mut request = fixtures::request("p1", "s1", 1_750_000_000);
        request.signal_context.source = "t".into();
        request.signal_context.confidence = 80.0;
        request.to_json()
    }

    #[tokio::test]
    async fn runs_the_good_request_and_reports_only_the_bad_ones() {
        let pipeline = fixtures::pipeline("p1", "u1", &["AAPL"], serde_json::json!([]));
        let orders = Arc::new(MemoryOrderStore::default());
        let executor = Executor::new(
            Arc::new(MemoryPipelineStore::with([pipeline])),
            Arc::new(MemoryExecutionStore::default()),
            Arc::new(MemoryLeaseStore::default()),
            BuiltinSteps::new(
                Arc::new(SyntheticFeed { seed: 3 }),
                orders.clone(),
                Timeframe::M5,
            ),
            Arc::new(ManualClock::at(1_750_000_010)),
        );
        let h = Handler::new(executor, &Telemetry::init(FUNCTION_NAME));
        let mut event = SqsEvent::default();
        event.records = vec![
            record("good", Some(request())),
            record("again", Some(request())),
            record("garbage", Some("[]".into())),
            record("empty", None),
        ];
        let resp = h.handle(event, Deadline::none()).await.unwrap();
        let failed: Vec<_> = resp
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.as_str())
            .collect();
        assert_eq!(failed, vec!["empty", "garbage"]);
        assert_eq!(
            orders.all().len(),
            1,
            "the duplicate delivery did not run again"
        );
    }

    #[test]
    fn config_reads_the_market_source() {
        let env = HashMap::from([
            ("PIPELINES_TABLE", "p"),
            ("EXECUTIONS_TABLE", "e"),
            ("LEASES_TABLE", "l"),
            ("ORDERS_TABLE", "o"),
            ("MARKET_DATA", "csv"),
        ]);
        let err = Config::from_lookup(|k| env.get(k).map(|v| (*v).to_owned())).unwrap_err();
        assert_eq!(
            err.problems,
            vec!["MARKET_DATA_CSV_DIR is not set".to_owned()]
        );
        let mut env = env;
        env.insert("MARKET_DATA", "synthetic");
        env.insert("SYNTHETIC_SEED", "9");
        let c = Config::from_lookup(|k| env.get(k).map(|v| (*v).to_owned())).unwrap();
        assert_eq!(c.market, MarketSource::Synthetic { seed: 9 });
        assert_eq!(c.default_timeframe, Timeframe::M5);
    }
}
