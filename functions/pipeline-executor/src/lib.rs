//! pipeline-executor: runs each execution request at most once and records it.
//!
//! The run logic is [`tradeflow_core::execute`], the SQS batch path and everything around an
//! invocation are [`tradeflow_lambda`]'s; this crate builds the executor and turns each message's
//! report into logs and metrics.

use std::sync::Arc;

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use serde::Serialize;
use tradeflow_core::execute::{Executor, MessageReport, Outcome, SweepReport};
use tradeflow_core::ports::SystemClock;
use tradeflow_core::steps::BuiltinSteps;
use tradeflow_core::vocab::Timeframe;
use tradeflow_lambda::{
    BatchError, ConfigError, Deadline, Function, MarketSource, Settings, process_batch,
};
use tradeflow_telemetry::traces::end_execute_spans;
use tradeflow_telemetry::{ExecutorMetrics, TRIGGER_PUBSUB, TRIGGER_TIMER, Telemetry, Traces};

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
    /// The executions queue's `maxReceiveCount` (`MAX_RECEIVE_COUNT`): on that delivery a run
    /// that fails again is recorded FAILED and its lease freed instead of going to the DLQ
    /// unfinished. Unset: the queue decides alone.
    pub max_receive_count: Option<u32>,
    /// How long a pipeline read is reused (`PIPELINE_CACHE_TTL_SECS`, default 30 as the
    /// dispatcher's index; 0 reads it for every run). A deactivation reaches runs within it.
    pub pipeline_cache_ttl: std::time::Duration,
    /// The scheduled sweep ends RUNNING runs whose in-progress window ended this long ago
    /// (`ABANDON_AFTER_SECS`, default 3600: `maxReceiveCount` 5 x the executions queue's
    /// 720 s visibility timeout, after which no delivery of the request is left).
    pub abandon_after_secs: i64,
}

/// Runs one sweep ends at most (`Executor::sweep`'s limit); the rest wait for the next one.
pub const SWEEP_LIMIT: usize = 500;

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
            max_receive_count: s.parsed("MAX_RECEIVE_COUNT", None, |v| {
                parse_receive_count(v).map(Some)
            }),
            pipeline_cache_ttl: std::time::Duration::from_secs(s.parsed(
                "PIPELINE_CACHE_TTL_SECS",
                30u64,
                str::parse::<u64>,
            )),
            abandon_after_secs: s.parsed("ABANDON_AFTER_SECS", 3_600i64, |v| {
                v.parse::<i64>()
                    .ok()
                    .filter(|n| *n >= 0)
                    .ok_or_else(|| "must be a whole number of seconds, 0 or more".to_owned())
            }),
        };
        s.finish(config)
    }
}

/// SQS accepts a `maxReceiveCount` from 1 to 1,000.
fn parse_receive_count(raw: &str) -> Result<u32, String> {
    match raw.parse::<u32>() {
        Ok(n) if (1..=1000).contains(&n) => Ok(n),
        _ => Err("must be a whole number from 1 to 1000 (the queue's maxReceiveCount)".into()),
    }
}

pub struct Handler {
    executor: Arc<Executor>,
    metrics: ExecutorMetrics,
    traces: Traces,
}

impl Handler {
    /// The handler around `executor`, which opens a span per pipeline step when `telemetry`
    /// traces.
    pub fn new(executor: Executor, telemetry: &Telemetry) -> Self {
        let traces = telemetry.traces();
        Handler {
            executor: Arc::new(executor.with_tracer(Arc::new(traces.clone()))),
            metrics: ExecutorMetrics::new(&telemetry.meter()),
            traces,
        }
    }

    /// The function's scheduled sweep, over the same executor and stores.
    pub fn sweeper(&self, abandon_after_secs: i64, telemetry: &Telemetry) -> Sweeper {
        Sweeper {
            executor: Arc::clone(&self.executor),
            abandon_after_secs,
            metrics: ExecutorMetrics::new(&telemetry.meter()),
        }
    }

    pub fn from_aws(
        sdk: &aws_config::SdkConfig,
        config: &Config,
        telemetry: &Telemetry,
    ) -> Result<Self, tradeflow_core::market::MarketDataError> {
        let dynamo = aws_sdk_dynamodb::Client::new(sdk);
        let market = market_source(&config.market, sdk)?;
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
                dynamo.clone(),
                config.leases_table.clone(),
            )),
            Arc::new(tradeflow_aws::DynamoRunLedger::new(
                dynamo,
                config.executions_table.clone(),
                config.orders_table.clone(),
                config.leases_table.clone(),
            )),
            BuiltinSteps::new(market, orders, config.default_timeframe),
            Arc::new(SystemClock),
        )
        .with_max_deliveries(config.max_receive_count)
        .with_pipeline_cache(config.pipeline_cache_ttl);
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
    /// the batch is deleted from the queue. When tracing, each request gets an `execute` span
    /// under the dispatch span whose context it came with, and each of its steps a span under it.
    async fn handle(
        &self,
        event: SqsEvent,
        deadline: Deadline,
    ) -> Result<SqsBatchResponse, BatchError> {
        process_batch(
            event,
            |mut messages| async move {
                let spans = self.traces.start_for_messages("execute", &mut messages);
                let reports = self.executor.execute_batch(&messages, deadline).await;
                end_execute_spans(spans, &reports);
                reports
            },
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

/// The executor's scheduled invocation (an EventBridge rule, every 5 minutes): ends the runs
/// whose last attempt died with no delivery left ([`Executor::sweep`]).
pub struct Sweeper {
    executor: Arc<Executor>,
    abandon_after_secs: i64,
    metrics: ExecutorMetrics,
}

/// What a sweep invocation returns (and logs).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SweepSummary {
    pub found: usize,
    pub abandoned: usize,
    pub left: usize,
    pub errors: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    #[error("listing overdue runs: {0}")]
    List(String),
    #[error("{0} of the overdue runs could not be ended; the next sweep tries again")]
    Ends(usize),
}

impl Sweeper {
    /// One sweep now; every abandoned run is logged and counted as a FAILED execution.
    pub async fn sweep(&self) -> Result<SweepReport, SweepError> {
        let report = self
            .executor
            .sweep(self.abandon_after_secs, SWEEP_LIMIT)
            .await
            .map_err(|e| SweepError::List(tradeflow_core::error::error_chain(&e)))?;
        for record in &report.abandoned {
            tracing::warn!(
                execution_id = %record.execution_id,
                pipeline_id = %record.pipeline_id,
                ticker = %record.ticker,
                attempts = record.attempts,
                decision = record.decision.as_deref().unwrap_or(""),
                error = record.error.as_deref().unwrap_or(""),
                "abandoned run ended FAILED and its lease freed"
            );
            self.metrics.record_abandoned(record);
        }
        for (id, error) in &report.errors {
            tracing::warn!(execution_id = %id, %error, "abandoned run could not be ended; the next sweep tries again");
        }
        Ok(report)
    }
}

impl Function for Sweeper {
    const NAME: &'static str = FUNCTION_NAME;
    const TRIGGER: &'static str = TRIGGER_TIMER;
    type Event = EventBridgeEvent<serde_json::Value>;
    type Response = SweepSummary;
    type Error = SweepError;

    async fn handle(
        &self,
        _event: EventBridgeEvent<serde_json::Value>,
        _deadline: Deadline,
    ) -> Result<SweepSummary, SweepError> {
        let report = self.sweep().await?;
        let summary = SweepSummary {
            found: report.found,
            abandoned: report.abandoned.len(),
            left: report.left,
            errors: report.errors.len(),
        };
        tracing::info!(
            found = summary.found,
            abandoned = summary.abandoned,
            left = summary.left,
            errors = summary.errors,
            "sweep of abandoned runs done"
        );
        if summary.errors > 0 {
            return Err(SweepError::Ends(summary.errors));
        }
        Ok(summary)
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
        Outcome::FinishedLeaseHeld { record, reason } => tracing::warn!(
            message_id = %r.message_id,
            execution_id = %record.execution_id,
            status = record.status.as_str(),
            detail = %reason,
            duration_ms = ms,
            "execution finished but its lease could not be released; redelivered so the redelivery frees it"
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

/// The market source of `MARKET_DATA`: Alpaca over HTTPS (its key possibly in Secrets Manager,
/// read with `sdk` on first use), or a source that needs no AWS client.
fn market_source(
    source: &MarketSource,
    sdk: &aws_config::SdkConfig,
) -> Result<Arc<dyn tradeflow_core::market::MarketData>, tradeflow_core::market::MarketDataError> {
    match source {
        MarketSource::Alpaca(settings) => Ok(Arc::new(
            tradeflow_aws::market::AlpacaMarketData::from_settings(settings, sdk),
        )),
        other => other.build(),
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
        let executions = Arc::new(MemoryExecutionStore::default());
        let leases = Arc::new(MemoryLeaseStore::default());
        let executor = Executor::new(
            Arc::new(MemoryPipelineStore::with([pipeline])),
            executions.clone(),
            leases.clone(),
            Arc::new(MemoryRunLedger::new(executions, orders.clone(), leases)),
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

    /// One binary, two triggers: the scheduled event reaches the sweep (a run whose last
    /// attempt died ends FAILED `abandoned`, its lease freed), an SQS batch the handler.
    #[tokio::test]
    async fn the_scheduled_event_sweeps_abandoned_runs_and_batches_still_run() {
        use tradeflow_core::execution::{ExecutionRequest, ExecutionStatus};
        use tradeflow_core::ports::{ExecutionStore, Lease};

        const NOW: i64 = 1_750_010_000;
        let pipeline = fixtures::pipeline("p1", "u1", &["AAPL"], serde_json::json!([]));
        let orders = Arc::new(MemoryOrderStore::default());
        let executions = Arc::new(MemoryExecutionStore::default());
        let leases = Arc::new(MemoryLeaseStore::default());
        let executor = Executor::new(
            Arc::new(MemoryPipelineStore::with([pipeline])),
            executions.clone(),
            leases.clone(),
            Arc::new(MemoryRunLedger::new(
                executions.clone(),
                orders.clone(),
                leases.clone(),
            )),
            BuiltinSteps::new(
                Arc::new(SyntheticFeed { seed: 3 }),
                orders.clone(),
                Timeframe::M5,
            ),
            Arc::new(ManualClock::at(NOW)),
        );
        let telemetry = Telemetry::init(FUNCTION_NAME);
        let handler = Handler::new(executor, &telemetry);
        let sweeper = handler.sweeper(3_600, &telemetry);
        let service = tradeflow_lambda::routed(handler, sweeper, telemetry);

        // Attempt 5 of an old request died two hours ago, holding its lease.
        let dead = ExecutionRequest::parse(&request()).unwrap();
        executions
            .begin(&dead, NOW - 7_300, NOW - 7_200)
            .await
            .unwrap();
        leases.insert(
            Lease {
                pipeline_id: dead.pipeline_id.clone(),
                ticker: dead.ticker.clone(),
                execution_id: dead.execution_id.clone(),
                expires_at: NOW - 7_200,
            },
            true,
        );
        let scheduled = serde_json::json!({
            "version": "0", "id": "e1", "detail-type": "Scheduled Event", "source": "aws.events",
            "account": "000000000000", "time": "2025-06-15T19:13:20Z", "region": "eu-west-1",
            "resources": ["arn:aws:events:eu-west-1:000000000000:rule/sweep"], "detail": {}
        });
        let summary = tradeflow_lambda::invoke(&service, scheduled, Deadline::none())
            .await
            .unwrap();
        assert_eq!(
            summary,
            serde_json::json!({"found": 1, "abandoned": 1, "left": 0, "errors": 0})
        );
        let rec = executions
            .get_execution(&dead.execution_id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(rec.status, ExecutionStatus::Failed);
        assert_eq!(rec.decision.as_deref(), Some("abandoned"));
        assert!(leases.get(&dead.pipeline_id, &dead.ticker).is_none());

        // The same service still runs SQS batches (a duplicate of the ended run: nothing runs).
        let batch = serde_json::json!({"Records": [{"messageId": "m1", "body": request()}]});
        let resp = tradeflow_lambda::invoke(&service, batch, Deadline::none())
            .await
            .unwrap();
        assert_eq!(resp, serde_json::json!({"batchItemFailures": []}));
        assert!(orders.all().is_empty());
    }

    /// The executor's part of the bad-input catalogue (RELIABILITY.md), one batch: each bad
    /// body is rejected alone (`invalid_request`, DLQ after maxReceiveCount); a request for a
    /// deleted or a deactivated pipeline is acknowledged as SKIPPED with its reason and releases
    /// its lease; one from another user FAILS; the good request still runs.
    #[tokio::test]
    async fn bad_requests_fail_alone_and_requests_for_gone_pipelines_are_skipped() {
        use tradeflow_core::execution::{ExecutionRequest, ExecutionStatus};
        use tradeflow_core::ports::Lease;
        use tradeflow_core::vocab::Ticker;

        let active = fixtures::pipeline("p1", "u1", &["AAPL"], serde_json::json!([]));
        let mut inactive = fixtures::pipeline("p-off", "u1", &["AAPL"], serde_json::json!([]));
        inactive.is_active = false;
        let orders = Arc::new(MemoryOrderStore::default());
        let executions = Arc::new(MemoryExecutionStore::default());
        let leases = Arc::new(MemoryLeaseStore::default());
        let executor = Executor::new(
            Arc::new(MemoryPipelineStore::with([active, inactive])),
            executions.clone(),
            leases.clone(),
            Arc::new(MemoryRunLedger::new(
                executions.clone(),
                orders.clone(),
                leases.clone(),
            )),
            BuiltinSteps::new(
                Arc::new(SyntheticFeed { seed: 3 }),
                orders.clone(),
                Timeframe::M5,
            ),
            Arc::new(ManualClock::at(1_750_000_010)),
        );
        let h = Handler::new(executor, &Telemetry::init(FUNCTION_NAME));
        let request_for = |pipeline: &str, user: &str| {
            let mut r = fixtures::request(pipeline, "s1", 1_750_000_000);
            r.user_id = user.into();
            r
        };
        let aapl = Ticker::parse("AAPL").unwrap();
        for (pipeline, r) in [
            ("p-gone", request_for("p-gone", "u1")),
            ("p-off", request_for("p-off", "u1")),
        ] {
            leases.insert(
                Lease {
                    pipeline_id: pipeline.into(),
                    ticker: aapl.clone(),
                    execution_id: r.execution_id.clone(),
                    expires_at: 1_750_000_720,
                },
                true,
            );
        }
        let edit = |f: &dyn Fn(&mut serde_json::Value)| {
            let mut v = serde_json::to_value(request_for("p1", "u1")).unwrap();
            f(&mut v);
            v.to_string()
        };
        let bad: Vec<(&str, String)> = vec![
            ("not json", "not json".into()),
            ("array", "[]".into()),
            ("empty object", "{}".into()),
            (
                "nested",
                format!("{}{}", "[".repeat(10_000), "]".repeat(10_000)),
            ),
            ("empty ids", edit(&|v| v["user_id"] = "".into())),
            (
                "forged id",
                edit(&|v| v["execution_id"] = "exe-other".into()),
            ),
            ("ticker type", edit(&|v| v["ticker"] = 7.into())),
            ("bad ticker", edit(&|v| v["ticker"] = "ÄAPL".into())),
            (
                "no signal",
                edit(&|v| {
                    v.as_object_mut().unwrap().remove("signal_context");
                }),
            ),
            (
                "NaN",
                edit(&|v| v["signal_context"]["confidence"] = 12.5.into()).replace("12.5", "NaN"),
            ),
            (
                "timestamp type",
                edit(&|v| v["signal_context"]["timestamp"] = "yesterday".into()),
            ),
            (
                "bad timeframe",
                edit(&|v| v["signal_context"]["metadata"]["timeframe"] = "7".into()),
            ),
            ("overflow", edit(&|v| v["lease_expires_at"] = 1e30.into())),
        ];
        let mut records = vec![record("good", Some(request_for("p1", "u1").to_json()))];
        for (name, body) in &bad {
            records.push(record(name, Some(body.clone())));
        }
        for name in ["p-gone", "p-off"] {
            records.push(record(name, Some(request_for(name, "u1").to_json())));
        }
        // Another user's request for p1 (another signal: the same one would be a duplicate).
        let mut other_user = fixtures::request("p1", "s2", 1_750_000_000);
        other_user.user_id = "u2".into();
        records.push(record("other-user", Some(other_user.to_json())));
        let mut event = SqsEvent::default();
        event.records = records;
        let resp = h.handle(event, Deadline::none()).await.unwrap();
        let failed: Vec<_> = resp
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.clone())
            .collect();
        let expected: Vec<_> = bad.iter().map(|(n, _)| (*n).to_owned()).collect();
        assert_eq!(failed, expected, "every bad body fails alone");
        for (name, body) in &bad {
            assert!(ExecutionRequest::parse(body).is_err(), "{name}");
        }

        let by_pipeline = |id: &str| {
            executions
                .all()
                .into_iter()
                .find(|r| r.pipeline_id == id)
                .unwrap()
        };
        let good = by_pipeline("p1");
        assert_eq!(good.status, ExecutionStatus::Completed);
        assert_eq!(orders.all().len(), 1, "the good request ran");
        for (id, decision) in [
            ("p-gone", "pipeline_missing"),
            ("p-off", "pipeline_inactive"),
        ] {
            let r = by_pipeline(id);
            assert_eq!(r.status, ExecutionStatus::Skipped, "{id}");
            assert_eq!(r.decision.as_deref(), Some(decision), "{id}");
            assert!(leases.get(id, &aapl).is_none(), "{id}: lease released");
        }
        let mismatch = executions
            .all()
            .into_iter()
            .find(|r| r.user_id == "u2")
            .unwrap();
        assert_eq!(mismatch.status, ExecutionStatus::Failed);
        assert_eq!(
            mismatch.decision.as_deref(),
            Some("pipeline_owner_mismatch")
        );
    }

    mod properties {
        use proptest::prelude::*;
        use tradeflow_core::execution::ExecutionRequest;
        use tradeflow_core::fakes::fixtures;

        fn json() -> impl Strategy<Value = serde_json::Value> {
            let leaf = prop_oneof![
                Just(serde_json::Value::Null),
                any::<bool>().prop_map(serde_json::Value::from),
                any::<i64>().prop_map(serde_json::Value::from),
                any::<f64>().prop_map(serde_json::Value::from),
                ".{0,12}".prop_map(serde_json::Value::from),
            ];
            leaf.prop_recursive(3, 24, 5, |inner| {
                prop_oneof![
                    prop::collection::vec(inner.clone(), 0..5).prop_map(serde_json::Value::from),
                    prop::collection::btree_map("[a-z_]{0,10}", inner, 0..5)
                        .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
                ]
            })
        }

        /// Paths of a request's fields, to replace one with arbitrary JSON.
        const FIELDS: [&[&str]; 12] = [
            &["execution_id"],
            &["pipeline_id"],
            &["user_id"],
            &["ticker"],
            &["lease_expires_at"],
            &["enqueued_at_ms"],
            &["signal_context", "signal_id"],
            &["signal_context", "timestamp"],
            &["signal_context", "tickers"],
            &["signal_context", "confidence"],
            &["signal_context", "signal"],
            &["signal_context", "metadata"],
        ];

        proptest! {
            #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

            #[test]
            fn arbitrary_bodies_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
                let _ = ExecutionRequest::parse(&String::from_utf8_lossy(&bytes));
            }

            #[test]
            fn a_request_with_one_arbitrary_field_is_ok_or_rejected(
                field in 0..FIELDS.len(),
                value in json(),
                pipeline in "[a-z0-9-]{1,20}",
                signal in "[a-z0-9-]{1,40}",
                time in 946_684_800i64..253_402_300_799,
            ) {
                let good = fixtures::request(&pipeline, &signal, time);
                // Valid requests round-trip.
                prop_assert_eq!(ExecutionRequest::parse(&good.to_json()).unwrap(), good.clone());
                let mut v = serde_json::to_value(&good).unwrap();
                let path = FIELDS[field];
                let mut slot = &mut v;
                for key in &path[..path.len() - 1] {
                    slot = &mut slot[*key];
                }
                slot[path[path.len() - 1]] = value;
                if let Ok(parsed) = ExecutionRequest::parse(&v.to_string()) {
                    prop_assert_eq!(ExecutionRequest::parse(&parsed.to_json()).unwrap(), parsed);
                }
            }
        }
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
        assert_eq!(c.max_receive_count, None);
    }

    #[test]
    fn config_reads_the_queues_max_receive_count() {
        let mut env = HashMap::from([
            ("PIPELINES_TABLE", "p"),
            ("EXECUTIONS_TABLE", "e"),
            ("LEASES_TABLE", "l"),
            ("ORDERS_TABLE", "o"),
            ("MAX_RECEIVE_COUNT", "5"),
        ]);
        let c = Config::from_lookup(|k| env.get(k).map(|v| (*v).to_owned())).unwrap();
        assert_eq!(c.max_receive_count, Some(5));
        for bad in ["0", "1001", "five", "-1"] {
            env.insert("MAX_RECEIVE_COUNT", bad);
            let err = Config::from_lookup(|k| env.get(k).map(|v| (*v).to_owned())).unwrap_err();
            assert!(
                err.problems[0].starts_with("MAX_RECEIVE_COUNT="),
                "{bad}: {:?}",
                err.problems
            );
        }
    }
}
