//! signal-generator: on each scheduled event, scan every (ticker, timeframe) stream and send the
//! new signals to the signals queue.
//!
//! The scan logic is [`tradeflow_core::generate`], everything around an invocation is
//! [`tradeflow_lambda`]'s; this crate maps the scheduled event (its `time` is the scan's "now"),
//! turns the scan report into logs and metrics, and reads the DLQ depths.

use std::sync::Arc;
use std::time::Instant;

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use serde::Serialize;
use tradeflow_core::detectors::all_detectors;
use tradeflow_core::generate::{Generator, GeneratorConfig, ScanReport};
use tradeflow_core::ports::QueueDepth;
use tradeflow_core::vocab::{Ticker, Timeframe};
use tradeflow_lambda::{ConfigError, Deadline, Function, MarketSource, Settings};
use tradeflow_telemetry::{GeneratorMetrics, TRIGGER_TIMER, Telemetry};

pub const FUNCTION_NAME: &str = "signal-generator";

#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// URL or name of the signals queue.
    pub signals_queue: String,
    pub cursors_table: String,
    pub market: MarketSource,
    pub tickers: Vec<Ticker>,
    pub timeframes: Vec<Timeframe>,
    pub backfill_bars: usize,
    pub max_bars_per_scan: usize,
    /// DLQs whose depth is published as a gauge on every scan: (label, URL or name).
    pub dlqs: Vec<(&'static str, String)>,
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
        let config = Config {
            signals_queue: s.required("SIGNALS_QUEUE_URL"),
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
            dlqs,
        };
        s.finish(config)
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
}

pub struct Handler {
    generator: Generator,
    dlqs: Vec<(&'static str, Arc<dyn QueueDepth>)>,
    metrics: GeneratorMetrics,
}

impl Handler {
    pub fn new(
        generator: Generator,
        dlqs: Vec<(&'static str, Arc<dyn QueueDepth>)>,
        telemetry: &Telemetry,
    ) -> Self {
        Handler {
            generator,
            dlqs,
            metrics: GeneratorMetrics::new(&telemetry.meter()),
        }
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
        let generator = Generator::new(
            config.market.build()?,
            Arc::new(tradeflow_aws::DynamoCursorStore::new(
                dynamo,
                config.cursors_table.clone(),
            )),
            Arc::new(tradeflow_aws::SqsQueue::new(sqs, signals_url)),
            all_detectors(),
            GeneratorConfig {
                tickers: config.tickers.clone(),
                timeframes: config.timeframes.clone(),
                backfill_bars: config.backfill_bars,
                max_bars_per_scan: config.max_bars_per_scan,
                ..GeneratorConfig::default()
            },
        );
        Ok(Handler::new(generator, dlqs, telemetry))
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

    async fn record_dlq_depths(&self) {
        for (label, queue) in &self.dlqs {
            match queue.approximate_depth().await {
                Ok(depth) => self.metrics.record_dlq_depth(label, depth),
                Err(e) => {
                    tracing::warn!(queue = *label, error = %tradeflow_core::error::error_chain(&e), "could not read DLQ depth")
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

    /// One scheduled scan; the event's `time` is the scan's "now". The DLQ depths are read after
    /// it, whatever its outcome.
    async fn handle(
        &self,
        event: EventBridgeEvent<serde_json::Value>,
        deadline: Deadline,
    ) -> Result<ScanSummary, ScanError> {
        let now = event
            .time
            .map_or_else(|| chrono::Utc::now().timestamp(), |t| t.timestamp());
        let result = self.scan(now, deadline).await;
        self.record_dlq_depths().await;
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::collections::HashMap;
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
        let bad = HashMap::from([
            ("GENERATOR_TIMEFRAMES", "5,7"),
            ("GENERATOR_TICKERS", "aapl, BAD TICKER"),
        ]);
        let err = Config::from_lookup(|k| bad.get(k).map(|v| (*v).to_owned())).unwrap_err();
        let text = err.to_string();
        for needle in ["SIGNALS_QUEUE_URL", "CURSORS_TABLE", "\"7\"", "BAD TICKER"] {
            assert!(text.contains(needle), "{text} should mention {needle}");
        }
    }
}
