//! The signal wire format (JSON, one signal per SQS message body), compatible with the system this
//! replaces, and its validated domain types. Parse, don't validate: a [`Signal`] that exists is valid.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::vocab::{Confidence, Direction, InvalidField, SignalType, Ticker, Timeframe};

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

impl From<InvalidField> for SignalError {
    fn from(e: InvalidField) -> Self {
        SignalError::Invalid {
            field: e.field,
            reason: e.reason,
        }
    }
}

fn invalid(field: &'static str, reason: impl Into<String>) -> SignalError {
    SignalError::Invalid {
        field,
        reason: reason.into(),
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
