//! The signal wire format (JSON, one signal per SQS message body), compatible with the system this
//! replaces, and its validated domain types. Parse, don't validate: a [`Signal`] that exists is valid.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::vocab::{Confidence, Direction, InvalidField, SignalType, Ticker, Timeframe, quoted};

/// Signal timestamps before this are rejected: 2000-01-01T00:00:00Z (Unix seconds).
pub const MIN_TIMESTAMP: i64 = 946_684_800;
/// Signal timestamps after this are rejected whatever the clock: 9999-12-31T23:59:59Z. Keeps
/// every millisecond conversion of a timestamp far from overflow.
pub const MAX_TIMESTAMP: i64 = 253_402_300_799;
/// How far after the receiver's clock a timestamp may lie ([`Signal::parse_at`]): one day.
pub const MAX_FUTURE_SECS: i64 = 86_400;
/// Largest `metadata` object, counted as compact JSON (it is copied into every execution
/// request and record the signal triggers).
pub const MAX_METADATA_BYTES: usize = 16 * 1024;
/// Largest `reasoning` of one ticker, in bytes.
pub const MAX_REASONING_BYTES: usize = 4 * 1024;
/// Longest `signal_id` and `source`, in bytes.
pub const MAX_ID_BYTES: usize = 128;
/// Deepest nesting of arrays and objects inside `metadata` (`{"a": [1]}` is 2). The metadata is
/// stored inside the execution item, and DynamoDB refuses documents nested deeper than 32.
pub const MAX_METADATA_DEPTH: usize = 16;
/// Numbers DynamoDB can store: 0, or a magnitude from 1e-130 to below 1e126. A signal's
/// confidence and metadata numbers outside this are refused here rather than by the
/// executions table (where they would fail every delivery with a validation error).
pub const MIN_STORABLE_MAGNITUDE: f64 = 1e-130;
/// See [`MIN_STORABLE_MAGNITUDE`].
pub const MAX_STORABLE_MAGNITUDE: f64 = 1e126;

/// Why a message body is not a valid signal. The text is the reason given in logs; the
/// [`SignalError::reason_label`] is the metric label, from the fixed set
/// [`SignalError::REASON_LABELS`].
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SignalError {
    /// Not JSON at all (or cut short).
    #[error("body is not valid signal JSON: {0}")]
    Json(String),
    /// JSON, but not an object.
    #[error("body is not a JSON object but {0}")]
    NotAnObject(&'static str),
    /// A required field is absent or null; the text names it (`tickers[0].confidence`).
    #[error("missing field `{0}`")]
    MissingField(String),
    #[error("invalid tickers: {0} appears twice")]
    DuplicateTicker(String),
    #[error("metadata is {size} bytes as JSON, more than the limit of {MAX_METADATA_BYTES}")]
    MetadataTooLarge { size: usize },
    /// A field with a value out of its type or range; `field` is the field's name.
    #[error("invalid {field}: {reason}")]
    Invalid { field: &'static str, reason: String },
}

/// [`SignalError::Invalid`] labels by field name.
const FIELD_LABELS: [(&str, &str); 11] = [
    ("signal_id", "invalid_signal_id"),
    ("signal_type", "invalid_signal_type"),
    ("source", "invalid_source"),
    ("timestamp", "invalid_timestamp"),
    ("tickers", "invalid_tickers"),
    ("ticker", "invalid_ticker"),
    ("signal", "invalid_direction"),
    ("confidence", "invalid_confidence"),
    ("reasoning", "invalid_reasoning"),
    ("timeframe", "unknown_timeframe"),
    ("metadata", "invalid_metadata"),
];

impl SignalError {
    /// The label of a record that has no body at all (the Lambda glue reports it).
    pub const MISSING_BODY: &'static str = "missing_body";

    /// Every value [`SignalError::reason_label`] returns, plus [`SignalError::MISSING_BODY`]:
    /// the one list the metrics start at zero from.
    pub const REASON_LABELS: [&'static str; 18] = [
        "malformed_json",
        "not_an_object",
        "missing_field",
        "duplicate_ticker",
        "metadata_too_large",
        FIELD_LABELS[0].1,
        FIELD_LABELS[1].1,
        FIELD_LABELS[2].1,
        FIELD_LABELS[3].1,
        FIELD_LABELS[4].1,
        FIELD_LABELS[5].1,
        FIELD_LABELS[6].1,
        FIELD_LABELS[7].1,
        FIELD_LABELS[8].1,
        FIELD_LABELS[9].1,
        FIELD_LABELS[10].1,
        "invalid_field",
        Self::MISSING_BODY,
    ];

    /// Fixed label for the `messages_rejected_total{reason}` metric.
    pub fn reason_label(&self) -> &'static str {
        match self {
            SignalError::Json(_) => "malformed_json",
            SignalError::NotAnObject(_) => "not_an_object",
            SignalError::MissingField(_) => "missing_field",
            SignalError::DuplicateTicker(_) => "duplicate_ticker",
            SignalError::MetadataTooLarge { .. } => "metadata_too_large",
            SignalError::Invalid { field, .. } => FIELD_LABELS
                .iter()
                .find(|(f, _)| f == field)
                .map_or("invalid_field", |(_, label)| label),
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

/// A validated trading signal. Deserializing one (or [`Signal::parse`]) checks every rule of
/// `docs/signal-format.md` except the timestamp's distance from the clock
/// ([`Signal::parse_at`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "serde_json::Value")]
pub struct Signal {
    pub signal_id: String,
    pub signal_type: SignalType,
    pub source: String,
    /// Integer Unix seconds, within [`MIN_TIMESTAMP`]..=[`MAX_TIMESTAMP`].
    pub timestamp: i64,
    pub tickers: Vec<TickerSignal>,
    #[serde(default)]
    pub metadata: SignalMetadata,
}

impl TryFrom<serde_json::Value> for Signal {
    type Error = SignalError;
    fn try_from(value: serde_json::Value) -> Result<Self, Self::Error> {
        use serde_json::Value;
        let Value::Object(mut fields) = value else {
            return Err(SignalError::NotAnObject(json_kind(&value)));
        };
        let signal_id = bounded_string(required(&mut fields, "signal_id", "")?, "signal_id")?;
        let signal_type = SignalType::parse(&string(
            required(&mut fields, "signal_type", "")?,
            "signal_type",
        )?)?;
        let source = bounded_string(required(&mut fields, "source", "")?, "source")?;
        let timestamp = match required(&mut fields, "timestamp", "")? {
            Value::Number(n) => n.as_i64().ok_or_else(|| {
                invalid(
                    "timestamp",
                    format!("{n} is not integer Unix seconds (i64)"),
                )
            })?,
            other => {
                return Err(invalid(
                    "timestamp",
                    format!(
                        "expected integer Unix seconds (i64), got {}",
                        json_kind(&other)
                    ),
                ));
            }
        };
        if !(MIN_TIMESTAMP..=MAX_TIMESTAMP).contains(&timestamp) {
            return Err(invalid(
                "timestamp",
                format!(
                    "{timestamp} is outside {MIN_TIMESTAMP}..={MAX_TIMESTAMP} \
                     (2000-01-01 to 9999-12-31 in Unix seconds)"
                ),
            ));
        }
        let Value::Array(raw_tickers) = required(&mut fields, "tickers", "")? else {
            return Err(invalid("tickers", "must be an array"));
        };
        if raw_tickers.is_empty() {
            return Err(invalid("tickers", "at least one ticker is required"));
        }
        let mut tickers: Vec<TickerSignal> = Vec::with_capacity(raw_tickers.len());
        for (i, raw) in raw_tickers.into_iter().enumerate() {
            let t = ticker_signal(raw, i)?;
            if tickers.iter().any(|seen| seen.ticker == t.ticker) {
                return Err(SignalError::DuplicateTicker(t.ticker.to_string()));
            }
            tickers.push(t);
        }
        let metadata = match fields.remove("metadata") {
            None | Some(Value::Null) => SignalMetadata::default(),
            Some(Value::Object(mut m)) => {
                let size = serde_json::to_vec(&m).map_or(usize::MAX, |b| b.len());
                if size > MAX_METADATA_BYTES {
                    return Err(SignalError::MetadataTooLarge { size });
                }
                check_storable(&m)?;
                let timeframe = match m.remove("timeframe") {
                    None | Some(Value::Null) => None,
                    Some(Value::String(raw)) => Some(Timeframe::parse(&raw).map_err(|_| {
                        invalid(
                            "timeframe",
                            format!("{} is not one of 1, 5, 15, 60, 240, D", quoted(&raw)),
                        )
                    })?),
                    Some(other) => {
                        return Err(invalid(
                            "timeframe",
                            format!(
                                "expected one of \"1\", \"5\", \"15\", \"60\", \"240\", \"D\", got {}",
                                json_kind(&other)
                            ),
                        ));
                    }
                };
                SignalMetadata {
                    timeframe,
                    values: m.into_iter().collect(),
                }
            }
            Some(other) => {
                return Err(invalid(
                    "metadata",
                    format!("must be an object, got {}", json_kind(&other)),
                ));
            }
        };
        Ok(Signal {
            signal_id,
            signal_type,
            source,
            timestamp,
            tickers,
            metadata,
        })
    }
}

/// Whether a number can be stored in DynamoDB (see [`MIN_STORABLE_MAGNITUDE`]).
fn storable_number(x: f64) -> bool {
    x == 0.0 || (MIN_STORABLE_MAGNITUDE..MAX_STORABLE_MAGNITUDE).contains(&x.abs())
}

/// `metadata` values nest at most [`MAX_METADATA_DEPTH`] deep and hold only storable numbers.
/// Iterative, so no input can exhaust the stack.
fn check_storable(
    metadata: &serde_json::Map<String, serde_json::Value>,
) -> Result<(), SignalError> {
    use serde_json::Value;
    // (value, nesting level of the array or object it would be)
    let mut stack: Vec<(&Value, usize)> = metadata.values().map(|v| (v, 1)).collect();
    while let Some((value, level)) = stack.pop() {
        let children: Box<dyn Iterator<Item = &Value>> = match value {
            Value::Array(items) => Box::new(items.iter()),
            Value::Object(fields) => Box::new(fields.values()),
            Value::Number(n) => {
                if !storable_number(n.as_f64().unwrap_or(f64::NAN)) {
                    return Err(invalid(
                        "metadata",
                        format!(
                            "number {n} cannot be stored (0, or a magnitude from 1e-130 to \
                             below 1e126)"
                        ),
                    ));
                }
                continue;
            }
            _ => continue,
        };
        if level > MAX_METADATA_DEPTH {
            return Err(invalid(
                "metadata",
                format!("nested deeper than {MAX_METADATA_DEPTH} levels"),
            ));
        }
        stack.extend(children.map(|v| (v, level + 1)));
    }
    Ok(())
}

/// The JSON type of a value, for messages.
fn json_kind(value: &serde_json::Value) -> &'static str {
    use serde_json::Value;
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A required field (absent or null is missing); `path` prefixes its name in the message.
fn required(
    fields: &mut serde_json::Map<String, serde_json::Value>,
    name: &'static str,
    path: &str,
) -> Result<serde_json::Value, SignalError> {
    match fields.remove(name) {
        None | Some(serde_json::Value::Null) => {
            Err(SignalError::MissingField(format!("{path}{name}")))
        }
        Some(v) => Ok(v),
    }
}

fn string(value: serde_json::Value, field: &'static str) -> Result<String, SignalError> {
    match value {
        serde_json::Value::String(s) => Ok(s),
        other => Err(invalid(
            field,
            format!("expected a string, got {}", json_kind(&other)),
        )),
    }
}

/// A string of 1 to [`MAX_ID_BYTES`] bytes, not only blanks.
fn bounded_string(value: serde_json::Value, field: &'static str) -> Result<String, SignalError> {
    let s = string(value, field)?;
    if s.trim().is_empty() || s.len() > MAX_ID_BYTES {
        return Err(invalid(
            field,
            format!("must be 1 to {MAX_ID_BYTES} bytes, not blank"),
        ));
    }
    Ok(s)
}

/// `tickers[i]`.
fn ticker_signal(raw: serde_json::Value, i: usize) -> Result<TickerSignal, SignalError> {
    use serde_json::Value;
    let path = format!("tickers[{i}].");
    let Value::Object(mut fields) = raw else {
        return Err(invalid(
            "tickers",
            format!("tickers[{i}] must be an object, got {}", json_kind(&raw)),
        ));
    };
    let ticker = Ticker::parse(&string(required(&mut fields, "ticker", &path)?, "ticker")?)?;
    let direction = string(required(&mut fields, "signal", &path)?, "signal")?;
    let signal = [Direction::Bullish, Direction::Bearish, Direction::Neutral]
        .into_iter()
        .find(|d| d.as_str() == direction)
        .ok_or_else(|| {
            invalid(
                "signal",
                format!("{} is not BULLISH, BEARISH or NEUTRAL", quoted(&direction)),
            )
        })?;
    let confidence = match required(&mut fields, "confidence", &path)? {
        Value::Number(n) => {
            let c = n.as_f64().unwrap_or(f64::NAN);
            if c.is_finite() && !storable_number(c) {
                return Err(invalid(
                    "confidence",
                    format!("{n} is too close to 0 to be stored (use 0)"),
                ));
            }
            Confidence::new(c)?
        }
        other => {
            return Err(invalid(
                "confidence",
                format!("expected a number 0 to 100, got {}", json_kind(&other)),
            ));
        }
    };
    let reasoning = match fields.remove("reasoning") {
        None | Some(Value::Null) => None,
        Some(Value::String(r)) if r.len() <= MAX_REASONING_BYTES => Some(r),
        Some(Value::String(r)) => {
            return Err(invalid(
                "reasoning",
                format!("{} bytes, more than {MAX_REASONING_BYTES}", r.len()),
            ));
        }
        Some(other) => {
            return Err(invalid(
                "reasoning",
                format!("expected a string or null, got {}", json_kind(&other)),
            ));
        }
    };
    Ok(TickerSignal {
        ticker,
        signal,
        confidence,
        reasoning,
    })
}

impl Signal {
    /// Parses and validates one message body.
    pub fn parse(body: &str) -> Result<Self, SignalError> {
        let value: serde_json::Value =
            serde_json::from_str(body).map_err(|e| SignalError::Json(e.to_string()))?;
        Signal::try_from(value)
    }

    /// [`Signal::parse`], also rejecting a timestamp more than [`MAX_FUTURE_SECS`] after `now`
    /// (the receiver's clock, Unix seconds).
    pub fn parse_at(body: &str, now: i64) -> Result<Self, SignalError> {
        let signal = Signal::parse(body)?;
        let latest = now.saturating_add(MAX_FUTURE_SECS);
        if signal.timestamp > latest {
            return Err(invalid(
                "timestamp",
                format!(
                    "{} is more than {MAX_FUTURE_SECS} s after the receiver's clock ({now})",
                    signal.timestamp
                ),
            ));
        }
        Ok(signal)
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

    #[test]
    fn every_rejection_has_a_label_from_the_fixed_list() {
        let body = |edit: &dyn Fn(&mut serde_json::Value)| {
            let mut v: serde_json::Value = serde_json::from_str(OLD_SYSTEM_BODY).unwrap();
            edit(&mut v);
            v.to_string()
        };
        let cases: Vec<(String, &str)> = vec![
            ("{".into(), "malformed_json"),
            ("\"AAPL\"".into(), "not_an_object"),
            (
                body(&|v| v["tickers"][1]["confidence"] = serde_json::Value::Null),
                "missing_field",
            ),
            (body(&|v| v["signal_id"] = "".into()), "invalid_signal_id"),
            (
                body(&|v| v["signal_id"] = "x".repeat(129).into()),
                "invalid_signal_id",
            ),
            (
                body(&|v| v["signal_type"] = 7.into()),
                "invalid_signal_type",
            ),
            (body(&|v| v["source"] = " ".into()), "invalid_source"),
            (
                body(&|v| v["timestamp"] = 946_684_799.into()),
                "invalid_timestamp",
            ),
            (
                body(&|v| v["timestamp"] = (MAX_TIMESTAMP + 1).into()),
                "invalid_timestamp",
            ),
            (
                body(&|v| v["timestamp"] = 1.5e9.into()),
                "invalid_timestamp",
            ),
            (
                body(&|v| v["timestamp"] = u64::MAX.into()),
                "invalid_timestamp",
            ),
            (
                body(&|v| v["tickers"] = serde_json::json!([])),
                "invalid_tickers",
            ),
            (
                body(&|v| v["tickers"] = serde_json::json!({})),
                "invalid_tickers",
            ),
            (
                body(&|v| v["tickers"][0] = "AAPL".into()),
                "invalid_tickers",
            ),
            (
                body(&|v| v["tickers"][0]["ticker"] = "".into()),
                "invalid_ticker",
            ),
            (
                body(&|v| v["tickers"][1]["ticker"] = "aapl".into()),
                "duplicate_ticker",
            ),
            (
                body(&|v| v["tickers"][0]["signal"] = "bullish".into()),
                "invalid_direction",
            ),
            (
                body(&|v| v["tickers"][0]["confidence"] = "75".into()),
                "invalid_confidence",
            ),
            (
                body(&|v| v["tickers"][0]["confidence"] = (-1).into()),
                "invalid_confidence",
            ),
            (
                body(&|v| v["tickers"][0]["reasoning"] = 5.into()),
                "invalid_reasoning",
            ),
            (
                body(&|v| {
                    v["tickers"][0]["reasoning"] = "x".repeat(MAX_REASONING_BYTES + 1).into()
                }),
                "invalid_reasoning",
            ),
            (
                body(&|v| v["metadata"]["timeframe"] = 5.into()),
                "unknown_timeframe",
            ),
            (
                body(&|v| v["metadata"] = serde_json::json!([1])),
                "invalid_metadata",
            ),
            (
                body(&|v| v["metadata"]["notes"] = "x".repeat(MAX_METADATA_BYTES).into()),
                "metadata_too_large",
            ),
        ];
        for (body, label) in &cases {
            let err = Signal::parse(body).unwrap_err();
            assert_eq!(err.reason_label(), *label, "{err}");
            assert!(SignalError::REASON_LABELS.contains(label));
        }
        // Every field name a rejection can carry has its own label, not the fallback.
        for field in [
            "signal_id",
            "signal_type",
            "source",
            "timestamp",
            "tickers",
            "ticker",
            "signal",
            "confidence",
            "reasoning",
            "timeframe",
            "metadata",
        ] {
            assert_ne!(
                invalid(field, "").reason_label(),
                "invalid_field",
                "{field}"
            );
        }
        let unique: std::collections::BTreeSet<_> = SignalError::REASON_LABELS.iter().collect();
        assert_eq!(unique.len(), SignalError::REASON_LABELS.len());
    }

    #[test]
    fn limits_are_inclusive_and_the_future_is_bounded_by_the_clock() {
        let at = |ts: i64| OLD_SYSTEM_BODY.replace("1732550400", &ts.to_string());
        assert!(Signal::parse(&at(MIN_TIMESTAMP)).is_ok());
        assert!(Signal::parse(&at(MAX_TIMESTAMP)).is_ok());
        let now = 1_732_550_400;
        assert!(Signal::parse_at(&at(now + MAX_FUTURE_SECS), now).is_ok());
        let err = Signal::parse_at(&at(now + MAX_FUTURE_SECS + 1), now).unwrap_err();
        assert_eq!(err.reason_label(), "invalid_timestamp");
        // An extreme clock does not overflow.
        assert!(Signal::parse_at(&at(MAX_TIMESTAMP), i64::MAX).is_ok());
        // Metadata up to the limit is accepted, and `null` metadata is empty.
        let mut v: serde_json::Value = serde_json::from_str(OLD_SYSTEM_BODY).unwrap();
        let base = serde_json::to_vec(&v["metadata"]).unwrap().len();
        v["metadata"]["notes"] = "x".repeat(MAX_METADATA_BYTES - base - 11).into();
        assert_eq!(
            serde_json::to_vec(&v["metadata"]).unwrap().len(),
            MAX_METADATA_BYTES
        );
        assert!(Signal::parse(&v.to_string()).is_ok());
        v["metadata"] = serde_json::Value::Null;
        assert_eq!(
            Signal::parse(&v.to_string()).unwrap().metadata,
            SignalMetadata::default()
        );
    }

    #[test]
    fn metadata_that_cannot_be_stored_is_refused() {
        let body = |metadata: serde_json::Value| {
            let mut v: serde_json::Value = serde_json::from_str(OLD_SYSTEM_BODY).unwrap();
            v["metadata"] = metadata;
            v.to_string()
        };
        let nested = |levels: usize| {
            let mut inner = serde_json::json!(1);
            for _ in 0..levels {
                inner = serde_json::json!([inner]);
            }
            serde_json::json!({ "deep": inner })
        };
        assert!(Signal::parse(&body(nested(MAX_METADATA_DEPTH))).is_ok());
        for bad in [
            nested(MAX_METADATA_DEPTH + 1),
            serde_json::json!({"x": 1e300}),
            serde_json::json!({"x": [-1e126]}),
            serde_json::json!({"x": {"y": 1e-200}}),
        ] {
            let err = Signal::parse(&body(bad.clone())).unwrap_err();
            assert_eq!(err.reason_label(), "invalid_metadata", "{bad}: {err}");
        }
        assert!(Signal::parse(&body(serde_json::json!({"x": 0.0, "y": -1e125}))).is_ok());
        let tiny = OLD_SYSTEM_BODY.replace("\"confidence\": 75", "\"confidence\": 1e-200");
        assert_eq!(
            Signal::parse(&tiny).unwrap_err().reason_label(),
            "invalid_confidence"
        );
    }

    #[test]
    fn a_huge_value_is_quoted_short_in_the_reason() {
        let long = "a".repeat(10 * 1024);
        let v = OLD_SYSTEM_BODY.replace("rsi_oversold", &long);
        let err = Signal::parse(&v).unwrap_err();
        assert_eq!(err.reason_label(), "invalid_signal_type");
        assert!(err.to_string().len() < 200, "{err}");
        assert!(err.to_string().contains("10240 bytes"), "{err}");
    }

    mod properties {
        use super::super::*;
        use proptest::prelude::*;

        /// Arbitrary JSON, a few levels deep.
        fn json() -> impl Strategy<Value = serde_json::Value> {
            let leaf = prop_oneof![
                Just(serde_json::Value::Null),
                any::<bool>().prop_map(serde_json::Value::from),
                any::<i64>().prop_map(serde_json::Value::from),
                any::<f64>().prop_map(serde_json::Value::from),
                ".{0,20}".prop_map(serde_json::Value::from),
            ];
            leaf.prop_recursive(4, 32, 6, |inner| {
                prop_oneof![
                    prop::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::from),
                    prop::collection::btree_map("[a-z_]{0,12}", inner, 0..6)
                        .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
                ]
            })
        }

        /// A JSON value shaped like a signal: each field either plausible or arbitrary.
        fn signal_like() -> impl Strategy<Value = serde_json::Value> {
            let ticker = prop_oneof![
                "[A-Za-z0-9.^=_/-]{0,17}".prop_map(serde_json::Value::from),
                json(),
            ];
            let entry = (
                ticker,
                prop_oneof![
                    prop::sample::select(vec!["BULLISH", "BEARISH", "NEUTRAL", "bullish", ""])
                        .prop_map(serde_json::Value::from),
                    json()
                ],
                prop_oneof![(-10.0f64..110.0).prop_map(serde_json::Value::from), json()],
                prop::option::of(json()),
            )
                .prop_map(|(t, d, c, r)| {
                    let mut m = serde_json::Map::new();
                    m.insert("ticker".into(), t);
                    m.insert("signal".into(), d);
                    m.insert("confidence".into(), c);
                    if let Some(r) = r {
                        m.insert("reasoning".into(), r);
                    }
                    serde_json::Value::Object(m)
                });
            (
                prop_oneof!["[a-z0-9-]{0,130}".prop_map(serde_json::Value::from), json()],
                prop_oneof![
                    "[a-z_0-9 A-Z]{0,66}".prop_map(serde_json::Value::from),
                    json()
                ],
                prop_oneof![
                    (MIN_TIMESTAMP - 10..MAX_TIMESTAMP + 10).prop_map(serde_json::Value::from),
                    json()
                ],
                prop_oneof![
                    prop::collection::vec(entry, 0..4).prop_map(serde_json::Value::from),
                    json()
                ],
                prop::option::of(prop_oneof![
                    (
                        prop::sample::select(vec!["1", "5", "15", "60", "240", "D", "7", ""]),
                        json()
                    )
                        .prop_map(|(tf, extra)| serde_json::json!({"timeframe": tf, "x": extra})),
                    json()
                ]),
            )
                .prop_map(|(id, ty, ts, tickers, metadata)| {
                    let mut m = serde_json::Map::new();
                    m.insert("signal_id".into(), id);
                    m.insert("signal_type".into(), ty);
                    m.insert("source".into(), "gen".into());
                    m.insert("timestamp".into(), ts);
                    m.insert("tickers".into(), tickers);
                    if let Some(md) = metadata {
                        m.insert("metadata".into(), md);
                    }
                    serde_json::Value::Object(m)
                })
        }

        /// Ok or a classified error, never a panic; what is accepted survives a round trip.
        fn check(body: &str) {
            match Signal::parse(body) {
                Ok(signal) => {
                    let again = Signal::parse(&signal.to_json());
                    assert_eq!(again.as_ref(), Ok(&signal), "{body}");
                }
                Err(e) => assert!(
                    SignalError::REASON_LABELS.contains(&e.reason_label()),
                    "{e}"
                ),
            }
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

            #[test]
            fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
                check(&String::from_utf8_lossy(&bytes));
            }

            #[test]
            fn arbitrary_json_never_panics(value in json()) {
                check(&value.to_string());
            }

            #[test]
            fn signal_shaped_json_is_ok_or_classified_and_round_trips(value in signal_like()) {
                check(&value.to_string());
                // The clock check adds only `invalid_timestamp`.
                if let Err(e) = Signal::parse_at(&value.to_string(), 1_750_000_000) {
                    prop_assert!(SignalError::REASON_LABELS.contains(&e.reason_label()));
                }
            }
        }
    }
}
