//! Alpaca Market Data v2 / v1beta3, the plain part: which endpoint and parameters a request
//! uses, how an answer page is parsed, and which bars are served (closed ones, in order, each
//! time once). No I/O here: [`super::AlpacaMarketData`] sends the requests.
//!
//! - Stocks: `GET {data_url}/v2/stocks/bars?symbols=AAPL&timeframe=5Min&start=…&end=…&limit=…
//!   &adjustment=raw&feed=iex&sort=asc|desc[&page_token=…]`.
//! - Crypto: `GET {data_url}/v1beta3/crypto/us/bars?symbols=BTC%2FUSD&timeframe=…` (same
//!   parameters but `adjustment` and `feed`).
//! - Answer: `{"bars": {"AAPL": [{"t": "2024-01-02T14:30:00Z", "o": …, "h": …, "l": …, "c": …,
//!   "v": …, "n": …, "vw": …}]}, "next_page_token": "…" | null}`; `"bars": {}` (or `null`) when
//!   there is nothing in the range.

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat};
use serde::Deserialize;
use tradeflow_core::vocab::{Bar, Timeframe};

/// Largest `limit` Alpaca accepts per page.
pub const MAX_PAGE_LIMIT: usize = 10_000;

/// Which API an instrument is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AssetClass {
    /// US stocks and ETFs (`/v2/stocks/bars`).
    Stock,
    /// Crypto pairs (`/v1beta3/crypto/us/bars`).
    Crypto,
}

/// A ticker as Alpaca names it. A ticker with `-` or `/` and `USD` in it is crypto, as the old
/// platform classified them (`BTC-USD`, `ETH/USDT` → `BTC/USD`, `ETH/USDT`); anything else is a
/// US stock or ETF (`AAPL`, `BRK.B`).
pub fn instrument(ticker: &str) -> (AssetClass, String) {
    if ticker.contains("USD") && (ticker.contains('-') || ticker.contains('/')) {
        (AssetClass::Crypto, ticker.replace('-', "/"))
    } else {
        (AssetClass::Stock, ticker.to_owned())
    }
}

/// Alpaca's `timeframe` parameter.
pub fn timeframe_param(tf: Timeframe) -> &'static str {
    match tf {
        Timeframe::M1 => "1Min",
        Timeframe::M5 => "5Min",
        Timeframe::M15 => "15Min",
        Timeframe::H1 => "1Hour",
        Timeframe::H4 => "4Hour",
        Timeframe::D1 => "1Day",
    }
}

/// How far back (seconds) to start a request that must reach `count` candles of `tf` before
/// its end: candles exist only while the market trades. US stocks trade 6.5 h of 24 on 5 days
/// of 7 (about one 5-minute candle in 5.2 of wall time, extended hours aside), crypto always;
/// plus 5 days for weekends and holidays. Too short a range only returns fewer candles (the
/// port allows it); too long costs nothing with `sort=desc` and `limit`.
pub fn lookback_seconds(class: AssetClass, tf: Timeframe, count: usize) -> i64 {
    let factor = match (class, tf) {
        (AssetClass::Crypto, _) => 1.2,
        (AssetClass::Stock, Timeframe::D1) => 1.5,
        (AssetClass::Stock, _) => 5.5,
    };
    let span = (count as f64 * tf.seconds() as f64 * factor).min(i64::MAX as f64 / 4.0) as i64;
    span.saturating_add(5 * 86_400)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
/// Order of the bars in the answer (`sort`).
pub enum Sort {
    /// Oldest first.
    Asc,
    /// Newest first.
    Desc,
}

/// One page request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageRequest {
    /// Which API.
    pub class: AssetClass,
    /// Alpaca's symbol (`AAPL`, `BTC/USD`).
    pub symbol: String,
    /// The candles' timeframe.
    pub timeframe: Timeframe,
    /// Unix seconds, inclusive.
    pub start: i64,
    /// Unix seconds, inclusive.
    pub end: i64,
    /// Bars per page (1 to [`MAX_PAGE_LIMIT`]).
    pub limit: usize,
    /// Order of the bars.
    pub sort: Sort,
    /// The previous page's `next_page_token`.
    pub page_token: Option<String>,
}

impl PageRequest {
    /// The URL under `data_url` (no trailing slash needed).
    pub fn url(&self, data_url: &str, stock_feed: &str) -> String {
        let base = data_url.trim_end_matches('/');
        let path = match self.class {
            AssetClass::Stock => "/v2/stocks/bars",
            AssetClass::Crypto => "/v1beta3/crypto/us/bars",
        };
        let mut query: Vec<(&str, String)> = vec![
            ("symbols", self.symbol.clone()),
            ("timeframe", timeframe_param(self.timeframe).to_owned()),
            ("start", rfc3339(self.start)),
            ("end", rfc3339(self.end)),
            ("limit", self.limit.clamp(1, MAX_PAGE_LIMIT).to_string()),
            (
                "sort",
                match self.sort {
                    Sort::Asc => "asc",
                    Sort::Desc => "desc",
                }
                .to_owned(),
            ),
        ];
        if self.class == AssetClass::Stock {
            query.push(("adjustment", "raw".to_owned()));
            query.push(("feed", stock_feed.to_owned()));
        }
        if let Some(token) = &self.page_token {
            query.push(("page_token", token.clone()));
        }
        let query: Vec<String> = query
            .iter()
            .map(|(k, v)| format!("{k}={}", percent_encode(v)))
            .collect();
        format!("{base}{path}?{}", query.join("&"))
    }
}

/// `2024-01-02T14:30:00Z`; times out of chrono's range clamp to its ends.
pub fn rfc3339(unix: i64) -> String {
    DateTime::from_timestamp(unix.clamp(-8_334_601_228_800, 8_210_266_876_799), 0)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// RFC 3986 percent-encoding of a query value (unreserved characters kept).
pub fn percent_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[derive(Debug, Deserialize)]
struct RawPage {
    #[serde(default)]
    bars: Option<BTreeMap<String, Vec<RawBar>>>,
    #[serde(default)]
    next_page_token: Option<String>,
}

#[derive(Debug, Deserialize)]
struct RawBar {
    t: String,
    o: f64,
    h: f64,
    l: f64,
    c: f64,
    v: f64,
}

/// A parsed answer page: the symbol's bars (as sent) and the token of the next page.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    /// The symbol's bars, as sent.
    pub bars: Vec<Bar>,
    /// The token of the next page; `None` on the last one.
    pub next_page_token: Option<String>,
}

/// Why an answer body is not a page of bars.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PageError {
    #[error("malformed answer body: {0}")]
    /// Not the documented JSON (truncated, HTML, wrong types).
    Malformed(String),
    #[error("bar time {0:?} is not an RFC 3339 time")]
    /// A bar time that is not RFC 3339.
    BadTime(String),
}

/// Parses a 200 answer's body; bars of other symbols are ignored.
pub fn parse_page(body: &[u8], symbol: &str) -> Result<Page, PageError> {
    let raw: RawPage =
        serde_json::from_slice(body).map_err(|e| PageError::Malformed(e.to_string()))?;
    let mut bars = Vec::new();
    for b in raw
        .bars
        .unwrap_or_default()
        .remove(symbol)
        .unwrap_or_default()
    {
        let time = DateTime::parse_from_rfc3339(&b.t)
            .map_err(|_| PageError::BadTime(b.t.clone()))?
            .timestamp();
        bars.push(Bar {
            time,
            open: b.o,
            high: b.h,
            low: b.l,
            close: b.c,
            volume: b.v,
        });
    }
    Ok(Page {
        bars,
        // An empty token is the last page too.
        next_page_token: raw.next_page_token.filter(|t| !t.is_empty()),
    })
}

/// What [`closed_series`] left out.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Dropped {
    /// Bars still forming at `now` (`time + timeframe > now`).
    pub forming: usize,
    /// Bars that are not valid candles (high below low, negative volume, not finite…).
    pub invalid: usize,
    /// A second bar for a time already in the answer (pages overlapping): the later one is kept.
    pub duplicate: usize,
}

/// The bars of an answer as the port serves them: closed at `now`, valid, oldest first, one per
/// open time (gaps, e.g. nights and weekends of a stock, stay gaps).
pub fn closed_series(bars: Vec<Bar>, timeframe: Timeframe, now: i64) -> (Vec<Bar>, Dropped) {
    let mut dropped = Dropped::default();
    let mut by_time: BTreeMap<i64, Bar> = BTreeMap::new();
    for bar in bars {
        if bar.close_time(timeframe) > now {
            dropped.forming += 1;
        } else if bar.validate().is_err() {
            dropped.invalid += 1;
        } else if by_time.insert(bar.time, bar).is_some() {
            dropped.duplicate += 1;
        }
    }
    (by_time.into_values().collect(), dropped)
}

/// A rate-limit answer's wait: `X-RateLimit-Reset` (Unix seconds when the window resets) minus
/// `now`, or `Retry-After` (seconds); `None` when neither is usable.
pub fn rate_limit_wait(headers: &[(String, String)], now: i64) -> Option<i64> {
    let header = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .and_then(|(_, v)| v.trim().parse::<i64>().ok())
    };
    if let Some(reset) = header("x-ratelimit-reset") {
        return Some((reset - now).max(0));
    }
    header("retry-after").map(|s| s.max(0))
}

/// `X-RateLimit-Remaining` of an answer.
pub fn rate_limit_remaining(headers: &[(String, String)]) -> Option<u64> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("x-ratelimit-remaining"))
        .and_then(|(_, v)| v.trim().parse().ok())
}

/// Bars already served per series, to notice late corrections: a bar for a time served before
/// whose values changed (a late trade, a correction by the exchange).
///
/// The rule: the generator's cursor has moved past a served candle, so a correction never makes
/// it evaluate that candle again (no signal is re-fired or withdrawn); it is logged and counted,
/// and the corrected values are what later candles see as history. Per process (a warm
/// Lambda), at most [`Corrections::KEEP`] times per series.
#[derive(Debug, Default)]
pub struct Corrections {
    /// Per series, open time → a 64-bit digest of the bar's values (8 bytes, not 40, per bar:
    /// a window of 1 000 bars for each of a few hundred series stays a few MB).
    served: BTreeMap<String, BTreeMap<i64, u64>>,
    count: u64,
}

/// A digest of a bar's values (their bit patterns, mixed).
fn digest(bar: &Bar) -> u64 {
    [bar.open, bar.high, bar.low, bar.close, bar.volume]
        .iter()
        .fold(0xcbf2_9ce4_8422_2325_u64, |h, v| {
            let mut z = (h ^ v.to_bits()).wrapping_add(0x9E37_79B9_7F4A_7C15);
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        })
}

impl Corrections {
    /// Times remembered per series.
    pub const KEEP: usize = 1_200;

    /// Records `bars` served for `series`; returns the times whose values changed since served.
    pub fn observe(&mut self, series: &str, bars: &[Bar]) -> Vec<i64> {
        let seen = self.served.entry(series.to_owned()).or_default();
        let mut corrected = Vec::new();
        for bar in bars {
            let values = digest(bar);
            if let Some(old) = seen.insert(bar.time, values)
                && old != values
            {
                corrected.push(bar.time);
            }
        }
        while seen.len() > Self::KEEP {
            seen.pop_first();
        }
        self.count += corrected.len() as u64;
        corrected
    }

    /// Corrections seen so far.
    pub fn count(&self) -> u64 {
        self.count
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn tickers_map_to_stocks_or_crypto_symbols() {
        assert_eq!(instrument("AAPL"), (AssetClass::Stock, "AAPL".into()));
        assert_eq!(instrument("BRK.B"), (AssetClass::Stock, "BRK.B".into()));
        assert_eq!(
            instrument("BTC-USD"),
            (AssetClass::Crypto, "BTC/USD".into())
        );
        assert_eq!(
            instrument("ETH/USDT"),
            (AssetClass::Crypto, "ETH/USDT".into())
        );
        // No separator: a stock symbol (Alpaca has no stock named like a pair anyway).
        assert_eq!(instrument("BTCUSD").0, AssetClass::Stock);
    }

    #[test]
    fn urls_carry_the_documented_parameters() {
        let mut r = PageRequest {
            class: AssetClass::Stock,
            symbol: "AAPL".into(),
            timeframe: Timeframe::M5,
            start: 1_704_205_800,
            end: 1_704_227_400,
            limit: 20_000,
            sort: Sort::Desc,
            page_token: None,
        };
        assert_eq!(
            r.url("https://data.alpaca.markets/", "iex"),
            "https://data.alpaca.markets/v2/stocks/bars?symbols=AAPL&timeframe=5Min\
             &start=2024-01-02T14%3A30%3A00Z&end=2024-01-02T20%3A30%3A00Z&limit=10000&sort=desc\
             &adjustment=raw&feed=iex"
        );
        r.class = AssetClass::Crypto;
        r.symbol = "BTC/USD".into();
        r.timeframe = Timeframe::H4;
        r.sort = Sort::Asc;
        r.limit = 0;
        r.page_token = Some("QlRDL1VTRHwx+/=".into());
        assert_eq!(
            r.url("http://127.0.0.1:9", "iex"),
            "http://127.0.0.1:9/v1beta3/crypto/us/bars?symbols=BTC%2FUSD&timeframe=4Hour\
             &start=2024-01-02T14%3A30%3A00Z&end=2024-01-02T20%3A30%3A00Z&limit=1&sort=asc\
             &page_token=QlRDL1VTRHwx%2B%2F%3D"
        );
        let tfs: Vec<&str> = Timeframe::ALL.into_iter().map(timeframe_param).collect();
        assert_eq!(tfs, ["1Min", "5Min", "15Min", "1Hour", "4Hour", "1Day"]);
    }

    #[test]
    fn pages_parse_with_their_token_and_tolerate_empty_answers() {
        let body = br#"{"bars": {"AAPL": [
            {"t": "2024-01-02T14:30:00Z", "o": 187.15, "h": 187.4, "l": 186.9, "c": 187.0, "v": 120345, "n": 1502, "vw": 187.1},
            {"t": "2024-01-02T14:35:00Z", "o": 187.0, "h": 187.2, "l": 186.5, "c": 186.6, "v": 98001, "n": 1210, "vw": 186.8}
        ], "MSFT": []}, "next_page_token": "QUFQTHxNfDIwMjQ=", "currency": "USD"}"#;
        let page = parse_page(body, "AAPL").unwrap();
        assert_eq!(page.bars.len(), 2);
        assert_eq!(page.bars[0].time, 1_704_205_800);
        assert_eq!(page.bars[1].close, 186.6);
        assert_eq!(page.next_page_token.as_deref(), Some("QUFQTHxNfDIwMjQ="));
        for empty in [
            &br#"{"bars": {}, "next_page_token": null}"#[..],
            br#"{"bars": null, "next_page_token": null, "currency": "USD"}"#,
            br#"{"bars": {"MSFT": []}, "next_page_token": ""}"#,
        ] {
            let page = parse_page(empty, "AAPL").unwrap();
            assert!(page.bars.is_empty() && page.next_page_token.is_none());
        }
        for bad in [
            &b"{\"bars\": {\"AAPL\": [{\"t\": \"2024-01-02T14:30:00Z\", \"o\": 1"[..],
            b"<html>502 Bad Gateway</html>",
            br#"{"bars": {"AAPL": [{"t": "2024-01-02T14:30:00Z", "o": "x"}]}}"#,
        ] {
            assert!(matches!(
                parse_page(bad, "AAPL"),
                Err(PageError::Malformed(_))
            ));
        }
        let bad_time =
            br#"{"bars": {"AAPL": [{"t": "yesterday", "o": 1, "h": 1, "l": 1, "c": 1, "v": 1}]}}"#;
        assert_eq!(
            parse_page(bad_time, "AAPL"),
            Err(PageError::BadTime("yesterday".into()))
        );
    }

    fn bar(time: i64, close: f64) -> Bar {
        Bar {
            time,
            open: close,
            high: close + 1.0,
            low: close - 1.0,
            close,
            volume: 10.0,
        }
    }

    #[test]
    fn only_closed_valid_bars_are_served_in_order_once() {
        let tf = Timeframe::M5;
        let now = 10_000 * 300 + 120; // 2 minutes into candle 10 000
        let mut broken = bar(9_997 * 300, 5.0);
        broken.high = 1.0;
        let bars = vec![
            bar(9_999 * 300, 3.0),
            bar(9_998 * 300, 2.0),
            bar(10_000 * 300, 4.0), // forming
            broken,
            bar(9_999 * 300, 3.5), // the same time again: the later one wins
            bar(9_990 * 300, 1.5), // a gap before it stays a gap
        ];
        let (served, dropped) = closed_series(bars, tf, now);
        let times: Vec<i64> = served.iter().map(|b| b.time / 300).collect();
        assert_eq!(times, [9_990, 9_998, 9_999]);
        assert_eq!(served[2].close, 3.5);
        assert_eq!(
            dropped,
            Dropped {
                forming: 1,
                invalid: 1,
                duplicate: 1
            }
        );
        // At the candle's close exactly, it is closed.
        let (served, _) = closed_series(vec![bar(10_000 * 300, 4.0)], tf, 10_001 * 300);
        assert_eq!(served.len(), 1);
    }

    #[test]
    fn rate_limit_headers_give_the_wait() {
        let h = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        };
        let now = 1_704_205_800;
        let headers = h(&[
            ("X-RateLimit-Limit", "200"),
            ("X-RateLimit-Remaining", "0"),
            ("X-RateLimit-Reset", "1704205803"),
        ]);
        assert_eq!(rate_limit_wait(&headers, now), Some(3));
        assert_eq!(rate_limit_remaining(&headers), Some(0));
        assert_eq!(rate_limit_wait(&h(&[("retry-after", "7")]), now), Some(7));
        assert_eq!(
            rate_limit_wait(&h(&[("x-ratelimit-reset", "1704205000")]), now),
            Some(0)
        );
        assert_eq!(
            rate_limit_wait(&h(&[("x-ratelimit-reset", "soon")]), now),
            None
        );
        assert_eq!(rate_limit_remaining(&h(&[])), None);
    }

    #[test]
    fn a_changed_bar_for_a_served_time_is_a_correction() {
        let mut c = Corrections::default();
        assert!(
            c.observe("AAPL_5", &[bar(300, 1.0), bar(600, 2.0)])
                .is_empty()
        );
        // The same values again: nothing; new times: nothing.
        assert!(
            c.observe("AAPL_5", &[bar(600, 2.0), bar(900, 3.0)])
                .is_empty()
        );
        assert_eq!(c.observe("AAPL_5", &[bar(600, 2.5), bar(900, 3.0)]), [600]);
        // Another series has its own history.
        assert!(c.observe("AAPL_15", &[bar(600, 9.0)]).is_empty());
        assert_eq!(c.count(), 1);
        let many: Vec<Bar> = (0..3_000).map(|k| bar(k * 300, 1.0)).collect();
        c.observe("MSFT_5", &many);
        assert_eq!(c.served["MSFT_5"].len(), Corrections::KEEP);
    }

    #[test]
    fn lookbacks_cover_market_hours() {
        // 1 000 five-minute stock candles: ~5.5 × 3.5 days of wall time plus 5 days.
        let s = lookback_seconds(AssetClass::Stock, Timeframe::M5, 1_000);
        assert_eq!(s, 1_650_000 + 432_000);
        assert!(lookback_seconds(AssetClass::Crypto, Timeframe::M5, 1_000) < s);
        assert!(lookback_seconds(AssetClass::Stock, Timeframe::D1, usize::MAX) > 0);
    }
}
