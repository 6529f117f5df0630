//! The signal wire format (JSON, one signal per SQS message body), compatible with the system this
//! replaces, and its validated domain types. Parse, don't validate: a [`Signal`] that exists is valid.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::detectors::Direction;
use crate::market::Timeframe;

/// Why a message body is not a valid signal. The text is the reason given in logs and metrics.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SignalError {
    #[error("body is not valid signal JSON: {0}")]
    Json(String),
    #[error("invalid {field}: {reason}")]
    Invalid { field: &'static str, reason: String },
}

impl SignalError {
    /// Every value [`SignalError::reason_label`] returns, plus `missing_body` (a record without a
    /// body), for metrics that start at zero.
    pub const REASON_LABELS: [&'static str; 3] =
        ["malformed_json", "invalid_signal", "missing_body"];

    /// Fixed label for the `messages_rejected_total{reason}` metric.
    pub fn reason_label(&self) -> &'static str {
        match self {
            SignalError::Json(_) => "malformed_json",
            SignalError::Invalid { .. } => "invalid_signal",
        }
    }
}

fn invalid(field: &'static str, reason: impl Into<String>) -> SignalError {
    SignalError::Invalid {
        field,
        reason: reason.into(),
    }
}

/// An instrument symbol: 1–15 of `A-Z 0-9 . - / ^ _ =`, stored uppercase.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Ticker(String);

impl Ticker {
    pub fn parse(raw: &str) -> Result<Self, SignalError> {
        let upper = raw.trim().to_ascii_uppercase();
        if upper.is_empty() || upper.len() > 15 {
            return Err(invalid(
                "ticker",
                format!("{raw:?} must be 1 to 15 characters"),
            ));
        }
        if let Some(bad) = upper.chars().find(|c| {
            !(c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '/' | '^' | '_' | '='))
        }) {
            return Err(invalid("ticker", format!("{raw:?} contains {bad:?}")));
        }
        Ok(Ticker(upper))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Ticker {
    type Error = SignalError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Ticker::parse(&value)
    }
}

impl From<Ticker> for String {
    fn from(value: Ticker) -> Self {
        value.0
    }
}

impl fmt::Display for Ticker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Confidence on the wire's 0–100 scale (the old system's 0–1 reading downstream is not copied).
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Serialize, Deserialize)]
#[serde(try_from = "f64", into = "f64")]
pub struct Confidence(f64);

impl Confidence {
    pub fn new(value: f64) -> Result<Self, SignalError> {
        if !value.is_finite() || !(0.0..=100.0).contains(&value) {
            return Err(invalid(
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
    type Error = SignalError;
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
    pub fn parse(raw: &str) -> Result<Self, SignalError> {
        let ok = !raw.is_empty()
            && raw.len() <= 64
            && raw.starts_with(|c: char| c.is_ascii_lowercase())
            && raw
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if ok {
            Ok(SignalType(raw.to_owned()))
        } else {
            Err(invalid(
                "signal_type",
                format!("{raw:?} is not a snake_case type"),
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for SignalType {
    type Error = SignalError;
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

/// One ticker of a signal, with its direction and confidence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TickerSignal {
    pub ticker: Ticker,
    pub signal: Direction,
    pub confidence: Confidence,
    #[serde(default)]
    pub reasoning: Option<String>,
}

/// `metadata`: the timeframe plus the indicator values that fired the signal. Other keys are kept.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct SignalMetadata {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeframe: Option<Timeframe>,
    #[serde(flatten)]
    pub values: BTreeMap<String, serde_json::Value>,
}

/// A validated trading signal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawSignal")]
pub struct Signal {
    pub signal_id: String,
    pub signal_type: SignalType,
    pub source: String,
    /// Integer Unix seconds.
    pub timestamp: i64,
    pub tickers: Vec<TickerSignal>,
    #[serde(default)]
    pub metadata: SignalMetadata,
}

#[derive(Deserialize)]
struct RawSignal {
    signal_id: String,
    signal_type: SignalType,
    source: String,
    timestamp: i64,
    tickers: Vec<TickerSignal>,
    #[serde(default)]
    metadata: SignalMetadata,
}

impl TryFrom<RawSignal> for Signal {
    type Error = SignalError;
    fn try_from(raw: RawSignal) -> Result<Self, Self::Error> {
        if raw.signal_id.trim().is_empty() || raw.signal_id.len() > 128 {
            return Err(invalid("signal_id", "must be 1 to 128 characters"));
        }
        if raw.source.trim().is_empty() || raw.source.len() > 128 {
            return Err(invalid("source", "must be 1 to 128 characters"));
        }
        if raw.timestamp <= 0 {
            return Err(invalid("timestamp", "must be positive Unix seconds"));
        }
        if raw.tickers.is_empty() {
            return Err(invalid("tickers", "at least one ticker is required"));
        }
        let mut seen = std::collections::BTreeSet::new();
        for t in &raw.tickers {
            if !seen.insert(t.ticker.clone()) {
                return Err(invalid("tickers", format!("{} appears twice", t.ticker)));
            }
        }
        Ok(Signal {
            signal_id: raw.signal_id,
            signal_type: raw.signal_type,
            source: raw.source,
            timestamp: raw.timestamp,
            tickers: raw.tickers,
            metadata: raw.metadata,
        })
    }
}

impl Signal {
    /// Parses and validates one message body.
    pub fn parse(body: &str) -> Result<Self, SignalError> {
        serde_json::from_str(body).map_err(|e| {
            // serde reports our TryFrom errors as custom messages; keep the text, it names the field.
            SignalError::Json(e.to_string())
        })
    }

    pub fn to_json(&self) -> String {
        // Serializing plain data structs with string keys cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    pub fn timeframe(&self) -> Option<Timeframe> {
        self.metadata.timeframe
    }

    pub fn ticker(&self, ticker: &Ticker) -> Option<&TickerSignal> {
        self.tickers.iter().find(|t| &t.ticker == ticker)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const OLD_SYSTEM_BODY: &str = r#"{
        "signal_id": "0b0f5f2e-1111-4c8e-9b61-5f6f5c1f1a01",
        "signal_type": "rsi_oversold",
        "source": "rsi_generator",
        "timestamp": 1732550400,
        "tickers": [
            {"ticker": "AAPL", "signal": "BULLISH", "confidence": 75, "reasoning": "RSI crossed below 30"},
            {"ticker": "msft", "signal": "NEUTRAL", "confidence": 62.5, "reasoning": null}
        ],
        "metadata": {"timeframe": "5", "current_rsi": 28.4, "current_price": 187.2}
    }"#;

    #[test]
    fn parses_the_old_systems_wire_format() {
        let s = Signal::parse(OLD_SYSTEM_BODY).unwrap();
        assert_eq!(s.signal_type.as_str(), "rsi_oversold");
        assert_eq!(s.timestamp, 1_732_550_400);
        assert_eq!(s.tickers.len(), 2);
        assert_eq!(s.tickers[1].ticker.as_str(), "MSFT");
        assert_eq!(s.tickers[1].confidence.value(), 62.5);
        assert_eq!(s.tickers[1].reasoning, None);
        assert_eq!(s.timeframe(), Some(Timeframe::M5));
        assert_eq!(s.metadata.values["current_rsi"], serde_json::json!(28.4));
    }

    #[test]
    fn round_trips_through_json() {
        let s = Signal::parse(OLD_SYSTEM_BODY).unwrap();
        let again = Signal::parse(&s.to_json()).unwrap();
        assert_eq!(s, again);
        let v: serde_json::Value = serde_json::from_str(&s.to_json()).unwrap();
        assert_eq!(v["metadata"]["timeframe"], "5");
        assert_eq!(v["timestamp"], 1_732_550_400);
        assert_eq!(v["tickers"][0]["signal"], "BULLISH");
    }

    #[test]
    fn rejects_invalid_bodies_with_a_reason() {
        let cases = [
            ("not json", "malformed"),
            (r#"{"signal_id":"a"}"#, "missing field"),
            (
                &OLD_SYSTEM_BODY.replace("\"confidence\": 75", "\"confidence\": 175"),
                "confidence",
            ),
            (
                &OLD_SYSTEM_BODY.replace("rsi_oversold", "RSI Oversold"),
                "signal_type",
            ),
            (
                &OLD_SYSTEM_BODY.replace("1732550400", "\"yesterday\""),
                "i64",
            ),
            (&OLD_SYSTEM_BODY.replace("\"msft\"", "\"AAPL\""), "twice"),
            (&OLD_SYSTEM_BODY.replace("\"5\"", "\"7\""), "7"),
            (&OLD_SYSTEM_BODY.replace("\"msft\"", "\"MS FT\""), "ticker"),
        ];
        for (body, needle) in cases {
            let err = Signal::parse(body).unwrap_err().to_string();
            assert!(
                err.to_lowercase().contains(needle) || needle == "malformed",
                "{err} should mention {needle}"
            );
        }
        let empty = OLD_SYSTEM_BODY.replace(
            r#"{"ticker": "AAPL", "signal": "BULLISH", "confidence": 75, "reasoning": "RSI crossed below 30"},
            {"ticker": "msft", "signal": "NEUTRAL", "confidence": 62.5, "reasoning": null}"#,
            "",
        );
        assert!(Signal::parse(&empty).is_err());
    }
}
