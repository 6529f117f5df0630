//! The handler over several timeframes: one stream and one cursor per (ticker, timeframe), each
//! signal tagged with its timeframe's code, streams failing alone, and the higher-timeframe
//! family reading the higher series from the market source itself.

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use signal_generator::{FUNCTION_NAME, Handler};
use tradeflow_core::deadline::Deadline;
use tradeflow_core::detectors::all_detectors;
use tradeflow_core::fakes::{MemoryCursorStore, MemoryQueue, RecordingMarket};
use tradeflow_core::generate::{Generator, GeneratorConfig};
use tradeflow_core::market::SyntheticFeed;
use tradeflow_core::ports::CursorStore;
use tradeflow_core::signal::Signal;
use tradeflow_core::vocab::{Ticker, Timeframe};
use tradeflow_telemetry::Telemetry;

/// 2025-06-15T15:06:40Z: 100 s into a 5-minute candle, 400 s into a 15-minute and an hourly one.
const NOW: i64 = 1_750_000_000;

const TIMEFRAMES: [Timeframe; 5] = [
    Timeframe::M5,
    Timeframe::M15,
    Timeframe::H1,
    Timeframe::H4,
    Timeframe::D1,
];

struct Setup {
    handler: Handler,
    queue: Arc<MemoryQueue>,
    cursors: Arc<MemoryCursorStore>,
    market: Arc<RecordingMarket<SyntheticFeed>>,
}

fn tickers() -> Vec<Ticker> {
    ["AAPL", "BTCUSD"]
        .iter()
        .map(|t| Ticker::parse(t).unwrap())
        .collect()
}

fn setup(backfill_bars: usize) -> Setup {
    let queue = Arc::new(MemoryQueue::default());
    let cursors = Arc::new(MemoryCursorStore::default());
    let market = Arc::new(RecordingMarket::new(SyntheticFeed { seed: 11 }));
    let generator = Generator::new(
        market.clone(),
        cursors.clone(),
        queue.clone(),
        all_detectors(),
        GeneratorConfig {
            tickers: tickers(),
            timeframes: TIMEFRAMES.to_vec(),
            backfill_bars,
            max_bars_per_scan: 500,
            ..GeneratorConfig::default()
        },
    );
    let handler = Handler::new(generator, Vec::new(), &Telemetry::init(FUNCTION_NAME));
    Setup {
        handler,
        queue,
        cursors,
        market,
    }
}

async fn cursor(cursors: &MemoryCursorStore, ticker: &str, tf: Timeframe) -> Option<i64> {
    let key = Generator::stream_key(&Ticker::parse(ticker).unwrap(), tf);
    cursors.get_cursor(&key).await.unwrap()
}

/// The open time of the last candle of `tf` closed at `now`.
fn last_closed(tf: Timeframe, now: i64) -> i64 {
    now - now.rem_euclid(tf.seconds()) - tf.seconds()
}

#[tokio::test]
async fn a_scan_over_five_timeframes_tags_each_signal_with_its_timeframe_code() {
    let s = setup(300);
    let summary = s.handler.scan(NOW, Deadline::none()).await.unwrap();
    assert_eq!(summary.streams, 2 * TIMEFRAMES.len());
    assert_eq!(summary.stream_errors, 0);
    assert_eq!(summary.candles_evaluated, 2 * TIMEFRAMES.len() * 300);
    let bodies = s.queue.bodies();
    assert_eq!(bodies.len(), summary.signals_sent);
    let mut per_timeframe: BTreeMap<Timeframe, usize> = BTreeMap::new();
    for body in &bodies {
        let signal = Signal::parse(body).unwrap();
        let tf = signal.timeframe().unwrap();
        // On the wire, the original's code: what a subscription with a timeframe compares.
        let raw: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(raw["metadata"]["timeframe"], tf.as_str(), "{body}");
        // The candle the signal fired on is one of that timeframe's, closed at NOW.
        let candle = signal.metadata.values["candle_time"].as_i64().unwrap();
        assert_eq!(candle.rem_euclid(tf.seconds()), 0, "{body}");
        assert_eq!(signal.timestamp, candle + tf.seconds());
        assert!(signal.timestamp <= NOW);
        *per_timeframe.entry(tf).or_default() += 1;
    }
    assert_eq!(
        per_timeframe.keys().copied().collect::<Vec<_>>(),
        TIMEFRAMES,
        "every timeframe fired: {per_timeframe:?}"
    );
    // Signal ids differ per timeframe even for the same candle time and family.
    let ids: BTreeSet<&str> = bodies.iter().map(|b| b.as_str()).collect();
    assert_eq!(ids.len(), bodies.len());
}

#[tokio::test]
async fn each_stream_has_its_own_cursor_and_moves_only_when_its_candle_closes() {
    let s = setup(5);
    s.handler.scan(NOW, Deadline::none()).await.unwrap();
    for ticker in ["AAPL", "BTCUSD"] {
        for tf in TIMEFRAMES {
            assert_eq!(
                cursor(&s.cursors, ticker, tf).await,
                Some(last_closed(tf, NOW)),
                "{ticker} {tf}"
            );
        }
    }
    // Five minutes later only a 5-minute candle has closed (NOW is 400 s into the quarter and
    // the hour): only the 5-minute streams move, by one candle each.
    let later = NOW + 300;
    let summary = s.handler.scan(later, Deadline::none()).await.unwrap();
    assert_eq!(summary.candles_evaluated, 2);
    for ticker in ["AAPL", "BTCUSD"] {
        assert_eq!(
            cursor(&s.cursors, ticker, Timeframe::M5).await,
            Some(last_closed(Timeframe::M5, NOW) + 300)
        );
        for tf in &TIMEFRAMES[1..] {
            assert_eq!(
                cursor(&s.cursors, ticker, *tf).await,
                Some(last_closed(*tf, NOW)),
                "{ticker} {tf} did not move"
            );
        }
    }
    // An hour later (NOW is 3 h 6 min 40 s into a 4-hour candle): 11 more five-minute
    // candles, 4 quarters, 1 hour and 1 four-hour candle per ticker; the day waits.
    let summary = s.handler.scan(NOW + 3_600, Deadline::none()).await.unwrap();
    assert_eq!(summary.candles_evaluated, 2 * (11 + 4 + 1 + 1));
    assert_eq!(
        cursor(&s.cursors, "BTCUSD", Timeframe::H4).await,
        Some(last_closed(Timeframe::H4, NOW) + 14_400)
    );
    assert_eq!(
        cursor(&s.cursors, "AAPL", Timeframe::H1).await,
        Some(last_closed(Timeframe::H1, NOW) + 3_600)
    );
    assert_eq!(
        cursor(&s.cursors, "AAPL", Timeframe::D1).await,
        Some(last_closed(Timeframe::D1, NOW))
    );
}

#[tokio::test]
async fn an_error_in_one_stream_does_not_stop_the_others() {
    let s = setup(50);
    s.market.fail_series("AAPL", Timeframe::M15);
    let summary = s.handler.scan(NOW, Deadline::none()).await.unwrap();
    assert_eq!(summary.stream_errors, 1, "{summary:?}");
    assert_eq!(
        summary.candles_evaluated,
        (2 * TIMEFRAMES.len() - 1) * 50,
        "every other stream was scanned"
    );
    assert!(summary.signals_sent > 0);
    assert_eq!(cursor(&s.cursors, "AAPL", Timeframe::M15).await, None);
    for tf in [Timeframe::M5, Timeframe::H1, Timeframe::H4, Timeframe::D1] {
        assert!(cursor(&s.cursors, "AAPL", tf).await.is_some(), "{tf}");
    }
    assert!(cursor(&s.cursors, "BTCUSD", Timeframe::M15).await.is_some());
    let signals: Vec<Signal> = s
        .queue
        .bodies()
        .iter()
        .map(|b| Signal::parse(b).unwrap())
        .collect();
    assert!(signals.iter().all(|sig| {
        !(sig.tickers[0].ticker.as_str() == "AAPL" && sig.timeframe() == Some(Timeframe::M15))
    }));
}

#[tokio::test]
async fn the_higher_timeframe_family_reads_the_higher_series_from_the_source() {
    let queue = Arc::new(MemoryQueue::default());
    let market = Arc::new(RecordingMarket::new(SyntheticFeed { seed: 11 }));
    let generator = Generator::new(
        market.clone(),
        Arc::new(MemoryCursorStore::default()),
        queue,
        all_detectors(),
        GeneratorConfig {
            tickers: tickers(),
            timeframes: vec![Timeframe::M5, Timeframe::D1],
            backfill_bars: 20,
            ..GeneratorConfig::default()
        },
    );
    let handler = Handler::new(generator, Vec::new(), &Telemetry::init(FUNCTION_NAME));
    let summary = handler.scan(NOW, Deadline::none()).await.unwrap();
    assert_eq!(summary.stream_errors, 0);
    // Per ticker: the 5-minute stream's own window (1 000 + 20 candles), then the 1 h, 4 h and
    // daily series themselves, each back to 63 candles before the first evaluated candle's
    // close; then the daily stream's own window (the daily has no higher timeframe). No
    // series is resampled from another.
    let calls: Vec<(String, Timeframe, usize)> = market
        .calls()
        .into_iter()
        .map(|c| {
            assert_eq!(c.now, NOW);
            (c.ticker, c.timeframe, c.count)
        })
        .collect();
    let first_close = last_closed(Timeframe::M5, NOW) + 300 - 19 * 300;
    let higher = |tf: Timeframe| 63 + ((NOW - first_close) / tf.seconds()) as usize + 1;
    for ticker in ["AAPL", "BTCUSD"] {
        let mine: Vec<(Timeframe, usize)> = calls
            .iter()
            .filter(|(t, ..)| t == ticker)
            .map(|(_, tf, count)| (*tf, *count))
            .collect();
        assert_eq!(
            mine,
            [
                (Timeframe::M5, 1_020),
                (Timeframe::H1, higher(Timeframe::H1)),
                (Timeframe::H4, higher(Timeframe::H4)),
                (Timeframe::D1, higher(Timeframe::D1)),
                (Timeframe::D1, 1_020),
            ],
            "{ticker}"
        );
    }
}
