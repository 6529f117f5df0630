//! Market data: the [`MarketData`] port and two implementations that need no network — a
//! deterministic [`SyntheticFeed`] ([`synthetic`]) and a [`CsvReplay`] of recorded files
//! ([`mod@csv`]). Candles and timeframes themselves are shared vocabulary ([`crate::vocab`]).

use std::path::PathBuf;

use async_trait::async_trait;

use crate::vocab::{Bar, Timeframe, UnknownTimeframe};

pub mod csv;
pub mod synthetic;

pub use self::csv::CsvReplay;
pub use self::synthetic::SyntheticFeed;

/// Why market data could not be served.
#[derive(Debug, thiserror::Error)]
pub enum MarketDataError {
    /// The source has no series for this ticker (and timeframe). Permanent.
    #[error("unknown ticker {ticker:?} at timeframe {timeframe}")]
    UnknownTicker {
        ticker: String,
        timeframe: Timeframe,
    },
    /// Not one of the timeframe wire strings. Permanent.
    #[error(transparent)]
    InvalidTimeframe(#[from] UnknownTimeframe),
    /// Stored data that cannot be parsed or is not a valid candle series. `line` is 1-based
    /// (line 1 is a CSV header); 0 means the file as a whole (e.g. its name). Permanent.
    #[error("invalid market data in {file} line {line}: {message}")]
    InvalidData {
        file: String,
        line: u64,
        /// The row's own typed error, rendered (it has no source of its own).
        message: String,
    },
    /// Reading the source failed. Retryable.
    #[error("I/O error reading {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A remote provider (an HTTP market-data API) did not serve the series, after its own
    /// retries: `reason` says why (status, rate limit, malformed answer, credentials).
    #[error("{provider} market data for {series}: {reason}")]
    Provider {
        provider: &'static str,
        /// `<TICKER>_<TIMEFRAME>`.
        series: String,
        reason: String,
        /// Whether a later scan may succeed (rate limits, 5xx, timeouts), as opposed to a
        /// refused request (unknown symbol, bad credentials).
        retryable: bool,
    },
}

impl MarketDataError {
    /// Whether trying again later may succeed (I/O, a provider's transient failure), as
    /// opposed to a permanent fault of the request or of the data.
    pub fn is_retryable(&self) -> bool {
        match self {
            MarketDataError::Io { .. } => true,
            MarketDataError::Provider { retryable, .. } => *retryable,
            _ => false,
        }
    }
}

/// Settings of the HTTP market-data provider (Alpaca Market Data; the adapter is
/// `tradeflow_aws::market`). Plain data, read from the environment by the functions.
#[derive(Clone, PartialEq, Eq)]
pub struct AlpacaSettings {
    /// Base URL of the data API, `https://data.alpaca.markets` (a test server in tests).
    pub data_url: String,
    /// Stock feed: `iex` (free plan) or `sip`.
    pub stock_feed: String,
    /// Requests per minute the client allows itself (the free plan's limit is 200).
    pub requests_per_minute: u32,
    pub key: ApiKeySource,
}

/// Where the provider's API key comes from.
#[derive(Clone, PartialEq, Eq)]
pub enum ApiKeySource {
    /// Given directly (`APCA_API_KEY_ID`, `APCA_API_SECRET_KEY`).
    Env { key_id: String, secret_key: String },
    /// A Secrets Manager secret (ARN) whose string is `{"key_id": "...", "secret_key": "..."}`,
    /// read on first use.
    SecretArn(String),
}

impl std::fmt::Debug for ApiKeySource {
    /// Never prints the secret.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ApiKeySource::Env { key_id, .. } => f
                .debug_struct("Env")
                .field("key_id", key_id)
                .field("secret_key", &"<redacted>")
                .finish(),
            ApiKeySource::SecretArn(arn) => f.debug_tuple("SecretArn").field(arn).finish(),
        }
    }
}

impl std::fmt::Debug for AlpacaSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AlpacaSettings")
            .field("data_url", &self.data_url)
            .field("stock_feed", &self.stock_feed)
            .field("requests_per_minute", &self.requests_per_minute)
            .field("key", &self.key)
            .finish()
    }
}

/// Source of closed candles.
///
/// Contract of [`MarketData::closed_bars`]:
/// - returns the most recent bars, at most `count`, of `ticker`/`timeframe` whose candle has
///   CLOSED at or before `now` (Unix seconds): `bar.time + timeframe.seconds() <= now`. A candle
///   still forming is never returned;
/// - oldest first, open times strictly increasing;
/// - deterministic: the same arguments give the same bars;
/// - fewer than `count` bars (possibly none) when the history is shorter;
/// - an unknown ticker is [`MarketDataError::UnknownTicker`] (permanent); I/O problems are
///   [`MarketDataError::Io`] (retryable, see [`MarketDataError::is_retryable`]).
#[async_trait]
pub trait MarketData: Send + Sync {
    async fn closed_bars(
        &self,
        ticker: &str,
        timeframe: Timeframe,
        now: i64,
        count: usize,
    ) -> Result<Vec<Bar>, MarketDataError>;
    /// Catching up from a cursor: of the bars closed at or before `now`, up to `history` of
    /// those that opened at or before `after` (the most recent of them), followed by the first
    /// `count` of those that opened after `after`. Oldest first; otherwise the contract of
    /// [`MarketData::closed_bars`]. Repeating a call returns the same bars, however far `after`
    /// lies behind `now`.
    async fn closed_bars_after(
        &self,
        ticker: &str,
        timeframe: Timeframe,
        now: i64,
        after: i64,
        history: usize,
        count: usize,
    ) -> Result<Vec<Bar>, MarketDataError>;
}

/// Whether `ticker` is an uppercase instrument symbol: 1–15 of `A-Z 0-9 . - / ^ _ =` (the
/// alphabet of the signal's ticker, already normalised to uppercase).
pub(crate) fn is_valid_ticker(ticker: &str) -> bool {
    (1..=15).contains(&ticker.len())
        && ticker.chars().all(|c| {
            c.is_ascii_uppercase()
                || c.is_ascii_digit()
                || matches!(c, '.' | '-' | '/' | '^' | '_' | '=')
        })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn timeframes_round_trip_through_their_wire_strings() {
        for tf in Timeframe::ALL {
            assert_eq!(Timeframe::parse(tf.as_str()).unwrap(), tf);
            assert_eq!(tf.as_str().parse::<Timeframe>().unwrap(), tf);
            assert_eq!(tf.to_string(), tf.as_str());
            let json = serde_json::to_string(&tf).unwrap();
            assert_eq!(json, format!("\"{}\"", tf.as_str()));
            assert_eq!(serde_json::from_str::<Timeframe>(&json).unwrap(), tf);
        }
        let seconds: Vec<i64> = Timeframe::ALL.iter().map(|t| t.seconds()).collect();
        assert_eq!(seconds, [60, 300, 900, 3600, 14_400, 86_400]);
        for bad in ["", "2", "1D", "d", "M5", " 5"] {
            let err = MarketDataError::from(Timeframe::parse(bad).unwrap_err());
            assert!(matches!(err, MarketDataError::InvalidTimeframe(_)), "{bad}");
            assert!(!err.is_retryable());
        }
        let err = serde_json::from_str::<Timeframe>("\"7\"").unwrap_err();
        assert!(err.to_string().contains("unknown variant `7`"), "{err}");
        assert!(
            serde_json::from_str::<Timeframe>("5").is_err(),
            "a number is not a wire string"
        );
        // Owned input (no borrowing possible) works too.
        let v = serde_json::Value::String("240".into());
        assert_eq!(
            serde_json::from_value::<Timeframe>(v).unwrap(),
            Timeframe::H4
        );
    }

    #[test]
    fn the_port_is_object_safe() {
        let sources: Vec<Box<dyn MarketData>> = vec![
            Box::new(SyntheticFeed::new(1)),
            Box::new(CsvReplay::default()),
        ];
        assert_eq!(sources.len(), 2);
    }
}
