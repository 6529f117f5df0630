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
use tradeflow_telemetry::traces::end_dispatch_spans;
use tradeflow_telemetry::{DispatcherMetrics, TRIGGER_PUBSUB, Telemetry, Traces};

pub const FUNCTION_NAME: &str = "trigger-dispatcher";

/// Settings from the environment (see `infra/template.yaml`).
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub pipelines_table: String,
    pub leases_table: String,
    /// URL or name of the executions queue (a name is resolved at start-up).
    pub executions_queue: String,
    pub pipeline_cache_ttl: Duration,
    /// `LEGACY_EXECUTION_IDS_BEFORE` (Unix seconds, default 0): signals stamped before it keep
    /// the legacy execution ids (see `DispatcherConfig::legacy_execution_ids_before`).
    pub legacy_execution_ids_before: i64,
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
            legacy_execution_ids_before: s.parsed(
                "LEGACY_EXECUTION_IDS_BEFORE",
                0i64,
                str::parse::<i64>,
            ),
        };
        s.finish(config)
    }
}

pub struct Handler {
    dispatcher: Dispatcher,
    metrics: DispatcherMetrics,
    traces: Traces,
}

impl Handler {
    pub fn new(dispatcher: Dispatcher, telemetry: &Telemetry) -> Self {
        Handler {
            dispatcher,
            metrics: DispatcherMetrics::new(&telemetry.meter()),
            traces: telemetry.traces(),
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
                legacy_execution_ids_before: config.legacy_execution_ids_before,
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
    /// is deleted from the queue. When tracing, each signal message gets a `dispatch` span under
    /// the signal's context, and the requests it fans out to carry that span's context.
    async fn handle(
        &self,
        event: SqsEvent,
        deadline: Deadline,
    ) -> Result<SqsBatchResponse, BatchError> {
        let started = Instant::now();
        process_batch(
            event,
            |mut messages| async move {
                let spans = self.traces.start_for_messages("dispatch", &mut messages);
                let report = self.dispatcher.dispatch(&messages, deadline).await;
                end_dispatch_spans(spans, &messages, &report);
                report
            },
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
            Arc::new(ManualClock::at(NOW)),
            DispatcherConfig::default(),
        );
        (
            Handler::new(dispatcher, &Telemetry::init(FUNCTION_NAME)),
            queue,
        )
    }

    /// The dispatcher's clock in these tests.
    const NOW: i64 = 1_750_000_000;

    const SIGNAL: &str = r#"{"signal_id":"s1","signal_type":"rsi_oversold","source":"t","timestamp":1749999900,
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

    /// `messages_rejected_total` by reason, read back from an in-memory exporter.
    fn rejected_by_reason(
        exporter: &opentelemetry_sdk::metrics::InMemoryMetricExporter,
    ) -> HashMap<String, u64> {
        use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData};
        let mut counts = HashMap::new();
        let exported = exporter.get_finished_metrics().unwrap();
        let Some(last) = exported.last() else {
            return counts;
        };
        for scope in last.scope_metrics() {
            for metric in scope.metrics() {
                if metric.name() != "messages_rejected_total" {
                    continue;
                }
                if let AggregatedMetrics::U64(MetricData::Sum(sum)) = metric.data() {
                    for point in sum.data_points() {
                        let reason = point
                            .attributes()
                            .find(|kv| kv.key.as_str() == "reason")
                            .map(|kv| kv.value.to_string())
                            .unwrap();
                        counts.insert(reason, point.value());
                    }
                }
            }
        }
        counts
    }

    #[tokio::test]
    async fn each_bad_body_is_rejected_alone_with_its_own_reason() {
        let exporter = opentelemetry_sdk::metrics::InMemoryMetricExporter::default();
        let provider = opentelemetry_sdk::metrics::SdkMeterProvider::builder()
            .with_reader(
                opentelemetry_sdk::metrics::PeriodicReader::builder(exporter.clone()).build(),
            )
            .build();
        let queue = Arc::new(MemoryQueue::default());
        let pipeline = serde_json::from_value(serde_json::json!({
            "pipeline_id": "p1", "user_id": "u1", "name": "p1", "is_active": true,
            "trigger_mode": "signal", "tickers": ["AAPL"], "signal_subscriptions": []
        }))
        .unwrap();
        let h = Handler::new(
            Dispatcher::new(
                Arc::new(MemoryPipelineStore::with([pipeline])),
                Arc::new(MemoryLeaseStore::default()),
                queue.clone(),
                Arc::new(ManualClock::at(NOW)),
                DispatcherConfig::default(),
            ),
            &Telemetry::from_provider(provider.clone(), Duration::from_secs(5)),
        );
        let signal = |edit: &dyn Fn(&mut serde_json::Value)| {
            let mut v: serde_json::Value = serde_json::from_str(SIGNAL).unwrap();
            edit(&mut v);
            v.to_string()
        };
        let cases: Vec<(&str, String)> = vec![
            ("malformed_json", "{\"signal_id\": ".into()),
            ("not_an_object", "[1, 2]".into()),
            (
                "missing_field",
                signal(&|v| {
                    v.as_object_mut().unwrap().remove("tickers");
                }),
            ),
            (
                "invalid_confidence",
                signal(&|v| v["tickers"][0]["confidence"] = 101.into()),
            ),
            (
                "duplicate_ticker",
                signal(&|v| {
                    let t = v["tickers"][0].clone();
                    v["tickers"].as_array_mut().unwrap().push(t);
                }),
            ),
            (
                "unknown_timeframe",
                signal(&|v| v["metadata"]["timeframe"] = "7".into()),
            ),
            (
                "invalid_ticker",
                signal(&|v| v["tickers"][0]["ticker"] = "MS FT".into()),
            ),
            (
                "invalid_direction",
                signal(&|v| v["tickers"][0]["signal"] = "UP".into()),
            ),
            (
                "invalid_signal_type",
                signal(&|v| v["signal_type"] = "RSI Oversold".into()),
            ),
            (
                "invalid_timestamp",
                signal(&|v| v["timestamp"] = i64::MAX.into()),
            ),
            (
                "invalid_timestamp",
                signal(&|v| v["timestamp"] = 100.into()),
            ),
            (
                "invalid_timestamp",
                signal(&|v| v["timestamp"] = (NOW + 2 * 86_400).into()),
            ),
            (
                "invalid_timestamp",
                signal(&|v| v["timestamp"] = "yesterday".into()),
            ),
            (
                "metadata_too_large",
                signal(&|v| {
                    v["metadata"]["notes"] = "x".repeat(20_000).into();
                }),
            ),
        ];
        let mut records = vec![record(Some("good"), Some(SIGNAL))];
        for (n, (_, body)) in cases.iter().enumerate() {
            records.push(record(Some(&format!("bad{n}")), Some(body)));
        }
        let resp = h.handle(event(records), Deadline::none()).await.unwrap();
        let failed: Vec<_> = resp
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.clone())
            .collect();
        let expected: Vec<_> = (0..cases.len()).map(|n| format!("bad{n}")).collect();
        assert_eq!(failed, expected, "every bad body fails alone");
        assert_eq!(queue.bodies().len(), 1, "the good signal is dispatched");

        provider.force_flush().unwrap();
        let counts = rejected_by_reason(&exporter);
        let mut want: HashMap<String, u64> = HashMap::new();
        for (label, _) in &cases {
            *want.entry((*label).to_owned()).or_default() += 1;
        }
        for (label, n) in &want {
            assert_eq!(counts.get(label), Some(n), "{label}: {counts:?}");
        }
        // Every other label the code can produce is exported at zero.
        for label in tradeflow_core::signal::SignalError::REASON_LABELS {
            assert!(
                counts.contains_key(label),
                "{label} missing from {counts:?}"
            );
            if !want.contains_key(label) {
                assert_eq!(counts[label], 0, "{label}");
            }
        }
    }

    /// The bad-input catalogue of RELIABILITY.md, one batch: each bad body fails alone with its
    /// label, the good ones (a lowercase ticker, a body at SQS's size limit, thousands of
    /// tickers) are dispatched, and nothing panics — JSON nested 10 000 deep included, in a
    /// debug build on a test thread's 2 MiB stack.
    #[tokio::test]
    async fn the_bad_input_catalogue_fails_alone_and_the_rest_is_dispatched() {
        const SQS_MAX_BODY: usize = 262_144;
        let exporter = opentelemetry_sdk::metrics::InMemoryMetricExporter::default();
        let provider = opentelemetry_sdk::metrics::SdkMeterProvider::builder()
            .with_reader(
                opentelemetry_sdk::metrics::PeriodicReader::builder(exporter.clone()).build(),
            )
            .build();
        let queue = Arc::new(MemoryQueue::default());
        let pipeline = fixtures::pipeline(
            "p1",
            "u1",
            &["AAPL", "MSFT", "NVDA", "TSLA"],
            serde_json::json!([]),
        );
        let h = Handler::new(
            Dispatcher::new(
                Arc::new(MemoryPipelineStore::with([pipeline])),
                Arc::new(MemoryLeaseStore::default()),
                queue.clone(),
                Arc::new(ManualClock::at(NOW)),
                DispatcherConfig::default(),
            ),
            &Telemetry::from_provider(provider.clone(), Duration::from_secs(5)),
        );
        let signal = |edit: &dyn Fn(&mut serde_json::Value)| {
            let mut v: serde_json::Value = serde_json::from_str(SIGNAL).unwrap();
            edit(&mut v);
            v.to_string()
        };
        let deep_array = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        let deep_metadata = SIGNAL.replace(
            r#"{"timeframe":"5"}"#,
            &format!("{}1{}", r#"{"a":"#.repeat(10_000), "}".repeat(10_000)),
        );
        let mut nested17 = serde_json::json!(1);
        for _ in 0..17 {
            nested17 = serde_json::json!([nested17]);
        }
        let cases: Vec<(&str, String)> = vec![
            ("malformed_json", "not json at all".into()),
            ("malformed_json", String::new()),
            ("malformed_json", deep_array),
            ("malformed_json", deep_metadata),
            ("malformed_json", SIGNAL.replace("80", "NaN")),
            ("malformed_json", SIGNAL.replace("80", "1e999")),
            ("not_an_object", r#"[{"signal_id":"s1"}]"#.into()),
            ("not_an_object", "null".into()),
            (
                "missing_field",
                signal(&|v| v["signal_type"] = serde_json::Value::Null),
            ),
            ("invalid_signal_id", signal(&|v| v["signal_id"] = "".into())),
            (
                "invalid_signal_id",
                signal(&|v| v["signal_id"] = "x".repeat(129).into()),
            ),
            ("invalid_source", signal(&|v| v["source"] = 5.into())),
            (
                "invalid_signal_type",
                signal(&|v| v["signal_type"] = "a".repeat(10 * 1024).into()),
            ),
            (
                "invalid_tickers",
                signal(&|v| v["tickers"] = serde_json::json!([])),
            ),
            ("invalid_tickers", signal(&|v| v["tickers"] = "AAPL".into())),
            (
                "invalid_ticker",
                signal(&|v| v["tickers"][0]["ticker"] = "ÄAPL".into()),
            ),
            (
                "invalid_ticker",
                signal(&|v| v["tickers"][0]["ticker"] = "A".repeat(16).into()),
            ),
            (
                "duplicate_ticker",
                signal(&|v| {
                    let mut t = v["tickers"][0].clone();
                    t["ticker"] = " aapl ".into();
                    v["tickers"].as_array_mut().unwrap().push(t);
                }),
            ),
            (
                "invalid_confidence",
                signal(&|v| v["tickers"][0]["confidence"] = "80".into()),
            ),
            (
                "invalid_confidence",
                signal(&|v| v["tickers"][0]["confidence"] = (-0.5).into()),
            ),
            (
                "invalid_confidence",
                signal(&|v| v["tickers"][0]["confidence"] = 0.8e-200.into()),
            ),
            (
                "unknown_timeframe",
                signal(&|v| v["metadata"]["timeframe"] = "1h".into()),
            ),
            ("invalid_timestamp", signal(&|v| v["timestamp"] = 0.into())),
            (
                "invalid_timestamp",
                signal(&|v| v["timestamp"] = 253_402_300_800i64.into()),
            ),
            (
                "invalid_timestamp",
                SIGNAL.replace("1749999900", "99999999999999999999999"),
            ),
            (
                "invalid_timestamp",
                signal(&|v| v["timestamp"] = (-1_749_999_900i64).into()),
            ),
            (
                "invalid_metadata",
                signal(&|v| v["metadata"]["deep"] = nested17.clone()),
            ),
            (
                "invalid_metadata",
                signal(&|v| v["metadata"]["rsi"] = 1e300.into()),
            ),
        ];
        // Accepted: a lowercase ticker, a body of exactly SQS's limit (unknown keys are ignored),
        // and a body near the limit naming thousands of tickers.
        let lowercase = signal(&|v| {
            v["signal_id"] = "s-lower".into();
            v["tickers"][0]["ticker"] = "msft".into();
        });
        let mut at_limit = signal(&|v| {
            v["signal_id"] = "s-limit".into();
            v["tickers"][0]["ticker"] = "NVDA".into();
            v["padding"] = "".into();
        });
        let fill = SQS_MAX_BODY - at_limit.len();
        at_limit = at_limit.replace(
            r#""padding":"""#,
            &format!(r#""padding":"{}""#, "x".repeat(fill)),
        );
        assert_eq!(at_limit.len(), SQS_MAX_BODY);
        let mut many: Vec<serde_json::Value> = vec![serde_json::json!(
            {"ticker": "TSLA", "signal": "BEARISH", "confidence": 90}
        )];
        let with_tickers = |tickers: &[serde_json::Value]| {
            signal(&|v| {
                v["signal_id"] = "s-many".into();
                v["tickers"] = serde_json::Value::from(tickers.to_vec());
            })
        };
        let mut size = with_tickers(&many).len();
        let mut n = 0;
        loop {
            let entry = serde_json::json!({"ticker": format!("T{n}"), "signal": "NEUTRAL", "confidence": 1});
            // The entry and its comma.
            size += entry.to_string().len() + 1;
            if size > SQS_MAX_BODY - 100 {
                break;
            }
            many.push(entry);
            n += 1;
        }
        let many_tickers = with_tickers(&many);
        assert!(many_tickers.len() <= SQS_MAX_BODY, "{}", many_tickers.len());
        assert!(n > 3_000, "{n} tickers");

        let mut records = vec![
            record(Some("good"), Some(SIGNAL)),
            record(Some("lowercase"), Some(&lowercase)),
            record(Some("at-limit"), Some(&at_limit)),
            record(Some("many"), Some(&many_tickers)),
            record(Some("no-body"), None),
        ];
        for (n, (_, body)) in cases.iter().enumerate() {
            records.push(record(Some(&format!("bad{n}")), Some(body)));
        }
        let resp = h.handle(event(records), Deadline::none()).await.unwrap();
        let failed: Vec<_> = resp
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.clone())
            .collect();
        let mut expected: Vec<_> = (0..cases.len()).map(|n| format!("bad{n}")).collect();
        expected.push("no-body".into());
        assert_eq!(failed, expected, "every bad body fails alone");
        let mut dispatched: Vec<String> = queue
            .bodies()
            .iter()
            .map(|b| tradeflow_core::execution::ExecutionRequest::parse(b).unwrap())
            .map(|r| format!("{}:{}", r.signal_context.signal_id, r.ticker))
            .collect();
        dispatched.sort();
        assert_eq!(
            dispatched,
            ["s-limit:NVDA", "s-lower:MSFT", "s-many:TSLA", "s1:AAPL"],
            "the good signals are dispatched"
        );

        provider.force_flush().unwrap();
        let counts = rejected_by_reason(&exporter);
        let mut want: HashMap<String, u64> = HashMap::from([("missing_body".to_owned(), 1)]);
        for (label, _) in &cases {
            *want.entry((*label).to_owned()).or_default() += 1;
        }
        for label in tradeflow_core::signal::SignalError::REASON_LABELS {
            assert_eq!(
                counts.get(label).copied(),
                Some(want.get(label).copied().unwrap_or(0)),
                "{label}: {counts:?}"
            );
        }
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
            ("LEGACY_EXECUTION_IDS_BEFORE", "1765000000"),
        ]);
        let c = Config::from_lookup(|k| env.get(k).map(|v| (*v).to_owned())).unwrap();
        assert_eq!(c.pipeline_cache_ttl, Duration::from_secs(5));
        assert_eq!(c.legacy_execution_ids_before, 1_765_000_000);
        let env = HashMap::from([
            ("PIPELINES_TABLE", "p"),
            ("LEASES_TABLE", "l"),
            ("EXECUTIONS_QUEUE_URL", "q"),
        ]);
        let c = Config::from_lookup(|k| env.get(k).map(|v| (*v).to_owned())).unwrap();
        assert_eq!(c.legacy_execution_ids_before, 0);
        for (var, value) in [
            ("PIPELINE_CACHE_TTL_SECS", "soon"),
            ("LEGACY_EXECUTION_IDS_BEFORE", "tomorrow"),
        ] {
            let bad = HashMap::from([(var, value)]);
            assert!(
                Config::from_lookup(|k| bad.get(k).map(|v| (*v).to_owned()))
                    .unwrap_err()
                    .to_string()
                    .contains(var)
            );
        }
    }
}
