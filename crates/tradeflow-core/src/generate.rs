//! The signal-generator's logic: one scan over every (ticker, timeframe) stream.
//!
//! Per stream: read the cursor (open time of the last candle processed); fetch the closed candles
//! after it together with the detectors' lookback before it, and the higher-timeframe series the
//! detectors read (fetched directly, see `Generator::higher_series`); run every detector on each candle
//! after the cursor, at most `max_bars_per_scan` of them, oldest first (on the first scan, from the
//! `backfill_bars`-th newest candle on); turn detections into signals whose ids derive from
//! (generator, ticker, timeframe, candle time); send them all (calls of at most 10 messages and
//! 256 KiB), retrying failed entries; then move the cursor to the last candle evaluated, or, when a signal was not
//! delivered, to the last candle before the first one whose signal was not. Every candle after the
//! cursor is therefore evaluated exactly once and with its full history, whatever the batch size:
//! a scan that cannot finish leaves the rest to the next one. Scanning the same candles again
//! sends nothing, and a failed send is retried by the next scan with the same ids.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::deadline::Deadline;
use crate::detectors::{Detection, Detector, HigherSeries, higher_timeframes_of};
use crate::error::error_chain;
use crate::market::{MarketData, MarketDataError};
use crate::ports::{CursorStore, NoTracer, OutgoingMessage, QueueSender, SpanHandle, Tracer};
use crate::publish::{RetryPolicy, send_all};
use crate::signal::{Signal, SignalMetadata, TickerSignal};
use crate::vocab::{Bar, Confidence, InvalidField, SignalType, Ticker, Timeframe};

#[derive(Debug, Clone)]
pub struct GeneratorConfig {
    pub tickers: Vec<Ticker>,
    pub timeframes: Vec<Timeframe>,
    /// Candles evaluated on a stream's first scan (no cursor yet), counted back from the newest
    /// closed one. When more than `max_bars_per_scan`, the following scans work off the rest.
    pub backfill_bars: usize,
    /// At most this many candles are evaluated per stream per scan (bounded catch-up): the oldest
    /// ones after the cursor; the cursor stops at the last one evaluated.
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
    tracer: Arc<dyn Tracer>,
}

/// A stream's pending cursor move.
struct CursorMove {
    stream: String,
    from: Option<i64>,
    /// Open times of the candles evaluated, oldest first (never empty).
    evaluated: Vec<i64>,
}

/// What one stream's scan found.
struct StreamScan {
    /// Each signal with the open time of its candle.
    signals: Vec<(i64, Signal)>,
    cursor_move: CursorMove,
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
            tracer: Arc::new(NoTracer),
        }
    }

    /// Opens a span per signal sent ([`Tracer::signal`]), whose context the signal's message
    /// carries; it ends when the send does (an error when the signal was not delivered).
    pub fn with_tracer(mut self, tracer: Arc<dyn Tracer>) -> Self {
        self.tracer = tracer;
        self
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
        // (stream slot, candle time, signal)
        let mut signals: Vec<(usize, i64, Signal)> = Vec::new();
        let mut moves: Vec<CursorMove> = Vec::new();
        for ticker in &self.config.tickers {
            // The higher series fetched for this ticker's streams, shared by them.
            let mut higher = HigherCache::new();
            for &timeframe in &self.config.timeframes {
                report.streams += 1;
                let stream = Self::stream_key(ticker, timeframe);
                match self
                    .scan_stream(ticker, timeframe, now, stream, &mut higher, &mut report)
                    .await
                {
                    Ok(Some(found)) => {
                        let slot = moves.len();
                        moves.push(found.cursor_move);
                        signals.extend(found.signals.into_iter().map(|(t, s)| (slot, t, s)));
                    }
                    Ok(None) => {}
                    Err(e) => report.errors.push(e),
                }
            }
        }

        // Send every signal of the scan together: fewer, fuller batches. Each carries the
        // context of its own span (when tracing).
        let mut spans: Vec<Option<Box<dyn SpanHandle>>> = Vec::with_capacity(signals.len());
        let outgoing: Vec<OutgoingMessage> = signals
            .iter()
            .enumerate()
            .map(|(n, (_, _, s))| {
                let span = self.tracer.signal(s);
                let trace = span.as_ref().and_then(|span| span.context());
                spans.push(span);
                OutgoingMessage {
                    id: format!("s{n}"),
                    body: s.to_json(),
                    trace,
                }
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
        // Per stream, the first candle with a signal that did not go out.
        let mut first_blocked: Vec<Option<i64>> = vec![None; moves.len()];
        for (n, ((slot, candle, signal), span)) in signals.into_iter().zip(spans).enumerate() {
            let reason = failed.get(format!("s{n}").as_str());
            if let Some(span) = span {
                span.end(
                    if reason.is_none() {
                        "sent"
                    } else {
                        "undelivered"
                    },
                    reason.copied(),
                );
            }
            match reason {
                None => report.sent.push(signal),
                Some(reason) => {
                    let blocked = &mut first_blocked[slot];
                    *blocked = Some(blocked.map_or(candle, |b| b.min(candle)));
                    report.undelivered.push((signal, (*reason).to_owned()));
                }
            }
        }

        // A stream moves forward to its last evaluated candle before the first blocked one, so
        // the next scan starts again from that candle with the same ids.
        for (slot, m) in moves.into_iter().enumerate() {
            let to = match first_blocked[slot] {
                None => m.evaluated.last().copied(),
                Some(blocked) => m.evaluated.iter().copied().rfind(|&t| t < blocked),
            };
            let Some(to) = to else { continue };
            match self.cursors.advance(&m.stream, m.from, to).await {
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

    /// Signals of one stream and its cursor move; `None` when nothing is new.
    async fn scan_stream(
        &self,
        ticker: &Ticker,
        timeframe: Timeframe,
        now: i64,
        stream: String,
        higher_cache: &mut HigherCache,
        report: &mut ScanReport,
    ) -> Result<Option<StreamScan>, StreamError> {
        let cursor = self
            .cursors
            .get_cursor(&stream)
            .await
            .map_err(|e| StreamError {
                stream: stream.clone(),
                error_type: "cursor_store",
                reason: error_chain(&e),
                retryable: e.is_retryable(),
            })?;
        let lookback = self.lookback();
        let max_bars = self.config.max_bars_per_scan.max(1);
        let backfill = self.config.backfill_bars.max(1);
        // The candles to evaluate and the detectors' lookback before the first of them.
        let bars = match cursor {
            Some(c) => {
                self.market
                    .closed_bars_after(ticker.as_str(), timeframe, now, c, lookback, max_bars)
                    .await
            }
            None => {
                self.market
                    .closed_bars(
                        ticker.as_str(),
                        timeframe,
                        now,
                        lookback.saturating_add(backfill),
                    )
                    .await
            }
        }
        .map_err(|e| StreamError {
            stream: stream.clone(),
            error_type: "market_data",
            reason: error_chain(&e),
            retryable: e.is_retryable(),
        })?;
        let first_new = match cursor {
            Some(c) => bars.partition_point(|b| b.time <= c),
            None => bars.len().saturating_sub(backfill),
        };
        let end = first_new.saturating_add(max_bars).min(bars.len());
        if first_new >= end {
            return Ok(None);
        }
        let fetched = self
            .higher_series(
                ticker,
                timeframe,
                &bars[first_new..end],
                now,
                &stream,
                higher_cache,
            )
            .await?;
        let higher: Vec<HigherSeries<'_>> = fetched
            .iter()
            .map(|(tf, bars)| HigherSeries {
                timeframe: *tf,
                bars,
            })
            .collect();
        let mut signals = Vec::new();
        let mut evaluated = Vec::with_capacity(end - first_new);
        for index in first_new..end {
            report.candles_evaluated += 1;
            evaluated.push(bars[index].time);
            for detector in &self.detectors {
                let started = Instant::now();
                let detection = detector.detect_with(&bars, index, timeframe, &higher);
                *report.detector_time.entry(detector.name()).or_default() += started.elapsed();
                if let Some(d) = detection {
                    match to_signal(&d, ticker, timeframe) {
                        Ok(s) => signals.push((d.candle_time, s)),
                        Err(e) => report.errors.push(StreamError {
                            stream: stream.clone(),
                            error_type: "invalid_detection",
                            reason: error_chain(&e),
                            retryable: e.is_retryable(),
                        }),
                    }
                }
            }
        }
        Ok(Some(StreamScan {
            signals,
            cursor_move: CursorMove {
                stream,
                from: cursor,
                evaluated,
            },
        }))
    }
}

/// The higher-timeframe series fetched during one scan for one ticker: `None` when the source
/// has no such series.
type HigherCache = HashMap<Timeframe, Option<CachedSeries>>;

struct CachedSeries {
    bars: Vec<Bar>,
    /// Fewer bars came than were asked for: the series' whole history.
    complete: bool,
}

impl CachedSeries {
    /// Whether it holds `window` candles closed by `time` (or all there are).
    fn covers(&self, timeframe: Timeframe, window: usize, time: i64) -> bool {
        self.complete
            || self
                .bars
                .partition_point(|b| b.close_time(timeframe) <= time)
                >= window
    }
}

impl Generator {
    /// The higher-timeframe series the detectors read for the candles `evaluated` of one stream
    /// (oldest first, not empty), fetched directly from the source: per higher timeframe, the
    /// most recent candles closed by `now`, back to the detectors' window before the first
    /// evaluated candle's close. A series fetched for another stream of the same ticker in this
    /// scan is reused when it reaches back that far. A detector reads, of a higher series, only
    /// the candles closed by the evaluated candle's close, the last `window` of them, so what
    /// it sees does not depend on how much was fetched: a candle scanned again sees the same
    /// higher candles. A series the source does not have ([`MarketDataError::UnknownTicker`]: a
    /// CSV replay without that file) is left out, so its timeframe does not vote; any other
    /// failure fails the stream, which is scanned again next time from the same cursor.
    async fn higher_series(
        &self,
        ticker: &Ticker,
        timeframe: Timeframe,
        evaluated: &[Bar],
        now: i64,
        stream: &str,
        cache: &mut HigherCache,
    ) -> Result<Vec<(Timeframe, Vec<Bar>)>, StreamError> {
        let Some(first) = evaluated.first() else {
            return Ok(Vec::new());
        };
        let first_close = first.close_time(timeframe);
        let mut out = Vec::new();
        for (tf, window) in higher_timeframes_of(&self.detectors, timeframe) {
            let cached = match cache.get(&tf) {
                Some(None) => continue,
                Some(Some(series)) => series.covers(tf, window, first_close),
                None => false,
            };
            if !cached {
                // Higher candles closing between the first evaluated close and `now`, plus the
                // window before it.
                let span = (now - first_close).div_euclid(tf.seconds()).max(0) as usize + 1;
                let count = window.saturating_add(span);
                match self
                    .market
                    .closed_bars(ticker.as_str(), tf, now, count)
                    .await
                {
                    Ok(bars) => {
                        let complete = bars.len() < count;
                        cache.insert(tf, Some(CachedSeries { bars, complete }));
                    }
                    Err(MarketDataError::UnknownTicker { .. }) => {
                        cache.insert(tf, None);
                        continue;
                    }
                    Err(e) => {
                        return Err(StreamError {
                            stream: stream.to_owned(),
                            error_type: "market_data",
                            reason: format!("higher timeframe {tf}: {}", error_chain(&e)),
                            retryable: e.is_retryable(),
                        });
                    }
                }
            }
            if let Some(Some(series)) = cache.get(&tf) {
                out.push((tf, series.bars.clone()));
            }
        }
        Ok(out)
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
    use crate::detectors::{Detector, HigherSeries, all_detectors};
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

    /// Each signal's message carries the context of the span opened for it, and the span ends
    /// with the send: `sent`, or `undelivered` with the reason.
    #[tokio::test]
    async fn each_signal_carries_its_own_span_which_ends_with_the_send() {
        let q = Arc::new(MemoryQueue::default());
        let tracer = Arc::new(RecordingTracer::default());
        let g = generator(
            q.clone(),
            Arc::new(MemoryCursorStore::default()),
            Arc::new(SyntheticFeed { seed: 1 }),
            300,
        )
        .with_tracer(tracer.clone());
        q.reject_entries(&["s0"]);
        let r = g.scan(NOW, Deadline::none()).await;
        assert!(r.sent.len() > 1, "{}", r.sent.len());
        assert_eq!(r.undelivered.len(), 1);
        let spans = tracer.spans();
        assert_eq!(spans.len(), r.sent.len() + 1, "one span per signal");
        let undelivered = &r.undelivered[0].0;
        for span in &spans {
            assert_eq!(span.parent, None, "a signal starts a trace");
            let (status, error) = span.end.clone().unwrap();
            if span.name == format!("signal {}", undelivered.signal_id) {
                assert_eq!(status, "undelivered");
                assert!(error.unwrap().contains("InvalidMessageContents"));
            } else {
                assert_eq!((status.as_str(), error), ("sent", None));
            }
        }
        // Each message carries its own signal's span context.
        for m in q.drain() {
            let id = Signal::parse(&m.body).unwrap().signal_id;
            let span = spans
                .iter()
                .find(|s| s.name == format!("signal {id}"))
                .unwrap();
            assert_eq!(m.trace, Some(span.context.clone()));
        }
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

    /// About 20 years of weekday daily candles ending in 2024, in the shape of a CSV replay
    /// (no candles on weekends).
    fn twenty_years_of_daily_candles() -> Vec<crate::vocab::Bar> {
        let feed = SyntheticFeed { seed: 7 };
        let first_day = 12_784; // 2005-01-01
        (first_day..first_day + 7_300)
            // 1970-01-01 was a Thursday: day % 7 == 2 is a Saturday, 3 a Sunday.
            .filter(|day| !matches!(day % 7, 2 | 3))
            .map(|day| feed.bar("AAPL", Timeframe::D1, day))
            .collect()
    }

    /// The ids of every detection on `bars[from..]`, each candle evaluated with its full history.
    fn expected_ids(bars: &[crate::vocab::Bar], from: usize) -> std::collections::BTreeSet<String> {
        let ticker = Ticker::parse("AAPL").unwrap();
        let mut ids = std::collections::BTreeSet::new();
        for index in from..bars.len() {
            for detector in all_detectors() {
                if let Some(d) = detector.detect(bars, index) {
                    ids.insert(to_signal(&d, &ticker, Timeframe::D1).unwrap().signal_id);
                }
            }
        }
        ids
    }

    /// Replays `bars` with scans `step` candles apart (the first scan when candle `first` has
    /// closed), then scans at the last candle's close until a scan finds nothing new. Returns the
    /// ids sent, asserting that none was sent twice.
    async fn replay(
        bars: &[crate::vocab::Bar],
        first: usize,
        step: usize,
        backfill: usize,
        max_bars_per_scan: usize,
    ) -> std::collections::BTreeSet<String> {
        let market = crate::market::CsvReplay::from_bars([(
            ("AAPL".to_owned(), Timeframe::D1),
            bars.to_vec(),
        )])
        .unwrap();
        let q = Arc::new(MemoryQueue::default());
        let g = Generator::new(
            Arc::new(market),
            Arc::new(MemoryCursorStore::default()),
            q.clone(),
            all_detectors(),
            GeneratorConfig {
                tickers: vec![Ticker::parse("AAPL").unwrap()],
                timeframes: vec![Timeframe::D1],
                backfill_bars: backfill,
                max_bars_per_scan,
                send_retry: RetryPolicy::default(),
            },
        );
        let close = |index: usize| bars[index].close_time(Timeframe::D1);
        let mut index = first;
        while index < bars.len() - 1 {
            let r = g.scan(close(index), Deadline::none()).await;
            assert!(r.errors.is_empty() && r.undelivered.is_empty(), "{r:?}");
            index += step;
        }
        let end = close(bars.len() - 1);
        for _ in 0..bars.len() {
            let r = g.scan(end, Deadline::none()).await;
            assert!(r.errors.is_empty() && r.undelivered.is_empty(), "{r:?}");
            if r.candles_evaluated == 0 {
                break;
            }
        }
        let ids = sent_ids(&q);
        let unique: std::collections::BTreeSet<String> = ids.iter().cloned().collect();
        assert_eq!(unique.len(), ids.len(), "no signal is sent twice");
        unique
    }

    #[tokio::test]
    async fn bounded_catch_up_evaluates_every_candle_once_with_full_history() {
        let bars = twenty_years_of_daily_candles();
        assert!(bars.len() > 5_000);
        // The first scan sees candles 0..=600 and, with backfill 1, evaluates candle 600 only.
        let expected = expected_ids(&bars, 600);
        assert!(expected.len() > 500, "{}", expected.len());
        let mut faults = Vec::new();
        let mut check = |name: &str, expected: &std::collections::BTreeSet<String>, got| {
            let lost = expected.difference(&got).count();
            let extra = got.difference(expected).count();
            if (lost, extra) != (0, 0) {
                faults.push(format!(
                    "{name}: {lost} of {} signals lost, {extra} unexpected",
                    expected.len()
                ));
            }
        };
        check(
            "one scan",
            &expected,
            replay(&bars, 600, bars.len(), 1, 10_000).await,
        );
        // The default settings, 600 new candles per scan.
        check(
            "600 at a time",
            &expected,
            replay(&bars, 600, 600, 1, 500).await,
        );
        check(
            "5 at a time, 1 per scan",
            &expected,
            replay(&bars, 600, 5, 1, 1).await,
        );
        // A first-scan backfill larger than a scan's bound is worked off over several scans.
        check(
            "backfill 300, 120 per scan",
            &expected_ids(&bars, 600 - 299),
            replay(&bars, 600, 250, 300, 120).await,
        );
        assert!(faults.is_empty(), "{faults:#?}");
    }

    #[tokio::test]
    async fn a_scan_that_stops_early_leaves_the_cursor_at_the_last_candle_it_evaluated() {
        let bars = twenty_years_of_daily_candles();
        let market = crate::market::CsvReplay::from_bars([(
            ("AAPL".to_owned(), Timeframe::D1),
            bars.clone(),
        )])
        .unwrap();
        let cursors = Arc::new(MemoryCursorStore::default());
        let g = Generator::new(
            Arc::new(market),
            cursors.clone(),
            Arc::new(MemoryQueue::default()),
            all_detectors(),
            GeneratorConfig {
                tickers: vec![Ticker::parse("AAPL").unwrap()],
                timeframes: vec![Timeframe::D1],
                backfill_bars: 1,
                max_bars_per_scan: 10,
                send_retry: RetryPolicy::default(),
            },
        );
        let stream = Generator::stream_key(&Ticker::parse("AAPL").unwrap(), Timeframe::D1);
        g.scan(bars[300].close_time(Timeframe::D1), Deadline::none())
            .await;
        assert_eq!(
            cursors.get_cursor(&stream).await.unwrap(),
            Some(bars[300].time)
        );
        // 100 new candles, 10 evaluated: the cursor stops at the 10th.
        let r = g
            .scan(bars[400].close_time(Timeframe::D1), Deadline::none())
            .await;
        assert_eq!(r.candles_evaluated, 10);
        assert_eq!(
            cursors.get_cursor(&stream).await.unwrap(),
            Some(bars[310].time)
        );
        let r = g
            .scan(bars[400].close_time(Timeframe::D1), Deadline::none())
            .await;
        assert_eq!(r.candles_evaluated, 10);
        assert_eq!(
            cursors.get_cursor(&stream).await.unwrap(),
            Some(bars[320].time)
        );
    }

    #[tokio::test]
    async fn an_undelivered_signal_stops_its_cursor_just_before_its_candle() {
        let bars = twenty_years_of_daily_candles();
        let market = crate::market::CsvReplay::from_bars([(
            ("AAPL".to_owned(), Timeframe::D1),
            bars.clone(),
        )])
        .unwrap();
        let q = Arc::new(MemoryQueue::default());
        let cursors = Arc::new(MemoryCursorStore::default());
        let g = Generator::new(
            Arc::new(market),
            cursors.clone(),
            q.clone(),
            all_detectors(),
            GeneratorConfig {
                tickers: vec![Ticker::parse("AAPL").unwrap()],
                timeframes: vec![Timeframe::D1],
                backfill_bars: 400,
                max_bars_per_scan: 400,
                send_retry: RetryPolicy {
                    attempts: 2,
                    base_delay: Duration::from_millis(1),
                },
            },
        );
        let now = bars[1_000].close_time(Timeframe::D1);
        q.fail_entries_next_calls(&["s5"], 2);
        let first = g.scan(now, Deadline::none()).await;
        assert_eq!(first.undelivered.len(), 1);
        let blocked = &first.undelivered[0].0;
        let blocked_candle = blocked.metadata.values["candle_time"].as_i64().unwrap();
        let cursor = cursors
            .get_cursor(&Generator::stream_key(
                &Ticker::parse("AAPL").unwrap(),
                Timeframe::D1,
            ))
            .await
            .unwrap()
            .unwrap();
        let before = bars.partition_point(|b| b.time < blocked_candle) - 1;
        assert_eq!(cursor, bars[before].time);
        // The next scan starts at the blocked candle: it sends the missing signal and re-sends
        // only signals of that candle or later ones (same ids).
        let second = g.scan(now, Deadline::none()).await;
        assert!(second.undelivered.is_empty());
        assert!(second.sent.iter().any(|s| s.signal_id == blocked.signal_id));
        assert!(
            second
                .sent
                .iter()
                .all(|s| s.metadata.values["candle_time"].as_i64().unwrap() >= blocked_candle)
        );
        assert_eq!(second.candles_evaluated, 1_000 - before);
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

    #[tokio::test]
    async fn higher_timeframe_series_are_read_directly_from_the_source() {
        let feed = SyntheticFeed { seed: 3 };
        let market = Arc::new(RecordingMarket::new(feed));
        let q = Arc::new(MemoryQueue::default());
        let aapl = Ticker::parse("AAPL").unwrap();
        let g = Generator::new(
            market.clone(),
            Arc::new(MemoryCursorStore::default()),
            q.clone(),
            all_detectors(),
            GeneratorConfig {
                tickers: vec![aapl.clone()],
                timeframes: vec![Timeframe::M15, Timeframe::D1],
                backfill_bars: 1_500,
                max_bars_per_scan: 2_000,
                send_retry: RetryPolicy::default(),
            },
        );
        let r = g.scan(NOW, Deadline::none()).await;
        assert!(r.errors.is_empty(), "{:?}", r.errors);
        // The 15-minute stream read its own series, then the 1 h, 4 h and daily ones; the daily
        // stream its own (it has no higher timeframe).
        let calls = market.calls();
        let seq: Vec<(Timeframe, i64)> = calls.iter().map(|c| (c.timeframe, c.now)).collect();
        assert_eq!(
            seq,
            [
                (Timeframe::M15, NOW),
                (Timeframe::H1, NOW),
                (Timeframe::H4, NOW),
                (Timeframe::D1, NOW),
                (Timeframe::D1, NOW)
            ]
        );
        // Back to 63 hourly candles before the first evaluated 15-minute candle's close.
        let first_close = NOW - NOW.rem_euclid(900) - 1_499 * 900;
        assert_eq!(
            calls[1].count,
            63 + (NOW - first_close) as usize / 3_600 + 1
        );
        // The HTF signals are what the family finds on the directly fetched series.
        // The last 1 500 candles, each with its history.
        let bars = feed
            .closed_bars("AAPL", Timeframe::M15, NOW, 2_500)
            .await
            .unwrap();
        let mut fetched = Vec::new();
        for tf in [Timeframe::H1, Timeframe::H4, Timeframe::D1] {
            fetched.push((tf, feed.closed_bars("AAPL", tf, NOW, 2_000).await.unwrap()));
        }
        let higher: Vec<HigherSeries<'_>> = fetched
            .iter()
            .map(|(timeframe, bars)| HigherSeries {
                timeframe: *timeframe,
                bars,
            })
            .collect();
        let htf = crate::detectors::HtfTrendAlignmentDetector::default();
        let expected: Vec<String> = (1_000..bars.len())
            .filter_map(|i| htf.detect_with(&bars, i, Timeframe::M15, &higher))
            .map(|d| to_signal(&d, &aapl, Timeframe::M15).unwrap().signal_id)
            .collect();
        let sent: Vec<String> = r
            .sent
            .iter()
            .filter(|s| s.source == htf.name() && s.timeframe() == Some(Timeframe::M15))
            .map(|s| s.signal_id.clone())
            .collect();
        assert!(
            !expected.is_empty(),
            "the synthetic feed aligns now and then"
        );
        assert_eq!(sent, expected);
    }

    #[tokio::test]
    async fn the_streams_of_a_ticker_share_the_higher_series_fetched_in_a_scan() {
        let market = Arc::new(RecordingMarket::new(SyntheticFeed { seed: 3 }));
        let g = Generator::new(
            market.clone(),
            Arc::new(MemoryCursorStore::default()),
            Arc::new(MemoryQueue::default()),
            all_detectors(),
            GeneratorConfig {
                tickers: vec![
                    Ticker::parse("AAPL").unwrap(),
                    Ticker::parse("MSFT").unwrap(),
                ],
                timeframes: vec![Timeframe::M5, Timeframe::M15, Timeframe::H1],
                backfill_bars: 1,
                ..GeneratorConfig::default()
            },
        );
        let r = g.scan(NOW, Deadline::none()).await;
        assert!(r.errors.is_empty(), "{:?}", r.errors);
        // Per ticker: the 5-minute stream fetches 1 h, 4 h and D; the 15-minute and hourly
        // streams find them fetched (far enough back) and read only their own series.
        let seq: Vec<(String, Timeframe)> = market
            .calls()
            .into_iter()
            .map(|c| (c.ticker, c.timeframe))
            .collect();
        let per_ticker = |t: &str| {
            [
                Timeframe::M5,
                Timeframe::H1,
                Timeframe::H4,
                Timeframe::D1,
                Timeframe::M15,
                Timeframe::H1,
            ]
            .map(|tf| (t.to_owned(), tf))
        };
        let expected: Vec<(String, Timeframe)> = per_ticker("AAPL")
            .into_iter()
            .chain(per_ticker("MSFT"))
            .collect();
        assert_eq!(seq, expected);
    }

    #[tokio::test]
    async fn a_failing_higher_series_fails_its_stream_and_a_missing_one_does_not_vote() {
        let market = Arc::new(RecordingMarket::new(SyntheticFeed { seed: 3 }));
        market.fail_series("AAPL", Timeframe::H4);
        let cursors = Arc::new(MemoryCursorStore::default());
        let aapl = Ticker::parse("AAPL").unwrap();
        let g = Generator::new(
            market.clone(),
            cursors.clone(),
            Arc::new(MemoryQueue::default()),
            all_detectors(),
            GeneratorConfig {
                tickers: vec![aapl.clone()],
                timeframes: vec![Timeframe::M15, Timeframe::D1],
                backfill_bars: 10,
                ..GeneratorConfig::default()
            },
        );
        let r = g.scan(NOW, Deadline::none()).await;
        assert_eq!(r.errors.len(), 1, "{:?}", r.errors);
        let e = &r.errors[0];
        assert_eq!(e.stream, Generator::stream_key(&aapl, Timeframe::M15));
        assert_eq!(e.error_type, "market_data");
        assert!(e.retryable);
        assert!(e.reason.contains("higher timeframe 240"), "{}", e.reason);
        // The failed stream stays put, the other one moved.
        let key = |tf| Generator::stream_key(&aapl, tf);
        assert_eq!(
            cursors.get_cursor(&key(Timeframe::M15)).await.unwrap(),
            None
        );
        assert!(
            cursors
                .get_cursor(&key(Timeframe::D1))
                .await
                .unwrap()
                .is_some()
        );

        // A replay with only the 15-minute file: the higher series are unknown, the stream is
        // scanned and the higher-timeframe family (needing 2 votes of 1) stays silent.
        let bars = SyntheticFeed { seed: 3 }
            .closed_bars("AAPL", Timeframe::M15, NOW, 1_500)
            .await
            .unwrap();
        let replay =
            crate::market::CsvReplay::from_bars([(("AAPL".to_owned(), Timeframe::M15), bars)])
                .unwrap();
        let q = Arc::new(MemoryQueue::default());
        let g = Generator::new(
            Arc::new(replay),
            Arc::new(MemoryCursorStore::default()),
            q.clone(),
            all_detectors(),
            GeneratorConfig {
                tickers: vec![aapl],
                timeframes: vec![Timeframe::M15],
                backfill_bars: 1_000,
                max_bars_per_scan: 1_000,
                ..GeneratorConfig::default()
            },
        );
        let r = g.scan(NOW, Deadline::none()).await;
        assert!(r.errors.is_empty(), "{:?}", r.errors);
        assert!(!r.sent.is_empty());
        assert!(
            r.sent
                .iter()
                .all(|s| s.source != "htf_trend_alignment_generator")
        );
    }
}
