//! Sending many messages through a [`QueueSender`]: batches of at most 10 messages and
//! 256 KiB, every per-entry failure checked and retried with backoff, so a partial failure loses
//! nothing silently. A message that can never fit is refused alone, before any call.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use crate::error::QueueError;
use crate::ports::{MAX_BATCH, OutgoingMessage, QueueSender};

/// Largest message we send, in bytes of body and message attributes (the trace context, as
/// [`OutgoingMessage::wire_bytes`] counts it): SQS's classic
/// 256 KiB. Queues may allow up to 1 MiB since 2025, but 256 KiB holds for every queue, and
/// `infra/template.yaml` sets `MaximumMessageSize` to it on the signals and executions queues.
/// Twenty such messages (the dispatcher's batch) also stay within Lambda's 6 MB invocation
/// payload.
pub const MAX_MESSAGE_BYTES: usize = 262_144;

/// Largest SendMessageBatch, the sum of its messages' [`OutgoingMessage::wire_bytes`]: SQS
/// refuses a longer call whole
/// (`BatchRequestTooLong`).
pub const MAX_BATCH_BYTES: usize = 262_144;

#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Total tries per entry, including the first.
    pub attempts: u32,
    pub base_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 3,
            base_delay: Duration::from_millis(50),
        }
    }
}

/// Why a message was not sent after all retries.
#[derive(Debug, Clone, PartialEq)]
pub struct Undelivered {
    pub id: String,
    pub reason: String,
    /// `false` when the queue blamed the message itself.
    pub retryable: bool,
    /// A whole call carrying it failed at least once (a timeout, a 5xx): the queue may have
    /// taken it all the same. `false`: the queue answered for this entry every time (or it was
    /// never sent), so it is certainly not on the queue.
    pub maybe_sent: bool,
}

/// Result of [`send_all`].
#[derive(Debug, Default, Clone, PartialEq)]
pub struct SendReport {
    /// Ids of messages the queue accepted.
    pub sent: Vec<String>,
    pub undelivered: Vec<Undelivered>,
    /// Number of SendMessageBatch calls made.
    pub calls: u32,
    /// Entries sent again after a failure.
    pub retried: u32,
}

/// Sends every message in calls of at most [`MAX_BATCH`] messages and [`MAX_BATCH_BYTES`]
/// bytes, in order; failed entries (and whole failed calls) are retried up to `policy.attempts`
/// tries with exponential backoff. A message over [`MAX_MESSAGE_BYTES`] is not sent at all and
/// is reported undelivered, not retryable, with its size; entries the queue blames on the sender
/// are not retried either. Never returns early: the report says what was sent and what was not.
pub async fn send_all(
    queue: &dyn QueueSender,
    messages: Vec<OutgoingMessage>,
    policy: RetryPolicy,
) -> SendReport {
    let mut report = SendReport::default();
    let (mut pending, too_large): (Vec<_>, Vec<_>) = messages
        .into_iter()
        .partition(|m| m.wire_bytes() <= MAX_MESSAGE_BYTES);
    for message in too_large {
        report.undelivered.push(Undelivered {
            // "rejected by the queue" marks a fault of the message itself (see the generator's
            // telemetry); this one is refused before any call, as the queue would refuse it.
            reason: format!(
                "rejected by the queue's size limit: message is {} bytes, more than \
                 {MAX_MESSAGE_BYTES}",
                message.wire_bytes()
            ),
            id: message.id,
            retryable: false,
            maybe_sent: false,
        });
    }
    let mut last_error: HashMap<String, (String, bool)> = HashMap::new();
    let mut call_failed: HashSet<String> = HashSet::new();
    for attempt in 0..policy.attempts.max(1) {
        if pending.is_empty() {
            break;
        }
        if attempt > 0 {
            report.retried += pending.len() as u32;
            tokio::time::sleep(policy.base_delay * 2u32.saturating_pow(attempt - 1)).await;
        }
        let mut again = Vec::new();
        for chunk in batches(&pending) {
            report.calls += 1;
            match queue.send_batch(chunk).await {
                Ok(failed) => {
                    let failed: HashMap<&str, _> =
                        failed.iter().map(|f| (f.id.as_str(), f)).collect();
                    for message in chunk {
                        match failed.get(message.id.as_str()) {
                            None => report.sent.push(message.id.clone()),
                            Some(f) if f.sender_fault => report.undelivered.push(Undelivered {
                                id: message.id.clone(),
                                reason: format!("rejected by the queue: {}", f.code),
                                retryable: false,
                                maybe_sent: call_failed.contains(&message.id),
                            }),
                            Some(f) => {
                                last_error.insert(message.id.clone(), (f.code.clone(), true));
                                again.push(message.clone());
                            }
                        }
                    }
                }
                Err(e) => {
                    let retryable = e.is_retryable();
                    let reason = crate::error::error_chain(&e);
                    for message in chunk {
                        call_failed.insert(message.id.clone());
                        if retryable {
                            last_error.insert(message.id.clone(), (reason.clone(), true));
                            again.push(message.clone());
                        } else {
                            report.undelivered.push(Undelivered {
                                id: message.id.clone(),
                                reason: reason.clone(),
                                retryable: false,
                                maybe_sent: true,
                            });
                        }
                    }
                }
            }
        }
        pending = again;
    }
    for message in pending {
        let (reason, retryable) = last_error
            .remove(&message.id)
            .unwrap_or_else(|| ("not sent".to_owned(), true));
        let maybe_sent = call_failed.contains(&message.id);
        report.undelivered.push(Undelivered {
            id: message.id,
            reason,
            retryable,
            maybe_sent,
        });
    }
    report
}

/// Consecutive runs of `messages` with at most [`MAX_BATCH`] messages and [`MAX_BATCH_BYTES`]
/// bytes each (every message is at most [`MAX_MESSAGE_BYTES`]).
fn batches(messages: &[OutgoingMessage]) -> Vec<&[OutgoingMessage]> {
    let mut batches = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, m) in messages.iter().enumerate() {
        if i - start == MAX_BATCH || bytes + m.wire_bytes() > MAX_BATCH_BYTES {
            batches.push(&messages[start..i]);
            (start, bytes) = (i, 0);
        }
        bytes += m.wire_bytes();
    }
    if start < messages.len() {
        batches.push(&messages[start..]);
    }
    batches
}

/// Convenience for a single whole-call error in callers that need a `QueueError`.
pub fn undelivered_error(u: &Undelivered) -> QueueError {
    let source: crate::error::BoxError = u.reason.clone().into();
    if u.retryable {
        QueueError::Transient {
            operation: "send_message_batch",
            source,
        }
    } else {
        QueueError::Permanent {
            operation: "send_message_batch",
            source,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::fakes::MemoryQueue;

    fn messages(n: usize) -> Vec<OutgoingMessage> {
        (0..n)
            .map(|i| OutgoingMessage::new(format!("m{i}"), format!("body {i}")))
            .collect()
    }

    fn fast() -> RetryPolicy {
        RetryPolicy {
            attempts: 3,
            base_delay: Duration::from_millis(1),
        }
    }

    #[tokio::test]
    async fn sends_in_batches_of_ten() {
        let q = MemoryQueue::default();
        let r = send_all(&q, messages(25), fast()).await;
        assert_eq!(r.sent.len(), 25);
        assert_eq!(r.calls, 3);
        assert!(r.undelivered.is_empty());
        assert_eq!(q.bodies().len(), 25);
    }

    #[tokio::test]
    async fn retries_failed_entries_until_they_go_through() {
        let q = MemoryQueue::default();
        q.fail_entries_next_calls(&["m3", "m7"], 2);
        let r = send_all(&q, messages(10), fast()).await;
        assert_eq!(r.sent.len(), 10);
        assert_eq!(r.retried, 4);
        let mut bodies = q.bodies();
        bodies.sort();
        bodies.dedup();
        assert_eq!(bodies.len(), 10, "each message lands exactly once");
    }

    #[tokio::test]
    async fn reports_what_it_could_not_send() {
        let q = MemoryQueue::default();
        q.fail_entries_next_calls(&["m1"], 99);
        q.reject_entries(&["m2"]);
        let r = send_all(&q, messages(4), fast()).await;
        assert_eq!(r.sent, vec!["m0", "m3"]);
        let ids: Vec<_> = r
            .undelivered
            .iter()
            .map(|u| (u.id.as_str(), u.retryable))
            .collect();
        assert!(ids.contains(&("m1", true)) && ids.contains(&("m2", false)));
    }

    /// An entry the queue answered for was certainly not sent; one whose whole call failed (a
    /// timeout, a 5xx) may have been: the dispatcher frees only the leases of the first kind.
    #[tokio::test]
    async fn says_which_unsent_messages_may_be_on_the_queue_after_all() {
        let q = MemoryQueue::default();
        q.fail_entries_next_calls(&["m1"], 99);
        let r = send_all(&q, messages(2), fast()).await;
        assert_eq!(
            r.undelivered
                .iter()
                .map(|u| (u.id.as_str(), u.maybe_sent))
                .collect::<Vec<_>>(),
            vec![("m1", false)]
        );
        let q = MemoryQueue::default();
        q.fail_calls(99);
        let r = send_all(&q, messages(2), fast()).await;
        assert!(r.undelivered.len() == 2 && r.undelivered.iter().all(|u| u.maybe_sent));
    }

    #[tokio::test]
    async fn a_failed_call_is_retried_whole() {
        let q = MemoryQueue::default();
        q.fail_calls(1);
        let r = send_all(&q, messages(3), fast()).await;
        assert_eq!(r.sent.len(), 3);
        assert_eq!(q.bodies().len(), 3);
    }

    fn sized(id: &str, bytes: usize) -> OutgoingMessage {
        OutgoingMessage::new(id, "x".repeat(bytes))
    }

    #[tokio::test]
    async fn batches_are_split_by_bytes_too() {
        let q = MemoryQueue::default();
        // 8 x 30 000 = 240 000 bytes fit in one call; a ninth would make 270 000.
        let big: Vec<_> = (0..10).map(|i| sized(&format!("m{i}"), 30_000)).collect();
        let r = send_all(&q, big, fast()).await;
        assert!(r.undelivered.is_empty(), "{:?}", r.undelivered);
        assert_eq!((r.sent.len(), r.calls, r.retried), (10, 2, 0));
        assert_eq!(q.bodies().len(), 10);
        // Exactly at the limit is one call.
        let q = MemoryQueue::default();
        let exact = vec![sized("a", MAX_BATCH_BYTES - 1), sized("b", 1)];
        let r = send_all(&q, exact, fast()).await;
        assert_eq!((r.sent.len(), r.calls), (2, 1));
    }

    #[tokio::test]
    async fn a_message_that_can_never_fit_is_rejected_alone_with_a_reason() {
        let q = MemoryQueue::default();
        let messages = vec![
            sized("m0", 10),
            sized("m1", MAX_MESSAGE_BYTES + 1),
            sized("m2", 10),
        ];
        let r = send_all(&q, messages, fast()).await;
        assert_eq!(r.sent, vec!["m0", "m2"]);
        assert_eq!(r.undelivered.len(), 1);
        let u = &r.undelivered[0];
        assert_eq!((u.id.as_str(), u.retryable), ("m1", false));
        assert!(
            u.reason.contains("262145 bytes, more than 262144"),
            "{}",
            u.reason
        );
        assert!(
            u.reason.starts_with("rejected by the queue"),
            "{}",
            u.reason
        );
        assert_eq!((r.calls, r.retried), (1, 0), "never sent, never retried");
    }

    #[tokio::test]
    async fn the_fake_queue_refuses_what_sqs_refuses() {
        let q = MemoryQueue::default();
        let err = q
            .send_batch(&[sized("a", 200_000), sized("b", 100_000)])
            .await
            .unwrap_err();
        assert!(!err.is_retryable());
        assert!(
            crate::error::error_chain(&err).contains("BatchRequestTooLong"),
            "{err:?}"
        );
        assert!(q.bodies().is_empty(), "a refused call sends nothing");
        // A queue whose MaximumMessageSize is below the batch limit fails the entry alone.
        q.set_max_message_bytes(1_024);
        let failed = q
            .send_batch(&[sized("a", 1_024), sized("b", 1_025)])
            .await
            .unwrap();
        assert_eq!(failed.len(), 1);
        assert_eq!(failed[0].id, "b");
        assert!(failed[0].sender_fault);
        assert_eq!(q.bodies().len(), 1);
    }
}
