//! The shared vocabulary of the chain: the small validated types every other module speaks.
//! Parse, don't validate: a [`Ticker`], [`SignalType`] or [`Confidence`] that exists is valid.
//!
//! This module depends on nothing else in the crate; everything else may depend on it.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A value that is not valid for its field. The text is the reason given in logs and metrics.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("invalid {field}: {reason}")]
pub struct InvalidField {
    pub field: &'static str,
    pub reason: String,
}

impl InvalidField {
    pub fn new(field: &'static str, reason: impl Into<String>) -> Self {
        InvalidField {
            field,
            reason: reason.into(),
        }
    }

    /// A bad value is bad on every try.
    pub fn is_retryable(&self) -> bool {
        false
    }
}

/// How a rejected value is quoted in a reason: in full up to 32 characters, else its first 32
/// and its size, so a 10 KB value never makes a 10 KB log line.
pub fn quoted(raw: &str) -> String {
    const SHOWN: usize = 32;
    match raw.char_indices().nth(SHOWN) {
        None => format!("{raw:?}"),
        Some((cut, _)) => format!("{:?}… ({} bytes)", &raw[..cut], raw.len()),
    }
}

// ---------------------------------------------------------------------------------------------
// Signal vocabulary
// ---------------------------------------------------------------------------------------------

/// Direction of a signal, wire strings `"BULLISH"`, `"BEARISH"`, `"NEUTRAL"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Direction {
    Bullish,
    Bearish,
    Neutral,
}

impl Direction {
    /// The wire string.
    pub const fn as_str(self) -> &'static str {
        match self {
            Direction::Bullish => "BULLISH",
            Direction::Bearish => "BEARISH",
            Direction::Neutral => "NEUTRAL",
        }
    }
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An instrument symbol: 1–15 of `A-Z 0-9 . - / ^ _ =`, stored uppercase.
///
/// Held inline (16 bytes, no heap): the dispatcher copies a ticker into every lease and request
/// it builds, so a clone is a copy of 16 bytes, not an allocation. Ordered, compared, hashed,
/// shown and serialised as its string.
#[derive(Clone, PartialEq, Eq, Hash, Deserialize)]
#[serde(try_from = "String")]
pub struct Ticker {
    /// The symbol's bytes (ASCII), zero after `len`.
    bytes: [u8; Ticker::MAX_LEN],
    len: u8,
}

impl Ticker {
    /// Longest symbol, in characters (ASCII: bytes).
    pub const MAX_LEN: usize = 15;

    pub fn parse(raw: &str) -> Result<Self, InvalidField> {
        let upper = raw.trim().to_ascii_uppercase();
        if upper.is_empty() || upper.len() > Self::MAX_LEN {
            return Err(InvalidField::new(
                "ticker",
                format!("{} must be 1 to 15 characters", quoted(raw)),
            ));
        }
        if let Some(bad) = upper.chars().find(|c| {
            !(c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '/' | '^' | '_' | '='))
        }) {
            return Err(InvalidField::new(
                "ticker",
                format!("{} contains {bad:?}", quoted(raw)),
            ));
        }
        let mut bytes = [0u8; Self::MAX_LEN];
        for (to, from) in bytes.iter_mut().zip(upper.bytes()) {
            *to = from;
        }
        Ok(Ticker {
            bytes,
            len: upper.len() as u8,
        })
    }

    pub fn as_str(&self) -> &str {
        // Always valid: `parse` stores 1 to 15 ASCII bytes.
        self.bytes
            .get(..usize::from(self.len))
            .and_then(|b| std::str::from_utf8(b).ok())
            .unwrap_or_default()
    }
}

impl TryFrom<String> for Ticker {
    type Error = InvalidField;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Ticker::parse(&value)
    }
}

impl From<Ticker> for String {
    fn from(value: Ticker) -> Self {
        value.as_str().to_owned()
    }
}

impl Serialize for Ticker {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl Ord for Ticker {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl PartialOrd for Ticker {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Debug for Ticker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Ticker").field(&self.as_str()).finish()
    }
}

impl fmt::Display for Ticker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Confidence on the wire's 0–100 scale (the old system's 0–1 reading downstream is not copied).
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Serialize, Deserialize)]
#[serde(try_from = "f64", into = "f64")]
pub struct Confidence(f64);

impl Confidence {
    pub fn new(value: f64) -> Result<Self, InvalidField> {
        if !value.is_finite() || !(0.0..=100.0).contains(&value) {
            return Err(InvalidField::new(
                "confidence",
                format!("{value} is not within 0 to 100"),
            ));
        }
        Ok(Confidence(value))
    }

    pub fn value(self) -> f64 {
        self.0
    }
}

impl TryFrom<f64> for Confidence {
    type Error = InvalidField;
    fn try_from(value: f64) -> Result<Self, Self::Error> {
        Confidence::new(value)
    }
}

impl From<Confidence> for f64 {
    fn from(value: Confidence) -> Self {
        value.0
    }
}

/// A snake_case signal type such as `rsi_oversold` (1–64 of `a-z 0-9 _`, starting with a letter).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct SignalType(String);

impl SignalType {
    pub fn parse(raw: &str) -> Result<Self, InvalidField> {
        let ok = !raw.is_empty()
            && raw.len() <= 64
            && raw.starts_with(|c: char| c.is_ascii_lowercase())
            && raw
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if ok {
            Ok(SignalType(raw.to_owned()))
        } else {
            Err(InvalidField::new(
                "signal_type",
                format!(
                    "{} is not a snake_case type of at most 64 characters",
                    quoted(raw)
                ),
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for SignalType {
    type Error = InvalidField;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        SignalType::parse(&value)
    }
}

impl From<SignalType> for String {
    fn from(value: SignalType) -> Self {
        value.0
    }
}

impl fmt::Display for SignalType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

// ---------------------------------------------------------------------------------------------
// Market vocabulary
// ---------------------------------------------------------------------------------------------

/// Candle timeframe, wire strings `"1"`, `"5"`, `"15"`, `"60"`, `"240"`, `"D"` (minutes, or
/// daily), which serde uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Timeframe {
    #[serde(rename = "1")]
    M1,
    #[serde(rename = "5")]
    M5,
    #[serde(rename = "15")]
    M15,
    #[serde(rename = "60")]
    H1,
    #[serde(rename = "240")]
    H4,
    #[serde(rename = "D")]
    D1,
}

/// A string that is not one of the timeframe wire strings. Permanent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid timeframe {0:?}: expected one of 1, 5, 15, 60, 240, D")]
pub struct UnknownTimeframe(pub String);

impl UnknownTimeframe {
    pub fn is_retryable(&self) -> bool {
        false
    }
}

impl Timeframe {
    /// Every timeframe, shortest first.
    pub const ALL: [Timeframe; 6] = [
        Timeframe::M1,
        Timeframe::M5,
        Timeframe::M15,
        Timeframe::H1,
        Timeframe::H4,
        Timeframe::D1,
    ];

    /// Parses a wire string (`"1"`, `"5"`, `"15"`, `"60"`, `"240"`, `"D"`), exactly.
    pub fn parse(raw: &str) -> Result<Self, UnknownTimeframe> {
        Self::ALL
            .into_iter()
            .find(|tf| tf.as_str() == raw)
            .ok_or_else(|| UnknownTimeframe(raw.to_owned()))
    }

    /// The wire string.
    pub const fn as_str(self) -> &'static str {
        match self {
            Timeframe::M1 => "1",
            Timeframe::M5 => "5",
            Timeframe::M15 => "15",
            Timeframe::H1 => "60",
            Timeframe::H4 => "240",
            Timeframe::D1 => "D",
        }
    }

    /// Length of one candle in seconds.
    pub const fn seconds(self) -> i64 {
        match self {
            Timeframe::M1 => 60,
            Timeframe::M5 => 5 * 60,
            Timeframe::M15 => 15 * 60,
            Timeframe::H1 => 60 * 60,
            Timeframe::H4 => 4 * 60 * 60,
            Timeframe::D1 => 24 * 60 * 60,
        }
    }
}

impl fmt::Display for Timeframe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Timeframe {
    type Err = UnknownTimeframe;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Timeframe::parse(s)
    }
}

/// One OHLCV candle. `time` is the candle's OPEN time, integer Unix seconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Bar {
    pub time: i64,
    pub open: f64,
    pub high: f64,
    pub low: f64,
    pub close: f64,
    pub volume: f64,
}

impl Bar {
    /// The instant the candle closes: open time + the timeframe's length.
    pub fn close_time(&self, timeframe: Timeframe) -> i64 {
        self.time.saturating_add(timeframe.seconds())
    }

    /// Why this candle is not a plausible OHLCV record, if it is not: prices finite and > 0,
    /// `high >= max(open, close)`, `low <= min(open, close)`, volume finite and >= 0.
    pub fn validate(&self) -> Result<(), BarError> {
        for (name, value) in [
            ("open", self.open),
            ("high", self.high),
            ("low", self.low),
            ("close", self.close),
        ] {
            if !value.is_finite() || value <= 0.0 {
                return Err(BarError::Price { name, value });
            }
        }
        let (open, high, low, close) = (self.open, self.high, self.low, self.close);
        if high < open.max(close) {
            return Err(BarError::HighBelowBody { high, open, close });
        }
        if low > open.min(close) {
            return Err(BarError::LowAboveBody { low, open, close });
        }
        if !self.volume.is_finite() || self.volume < 0.0 {
            return Err(BarError::Volume(self.volume));
        }
        Ok(())
    }
}

/// Why a candle is not a plausible OHLCV record ([`Bar::validate`]).
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
pub enum BarError {
    #[error("{name} must be a finite positive price, got {value}")]
    Price { name: &'static str, value: f64 },
    #[error("high {high} is below max(open {open}, close {close})")]
    HighBelowBody { high: f64, open: f64, close: f64 },
    #[error("low {low} is above min(open {open}, close {close})")]
    LowAboveBody { low: f64, open: f64, close: f64 },
    #[error("volume must be finite and >= 0, got {0}")]
    Volume(f64),
}

impl BarError {
    /// Bad data stays bad.
    pub fn is_retryable(&self) -> bool {
        false
    }
}

// ---------------------------------------------------------------------------------------------
// Messages
// ---------------------------------------------------------------------------------------------

/// One received queue message, as the dispatcher and the executor take it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct InboundMessage {
    pub message_id: String,
    pub body: String,
    /// When the queue received it (SQS `SentTimestamp`), Unix milliseconds.
    pub sent_at_ms: Option<i64>,
    /// How many times the queue has handed it out, this delivery included (SQS
    /// `ApproximateReceiveCount`): compared with the queue's `maxReceiveCount`, it says whether a
    /// failure now sends the message to the DLQ.
    pub receive_count: Option<u32>,
    /// The trace context the work on this message belongs under: as the sender attached it (SQS
    /// message attributes), or, when the function traces, the context of its own span for the
    /// message. The domain passes it on to what it sends and does for this message.
    pub trace: Option<crate::trace::TraceContext>,
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn direction_uses_the_wire_strings() {
        for (d, s) in [
            (Direction::Bullish, "BULLISH"),
            (Direction::Bearish, "BEARISH"),
            (Direction::Neutral, "NEUTRAL"),
        ] {
            assert_eq!(serde_json::to_value(d).unwrap(), s);
            assert_eq!(serde_json::from_value::<Direction>(s.into()).unwrap(), d);
            assert_eq!(d.to_string(), s);
        }
    }

    #[test]
    fn tickers_behave_as_their_strings() {
        let t = |s: &str| Ticker::parse(s).unwrap();
        let longest = "ABCDEFGHIJKLMNO";
        assert_eq!(t(" brk.b ").as_str(), "BRK.B");
        assert_eq!(t(longest).as_str(), longest);
        assert!(Ticker::parse("ABCDEFGHIJKLMNOP").is_err());
        assert!(Ticker::parse("").is_err());
        // Ordered as strings: a prefix first, then byte order.
        let mut v = [t("AA"), t("B"), t("A"), t("A.B"), t(longest), t("0")];
        v.sort();
        let sorted: Vec<&str> = v.iter().map(Ticker::as_str).collect();
        assert_eq!(sorted, ["0", "A", "A.B", "AA", longest, "B"]);
        assert_eq!(t("msft"), t("MSFT"));
        assert_ne!(t("MSFT"), t("MSF"));
        assert_eq!(
            format!("{:?} {}", t("AAPL"), t("AAPL")),
            "Ticker(\"AAPL\") AAPL"
        );
        assert_eq!(String::from(t("AAPL")), "AAPL");
        assert_eq!(serde_json::to_string(&t("AAPL")).unwrap(), "\"AAPL\"");
        assert_eq!(
            serde_json::from_str::<Ticker>("\"aapl\"").unwrap(),
            t("AAPL")
        );
        assert!(serde_json::from_str::<Ticker>("\"A A\"").is_err());
        assert_eq!(std::mem::size_of::<Ticker>(), 16);
    }

    #[test]
    fn bars_serialize_with_their_field_names() {
        let bar = Bar {
            time: 60,
            open: 1.0,
            high: 2.0,
            low: 0.5,
            close: 1.5,
            volume: 10.0,
        };
        let json = serde_json::to_value(bar).unwrap();
        assert_eq!(json["time"], 60);
        assert_eq!(serde_json::from_value::<Bar>(json).unwrap(), bar);
        assert_eq!(bar.close_time(Timeframe::M1), 120);
    }
}
