//! [`QueueSender`] and [`QueueDepth`] on an SQS queue.

use async_trait::async_trait;
use aws_sdk_sqs::Client;
use aws_sdk_sqs::error::BuildError;
use aws_sdk_sqs::operation::send_message_batch::SendMessageBatchOutput;
use aws_sdk_sqs::types::{MessageAttributeValue, QueueAttributeName, SendMessageBatchRequestEntry};
use tradeflow_core::error::QueueError;
use tradeflow_core::ports::{FailedEntry, OutgoingMessage, QueueDepth, QueueSender};
use tradeflow_core::trace::TraceContext;

use crate::error::{AdapterError, check_batch, queue_error, queue_permanent};

/// One SQS queue, addressed by URL.
#[derive(Debug, Clone)]
pub struct SqsQueue {
    client: Client,
    queue_url: String,
}

impl SqsQueue {
    /// A queue at `queue_url` (see [`resolve_queue_url`] to get one from a name).
    pub fn new(client: Client, queue_url: impl Into<String>) -> Self {
        SqsQueue {
            client,
            queue_url: queue_url.into(),
        }
    }

    /// The queue's URL.
    pub fn queue_url(&self) -> &str {
        &self.queue_url
    }
}

/// Returns `name_or_url` as is when it is an `http(s)://` URL, else asks SQS for the URL of the
/// queue with that name. (In the emulator, the URL a template's `!Ref` yields is not the
/// emulator's: pass the name and resolve it.)
pub async fn resolve_queue_url(client: &Client, name_or_url: &str) -> Result<String, QueueError> {
    if name_or_url.starts_with("https://") || name_or_url.starts_with("http://") {
        return Ok(name_or_url.to_owned());
    }
    let output = client
        .get_queue_url()
        .queue_name(name_or_url)
        .send()
        .await
        .map_err(|e| queue_error("GetQueueUrl", e))?;
    output.queue_url.ok_or_else(|| {
        queue_permanent(
            "GetQueueUrl",
            AdapterError::UnexpectedResponse(format!("no URL returned for queue {name_or_url}")),
        )
    })
}

/// A message's trace context as SQS message attributes: `traceparent` and, when there is one,
/// `tracestate`, both of data type `String` (what [`TraceContext::wire_bytes`] counts). The
/// consumer reads them back from its SQS records (`tradeflow_lambda`'s batch path). For any
/// SQS-shaped sender (SQS, SNS) of an [`OutgoingMessage`].
pub fn trace_attributes(
    trace: &TraceContext,
) -> Result<std::collections::HashMap<String, MessageAttributeValue>, BuildError> {
    trace
        .attributes()
        .map(|(name, value)| {
            let attribute = MessageAttributeValue::builder()
                .data_type("String")
                .string_value(value)
                .build()?;
            Ok((name.to_owned(), attribute))
        })
        .collect()
}

/// The entries a `SendMessageBatch` response reports as not sent.
fn failed_entries(output: &SendMessageBatchOutput) -> Vec<FailedEntry> {
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
impl QueueSender for SqsQueue {
    async fn send_batch(
        &self,
        messages: &[OutgoingMessage],
    ) -> Result<Vec<FailedEntry>, QueueError> {
        if !check_batch("SendMessageBatch", messages)? {
            return Ok(Vec::new());
        }
        let entries = messages
            .iter()
            .map(|m| {
                let attributes = m.trace.as_ref().map(trace_attributes).transpose();
                attributes
                    .and_then(|attributes| {
                        SendMessageBatchRequestEntry::builder()
                            .id(&m.id)
                            .message_body(&m.body)
                            .set_message_attributes(attributes)
                            .build()
                    })
                    .map_err(|e| {
                        queue_permanent(
                            "SendMessageBatch",
                            AdapterError::InvalidRequest(format!("entry {}: {e}", m.id)),
                        )
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let output = self
            .client
            .send_message_batch()
            .queue_url(&self.queue_url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|e| queue_error("SendMessageBatch", e))?;
        Ok(failed_entries(&output))
    }
}

#[async_trait]
impl QueueDepth for SqsQueue {
    async fn approximate_depth(&self) -> Result<u64, QueueError> {
        let output = self
            .client
            .get_queue_attributes()
            .queue_url(&self.queue_url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .send()
            .await
            .map_err(|e| queue_error("GetQueueAttributes", e))?;
        let raw = output
            .attributes()
            .and_then(|a| a.get(&QueueAttributeName::ApproximateNumberOfMessages))
            .ok_or_else(|| {
                queue_permanent(
                    "GetQueueAttributes",
                    AdapterError::UnexpectedResponse("ApproximateNumberOfMessages missing".into()),
                )
            })?;
        raw.trim().parse::<u64>().map_err(|_| {
            queue_permanent(
                "GetQueueAttributes",
                AdapterError::UnexpectedResponse(format!("ApproximateNumberOfMessages is {raw:?}")),
            )
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use aws_sdk_sqs::types::BatchResultErrorEntry;

    #[test]
    fn the_trace_context_becomes_string_attributes() {
        let parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let mut trace = TraceContext {
            traceparent: parent.into(),
            tracestate: None,
        };
        let attributes = trace_attributes(&trace).unwrap();
        assert_eq!(attributes.len(), 1);
        let tp = &attributes["traceparent"];
        assert_eq!(
            (tp.data_type(), tp.string_value()),
            ("String", Some(parent))
        );
        trace.tracestate = Some("vendor=1".into());
        let attributes = trace_attributes(&trace).unwrap();
        assert_eq!(attributes["tracestate"].string_value(), Some("vendor=1"));
    }

    // The emulator fails entries one by one only for a bad DelaySeconds, which the port never
    // sets, so the mapping of a partial failure is checked here.
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
        let output = SendMessageBatchOutput::builder()
            .failed(entry("m1", "InvalidMessageContents", true))
            .failed(entry("m2", "InternalError", false))
            .set_successful(Some(Vec::new()))
            .build()
            .unwrap();
        assert_eq!(
            failed_entries(&output),
            vec![
                FailedEntry {
                    id: "m1".into(),
                    code: "InvalidMessageContents".into(),
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
