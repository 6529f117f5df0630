//! SQS batches: records to [`InboundMessage`]s, the domain call, the partial batch response.
//!
//! [`process_batch`] is the whole path of an SQS-triggered function; each function supplies only
//! its domain call and what it logs and counts from the report.

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::time::Duration;

use aws_lambda_events::event::sqs::{
    BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessageAttribute,
};
use tradeflow_core::dispatch::{DispatchReport, MessageFailure};
use tradeflow_core::execute::{MessageReport, Outcome};
use tradeflow_core::trace::{TRACEPARENT, TRACESTATE, TraceContext};
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
        let receive_count = record
            .attributes
            .get("ApproximateReceiveCount")
            .and_then(|v| v.parse::<u32>().ok());
        let trace = trace_context(&record.message_attributes);
        match record.body {
            Some(body) => messages.push(InboundMessage {
                message_id,
                body,
                sent_at_ms,
                receive_count,
                trace,
            }),
            None => missing.push(MissingBody { message_id }),
        }
    }
    Ok((messages, missing))
}

/// The trace context a record's sender attached as String message attributes (`traceparent`,
/// `tracestate`: `tradeflow_aws::trace_attributes`); `None` without a `traceparent`. Not
/// validated: a malformed one starts a new trace when the function opens its span.
pub fn trace_context(attributes: &HashMap<String, SqsMessageAttribute>) -> Option<TraceContext> {
    let value = |name: &str| attributes.get(name).and_then(|a| a.string_value.as_deref());
    TraceContext::from_attributes(value(TRACEPARENT), value(TRACESTATE))
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

/// Why a record without a body failed (the dispatcher's failure detail, the executor's rejection).
pub const MISSING_BODY_REASON: &str = "record has no body";

/// A domain report on one SQS batch: it takes in the records that had no body and names the
/// messages to redeliver.
pub trait BatchReport {
    /// Adds the records without a body, each a failure of its own, and the batch's record count.
    fn add_missing(&mut self, missing: Vec<MissingBody>, total: usize);
    /// Ids of the messages that failed (each is redelivered).
    fn failed_message_ids(&self) -> Vec<String>;
}

/// The dispatcher's report: records without a body are poison failures listed after the
/// dispatcher's own, and `received` counts every record of the batch.
impl BatchReport for DispatchReport {
    fn add_missing(&mut self, missing: Vec<MissingBody>, total: usize) {
        self.received = total;
        self.failures
            .extend(missing.into_iter().map(|m| MessageFailure {
                message_id: m.message_id,
                label: tradeflow_core::signal::SignalError::MISSING_BODY,
                reason: MISSING_BODY_REASON.into(),
                poison: true,
            }));
    }

    fn failed_message_ids(&self) -> Vec<String> {
        DispatchReport::failed_message_ids(self)
    }
}

/// The executor's reports, one per message: a record without a body is a rejected message, listed
/// before the executed ones.
impl BatchReport for Vec<MessageReport> {
    fn add_missing(&mut self, missing: Vec<MissingBody>, _total: usize) {
        let executed = std::mem::take(self);
        self.extend(missing.into_iter().map(|m| MessageReport {
            message_id: m.message_id,
            outcome: Outcome::Rejected {
                reason: MISSING_BODY_REASON.into(),
            },
            duration: Duration::ZERO,
            lag_ms: None,
        }));
        self.extend(executed);
    }

    fn failed_message_ids(&self) -> Vec<String> {
        self.iter()
            .filter(|r| r.failed())
            .map(|r| r.message_id.clone())
            .collect()
    }
}

/// One SQS invocation: the records become messages (a record without an id fails the batch, one
/// without a body fails alone), `process` runs the domain call on the messages, `observe` sees
/// the complete report (the function's logs and metrics), and the failed messages make the
/// partial batch response ([`batch_response`]: when every record failed, an error).
pub async fn process_batch<R, Fut>(
    event: SqsEvent,
    process: impl FnOnce(Vec<InboundMessage>) -> Fut,
    observe: impl FnOnce(&R),
) -> Result<SqsBatchResponse, BatchError>
where
    R: BatchReport,
    Fut: Future<Output = R>,
{
    let total = event.records.len();
    let (messages, missing) = inbound_messages(event)?;
    let mut report = process(messages).await;
    report.add_missing(missing, total);
    observe(&report);
    batch_response(report.failed_message_ids(), total)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use aws_lambda_events::event::sqs::SqsMessage;
    use tradeflow_core::execution::ExecutionStatus;

    fn record(id: Option<&str>, body: Option<&str>) -> SqsMessage {
        let mut m = SqsMessage::default();
        m.message_id = id.map(str::to_owned);
        m.body = body.map(str::to_owned);
        m.attributes
            .insert("SentTimestamp".into(), "1700000000123".into());
        m.attributes
            .insert("ApproximateReceiveCount".into(), "3".into());
        m
    }

    #[test]
    fn maps_records_and_separates_missing_bodies() {
        let mut event = SqsEvent::default();
        event.records = vec![record(Some("a"), Some("{}")), record(Some("b"), None)];
        let (messages, missing) = inbound_messages(event).unwrap();
        assert_eq!(messages.len(), 1);
        assert_eq!(messages[0].sent_at_ms, Some(1_700_000_000_123));
        assert_eq!(messages[0].receive_count, Some(3));
        assert_eq!(
            missing,
            vec![MissingBody {
                message_id: "b".into()
            }]
        );
    }

    #[test]
    fn the_trace_context_comes_from_the_message_attributes() {
        let attribute = |value: &str| {
            let mut a = SqsMessageAttribute::default();
            a.string_value = Some(value.to_owned());
            a.data_type = Some("String".into());
            a
        };
        let parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let mut traced = record(Some("a"), Some("{}"));
        traced
            .message_attributes
            .insert("traceparent".into(), attribute(parent));
        traced
            .message_attributes
            .insert("tracestate".into(), attribute("vendor=1"));
        let mut state_only = record(Some("b"), Some("{}"));
        state_only
            .message_attributes
            .insert("tracestate".into(), attribute("vendor=1"));
        let mut event = SqsEvent::default();
        event.records = vec![traced, state_only, record(Some("c"), Some("{}"))];
        let (messages, _) = inbound_messages(event).unwrap();
        assert_eq!(
            messages[0].trace,
            Some(TraceContext {
                traceparent: parent.into(),
                tracestate: Some("vendor=1".into()),
            })
        );
        assert_eq!((&messages[1].trace, &messages[2].trace), (&None, &None));
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

    fn event(records: Vec<SqsMessage>) -> SqsEvent {
        let mut e = SqsEvent::default();
        e.records = records;
        e
    }

    fn failed_ids(r: &SqsBatchResponse) -> Vec<&str> {
        r.batch_item_failures
            .iter()
            .map(|f| f.item_identifier.as_str())
            .collect()
    }

    /// A dispatcher stand-in: a body "bad" is a poison failure.
    fn dispatch(messages: &[InboundMessage]) -> DispatchReport {
        let mut report = DispatchReport {
            received: messages.len(),
            ..DispatchReport::default()
        };
        for m in messages {
            if m.body == "bad" {
                report.failures.push(MessageFailure {
                    message_id: m.message_id.clone(),
                    label: "malformed_json",
                    reason: "bad".into(),
                    poison: true,
                });
            } else {
                report.consumed += 1;
            }
        }
        report
    }

    /// An executor stand-in: a body "bad" is rejected, "later" retried, anything else a duplicate.
    fn execute(messages: &[InboundMessage]) -> Vec<MessageReport> {
        messages
            .iter()
            .map(|m| MessageReport {
                message_id: m.message_id.clone(),
                outcome: match m.body.as_str() {
                    "bad" => Outcome::Rejected {
                        reason: "bad".into(),
                    },
                    "later" => Outcome::Retry {
                        label: "pipeline_store",
                        reason: "down".into(),
                    },
                    _ => Outcome::Duplicate(ExecutionStatus::Completed),
                },
                duration: Duration::from_millis(1),
                lag_ms: Some(1),
            })
            .collect()
    }

    #[tokio::test]
    async fn a_dispatcher_batch_reports_its_failures_then_the_records_without_a_body() {
        let mut seen = None;
        let response = process_batch(
            event(vec![
                record(Some("no-body"), None),
                record(Some("good"), Some("ok")),
                record(Some("bad"), Some("bad")),
            ]),
            |messages| async move {
                assert_eq!(
                    messages.len(),
                    2,
                    "only records with a body reach the domain"
                );
                dispatch(&messages)
            },
            |report: &DispatchReport| seen = Some(report.clone()),
        )
        .await
        .unwrap();
        assert_eq!(failed_ids(&response), vec!["bad", "no-body"]);
        let report = seen.unwrap();
        assert_eq!((report.received, report.consumed), (3, 1));
        let missing = &report.failures[1];
        assert_eq!(
            (missing.label, missing.reason.as_str(), missing.poison),
            ("missing_body", MISSING_BODY_REASON, true)
        );
    }

    #[tokio::test]
    async fn an_executor_batch_reports_the_records_without_a_body_first() {
        let mut seen = Vec::new();
        let response = process_batch(
            event(vec![
                record(Some("good"), Some("ok")),
                record(Some("retry"), Some("later")),
                record(Some("bad"), Some("bad")),
                record(Some("empty"), None),
            ]),
            |messages| async move { execute(&messages) },
            |reports: &Vec<MessageReport>| {
                seen = reports.iter().map(|r| r.message_id.clone()).collect();
            },
        )
        .await
        .unwrap();
        assert_eq!(failed_ids(&response), vec!["empty", "retry", "bad"]);
        assert_eq!(seen, vec!["empty", "good", "retry", "bad"]);
    }

    #[tokio::test]
    async fn a_batch_fails_as_a_whole_without_an_id_or_when_every_record_failed() {
        let mut called = false;
        let missing_id = process_batch(
            event(vec![
                record(Some("a"), Some("ok")),
                record(None, Some("ok")),
            ]),
            |messages| async move { execute(&messages) },
            |_| called = true,
        )
        .await;
        assert!(matches!(
            missing_id,
            Err(BatchError::MissingMessageId { index: 1 })
        ));
        assert!(!called, "nothing is processed or observed");

        let all_failed = process_batch(
            event(vec![
                record(Some("a"), Some("bad")),
                record(Some("b"), None),
            ]),
            |messages| async move { dispatch(&messages) },
            |_| {},
        )
        .await;
        assert!(matches!(
            all_failed,
            Err(BatchError::AllFailed { count: 2 })
        ));

        let empty = process_batch(
            event(Vec::new()),
            |messages| async move { dispatch(&messages) },
            |_| {},
        )
        .await
        .unwrap();
        assert!(empty.batch_item_failures.is_empty());
    }
}
