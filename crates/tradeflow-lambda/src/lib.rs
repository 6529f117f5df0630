//! Glue between Lambda events and the domain: SQS records to [`InboundMessage`]s, partial batch
//! responses, and configuration read from the environment with every problem reported at once.

use std::collections::BTreeSet;

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use tradeflow_core::vocab::InboundMessage;

/// Why a batch cannot be processed as a whole.
#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    /// A record without a message id cannot be reported on its own, so the whole batch is retried.
    #[error("SQS record {index} has no messageId; the whole batch is retried")]
    MissingMessageId { index: usize },
    /// Every record failed: returning an error makes the failure visible in the function's error
    /// metrics; the queue redelivers them all either way.
    #[error("all {count} records of the batch failed")]
    AllFailed { count: usize },
}

/// A record whose body is missing: it fails on its own.
#[derive(Debug, Clone, PartialEq)]
pub struct MissingBody {
    pub message_id: String,
}

/// Splits an SQS event into messages with bodies and ids of records without a body.
pub fn inbound_messages(
    event: SqsEvent,
) -> Result<(Vec<InboundMessage>, Vec<MissingBody>), BatchError> {
    let mut messages = Vec::with_capacity(event.records.len());
    let mut missing = Vec::new();
    for (index, record) in event.records.into_iter().enumerate() {
        let Some(message_id) = record.message_id.filter(|id| !id.is_empty()) else {
            return Err(BatchError::MissingMessageId { index });
        };
        let sent_at_ms = record
            .attributes
            .get("SentTimestamp")
            .and_then(|v| v.parse::<i64>().ok());
        match record.body {
            Some(body) => messages.push(InboundMessage {
                message_id,
                body,
                sent_at_ms,
            }),
            None => missing.push(MissingBody { message_id }),
        }
    }
    Ok((messages, missing))
}

/// The partial batch response naming exactly `failed` (each once). When every one of `total`
/// records failed, an error instead.
pub fn batch_response(
    failed: impl IntoIterator<Item = String>,
    total: usize,
) -> Result<SqsBatchResponse, BatchError> {
    let mut seen = BTreeSet::new();
    let mut response = SqsBatchResponse::default();
    for id in failed {
        if seen.insert(id.clone()) {
            let mut f = BatchItemFailure::default();
            f.item_identifier = id;
            response.batch_item_failures.push(f);
        }
    }
    if total > 0 && response.batch_item_failures.len() >= total {
        return Err(BatchError::AllFailed { count: total });
    }
    Ok(response)
}

/// A configuration problem; all of them are reported together.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {}", .problems.join("; "))]
pub struct ConfigError {
    pub problems: Vec<String>,
}

/// Reads settings through a lookup function (the environment in `main`, a map in tests) and
/// collects every problem instead of stopping at the first.
pub struct Settings<F: Fn(&str) -> Option<String>> {
    lookup: F,
    problems: Vec<String>,
}

impl<F: Fn(&str) -> Option<String>> Settings<F> {
    pub fn new(lookup: F) -> Self {
        Settings {
            lookup,
            problems: Vec::new(),
        }
    }

    fn get(&self, name: &str) -> Option<String> {
        (self.lookup)(name).filter(|v| !v.trim().is_empty())
    }

    pub fn required(&mut self, name: &str) -> String {
        match self.get(name) {
            Some(v) => v,
            None => {
                self.problems.push(format!("{name} is not set"));
                String::new()
            }
        }
    }

    pub fn optional(&mut self, name: &str) -> Option<String> {
        self.get(name)
    }

    pub fn or(&mut self, name: &str, default: &str) -> String {
        self.get(name).unwrap_or_else(|| default.to_owned())
    }

    /// Parses `name` with `parse`, or uses `default` when unset.
    pub fn parsed<T, E: std::fmt::Display>(
        &mut self,
        name: &str,
        default: T,
        parse: impl Fn(&str) -> Result<T, E>,
    ) -> T {
        match self.get(name) {
            None => default,
            Some(raw) => match parse(raw.trim()) {
                Ok(v) => v,
                Err(e) => {
                    self.problems.push(format!("{name}={raw:?}: {e}"));
                    default
                }
            },
        }
    }

    /// A comma-separated list, each item parsed.
    pub fn list<T, E: std::fmt::Display>(
        &mut self,
        name: &str,
        default: &str,
        parse: impl Fn(&str) -> Result<T, E>,
    ) -> Vec<T> {
        let raw = self.or(name, default);
        let mut out = Vec::new();
        for item in raw.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            match parse(item) {
                Ok(v) => out.push(v),
                Err(e) => self.problems.push(format!("{name}: {item:?}: {e}")),
            }
        }
        if out.is_empty() && !raw.trim().is_empty() {
            self.problems.push(format!("{name} has no valid entries"));
        }
        out
    }

    pub fn problem(&mut self, text: String) {
        self.problems.push(text);
    }

    pub fn finish<T>(self, value: T) -> Result<T, ConfigError> {
        if self.problems.is_empty() {
            Ok(value)
        } else {
            Err(ConfigError {
                problems: self.problems,
            })
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use aws_lambda_events::event::sqs::SqsMessage;
    use std::collections::HashMap;

    fn record(id: Option<&str>, body: Option<&str>) -> SqsMessage {
        let mut m = SqsMessage::default();
        m.message_id = id.map(str::to_owned);
        m.body = body.map(str::to_owned);
        m.attributes
            .insert("SentTimestamp".into(), "1700000000123".into());
        m
    }

    #[test]
    fn maps_records_and_separates_missing_bodies() {
        let mut event = SqsEvent::default();
        event.records = vec![record(Some("a"), Some("{}")), record(Some("b"), None)];
        let (messages, missing) = inbound_messages(event).unwrap();
        assert_eq!(messages.len(), 1);
        assert_eq!(messages[0].sent_at_ms, Some(1_700_000_000_123));
        assert_eq!(
            missing,
            vec![MissingBody {
                message_id: "b".into()
            }]
        );
    }

    #[test]
    fn a_record_without_id_fails_the_batch() {
        let mut event = SqsEvent::default();
        event.records = vec![record(Some("a"), Some("{}")), record(None, Some("{}"))];
        assert!(matches!(
            inbound_messages(event),
            Err(BatchError::MissingMessageId { index: 1 })
        ));
    }

    #[test]
    fn batch_response_names_each_failure_once_and_errors_when_all_fail() {
        let r = batch_response(vec!["a".into(), "a".into()], 3).unwrap();
        assert_eq!(r.batch_item_failures.len(), 1);
        assert_eq!(r.batch_item_failures[0].item_identifier, "a");
        assert!(batch_response(vec!["a".into(), "b".into()], 2).is_err());
        assert!(
            batch_response(Vec::new(), 0)
                .unwrap()
                .batch_item_failures
                .is_empty()
        );
    }

    #[test]
    fn settings_report_every_problem_at_once() {
        let env: HashMap<&str, &str> = HashMap::from([("N", "x"), ("L", "1,y,3")]);
        let mut s = Settings::new(|k| env.get(k).map(|v| (*v).to_owned()));
        let _ = s.required("MISSING");
        let _ = s.parsed("N", 1u32, str::parse::<u32>);
        let l = s.list("L", "", str::parse::<u32>);
        assert_eq!(l, vec![1, 3]);
        let err = s.finish(()).unwrap_err();
        assert_eq!(err.problems.len(), 3, "{err}");
        assert!(err.to_string().contains("MISSING is not set"));
    }
}

/// Where candles come from, chosen by `MARKET_DATA`.
#[derive(Debug, Clone, PartialEq)]
pub enum MarketSource {
    /// `MARKET_DATA=synthetic` (default): the deterministic feed, seeded by `SYNTHETIC_SEED`.
    Synthetic { seed: u64 },
    /// `MARKET_DATA=csv` with `MARKET_DATA_CSV_DIR`: replay of `<TICKER>_<TIMEFRAME>.csv` files.
    Csv { dir: String },
}

impl MarketSource {
    pub fn from_settings<F: Fn(&str) -> Option<String>>(s: &mut Settings<F>) -> Self {
        let kind = s.or("MARKET_DATA", "synthetic");
        match kind.as_str() {
            "synthetic" => MarketSource::Synthetic {
                seed: s.parsed("SYNTHETIC_SEED", 42u64, str::parse::<u64>),
            },
            "csv" => MarketSource::Csv {
                dir: s.required("MARKET_DATA_CSV_DIR"),
            },
            other => {
                s.problem(format!("MARKET_DATA={other:?}: expected synthetic or csv"));
                MarketSource::Synthetic { seed: 42 }
            }
        }
    }

    /// Builds the source (a CSV directory is read and validated here, once per cold start).
    pub fn build(
        &self,
    ) -> Result<
        std::sync::Arc<dyn tradeflow_core::market::MarketData>,
        tradeflow_core::market::MarketDataError,
    > {
        use tradeflow_core::market::{CsvReplay, SyntheticFeed};
        Ok(match self {
            MarketSource::Synthetic { seed } => std::sync::Arc::new(SyntheticFeed { seed: *seed }),
            MarketSource::Csv { dir } => std::sync::Arc::new(CsvReplay::from_dir(dir)?),
        })
    }
}
