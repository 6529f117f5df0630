//! The signal-generator's logic: one scan over every (ticker, timeframe) stream.
//!
//! Per stream: read the cursor (open time of the last candle processed); fetch closed candles;
//! run every detector on each candle newer than the cursor (on the first scan, the last
//! `backfill_bars` candles); turn detections into signals whose ids derive from (generator, ticker,
//! timeframe, candle time); send them all, 10 per call, retrying failed entries; then move the
//! cursor forward, but only for streams whose signals were all accepted. Scanning the same candles
//! again therefore sends nothing, and a failed send is retried by the next scan with the same ids.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::deadline::Deadline;
use crate::detectors::{Detection, Detector};
use crate::error::error_chain;
use crate::market::MarketData;
use crate::ports::{CursorStore, OutgoingMessage, QueueSender};
use crate::publish::{RetryPolicy, send_all};
use crate::signal::{Signal, SignalMetadata, TickerSignal};
use crate::vocab::{Confidence, InvalidField, SignalType, Ticker, Timeframe};

#[derive(Debug, Clone)]
pub struct GeneratorConfig {
    pub tickers: Vec<Ticker>,
    pub timeframes: Vec<Timeframe>,
    /// Candles evaluated on a stream's first scan (no cursor yet).
    pub backfill_bars: usize,
    /// At most this many new candles are evaluated per stream per scan (bounded catch-up).
    pub max_bars_per_scan: usize,
    pub send_retry: RetryPolicy,
}

impl Default for GeneratorConfig {
    fn default() -> Self {
        GeneratorConfig {
            tickers: Vec::new(),
            timeframes: vec![Timeframe::M5],
            backfill_bars: 1,
            max_bars_per_scan: 500,
            send_retry: RetryPolicy::default(),
        }
    }
}

/// Every [`StreamError::error_type`].
pub const STREAM_ERROR_TYPES: [&str; 3] = ["market_data", "cursor_store", "invalid_detection"];

/// A stream that could not be scanned. `error_type` is from a small fixed set.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamError {
    pub stream: String,
    pub error_type: &'static str,
    pub reason: String,
    pub retryable: bool,
}

#[derive(Debug, Default, Clone)]
pub struct ScanReport {
    pub streams: usize,
    pub candles_evaluated: usize,
    /// Signals the queue accepted.
    pub sent: Vec<Signal>,
    /// Signals the queue did not accept after retries, with the reason.
    pub undelivered: Vec<(Signal, String)>,
    pub errors: Vec<StreamError>,
    /// Time spent in each detector family over the scan.
    pub detector_time: BTreeMap<&'static str, Duration>,
    /// Streams whose cursor another scan moved first.
    pub cursor_conflicts: usize,
    /// SendMessageBatch calls made, and the time they took.
    pub publish_calls: u32,
    pub publish_time: Duration,
}

pub struct Generator {
    market: Arc<dyn MarketData>,
    cursors: Arc<dyn CursorStore>,
    signals: Arc<dyn QueueSender>,
    detectors: Vec<Box<dyn Detector>>,
    config: GeneratorConfig,
}

/// A stream's pending cursor move.
struct CursorMove {
    stream: String,
    from: Option<i64>,
    to: i64,
}

impl Generator {
    pub fn new(
        market: Arc<dyn MarketData>,
        cursors: Arc<dyn CursorStore>,
        signals: Arc<dyn QueueSender>,
        detectors: Vec<Box<dyn Detector>>,
        config: GeneratorConfig,
    ) -> Self {
        Generator {
            market,
            cursors,
            signals,
            detectors,
            config,
        }
    }

    pub fn stream_key(ticker: &Ticker, timeframe: Timeframe) -> String {
        format!("{ticker}#{}", timeframe.as_str())
    }

    fn lookback(&self) -> usize {
        self.detectors
            .iter()
            .map(|d| d.lookback())
            .max()
            .unwrap_or(0)
    }

    /// Runs one scan as of `now` (Unix seconds: the scheduled event's time). `deadline` is when
    /// the invocation must be done; nothing uses it yet (it is passed down so time budgets can be
    /// based on it).
    pub async fn scan(&self, now: i64, deadline: Deadline) -> ScanReport {
        let _ = deadline;
        let mut report = ScanReport::default();
        let mut signals: Vec<(usize, Signal)> = Vec::new();
        let mut moves: Vec<CursorMove> = Vec::new();
        for ticker in &self.config.tickers {
            for &timeframe in &self.config.timeframes {
                report.streams += 1;
                let stream = Self::stream_key(ticker, timeframe);
                match self
                    .scan_stream(ticker, timeframe, now, &stream, &mut report)
                    .await
                {
                    Ok(Some((found, to, from))) => {
                        let slot = moves.len();
                        moves.push(CursorMove { stream, from, to });
                        signals.extend(found.into_iter().map(|s| (slot, s)));
                    }
                    Ok(None) => {}
                    Err(e) => report.errors.push(e),
                }
            }
        }

        // Send every signal of the scan together: fewer, fuller batches.
        let outgoing: Vec<OutgoingMessage> = signals
            .iter()
            .enumerate()
            .map(|(n, (_, s))| OutgoingMessage {
                id: format!("s{n}"),
                body: s.to_json(),
            })
            .collect();
        let started = Instant::now();
        let sent = send_all(self.signals.as_ref(), outgoing, self.config.send_retry).await;
        report.publish_time = started.elapsed();
        report.publish_calls = sent.calls;
        let failed: HashMap<&str, &str> = sent
            .undelivered
            .iter()
            .map(|u| (u.id.as_str(), u.reason.as_str()))
            .collect();
        let mut blocked = vec![false; moves.len()];
        for (n, (slot, signal)) in signals.into_iter().enumerate() {
            match failed.get(format!("s{n}").as_str()) {
                None => report.sent.push(signal),
                Some(reason) => {
                    blocked[slot] = true;
                    report.undelivered.push((signal, (*reason).to_owned()));
                }
            }
        }

        // Only streams whose signals all went out move forward.
        for (slot, m) in moves.into_iter().enumerate() {
            if blocked[slot] {
                continue;
            }
            match self.cursors.advance(&m.stream, m.from, m.to).await {
                Ok(true) => {}
                Ok(false) => report.cursor_conflicts += 1,
                Err(e) => report.errors.push(StreamError {
                    stream: m.stream,
                    error_type: "cursor_store",
                    reason: error_chain(&e),
                    retryable: e.is_retryable(),
                }),
            }
        }
        report
    }

    /// Signals of one stream and its cursor move `(signals, to, from)`; `None` when nothing is new.
    async fn scan_stream(
        &self,
        ticker: &Ticker,
        timeframe: Timeframe,
        now: i64,
        stream: &str,
        report: &mut ScanReport,
    ) -> Result<Option<(Vec<Signal>, i64, Option<i64>)>, StreamError> {
        let cursor = self
            .cursors
            .get_cursor(stream)
            .await
            .map_err(|e| StreamError {
                stream: stream.to_owned(),
                error_type: "cursor_store",
                reason: error_chain(&e),
                retryable: e.is_retryable(),
            })?;
        let window = self.lookback() + self.config.max_bars_per_scan.max(1);
        let bars = self
            .market
            .closed_bars(ticker.as_str(), timeframe, now, window)
            .await
            .map_err(|e| StreamError {
                stream: stream.to_owned(),
                error_type: "market_data",
                reason: error_chain(&e),
                retryable: e.is_retryable(),
            })?;
        let Some(last) = bars.last() else {
            return Ok(None);
        };
        let first_new = match cursor {
            Some(c) => bars.partition_point(|b| b.time <= c),
            None => bars.len().saturating_sub(self.config.backfill_bars.max(1)),
        };
        if first_new >= bars.len() {
            return Ok(None);
        }
        let mut found = Vec::new();
        for index in first_new..bars.len() {
            report.candles_evaluated += 1;
            for detector in &self.detectors {
                let started = Instant::now();
                let detection = detector.detect(&bars, index);
                *report.detector_time.entry(detector.name()).or_default() += started.elapsed();
                if let Some(d) = detection {
                    match to_signal(&d, ticker, timeframe) {
                        Ok(s) => found.push(s),
                        Err(e) => report.errors.push(StreamError {
                            stream: stream.to_owned(),
                            error_type: "invalid_detection",
                            reason: error_chain(&e),
                            retryable: e.is_retryable(),
                        }),
                    }
                }
            }
        }
        Ok(Some((found, last.time, cursor)))
    }
}

/// A detection that does not make a valid signal (a detector bug): never retried.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{generator} detection at {candle_time} is not a valid signal")]
pub struct InvalidDetection {
    pub generator: &'static str,
    pub candle_time: i64,
    #[source]
    pub source: InvalidField,
}

impl InvalidDetection {
    pub fn is_retryable(&self) -> bool {
        false
    }
}

/// The wire signal for a detection. `timestamp` is the candle's close time, so the same candle
/// always gives the same body.
pub fn to_signal(
    d: &Detection,
    ticker: &Ticker,
    timeframe: Timeframe,
) -> Result<Signal, InvalidDetection> {
    let invalid = |source| InvalidDetection {
        generator: d.generator,
        candle_time: d.candle_time,
        source,
    };
    let signal_type = SignalType::parse(d.signal_type).map_err(invalid)?;
    let confidence = Confidence::new(f64::from(d.confidence)).map_err(invalid)?;
    let mut values: BTreeMap<String, serde_json::Value> = d
        .metadata
        .iter()
        .filter_map(|(k, v)| serde_json::Number::from_f64(*v).map(|n| (k.clone(), n.into())))
        .collect();
    values.insert("candle_time".into(), d.candle_time.into());
    Ok(Signal {
        signal_id: crate::ids::signal_id(
            d.generator,
            signal_type.as_str(),
            ticker.as_str(),
            timeframe.as_str(),
            d.candle_time,
        ),
        signal_type,
        source: d.generator.to_owned(),
        timestamp: d.candle_time + timeframe.seconds(),
        tickers: vec![TickerSignal {
            ticker: ticker.clone(),
            signal: d.direction,
            confidence,
            reasoning: Some(d.reasoning.clone()),
        }],
        metadata: SignalMetadata {
            timeframe: Some(timeframe),
            values,
        },
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::detectors::all_detectors;
    use crate::fakes::*;
    use crate::market::SyntheticFeed;
    use std::time::Duration;

    const NOW: i64 = 1_750_000_000;

    fn generator(
        queue: Arc<MemoryQueue>,
        cursors: Arc<MemoryCursorStore>,
        market: Arc<dyn MarketData>,
        backfill: usize,
    ) -> Generator {
        Generator::new(
            market,
            cursors,
            queue,
            all_detectors(),
            GeneratorConfig {
                tickers: vec![
                    Ticker::parse("AAPL").unwrap(),
                    Ticker::parse("MSFT").unwrap(),
                ],
                timeframes: vec![Timeframe::M5, Timeframe::H1],
                backfill_bars: backfill,
                max_bars_per_scan: 500,
                send_retry: RetryPolicy {
                    attempts: 2,
                    base_delay: Duration::from_millis(1),
                },
            },
        )
    }

    fn sent_ids(q: &MemoryQueue) -> Vec<String> {
        q.bodies()
            .iter()
            .map(|b| Signal::parse(b).unwrap().signal_id)
            .collect()
    }

    #[tokio::test]
    async fn scanning_the_same_candles_again_sends_nothing() {
        let q = Arc::new(MemoryQueue::default());
        let cursors = Arc::new(MemoryCursorStore::default());
        let g = generator(
            q.clone(),
            cursors.clone(),
            Arc::new(SyntheticFeed { seed: 1 }),
            300,
        );
        let first = g.scan(NOW, Deadline::none()).await;
        assert!(first.errors.is_empty(), "{:?}", first.errors);
        assert_eq!(first.streams, 4);
        assert_eq!(first.candles_evaluated, 4 * 300);
        assert!(!first.sent.is_empty());
        assert_eq!(q.bodies().len(), first.sent.len());
        let second = g.scan(NOW, Deadline::none()).await;
        assert_eq!((second.candles_evaluated, second.sent.len()), (0, 0));
        assert_eq!(q.bodies().len(), first.sent.len());
        // Later, only the new candles are evaluated.
        let third = g.scan(NOW + 3600, Deadline::none()).await;
        assert_eq!(third.candles_evaluated, 2 * 12 + 2);
        let ids = sent_ids(&q);
        let unique: std::collections::HashSet<_> = ids.iter().collect();
        assert_eq!(unique.len(), ids.len(), "no signal is sent twice");
    }

    #[tokio::test]
    async fn signals_carry_deterministic_ids_and_their_indicator_values() {
        let q1 = Arc::new(MemoryQueue::default());
        let q2 = Arc::new(MemoryQueue::default());
        generator(
            q1.clone(),
            Arc::default(),
            Arc::new(SyntheticFeed { seed: 1 }),
            200,
        )
        .scan(NOW, Deadline::none())
        .await;
        generator(
            q2.clone(),
            Arc::default(),
            Arc::new(SyntheticFeed { seed: 1 }),
            200,
        )
        .scan(NOW, Deadline::none())
        .await;
        assert_eq!(q1.bodies(), q2.bodies(), "same candles, same bodies");
        for body in q1.bodies() {
            let s = Signal::parse(&body).unwrap();
            let candle = s.metadata.values["candle_time"].as_i64().unwrap();
            let tf = s.timeframe().unwrap();
            assert_eq!(s.timestamp, candle + tf.seconds());
            assert_eq!(
                s.signal_id,
                crate::ids::signal_id(
                    &s.source,
                    s.signal_type.as_str(),
                    s.tickers[0].ticker.as_str(),
                    tf.as_str(),
                    candle
                )
            );
            assert!(s.metadata.values.contains_key("current_price"), "{body}");
            assert!(s.timestamp <= NOW);
        }
    }

    #[tokio::test]
    async fn an_undelivered_signal_keeps_its_stream_cursor_so_the_next_scan_resends_it() {
        let q = Arc::new(MemoryQueue::default());
        let cursors = Arc::new(MemoryCursorStore::default());
        let g = generator(
            q.clone(),
            cursors.clone(),
            Arc::new(SyntheticFeed { seed: 1 }),
            300,
        );
        q.fail_calls(10_000);
        let first = g.scan(NOW, Deadline::none()).await;
        assert!(first.sent.is_empty());
        assert!(!first.undelivered.is_empty());
        q.fail_calls(0);
        let second = g.scan(NOW, Deadline::none()).await;
        assert_eq!(second.sent.len(), first.undelivered.len());
        let ids: Vec<_> = first
            .undelivered
            .iter()
            .map(|(s, _)| s.signal_id.clone())
            .collect();
        let mut resent: Vec<_> = second.sent.iter().map(|s| s.signal_id.clone()).collect();
        resent.sort();
        let mut ids_sorted = ids.clone();
        ids_sorted.sort();
        assert_eq!(resent, ids_sorted, "the same ids are sent again");
    }

    #[tokio::test]
    async fn a_failing_stream_does_not_stop_the_others() {
        let q = Arc::new(MemoryQueue::default());
        let market = Arc::new(FlakyMarket::new(SyntheticFeed { seed: 1 }));
        market.failures.fail_next(1);
        let g = generator(q.clone(), Arc::default(), market, 300);
        let r = g.scan(NOW, Deadline::none()).await;
        assert_eq!(r.errors.len(), 1);
        assert_eq!(r.errors[0].error_type, "market_data");
        assert!(r.errors[0].retryable);
        assert_eq!(r.candles_evaluated, 3 * 300);
    }
}
