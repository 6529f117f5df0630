#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::io::Write;

use tradeflow_core::detectors::all_detectors;
use tradeflow_core::market::SyntheticFeed;
use tradeflow_core::signal::Signal;
use tradeflow_core::vocab::{Bar, Timeframe};
use tradeflow_local::invoke::scheduled_event;

use crate::helpers::*;

const BARS: i64 = 700;
const BACKFILL: usize = 300;

/// Writes `<TICKER>_5.csv` (documented columns) and returns its bars.
fn write_csv(dir: &std::path::Path, ticker: &str, first: i64) -> Vec<Bar> {
    let feed = SyntheticFeed { seed: 99 };
    let bars: Vec<Bar> = (first..first + BARS)
        .map(|k| feed.bar(ticker, Timeframe::M5, k))
        .collect();
    let mut f = std::fs::File::create(dir.join(format!("{ticker}_5.csv"))).unwrap();
    writeln!(f, "timestamp,open,high,low,close,volume").unwrap();
    for b in &bars {
        writeln!(
            f,
            "{},{},{},{},{},{}",
            b.time, b.open, b.high, b.low, b.close, b.volume
        )
        .unwrap();
    }
    bars
}

#[tokio::test]
#[ignore = "needs the AWS emulator (AWS_ENDPOINT_URL); local/test.sh runs it"]
async fn the_generator_replays_a_csv_into_the_expected_signals_and_never_sends_them_twice() {
    let sdk = emulator().await;
    let stack = TestStack::deploy(sdk).await;
    let dir = std::env::temp_dir().join(format!("tradeflow-csv-{}", stack.stage));
    std::fs::create_dir_all(&dir).unwrap();
    let first = 5_000_000;
    let mut expected: BTreeSet<(String, String)> = BTreeSet::new();
    for ticker in ["AAPL", "MSFT"] {
        let bars = write_csv(&dir, ticker, first);
        for i in bars.len() - BACKFILL..bars.len() {
            for d in all_detectors() {
                if let Some(det) = d.detect(&bars, i) {
                    let id = tradeflow_core::ids::signal_id(
                        det.generator,
                        det.signal_type,
                        ticker,
                        "5",
                        det.candle_time,
                    );
                    expected.insert((id, det.signal_type.to_owned()));
                }
            }
        }
    }
    assert!(
        expected.len() > 10,
        "the series fires a fair number of signals: {}",
        expected.len()
    );
    let csv_dir = dir.to_string_lossy().into_owned();
    let functions = stack
        .functions(&[
            ("MARKET_DATA", "csv"),
            ("MARKET_DATA_CSV_DIR", &csv_dir),
            ("GENERATOR_TICKERS", "AAPL,MSFT"),
            ("GENERATOR_TIMEFRAMES", "5"),
            ("GENERATOR_BACKFILL_BARS", &BACKFILL.to_string()),
        ])
        .await;
    // The scan runs when the last candle has closed.
    let end = (first + BARS) * 300;
    let summary = functions
        .generator
        .invoke(scheduled_event(end))
        .await
        .unwrap();
    assert_eq!(summary["candles_evaluated"], 2 * BACKFILL);
    let sent: Vec<Signal> = stack
        .drain("SignalsQueueName")
        .await
        .iter()
        .map(|b| Signal::parse(b).unwrap())
        .collect();
    let got: BTreeSet<(String, String)> = sent
        .iter()
        .map(|s| (s.signal_id.clone(), s.signal_type.to_string()))
        .collect();
    assert_eq!(sent.len(), got.len(), "no duplicates within a scan");
    assert_eq!(got, expected);
    assert!(
        sent.iter()
            .all(|s| s.timestamp <= end && s.metadata.timeframe == Some(Timeframe::M5))
    );

    // The same candles again, and later with no new candle: nothing is sent.
    for time in [end, end + 3600] {
        let summary = functions
            .generator
            .invoke(scheduled_event(time))
            .await
            .unwrap();
        assert_eq!(summary["signals_sent"], 0);
        assert!(stack.drain("SignalsQueueName").await.is_empty());
    }
    let _ = std::fs::remove_dir_all(&dir);
    stack.delete().await;
}
