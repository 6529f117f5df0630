//! [`QueueSender`] on an SNS standard topic: the generator publishes its signals to the signals
//! topic, which fans them out to the signals queue (raw delivery: the dispatcher receives the
//! same body as from a direct send) and to any other subscriber, such as `tradeflow signals
//! tail`'s temporary queue.

use async_trait::async_trait;
use aws_sdk_sns::Client;
use aws_sdk_sns::operation::publish_batch::PublishBatchOutput;
use aws_sdk_sns::types::{MessageAttributeValue, PublishBatchRequestEntry};
use tradeflow_core::error::QueueError;
use tradeflow_core::ports::{FailedEntry, OutgoingMessage, QueueSender};

use crate::error::{AdapterError, check_batch, queue_error, queue_permanent};

/// The operation name in errors.
const PUBLISH_BATCH: &str = "PublishBatch";

/// One SNS topic, addressed by ARN.
#[derive(Debug, Clone)]
pub struct SnsTopic {
    client: Client,
    topic_arn: String,
}

impl SnsTopic {
    /// The topic `topic_arn` (`arn:aws:sns:<region>:<account>:<name>`).
    pub fn new(client: Client, topic_arn: impl Into<String>) -> Self {
        SnsTopic {
            client,
            topic_arn: topic_arn.into(),
        }
    }

    /// The topic's ARN.
    pub fn topic_arn(&self) -> &str {
        &self.topic_arn
    }
}

/// The `PublishBatch` entry of one message: its id, body and trace context (the topic's raw
/// subscriptions deliver the body as is, and the message attributes as the SQS message
/// attributes `crate::sqs::trace_attributes` would have set: `traceparent`, `tracestate`).
fn entry(m: &OutgoingMessage) -> Result<PublishBatchRequestEntry, QueueError> {
    let attributes = m
        .trace
        .iter()
        .flat_map(|t| t.attributes())
        .map(|(name, value)| {
            MessageAttributeValue::builder()
                .data_type("String")
                .string_value(value)
                .build()
                .map(|v| (name.to_owned(), v))
        })
        .collect::<Result<std::collections::HashMap<_, _>, _>>();
    attributes
        .and_then(|attributes| {
            PublishBatchRequestEntry::builder()
                .id(&m.id)
                .message(&m.body)
                .set_message_attributes((!attributes.is_empty()).then_some(attributes))
                .build()
        })
        .map_err(|e| {
            queue_permanent(
                PUBLISH_BATCH,
                AdapterError::InvalidRequest(format!("entry {}: {e}", m.id)),
            )
        })
}

/// The entries a `PublishBatch` response reports as not published.
fn failed_entries(output: &PublishBatchOutput) -> Vec<FailedEntry> {
    output
        .failed()
        .iter()
        .map(|f| FailedEntry {
            id: f.id().to_owned(),
            code: f.code().to_owned(),
            sender_fault: f.sender_fault(),
        })
        .collect()
}

#[async_trait]
impl QueueSender for SnsTopic {
    /// One `PublishBatch` call. SNS's limits are SQS's: 10 entries, 256 KiB in all.
    async fn send_batch(
        &self,
        messages: &[OutgoingMessage],
    ) -> Result<Vec<FailedEntry>, QueueError> {
        if !check_batch(PUBLISH_BATCH, messages)? {
            return Ok(Vec::new());
        }
        let entries = messages.iter().map(entry).collect::<Result<Vec<_>, _>>()?;
        let output = self
            .client
            .publish_batch()
            .topic_arn(&self.topic_arn)
            .set_publish_batch_request_entries(Some(entries))
            .send()
            .await
            .map_err(|e| queue_error(PUBLISH_BATCH, e))?;
        Ok(failed_entries(&output))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use aws_sdk_sns::types::BatchResultErrorEntry;

    #[test]
    fn an_entry_carries_the_id_and_the_body_unchanged() {
        let e = entry(&OutgoingMessage::new("s0", "{\"signal_id\":\"a\"}")).unwrap();
        assert_eq!(e.id(), "s0");
        assert_eq!(e.message(), "{\"signal_id\":\"a\"}");
        assert_eq!(e.subject(), None);
        assert_eq!(e.message_structure(), None);
        assert_eq!(e.message_attributes(), None);
    }

    #[test]
    fn the_trace_context_becomes_string_message_attributes() {
        let parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let e = entry(&OutgoingMessage {
            trace: Some(tradeflow_core::trace::TraceContext {
                traceparent: parent.into(),
                tracestate: Some("vendor=1".into()),
            }),
            ..OutgoingMessage::new("s0", "{}")
        })
        .unwrap();
        let attributes = e.message_attributes().unwrap();
        assert_eq!(attributes.len(), 2);
        let tp = &attributes["traceparent"];
        assert_eq!(
            (tp.data_type(), tp.string_value()),
            ("String", Some(parent))
        );
        assert_eq!(attributes["tracestate"].string_value(), Some("vendor=1"));
    }

    // The emulator fails entries one by one only for a message over its size limit, which the
    // port's callers never send (publish::send_all keeps them out); the mapping is checked here
    // and, for that one case, in tests/sns.rs.
    #[test]
    fn failed_entries_keep_id_code_and_fault() {
        let entry = |id: &str, code: &str, sender_fault: bool| {
            BatchResultErrorEntry::builder()
                .id(id)
                .code(code)
                .sender_fault(sender_fault)
                .message("refused")
                .build()
                .unwrap()
        };
        let output = PublishBatchOutput::builder()
            .failed(entry("m1", "InvalidParameter", true))
            .failed(entry("m2", "InternalError", false))
            .build();
        assert_eq!(
            failed_entries(&output),
            vec![
                FailedEntry {
                    id: "m1".into(),
                    code: "InvalidParameter".into(),
                    sender_fault: true
                },
                FailedEntry {
                    id: "m2".into(),
                    code: "InternalError".into(),
                    sender_fault: false
                },
            ]
        );
    }
}
