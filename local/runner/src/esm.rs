//! A local event source mapping: long-polls one queue and invokes one function with batches.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use aws_sdk_sqs::types::{
    ChangeMessageVisibilityBatchRequestEntry, DeleteMessageBatchRequestEntry, Message,
    MessageSystemAttributeName, QueueAttributeName,
};

use crate::invoke::SqsFunction;

#[derive(Debug, Clone)]
pub struct MappingConfig {
    /// Records per invocation (Lambda: 1–10 000; SQS returns at most 10 per receive).
    pub batch_size: usize,
    /// How long to keep gathering records once the first one arrived.
    pub batching_window: Duration,
    /// Long-poll wait of each receive while the queue is empty (whole seconds, 0–20).
    pub wait_time_secs: i32,
    /// Local-only deviation, off by default: make failed records visible again after this delay
    /// instead of the queue's visibility timeout, so redelivery and the DLQ can be watched in
    /// seconds. AWS has no such setting.
    pub retry_delay: Option<Duration>,
    /// Concurrent pollers, each invoking the function with its own batches (Lambda scales a
    /// mapping up to its maximum concurrency).
    pub pollers: usize,
    /// Keep the body and time of every record the function processed successfully (the load
    /// harness measures latency from them).
    pub record_completions: bool,
}

impl Default for MappingConfig {
    fn default() -> Self {
        MappingConfig {
            batch_size: 10,
            batching_window: Duration::ZERO,
            wait_time_secs: 1,
            retry_delay: None,
            pollers: 1,
            record_completions: false,
        }
    }
}

/// Counters of what the mapping did.
#[derive(Debug, Default)]
pub struct MappingStats {
    pub invocations: AtomicU64,
    pub records: AtomicU64,
    pub deleted: AtomicU64,
    pub failed_records: AtomicU64,
    pub function_errors: AtomicU64,
    /// (body, when it was processed) of successful records, when `record_completions` is on.
    pub completions: std::sync::Mutex<Vec<(String, Instant)>>,
    /// (body, when the invocation carrying it started) of every record handed to the function,
    /// when `record_completions` is on: the load harness's "picked up" time.
    pub pickups: std::sync::Mutex<Vec<(String, Instant)>>,
}

pub struct EventSourceMapping {
    sqs: aws_sdk_sqs::Client,
    queue_url: String,
    queue_arn: String,
    function: Arc<dyn SqsFunction>,
    config: MappingConfig,
    pub stats: Arc<MappingStats>,
}

impl EventSourceMapping {
    pub async fn new(
        sqs: aws_sdk_sqs::Client,
        queue_name: &str,
        function: Arc<dyn SqsFunction>,
        config: MappingConfig,
    ) -> anyhow::Result<Self> {
        let queue_url = tradeflow_aws::resolve_queue_url(&sqs, queue_name)
            .await
            .with_context(|| format!("resolving queue {queue_name}"))?;
        let attrs = sqs
            .get_queue_attributes()
            .queue_url(&queue_url)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await
            .with_context(|| format!("reading attributes of {queue_name}"))?;
        let queue_arn = attrs
            .attributes()
            .and_then(|a| a.get(&QueueAttributeName::QueueArn))
            .cloned()
            .unwrap_or_default();
        Ok(EventSourceMapping {
            sqs,
            queue_url,
            queue_arn,
            function,
            config,
            stats: Arc::new(MappingStats::default()),
        })
    }

    pub fn pollers(&self) -> usize {
        self.config.pollers.max(1)
    }

    pub fn queue_url(&self) -> &str {
        &self.queue_url
    }

    /// Gathers one batch and invokes the function with it. Returns the number of records.
    pub async fn poll_once(&self) -> anyhow::Result<usize> {
        let mut messages: Vec<Message> = Vec::new();
        let started = Instant::now();
        loop {
            let want = (self.config.batch_size - messages.len()).min(10) as i32;
            let wait = if messages.is_empty() {
                self.config.wait_time_secs
            } else {
                0
            };
            let resp = self
                .sqs
                .receive_message()
                .queue_url(&self.queue_url)
                .max_number_of_messages(want)
                .wait_time_seconds(wait)
                .message_system_attribute_names(MessageSystemAttributeName::All)
                .message_attribute_names("All")
                .send()
                .await
                .context("receiving messages")?;
            let got = resp.messages().len();
            messages.extend(resp.messages().iter().cloned());
            let window_open = started.elapsed() < self.config.batching_window;
            if messages.len() >= self.config.batch_size
                || (got == 0 && !window_open)
                || (messages.is_empty() && got == 0)
            {
                break;
            }
            if got == 0 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        if messages.is_empty() {
            return Ok(0);
        }
        let count = messages.len();
        self.invoke(messages).await?;
        Ok(count)
    }

    async fn invoke(&self, messages: Vec<Message>) -> anyhow::Result<()> {
        let mut event = SqsEvent::default();
        event.records = messages.iter().map(|m| self.record(m)).collect();
        if self.config.record_completions {
            let now = Instant::now();
            let mut picked = self.stats.pickups.lock().unwrap_or_else(|p| p.into_inner());
            picked.extend(
                messages
                    .iter()
                    .map(|m| (m.body().unwrap_or_default().to_owned(), now)),
            );
        }
        self.stats.invocations.fetch_add(1, Ordering::Relaxed);
        self.stats
            .records
            .fetch_add(messages.len() as u64, Ordering::Relaxed);
        let failed: HashSet<String> = match self.function.invoke(event).await {
            Ok(resp) => resp
                .batch_item_failures
                .into_iter()
                .map(|f| f.item_identifier)
                .collect(),
            Err(e) => {
                self.stats.function_errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(function = self.function.name(), error = %e, "function error: the whole batch stays on the queue");
                messages
                    .iter()
                    .filter_map(|m| m.message_id().map(str::to_owned))
                    .collect()
            }
        };
        let (bad, good): (Vec<&Message>, Vec<&Message>) = messages
            .iter()
            .partition(|m| m.message_id().is_some_and(|id| failed.contains(id)));
        if self.config.record_completions {
            let now = Instant::now();
            let mut done = self
                .stats
                .completions
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            done.extend(
                good.iter()
                    .map(|m| (m.body().unwrap_or_default().to_owned(), now)),
            );
        }
        self.stats
            .failed_records
            .fetch_add(bad.len() as u64, Ordering::Relaxed);
        for chunk in good.chunks(10) {
            let entries: Vec<_> = chunk
                .iter()
                .enumerate()
                .filter_map(|(i, m)| {
                    DeleteMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .receipt_handle(m.receipt_handle()?)
                        .build()
                        .ok()
                })
                .collect();
            let resp = self
                .sqs
                .delete_message_batch()
                .queue_url(&self.queue_url)
                .set_entries(Some(entries))
                .send()
                .await
                .context("deleting processed messages")?;
            self.stats
                .deleted
                .fetch_add(resp.successful().len() as u64, Ordering::Relaxed);
        }
        if let Some(delay) = self.config.retry_delay {
            for chunk in bad.chunks(10) {
                let entries: Vec<_> = chunk
                    .iter()
                    .enumerate()
                    .filter_map(|(i, m)| {
                        ChangeMessageVisibilityBatchRequestEntry::builder()
                            .id(i.to_string())
                            .receipt_handle(m.receipt_handle()?)
                            .visibility_timeout(delay.as_secs() as i32)
                            .build()
                            .ok()
                    })
                    .collect();
                self.sqs
                    .change_message_visibility_batch()
                    .queue_url(&self.queue_url)
                    .set_entries(Some(entries))
                    .send()
                    .await
                    .context("shortening visibility of failed messages")?;
            }
        }
        Ok(())
    }

    fn record(&self, m: &Message) -> SqsMessage {
        let mut r = SqsMessage::default();
        r.message_id = m.message_id().map(str::to_owned);
        r.receipt_handle = m.receipt_handle().map(str::to_owned);
        r.body = m.body().map(str::to_owned);
        r.md5_of_body = m.md5_of_body().map(str::to_owned);
        r.md5_of_message_attributes = m.md5_of_message_attributes().map(str::to_owned);
        if let Some(attrs) = m.attributes() {
            r.attributes = attrs
                .iter()
                .map(|(k, v)| (k.as_str().to_owned(), v.clone()))
                .collect();
        }
        // String attributes as Lambda's mapping delivers them (the trace context among them).
        if let Some(attrs) = m.message_attributes() {
            r.message_attributes = attrs
                .iter()
                .filter(|(_, v)| v.string_value().is_some())
                .map(|(k, v)| {
                    let mut a = aws_lambda_events::event::sqs::SqsMessageAttribute::default();
                    a.string_value = v.string_value().map(str::to_owned);
                    a.data_type = Some(v.data_type().to_owned());
                    (k.clone(), a)
                })
                .collect();
        }
        r.event_source = Some("aws:sqs".into());
        r.event_source_arn = Some(self.queue_arn.clone());
        r.aws_region = std::env::var("AWS_REGION").ok();
        r
    }

    /// Polls until `stop` turns true. Errors are logged and retried after a pause.
    pub async fn run(self: Arc<Self>, mut stop: tokio::sync::watch::Receiver<bool>) {
        loop {
            if *stop.borrow() {
                return;
            }
            tokio::select! {
                r = self.poll_once() => {
                    if let Err(e) = r {
                        tracing::warn!(queue = %self.queue_url, error = format!("{e:#}"), "poll failed");
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                }
                _ = stop.changed() => return,
            }
        }
    }
}

/// `ApproximateNumberOfMessages` + `…NotVisible` of a queue: what is still to be processed.
pub async fn outstanding(sqs: &aws_sdk_sqs::Client, queue_url: &str) -> anyhow::Result<(u64, u64)> {
    let resp = sqs
        .get_queue_attributes()
        .queue_url(queue_url)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
        .send()
        .await?;
    let get = |name: QueueAttributeName| {
        resp.attributes()
            .and_then(|a| a.get(&name))
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    Ok((
        get(QueueAttributeName::ApproximateNumberOfMessages),
        get(QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
    ))
}
