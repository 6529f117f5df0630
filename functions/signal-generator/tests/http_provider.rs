//! The handler on the HTTP market-data provider (Alpaca) against a local fake of the API:
//! each stream's failure (server errors after retries, a refused symbol, a malformed answer)
//! is reported for that stream alone, the others are scanned, and a scan where every stream
//! failed fails the invocation.

#![allow(clippy::unwrap_used)]

#[path = "../../../crates/tradeflow-aws/tests/support/fake_alpaca.rs"]
mod fake_alpaca;

use std::sync::Arc;
use std::time::Duration;

use fake_alpaca::{Answer, FakeAlpaca};
use signal_generator::{FUNCTION_NAME, Handler, ScanError};
use tradeflow_aws::market::{AlpacaMarketData, ApiKey, ClientPolicy, SdkHttp};
use tradeflow_aws::tls::TrustRoots;
use tradeflow_core::deadline::Deadline;
use tradeflow_core::detectors::all_detectors;
use tradeflow_core::fakes::{MemoryCursorStore, MemoryQueue};
use tradeflow_core::generate::{Generator, GeneratorConfig};
use tradeflow_core::ports::CursorStore;
use tradeflow_core::vocab::{Ticker, Timeframe};
use tradeflow_telemetry::Telemetry;

/// 2024-01-02T15:47:00Z.
const NOW: i64 = 1_704_210_420;

/// MSFT answers with its bars; AAPL with 500s; NOTATICKER is refused (422); BAD with a body
/// cut off mid-transfer.
async fn server() -> FakeAlpaca {
    FakeAlpaca::start(|seen| match seen.query.get("symbols").map(String::as_str) {
        Some("MSFT") => Answer::ok("stocks_5min_msft.json"),
        Some("AAPL") => Answer::fixture(500, "server_error.json"),
        Some("NOTATICKER") => Answer::fixture(422, "invalid_symbol.json"),
        _ => Answer::ok("malformed.json"),
    })
    .await
}

fn generator(server: &FakeAlpaca, tickers: &[&str], cursors: Arc<MemoryCursorStore>) -> Generator {
    let market = AlpacaMarketData::new(
        Arc::new(SdkHttp::new(&TrustRoots::none(), Duration::from_secs(5))),
        server.url.clone(),
        "iex",
        10_000,
        ApiKey {
            key_id: "PKTEST".into(),
            secret_key: "secret".into(),
        },
        ClientPolicy {
            base_delay: Duration::from_millis(2),
            max_delay: Duration::from_millis(10),
            ..ClientPolicy::default()
        },
    );
    Generator::new(
        Arc::new(market),
        cursors,
        Arc::new(MemoryQueue::default()),
        all_detectors(),
        GeneratorConfig {
            tickers: tickers.iter().map(|t| Ticker::parse(t).unwrap()).collect(),
            timeframes: vec![Timeframe::M5],
            backfill_bars: 2,
            ..GeneratorConfig::default()
        },
    )
}

#[tokio::test]
async fn each_failing_stream_is_reported_alone_and_the_others_are_scanned() {
    let server = server().await;
    let cursors = Arc::new(MemoryCursorStore::default());
    let g = generator(
        &server,
        &["AAPL", "MSFT", "NOTATICKER", "BAD"],
        cursors.clone(),
    );
    let report = g.scan(NOW, Deadline::none()).await;
    assert_eq!(report.streams, 4);
    // MSFT: its two closed candles evaluated, its cursor on the newest (15:40).
    assert_eq!(report.candles_evaluated, 2);
    let msft = Generator::stream_key(&Ticker::parse("MSFT").unwrap(), Timeframe::M5);
    assert_eq!(
        cursors.get_cursor(&msft).await.unwrap(),
        Some(1_704_210_000)
    );
    let errors: Vec<(&str, bool, &str)> = report
        .errors
        .iter()
        .map(|e| (e.stream.as_str(), e.retryable, e.reason.as_str()))
        .collect();
    assert_eq!(errors.len(), 3, "{errors:#?}");
    for (stream, retryable, needle) in [
        ("AAPL#5", true, "alpaca market data for AAPL_5: HTTP 500"),
        ("NOTATICKER#5", false, "invalid symbol: NOTATICKER"),
        ("BAD#5", true, "malformed answer body"),
    ] {
        let (_, r, reason) = errors
            .iter()
            .find(|(s, ..)| *s == stream)
            .unwrap_or_else(|| panic!("{stream}: {errors:#?}"));
        assert_eq!(*r, retryable, "{stream}");
        assert!(reason.contains(needle), "{stream}: {reason}");
    }
    assert!(report.errors.iter().all(|e| e.error_type == "market_data"));
    for ticker in ["AAPL", "NOTATICKER", "BAD"] {
        let key = Generator::stream_key(&Ticker::parse(ticker).unwrap(), Timeframe::M5);
        assert_eq!(cursors.get_cursor(&key).await.unwrap(), None, "{ticker}");
    }
}

#[tokio::test]
async fn the_invocation_fails_only_when_every_stream_failed() {
    let server = server().await;
    let telemetry = Telemetry::init(FUNCTION_NAME);
    let some = Handler::new(
        generator(&server, &["AAPL", "MSFT"], Arc::default()),
        Vec::new(),
        &telemetry,
    );
    let summary = some.scan(NOW, Deadline::none()).await.unwrap();
    assert_eq!((summary.streams, summary.stream_errors), (2, 1));
    let all = Handler::new(
        generator(&server, &["AAPL", "NOTATICKER"], Arc::default()),
        Vec::new(),
        &telemetry,
    );
    let err = all.scan(NOW, Deadline::none()).await.unwrap_err();
    assert!(matches!(err, ScanError::AllStreamsFailed(2)), "{err}");
}
