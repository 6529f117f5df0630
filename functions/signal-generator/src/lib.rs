//! signal-generator: on each scheduled event, scan every (ticker, timeframe) stream and publish
//! the new signals to the signals topic (`SIGNALS_TOPIC_ARN`), which delivers them to the
//! signals queue; without a topic, straight to the signals queue (`SIGNALS_QUEUE_URL`).
//!
//! The scan logic is [`tradeflow_core::generate`], everything around an invocation is
//! [`tradeflow_lambda`]'s; this crate maps the scheduled event (its `time` is the scan's "now"),
//! turns the scan report into logs and metrics, and reads the DLQ depths.

use std::sync::Arc;
use std::time::Instant;

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use serde::Serialize;
use tradeflow_core::detectors::detectors_from_json;
use tradeflow_core::generate::{Generator, GeneratorConfig, ScanReport};
use tradeflow_core::ports::{QueueDepth, QueueSender};
use tradeflow_core::signal::{MAX_FUTURE_SECS, MIN_TIMESTAMP};
use tradeflow_core::vocab::{Ticker, Timeframe};
use tradeflow_lambda::{ConfigError, Deadline, Function, MarketSource, Settings};
use tradeflow_telemetry::{GeneratorMetrics, TRIGGER_TIMER, Telemetry};

pub const FUNCTION_NAME: &str = "signal-generator";

#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// URL or name of the signals queue: where signals go when there is no topic, and whose
    /// depth is published either way.
    pub signals_queue: String,
    /// ARN of the signals topic (`SIGNALS_TOPIC_ARN`, optional): when set, signals are
    /// published there (the topic delivers them to the signals queue and to any other
    /// subscriber, such as `tradeflow signals tail`) instead of sent to the queue.
    pub signals_topic: Option<String>,
    pub cursors_table: String,
    pub market: MarketSource,
    pub tickers: Vec<Ticker>,
    pub timeframes: Vec<Timeframe>,
    pub backfill_bars: usize,
    pub max_bars_per_scan: usize,
    /// Per-family parameter overrides, JSON (`GENERATOR_FAMILY_PARAMS`, e.g.
    /// `{"rsi": {"period": 21}}`; empty: every family's defaults). See
    /// docs/generator-families.md.
    pub family_params: String,
    /// DLQs whose depth is published as a gauge on every scan: (label, URL or name).
    pub dlqs: Vec<(&'static str, String)>,
    /// Source queues whose depth is published as `queue_depth` on every scan: the signals queue
    /// and, when `EXECUTIONS_QUEUE_URL` is set, the executions queue.
    pub queues: Vec<(&'static str, String)>,
}

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let mut s = Settings::new(lookup);
        let mut dlqs = Vec::new();
        if let Some(url) = s.optional("SIGNALS_DLQ_URL") {
            dlqs.push(("signals", url));
        }
        if let Some(url) = s.optional("EXECUTIONS_DLQ_URL") {
            dlqs.push(("executions", url));
        }
        let signals_topic = s.optional("SIGNALS_TOPIC_ARN");
        let signals_queue = s.required("SIGNALS_QUEUE_URL");
        let mut queues = vec![("signals", signals_queue.clone())];
        if let Some(url) = s.optional("EXECUTIONS_QUEUE_URL") {
            queues.push(("executions", url));
        }
        let config = Config {
            signals_queue,
            signals_topic,
            cursors_table: s.required("CURSORS_TABLE"),
            market: MarketSource::from_settings(&mut s),
            tickers: s.list(
                "GENERATOR_TICKERS",
                "AAPL,MSFT,NVDA,TSLA,SPY",
                Ticker::parse,
            ),
            timeframes: s.list("GENERATOR_TIMEFRAMES", "5,60", Timeframe::parse),
            backfill_bars: s.parsed("GENERATOR_BACKFILL_BARS", 1usize, str::parse::<usize>),
            max_bars_per_scan: s.parsed(
                "GENERATOR_MAX_BARS_PER_SCAN",
                500usize,
                str::parse::<usize>,
            ),
            family_params: s.or("GENERATOR_FAMILY_PARAMS", ""),
            dlqs,
            queues,
        };
        if let Err(e) = detectors_from_json(&config.family_params) {
            s.problem(format!("GENERATOR_FAMILY_PARAMS: {e}"));
        }
        s.finish(config)
    }
}

/// Where the generator sends its signals: the topic when one is configured, else the queue.
fn signal_sender(
    sdk: &aws_config::SdkConfig,
    topic_arn: Option<&str>,
    sqs: aws_sdk_sqs::Client,
    queue_url: String,
) -> Arc<dyn QueueSender> {
    match topic_arn {
        Some(arn) => Arc::new(tradeflow_aws::SnsTopic::new(
            tradeflow_aws::aws_sdk_sns::Client::new(sdk),
            arn,
        )),
        None => Arc::new(tradeflow_aws::SqsQueue::new(sqs, queue_url)),
    }
}

/// What an invocation returns (and logs).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScanSummary {
    pub now: i64,
    pub streams: usize,
    pub candles_evaluated: usize,
    pub signals_sent: usize,
    pub signals_undelivered: usize,
    pub stream_errors: usize,
    pub duration_ms: f64,
}

#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    #[error("{0} signals could not be sent; the next scan sends them again with the same ids")]
    Undelivered(usize),
    #[error("every one of {0} streams failed to scan")]
    AllStreamsFailed(usize),
    /// The scheduled event's `time` is not a time to scan at: before 2000-01-01, or more than
    /// a day after the function's clock (its signals would all be refused by the dispatcher,
    /// and the cursors would move past candles that have not happened yet).
    #[error(
        "scheduled event time {time} is outside {MIN_TIMESTAMP}..={max} (2000-01-01 to one day \
         after the clock {now}); nothing was scanned"
    )]
    InvalidEventTime { time: i64, now: i64, max: i64 },
}

impl ScanError {
    /// The `reason` label of the log line of an event refused before scanning.
    pub const INVALID_EVENT_TIME: &'static str = "invalid_event_time";
}

/// The scan's "now" from a scheduled event: its `time`, or `clock_now` when it has none
/// (Unix seconds). A time before [`MIN_TIMESTAMP`] or more than [`MAX_FUTURE_SECS`] after
/// `clock_now` is refused: the signals it would send are outside what the dispatcher accepts.
pub fn scan_time(
    event: &EventBridgeEvent<serde_json::Value>,
    clock_now: i64,
) -> Result<i64, ScanError> {
    let time = event.time.map_or(clock_now, |t| t.timestamp());
    let max = clock_now.saturating_add(MAX_FUTURE_SECS);
    if (MIN_TIMESTAMP..=max).contains(&time) {
        Ok(time)
    } else {
        Err(ScanError::InvalidEventTime {
            time,
            now: clock_now,
            max,
        })
    }
}

pub struct Handler {
    generator: Generator,
    dlqs: Vec<(&'static str, Arc<dyn QueueDepth>)>,
    queues: Vec<(&'static str, Arc<dyn QueueDepth>)>,
    metrics: GeneratorMetrics,
}

impl Handler {
    /// The handler around `generator`, which opens a span per signal sent when `telemetry`
    /// traces (`signal <type>`, its context sent with the signal).
    pub fn new(
        generator: Generator,
        dlqs: Vec<(&'static str, Arc<dyn QueueDepth>)>,
        telemetry: &Telemetry,
    ) -> Self {
        Handler {
            generator: generator.with_tracer(Arc::new(telemetry.traces())),
            dlqs,
            queues: Vec::new(),
            metrics: GeneratorMetrics::new(&telemetry.meter()),
        }
    }

    /// Also publishes the depth of these source queues (`queue_depth`) after every scan.
    pub fn with_queue_depths(mut self, queues: Vec<(&'static str, Arc<dyn QueueDepth>)>) -> Self {
        self.queues = queues;
        self
    }

    pub async fn from_aws(
        sdk: &aws_config::SdkConfig,
        config: &Config,
        telemetry: &Telemetry,
    ) -> Result<Self, lambda_runtime::Error> {
        let dynamo = aws_sdk_dynamodb::Client::new(sdk);
        let sqs = aws_sdk_sqs::Client::new(sdk);
        let signals_url = tradeflow_aws::resolve_queue_url(&sqs, &config.signals_queue).await?;
        let mut dlqs: Vec<(&'static str, Arc<dyn QueueDepth>)> = Vec::new();
        for (label, queue) in &config.dlqs {
            let url = tradeflow_aws::resolve_queue_url(&sqs, queue).await?;
            dlqs.push((
                label,
                Arc::new(tradeflow_aws::SqsQueue::new(sqs.clone(), url)),
            ));
        }
        let mut queues: Vec<(&'static str, Arc<dyn QueueDepth>)> = Vec::new();
        for (label, queue) in &config.queues {
            let url = tradeflow_aws::resolve_queue_url(&sqs, queue).await?;
            queues.push((
                label,
                Arc::new(tradeflow_aws::SqsQueue::new(sqs.clone(), url)),
            ));
        }
        let generator = Generator::new(
            market_source(&config.market, sdk)?,
            Arc::new(tradeflow_aws::DynamoCursorStore::new(
                dynamo,
                config.cursors_table.clone(),
            )),
            signal_sender(sdk, config.signals_topic.as_deref(), sqs, signals_url),
            detectors_from_json(&config.family_params)?,
            GeneratorConfig {
                tickers: config.tickers.clone(),
                timeframes: config.timeframes.clone(),
                backfill_bars: config.backfill_bars,
                max_bars_per_scan: config.max_bars_per_scan,
                ..GeneratorConfig::default()
            },
        );
        Ok(Handler::new(generator, dlqs, telemetry).with_queue_depths(queues))
    }

    /// Scans as of `now` (Unix seconds); the invocation has to be done by `deadline`.
    pub async fn scan(&self, now: i64, deadline: Deadline) -> Result<ScanSummary, ScanError> {
        let started = Instant::now();
        let report = self.generator.scan(now, deadline).await;
        let elapsed = started.elapsed();
        self.metrics.record_scan(&report, elapsed);
        let summary = ScanSummary {
            now,
            streams: report.streams,
            candles_evaluated: report.candles_evaluated,
            signals_sent: report.sent.len(),
            signals_undelivered: report.undelivered.len(),
            stream_errors: report.errors.len(),
            duration_ms: elapsed.as_secs_f64() * 1000.0,
        };
        log_report(&report, &summary);
        if !report.undelivered.is_empty() {
            return Err(ScanError::Undelivered(report.undelivered.len()));
        }
        if report.streams > 0 && report.errors.len() >= report.streams {
            return Err(ScanError::AllStreamsFailed(report.streams));
        }
        Ok(summary)
    }

    async fn record_queue_depths(&self) {
        for (label, queue) in &self.dlqs {
            match queue.approximate_depth().await {
                Ok(depth) => self.metrics.record_dlq_depth(label, depth),
                Err(e) => {
                    tracing::warn!(queue = *label, error = %tradeflow_core::error::error_chain(&e), "could not read DLQ depth")
                }
            }
        }
        for (label, queue) in &self.queues {
            match queue.approximate_depth().await {
                Ok(depth) => self.metrics.record_queue_depth(label, depth),
                Err(e) => {
                    tracing::warn!(queue = *label, error = %tradeflow_core::error::error_chain(&e), "could not read queue depth")
                }
            }
        }
    }
}

impl Function for Handler {
    const NAME: &'static str = FUNCTION_NAME;
    const TRIGGER: &'static str = TRIGGER_TIMER;
    type Event = EventBridgeEvent<serde_json::Value>;
    type Response = ScanSummary;
    type Error = ScanError;

    /// One scheduled scan; the event's `time` is the scan's "now" ([`scan_time`]: an event time
    /// out of range is refused before anything is scanned). The DLQ and source-queue depths are read after the
    /// scan, whatever its outcome.
    async fn handle(
        &self,
        event: EventBridgeEvent<serde_json::Value>,
        deadline: Deadline,
    ) -> Result<ScanSummary, ScanError> {
        let now = scan_time(&event, chrono::Utc::now().timestamp()).inspect_err(|e| {
            tracing::warn!(reason = ScanError::INVALID_EVENT_TIME, detail = %e, "scheduled event refused");
        })?;
        let result = self.scan(now, deadline).await;
        self.record_queue_depths().await;
        result
    }
}

fn log_report(report: &ScanReport, summary: &ScanSummary) {
    for s in &report.sent {
        tracing::info!(
            signal_id = %s.signal_id,
            signal_type = %s.signal_type,
            source = %s.source,
            ticker = %s.tickers.first().map(|t| t.ticker.as_str()).unwrap_or(""),
            timeframe = s.timeframe().map(|t| t.as_str()).unwrap_or(""),
            timestamp = s.timestamp,
            "signal sent"
        );
    }
    for (s, reason) in &report.undelivered {
        tracing::warn!(signal_id = %s.signal_id, reason = %reason, "signal not sent; the stream's cursor stays put");
    }
    for e in &report.errors {
        tracing::warn!(stream = %e.stream, error_type = e.error_type, retryable = e.retryable, detail = %e.reason, "stream scan failed");
    }
    tracing::info!(
        now = summary.now,
        streams = summary.streams,
        candles = summary.candles_evaluated,
        sent = summary.signals_sent,
        undelivered = summary.signals_undelivered,
        errors = summary.stream_errors,
        cursor_conflicts = report.cursor_conflicts,
        duration_ms = summary.duration_ms,
        "scan finished"
    );
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
    use std::collections::HashMap;
    use tradeflow_core::detectors::all_detectors;
    use tradeflow_core::fakes::{MemoryCursorStore, MemoryQueue};
    use tradeflow_core::market::SyntheticFeed;

    fn handler(queue: Arc<MemoryQueue>) -> Handler {
        let generator = Generator::new(
            Arc::new(SyntheticFeed { seed: 5 }),
            Arc::new(MemoryCursorStore::default()),
            queue,
            all_detectors(),
            GeneratorConfig {
                tickers: vec![Ticker::parse("AAPL").unwrap()],
                timeframes: vec![Timeframe::M5],
                backfill_bars: 200,
                ..GeneratorConfig::default()
            },
        );
        Handler::new(generator, Vec::new(), &Telemetry::init(FUNCTION_NAME))
    }

    fn scheduled(time: i64) -> EventBridgeEvent<serde_json::Value> {
        let mut e: EventBridgeEvent<serde_json::Value> = serde_json::from_value(serde_json::json!({
            "version": "0", "id": "x", "detail-type": "Scheduled Event", "source": "aws.events",
            "account": "1", "time": "2025-06-15T15:06:40Z", "region": "us-east-1", "resources": [], "detail": {}
        }))
        .unwrap();
        e.time = chrono::DateTime::from_timestamp(time, 0);
        e
    }

    #[tokio::test]
    async fn a_scheduled_event_scans_as_of_its_time() {
        let queue = Arc::new(MemoryQueue::default());
        let h = handler(queue.clone());
        let summary = h
            .handle(scheduled(1_750_000_000), Deadline::none())
            .await
            .unwrap();
        assert_eq!(
            (summary.now, summary.streams, summary.candles_evaluated),
            (1_750_000_000, 1, 200)
        );
        assert_eq!(summary.signals_sent, queue.bodies().len());
        assert!(summary.signals_sent > 0);
        let again = h
            .handle(scheduled(1_750_000_000), Deadline::none())
            .await
            .unwrap();
        assert_eq!(again.signals_sent, 0);
    }

    #[tokio::test]
    async fn undelivered_signals_fail_the_invocation() {
        let queue = Arc::new(MemoryQueue::default());
        queue.fail_calls(1_000);
        let h = handler(queue);
        let err = h
            .handle(scheduled(1_750_000_000), Deadline::none())
            .await
            .unwrap_err();
        assert!(err.to_string().contains("could not be sent"), "{err}");
    }

    #[test]
    fn config_defaults_and_errors() {
        let env = HashMap::from([
            ("SIGNALS_QUEUE_URL", "q"),
            ("CURSORS_TABLE", "c"),
            ("SIGNALS_DLQ_URL", "d"),
        ]);
        let c = Config::from_lookup(|k| env.get(k).map(|v| (*v).to_owned())).unwrap();
        assert_eq!(c.tickers.len(), 5);
        assert_eq!(c.timeframes, vec![Timeframe::M5, Timeframe::H1]);
        assert_eq!(c.dlqs, vec![("signals", "d".to_owned())]);
        assert_eq!(c.queues, vec![("signals", "q".to_owned())]);
        assert_eq!(c.signals_topic, None, "no topic: signals go to the queue");
        assert_eq!(c.family_params, "");
        let topic = HashMap::from([
            ("SIGNALS_TOPIC_ARN", "arn:aws:sns:us-east-1:1:t"),
            ("SIGNALS_QUEUE_URL", "q"),
            ("CURSORS_TABLE", "c"),
        ]);
        let c = Config::from_lookup(|k| topic.get(k).map(|v| (*v).to_owned())).unwrap();
        assert_eq!(
            c.signals_topic.as_deref(),
            Some("arn:aws:sns:us-east-1:1:t")
        );
        // The queue stays required with a topic: its depth is published either way.
        assert_eq!(c.queues, vec![("signals", "q".to_owned())]);
        let tuned = HashMap::from([
            ("SIGNALS_QUEUE_URL", "q"),
            ("CURSORS_TABLE", "c"),
            ("GENERATOR_FAMILY_PARAMS", r#"{"rsi": {"period": 21}}"#),
        ]);
        let c = Config::from_lookup(|k| tuned.get(k).map(|v| (*v).to_owned())).unwrap();
        assert_eq!(c.family_params, r#"{"rsi": {"period": 21}}"#);
        let both = HashMap::from([
            ("SIGNALS_QUEUE_URL", "q"),
            ("CURSORS_TABLE", "c"),
            ("EXECUTIONS_QUEUE_URL", "e"),
        ]);
        let c = Config::from_lookup(|k| both.get(k).map(|v| (*v).to_owned())).unwrap();
        assert_eq!(
            c.queues,
            vec![("signals", "q".to_owned()), ("executions", "e".to_owned())]
        );
        let bad = HashMap::from([
            ("GENERATOR_TIMEFRAMES", "5,7"),
            ("GENERATOR_TICKERS", "aapl, BAD TICKER"),
            ("GENERATOR_FAMILY_PARAMS", r#"{"rsi": {"perod": 21}}"#),
        ]);
        let err = Config::from_lookup(|k| bad.get(k).map(|v| (*v).to_owned())).unwrap_err();
        let text = err.to_string();
        for needle in [
            "SIGNALS_QUEUE_URL",
            "CURSORS_TABLE",
            "\"7\"",
            "BAD TICKER",
            "GENERATOR_FAMILY_PARAMS",
            "perod",
        ] {
            assert!(text.contains(needle), "{text} should mention {needle}");
        }
    }

    /// The scheduled-event part of the bad-input catalogue (RELIABILITY.md): times far in the
    /// past or the future are refused before anything is scanned or sent; an event without a
    /// time scans at the clock; an event that does not decode never reaches the handler
    /// (the runtime reports the decoding error).
    #[tokio::test]
    async fn scheduled_events_with_times_out_of_range_are_refused_before_scanning() {
        let queue = Arc::new(MemoryQueue::default());
        let h = handler(queue.clone());
        let clock = chrono::Utc::now().timestamp();
        for time in [
            0,
            MIN_TIMESTAMP - 1,
            clock + MAX_FUTURE_SECS + 60,
            253_402_300_799,
        ] {
            let err = h
                .handle(scheduled(time), Deadline::none())
                .await
                .unwrap_err();
            assert!(
                matches!(err, ScanError::InvalidEventTime { .. }),
                "{time}: {err}"
            );
            assert!(err.to_string().contains(&time.to_string()), "{err}");
        }
        assert!(queue.bodies().is_empty(), "nothing was sent");
        let mut no_time = scheduled(0);
        no_time.time = None;
        assert_eq!(scan_time(&no_time, 1_750_000_000).unwrap(), 1_750_000_000);
        assert_eq!(
            scan_time(&scheduled(1_750_000_000), 1_750_000_000 - MAX_FUTURE_SECS).unwrap(),
            1_750_000_000
        );
        for bad in [
            serde_json::json!({"time": "yesterday"}),
            serde_json::json!({"time": 1_750_000_000}),
            serde_json::json!({"time": "+999999-01-01T00:00:00Z"}),
            serde_json::json!([]),
        ] {
            assert!(
                serde_json::from_value::<EventBridgeEvent<serde_json::Value>>(bad.clone()).is_err(),
                "{bad}"
            );
        }
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        fn time() -> impl Strategy<Value = serde_json::Value> {
            prop_oneof![
                (-100_000i64..300_000_000_000).prop_map(|t| {
                    chrono::DateTime::from_timestamp(t, 0)
                        .map_or(serde_json::Value::Null, |d| d.to_rfc3339().into())
                }),
                "[0-9T:Z+-]{0,30}".prop_map(serde_json::Value::from),
                any::<i64>().prop_map(serde_json::Value::from),
                Just(serde_json::Value::Null),
            ]
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

            /// What the runtime decodes, `scan_time` takes or refuses; never a panic, and an
            /// accepted time is within the bounds.
            #[test]
            fn any_scheduled_event_decodes_or_is_refused(
                time in time(),
                detail in prop_oneof![Just(serde_json::json!({})), any::<i64>().prop_map(serde_json::Value::from)],
                clock in 0i64..300_000_000_000,
            ) {
                let event = serde_json::json!({
                    "version": "0", "id": "x", "detail-type": "Scheduled Event",
                    "source": "aws.events", "account": "1", "time": time,
                    "region": "us-east-1", "resources": [], "detail": detail
                });
                if let Ok(e) = serde_json::from_value::<EventBridgeEvent<serde_json::Value>>(event) {
                    if let Ok(now) = scan_time(&e, clock) {
                        prop_assert!(now >= MIN_TIMESTAMP && now <= clock + MAX_FUTURE_SECS);
                    }
                }
            }

            #[test]
            fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
                if let Ok(e) = serde_json::from_slice::<EventBridgeEvent<serde_json::Value>>(&bytes) {
                    let _ = scan_time(&e, 1_750_000_000);
                }
            }
        }
    }
}
