//! The Alpaca market-data provider against a local fake of the API (tests/support/fake_alpaca.rs)
//! replaying answers in Alpaca's documented format (tests/fixtures/alpaca): paging, closed
//! candles only, crypto and stocks, rate-limit answers, server errors, malformed and empty
//! bodies, timeouts, refused requests, late corrections and catching up from a cursor. Every
//! request goes through the functions' real HTTP stack (the SDK's hyper/rustls connector).

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/fake_alpaca.rs"]
mod fake_alpaca;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use fake_alpaca::{Answer, FakeAlpaca};
use tradeflow_aws::market::{AlpacaMarketData, ApiKey, ClientPolicy, SdkHttp};
use tradeflow_aws::tls::TrustRoots;
use tradeflow_core::market::{MarketData, MarketDataError};
use tradeflow_core::vocab::Timeframe;

/// 2024-01-02T15:47:00Z: two minutes into the 15:45 five-minute candle.
const NOW: i64 = 1_704_210_420;
const T1540: i64 = 1_704_210_000;

fn policy() -> ClientPolicy {
    ClientPolicy {
        attempts: 4,
        base_delay: Duration::from_millis(5),
        max_delay: Duration::from_millis(20),
        max_rate_limit_wait: Duration::from_secs(5),
        max_pages: 20,
        burst: 10,
    }
}

fn client(server: &FakeAlpaca, policy: ClientPolicy, timeout: Duration) -> AlpacaMarketData {
    AlpacaMarketData::new(
        Arc::new(SdkHttp::new(&TrustRoots::none(), timeout)),
        server.url.clone(),
        "iex",
        10_000,
        ApiKey {
            key_id: "PKTEST000000000000".into(),
            secret_key: "test-secret".into(),
        },
        policy,
    )
}

fn provider_error(e: MarketDataError) -> (String, bool) {
    match e {
        MarketDataError::Provider {
            provider,
            series,
            reason,
            retryable,
        } => {
            assert_eq!(provider, "alpaca");
            (format!("{series}: {reason}"), retryable)
        }
        other => panic!("not a provider error: {other:?}"),
    }
}

fn wall_clock() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

#[tokio::test]
async fn pages_are_followed_and_only_closed_candles_are_served_oldest_first() {
    let server = FakeAlpaca::scripted(vec![
        Answer::ok("stocks_5min_desc_page1.json").rate_limit(199, NOW + 60),
        Answer::ok("stocks_5min_desc_page2.json").rate_limit(198, NOW + 60),
    ])
    .await;
    let alpaca = client(&server, policy(), Duration::from_secs(5));
    let bars = alpaca
        .closed_bars("AAPL", Timeframe::M5, NOW, 5)
        .await
        .unwrap();
    // 15:20 … 15:40; the 15:45 bar is still forming at 15:47.
    let times: Vec<i64> = bars.iter().map(|b| b.time).collect();
    let expected: Vec<i64> = (0..5).map(|k| T1540 - (4 - k) * 300).collect();
    assert_eq!(times, expected);
    assert_eq!(bars[4].close, 185.6);
    assert_eq!(bars[0].close, 186.2);
    assert_eq!(alpaca.stats.forming_dropped.load(Ordering::Relaxed), 1);

    let seen = server.seen();
    assert_eq!(seen.len(), 2);
    let first = &seen[0];
    assert_eq!(first.path, "/v2/stocks/bars");
    for (k, v) in [
        ("symbols", "AAPL"),
        ("timeframe", "5Min"),
        ("sort", "desc"),
        ("limit", "6"),
        ("end", "2024-01-02T15:47:00Z"),
        ("feed", "iex"),
        ("adjustment", "raw"),
    ] {
        assert_eq!(first.query.get(k).map(String::as_str), Some(v), "{k}");
    }
    assert!(!first.query.contains_key("page_token"));
    assert_eq!(first.headers["apca-api-key-id"], "PKTEST000000000000");
    assert_eq!(first.headers["apca-api-secret-key"], "test-secret");
    // The second page: the token of the first, and only what is still missing.
    assert_eq!(
        seen[1].query["page_token"],
        "QUFQTHxNfDIwMjQtMDEtMDJUMTU6MzU6MDBafDE="
    );
    assert_eq!(seen[1].query["limit"], "3");
}

#[tokio::test]
async fn crypto_pairs_use_the_crypto_endpoint() {
    let server = FakeAlpaca::scripted(vec![Answer::ok("crypto_1hour_desc.json")]).await;
    let alpaca = client(&server, policy(), Duration::from_secs(5));
    let bars = alpaca
        .closed_bars("BTC-USD", Timeframe::H1, NOW, 2)
        .await
        .unwrap();
    assert_eq!(
        bars.iter().map(|b| b.time).collect::<Vec<_>>(),
        [NOW - 47 * 60 - 7_200, NOW - 47 * 60 - 3_600]
    );
    let seen = &server.seen()[0];
    assert_eq!(seen.path, "/v1beta3/crypto/us/bars");
    assert_eq!(seen.query["symbols"], "BTC/USD");
    assert_eq!(seen.query["timeframe"], "1Hour");
    assert!(!seen.query.contains_key("feed"));
}

#[tokio::test]
async fn an_empty_range_is_no_bars() {
    let server = FakeAlpaca::scripted(vec![Answer::ok("empty.json")]).await;
    let alpaca = client(&server, policy(), Duration::from_secs(5));
    let bars = alpaca
        .closed_bars("AAPL", Timeframe::D1, NOW, 300)
        .await
        .unwrap();
    assert!(bars.is_empty());
    assert_eq!(server.seen().len(), 1);
}

#[tokio::test]
async fn a_rate_limit_answer_holds_requests_until_its_reset_then_retries() {
    let reset = wall_clock() + 2;
    let server = FakeAlpaca::scripted(vec![
        Answer::fixture(429, "rate_limited.json").rate_limit(0, reset),
        Answer::ok("crypto_1hour_desc.json").rate_limit(199, reset + 60),
    ])
    .await;
    let alpaca = client(&server, policy(), Duration::from_secs(5));
    let started = Instant::now();
    let bars = alpaca
        .closed_bars("BTC-USD", Timeframe::H1, NOW, 2)
        .await
        .unwrap();
    assert_eq!(bars.len(), 2);
    // The retry waited for the window's reset (header in whole seconds: at least 1 s of the 2).
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(alpaca.stats.rate_limited.load(Ordering::Relaxed), 1);
    assert_eq!(alpaca.stats.retries.load(Ordering::Relaxed), 1);
    assert_eq!(server.seen().len(), 2);
}

#[tokio::test]
async fn a_rate_limit_resetting_after_the_scan_fails_the_stream_at_once() {
    let server = FakeAlpaca::scripted(vec![
        Answer::fixture(429, "rate_limited.json").rate_limit(0, wall_clock() + 120),
    ])
    .await;
    let alpaca = client(&server, policy(), Duration::from_secs(5));
    let started = Instant::now();
    let err = alpaca
        .closed_bars("AAPL", Timeframe::M5, NOW, 5)
        .await
        .unwrap_err();
    assert!(err.is_retryable());
    let (text, _) = provider_error(err);
    assert!(text.starts_with("AAPL_5: 429 rate limited"), "{text}");
    assert!(text.contains("resets in"), "{text}");
    assert_eq!(server.seen().len(), 1);
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn server_errors_are_retried_with_backoff() {
    let server = FakeAlpaca::scripted(vec![
        Answer::fixture(500, "server_error.json"),
        Answer::fixture(503, "server_error.json"),
        Answer::ok("crypto_1hour_desc.json"),
    ])
    .await;
    let alpaca = client(&server, policy(), Duration::from_secs(5));
    let bars = alpaca
        .closed_bars("BTC-USD", Timeframe::H1, NOW, 2)
        .await
        .unwrap();
    assert_eq!(bars.len(), 2);
    assert_eq!(alpaca.stats.retries.load(Ordering::Relaxed), 2);

    // Failing every attempt: a retryable error naming the status and the series.
    let server = FakeAlpaca::scripted(vec![Answer::fixture(500, "server_error.json"); 4]).await;
    let alpaca = client(&server, policy(), Duration::from_secs(5));
    let err = alpaca
        .closed_bars("AAPL", Timeframe::M15, NOW, 5)
        .await
        .unwrap_err();
    let (text, retryable) = provider_error(err);
    assert!(retryable);
    assert!(text.contains("AAPL_15: HTTP 500"), "{text}");
    assert!(text.contains("internal server error occurred"), "{text}");
    assert!(text.contains("after 4 attempts"), "{text}");
    assert_eq!(server.seen().len(), 4);
}

#[tokio::test]
async fn a_malformed_body_is_retried_and_then_reported() {
    let server = FakeAlpaca::scripted(vec![
        Answer::ok("malformed.json"),
        Answer::ok("stocks_5min_desc_page2.json"),
    ])
    .await;
    let alpaca = client(&server, policy(), Duration::from_secs(5));
    let bars = alpaca
        .closed_bars("AAPL", Timeframe::M5, NOW, 2)
        .await
        .unwrap();
    assert_eq!(bars.len(), 2);

    let server = FakeAlpaca::scripted(vec![Answer::ok("malformed.json"); 4]).await;
    let alpaca = client(&server, policy(), Duration::from_secs(5));
    let (text, retryable) = provider_error(
        alpaca
            .closed_bars("AAPL", Timeframe::M5, NOW, 2)
            .await
            .unwrap_err(),
    );
    assert!(retryable);
    assert!(text.contains("malformed answer body"), "{text}");
}

#[tokio::test]
async fn refused_requests_are_not_retried() {
    for (status, fixture, needle) in [
        (
            403,
            "forbidden.json",
            "HTTP 403: {\"message\": \"forbidden.\"}",
        ),
        (422, "invalid_symbol.json", "invalid symbol"),
    ] {
        let server = FakeAlpaca::scripted(vec![Answer::fixture(status, fixture)]).await;
        let alpaca = client(&server, policy(), Duration::from_secs(5));
        let (text, retryable) = provider_error(
            alpaca
                .closed_bars("AAPL", Timeframe::M5, NOW, 2)
                .await
                .unwrap_err(),
        );
        assert!(!retryable, "{status}");
        assert!(text.contains(needle), "{text}");
        assert_eq!(server.seen().len(), 1, "{status}: no retry");
    }
}

#[tokio::test]
async fn a_timeout_is_retried() {
    let server = FakeAlpaca::scripted(vec![
        Answer::ok("crypto_1hour_desc.json").delayed(Duration::from_secs(2)),
        Answer::ok("crypto_1hour_desc.json"),
    ])
    .await;
    let alpaca = client(&server, policy(), Duration::from_millis(300));
    let bars = alpaca
        .closed_bars("BTC-USD", Timeframe::H1, NOW, 2)
        .await
        .unwrap();
    assert_eq!(bars.len(), 2);
    assert_eq!(alpaca.stats.retries.load(Ordering::Relaxed), 1);

    // Nobody listening: a connection failure, retried, then a retryable error.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let alpaca = AlpacaMarketData::new(
        Arc::new(SdkHttp::new(&TrustRoots::none(), Duration::from_secs(2))),
        closed,
        "iex",
        10_000,
        ApiKey {
            key_id: "k".into(),
            secret_key: "s".into(),
        },
        policy(),
    );
    let err = alpaca
        .closed_bars("AAPL", Timeframe::M5, NOW, 2)
        .await
        .unwrap_err();
    assert!(err.is_retryable());
    assert!(provider_error(err).0.contains("after 4 attempts"));
}

#[tokio::test]
async fn a_late_correction_is_counted_and_served_as_history() {
    let server = FakeAlpaca::scripted(vec![
        Answer::ok("stocks_5min_desc_page1.json"),
        Answer::ok("stocks_5min_corrected.json"),
    ])
    .await;
    let alpaca = client(&server, policy(), Duration::from_secs(5));
    let first = alpaca
        .closed_bars("AAPL", Timeframe::M5, NOW, 2)
        .await
        .unwrap();
    assert_eq!(first[1].time, T1540);
    assert_eq!(first[1].low, 185.38);
    assert_eq!(alpaca.corrections(), 0);
    // A minute later the 15:40 bar comes back changed (a late trade): counted, and served.
    let second = alpaca
        .closed_bars("AAPL", Timeframe::M5, NOW + 60, 2)
        .await
        .unwrap();
    assert_eq!(second[1].time, T1540);
    assert_eq!(second[1].low, 185.31);
    assert_eq!(alpaca.corrections(), 1);
}

#[tokio::test]
async fn catching_up_reads_the_history_before_the_cursor_and_the_candles_after_it() {
    let server = FakeAlpaca::scripted(vec![
        Answer::ok("stocks_5min_desc_page2.json"),
        Answer::ok("stocks_5min_asc_after.json"),
    ])
    .await;
    let alpaca = client(&server, policy(), Duration::from_secs(5));
    let cursor = T1540 - 600; // 15:30
    let bars = alpaca
        .closed_bars_after("AAPL", Timeframe::M5, NOW, cursor, 3, 10)
        .await
        .unwrap();
    let times: Vec<i64> = bars.iter().map(|b| (b.time - cursor) / 300).collect();
    // 15:20, 15:25, 15:30 (history), 15:35, 15:40 (new; 15:45 still forming).
    assert_eq!(times, [-2, -1, 0, 1, 2]);
    let seen = server.seen();
    assert_eq!(seen[0].query["sort"], "desc");
    assert_eq!(seen[0].query["end"], "2024-01-02T15:30:00Z");
    assert_eq!(seen[1].query["sort"], "asc");
    assert_eq!(seen[1].query["start"], "2024-01-02T15:30:01Z");
    assert_eq!(seen[1].query["end"], "2024-01-02T15:47:00Z");
    assert_eq!(seen[1].query["limit"], "11");
}
