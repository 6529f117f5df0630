//! In-memory implementations of the ports with the same conditional-write semantics as the
//! DynamoDB and SQS adapters, plus failure injection. For handler tests and the benchmarks.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU32, Ordering};

use async_trait::async_trait;

use crate::error::{QueueError, StoreError};
use crate::execution::{ExecutionRecord, ExecutionRequest, ExecutionStatus};
use crate::order::PaperOrder;
use crate::pipeline::Pipeline;
use crate::ports::*;
use crate::vocab::Ticker;

pub mod contract;
pub mod fixtures;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A poisoned lock only means another test thread panicked; the data is still usable.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn transient(operation: &'static str) -> StoreError {
    StoreError::Transient {
        operation,
        source: "injected failure".into(),
    }
}

/// DynamoDB's item size limit (400 KB, counted here as the item's JSON length: close enough for
/// the records we write, and never smaller than DynamoDB's own count for them).
pub const MAX_ITEM_BYTES: usize = 400 * 1024;

/// The error DynamoDB gives for an item over [`MAX_ITEM_BYTES`] (a `ValidationException`).
fn item_too_large(operation: &'static str, size: usize) -> StoreError {
    StoreError::Permanent {
        operation,
        source: format!(
            "ValidationException: Item size has exceeded the maximum allowed size ({size} bytes)"
        )
        .into(),
    }
}

fn item_size(record: &ExecutionRecord) -> usize {
    serde_json::to_vec(record).map_or(usize::MAX, |v| v.len())
}

/// Counts down injected failures; `true` when this call must fail.
///
/// `fail_next(n)`: the next `n` calls fail. `fail_after(ok, n)`: `ok` calls succeed, then `n`
/// fail. `fail_permanently_after(ok, n)`: the same with permanent errors (a store refusing the
/// request, e.g. a validation error) instead of transient ones.
#[derive(Debug, Default)]
pub struct FailureSwitch {
    fail: AtomicU32,
    skip: AtomicU32,
    permanent: std::sync::atomic::AtomicBool,
}

impl FailureSwitch {
    pub fn fail_next(&self, calls: u32) {
        self.fail_after(0, calls);
    }
    pub fn fail_after(&self, ok_calls: u32, calls: u32) {
        self.permanent.store(false, Ordering::SeqCst);
        self.skip.store(ok_calls, Ordering::SeqCst);
        self.fail.store(calls, Ordering::SeqCst);
    }
    pub fn fail_permanently_after(&self, ok_calls: u32, calls: u32) {
        self.fail_after(ok_calls, calls);
        self.permanent.store(true, Ordering::SeqCst);
    }
    fn trip(&self) -> bool {
        if self.fail.load(Ordering::SeqCst) == 0 {
            return false;
        }
        if self
            .skip
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return false;
        }
        self.fail
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
    }
    /// The injected error of this call, if it must fail.
    fn error(&self, operation: &'static str) -> Option<StoreError> {
        if !self.trip() {
            return None;
        }
        Some(if self.permanent.load(Ordering::SeqCst) {
            StoreError::Permanent {
                operation,
                source: "injected permanent failure".into(),
            }
        } else {
            transient(operation)
        })
    }
}

/// A settable clock.
#[derive(Debug, Default)]
pub struct ManualClock(AtomicI64);

impl ManualClock {
    pub fn at(secs: i64) -> Self {
        ManualClock(AtomicI64::new(secs * 1000))
    }
    pub fn set(&self, secs: i64) {
        self.0.store(secs * 1000, Ordering::SeqCst);
    }
    pub fn advance(&self, secs: i64) {
        self.0.fetch_add(secs * 1000, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

#[derive(Debug, Default)]
pub struct MemoryPipelineStore {
    items: Mutex<BTreeMap<String, Pipeline>>,
    /// `updated_at` of each pipeline, Unix ms.
    updated: Mutex<BTreeMap<String, i64>>,
    /// The time `put_pipeline` stamps (the tests' clock; 0 unless set).
    write_time_ms: AtomicI64,
    pub failures: FailureSwitch,
    /// Full loads (`load_signal_pipelines`) served.
    pub loads: AtomicU32,
    /// Incremental reads (`changed_since`) served.
    pub change_reads: AtomicU32,
}

impl MemoryPipelineStore {
    pub fn with(pipelines: impl IntoIterator<Item = Pipeline>) -> Self {
        let store = MemoryPipelineStore::default();
        for p in pipelines {
            lock(&store.updated).insert(p.pipeline_id.clone(), 0);
            lock(&store.items).insert(p.pipeline_id.clone(), p);
        }
        store
    }

    /// The `updated_at` the next writes get.
    pub fn set_write_time_ms(&self, ms: i64) {
        self.write_time_ms.store(ms, Ordering::SeqCst);
    }

    /// Deletes a pipeline outright (no `updated_at`: an incremental read does not see it).
    pub fn hard_delete(&self, pipeline_id: &str) {
        lock(&self.items).remove(pipeline_id);
        lock(&self.updated).remove(pipeline_id);
    }
}

#[async_trait]
impl PipelineStore for MemoryPipelineStore {
    async fn load_signal_pipelines(&self) -> Result<Vec<Pipeline>, StoreError> {
        if let Some(e) = self.failures.error("scan") {
            return Err(e);
        }
        self.loads.fetch_add(1, Ordering::SeqCst);
        Ok(lock(&self.items)
            .values()
            .filter(|p| p.is_signal_triggered())
            .cloned()
            .collect())
    }
    async fn changed_since(&self, since_ms: i64) -> Result<Vec<PipelineChange>, StoreError> {
        if let Some(e) = self.failures.error("query") {
            return Err(e);
        }
        self.change_reads.fetch_add(1, Ordering::SeqCst);
        let updated = lock(&self.updated);
        let items = lock(&self.items);
        Ok(items
            .values()
            .filter(|p| {
                updated
                    .get(&p.pipeline_id)
                    .is_some_and(|at| *at >= since_ms)
            })
            .map(|p| {
                if p.is_signal_triggered() {
                    PipelineChange::Signal(p.clone())
                } else {
                    PipelineChange::Gone(p.pipeline_id.clone())
                }
            })
            .collect())
    }
    async fn get_pipeline(&self, id: &str) -> Result<Option<Pipeline>, StoreError> {
        if let Some(e) = self.failures.error("get_item") {
            return Err(e);
        }
        Ok(lock(&self.items).get(id).cloned())
    }
    /// Refuses (as a permanent error) a pipeline that does not pass [`Pipeline::validate`], as
    /// the DynamoDB adapter does.
    async fn put_pipeline(&self, p: &Pipeline) -> Result<(), StoreError> {
        p.validate().map_err(|e| StoreError::Permanent {
            operation: "put_item",
            source: Box::new(e),
        })?;
        lock(&self.updated).insert(
            p.pipeline_id.clone(),
            self.write_time_ms.load(Ordering::SeqCst),
        );
        lock(&self.items).insert(p.pipeline_id.clone(), p.clone());
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct StoredLease {
    pub lease: Lease,
    pub enqueued: bool,
}

#[derive(Debug, Default)]
pub struct MemoryLeaseStore {
    items: Mutex<HashMap<String, StoredLease>>,
    pub failures: FailureSwitch,
}

impl MemoryLeaseStore {
    pub fn get(&self, pipeline_id: &str, ticker: &Ticker) -> Option<StoredLease> {
        lock(&self.items)
            .get(&Lease::key(pipeline_id, ticker))
            .cloned()
    }
    pub fn insert(&self, lease: Lease, enqueued: bool) {
        lock(&self.items).insert(
            Lease::key(&lease.pipeline_id, &lease.ticker),
            StoredLease { lease, enqueued },
        );
    }
    pub fn len(&self) -> usize {
        lock(&self.items).len()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[async_trait]
impl LeaseStore for MemoryLeaseStore {
    async fn claim(&self, lease: &Lease, now: i64) -> Result<ClaimOutcome, StoreError> {
        if let Some(e) = self.failures.error("put_item") {
            return Err(e);
        }
        let mut items = lock(&self.items);
        let key = Lease::key(&lease.pipeline_id, &lease.ticker);
        let mut again = false;
        if let Some(old) = items.get(&key) {
            again = old.lease.execution_id == lease.execution_id;
            let free = old.lease.expires_at < now
                || (old.lease.execution_id == lease.execution_id && !old.enqueued);
            if !free {
                return Ok(if old.lease.execution_id == lease.execution_id {
                    ClaimOutcome::AlreadyEnqueued
                } else {
                    ClaimOutcome::Held {
                        execution_id: old.lease.execution_id.clone(),
                        expires_at: old.lease.expires_at,
                    }
                });
            }
        }
        items.insert(
            key,
            StoredLease {
                lease: lease.clone(),
                enqueued: false,
            },
        );
        Ok(if again {
            ClaimOutcome::Reclaimed
        } else {
            ClaimOutcome::Claimed
        })
    }
    async fn hold(&self, lease: &Lease, now: i64) -> Result<HoldOutcome, StoreError> {
        if let Some(e) = self.failures.error("update_item") {
            return Err(e);
        }
        let mut items = lock(&self.items);
        let key = Lease::key(&lease.pipeline_id, &lease.ticker);
        let mut expires_at = lease.expires_at;
        if let Some(old) = items.get(&key) {
            if old.lease.execution_id == lease.execution_id {
                expires_at = expires_at.max(old.lease.expires_at);
            } else if old.lease.expires_at >= now {
                return Ok(HoldOutcome::Lost {
                    execution_id: old.lease.execution_id.clone(),
                    expires_at: old.lease.expires_at,
                });
            }
        }
        items.insert(
            key,
            StoredLease {
                lease: Lease {
                    expires_at,
                    ..lease.clone()
                },
                enqueued: true,
            },
        );
        Ok(HoldOutcome::Held)
    }
    async fn release(
        &self,
        pipeline_id: &str,
        ticker: &Ticker,
        execution_id: &str,
    ) -> Result<(), StoreError> {
        if let Some(e) = self.failures.error("delete_item") {
            return Err(e);
        }
        let mut items = lock(&self.items);
        let key = Lease::key(pipeline_id, ticker);
        if items
            .get(&key)
            .is_some_and(|l| l.lease.execution_id == execution_id)
        {
            items.remove(&key);
        }
        Ok(())
    }
}

#[derive(Debug, Default)]
pub struct MemoryExecutionStore {
    items: Mutex<BTreeMap<String, ExecutionRecord>>,
    pub failures: FailureSwitch,
}

impl MemoryExecutionStore {
    pub fn all(&self) -> Vec<ExecutionRecord> {
        lock(&self.items).values().cloned().collect()
    }
    pub fn put(&self, record: ExecutionRecord) {
        lock(&self.items).insert(record.execution_id.clone(), record);
    }
}

#[async_trait]
impl ExecutionStore for MemoryExecutionStore {
    async fn begin(
        &self,
        request: &ExecutionRequest,
        now: i64,
        in_progress_until: i64,
    ) -> Result<BeginOutcome, StoreError> {
        if let Some(e) = self.failures.error("update_item") {
            return Err(e);
        }
        let mut items = lock(&self.items);
        let (attempt, created_at) = match items.get(&request.execution_id) {
            None => (1, now),
            Some(old) => match old.status {
                ExecutionStatus::Pending => (old.attempts + 1, old.created_at),
                ExecutionStatus::Running
                    if old.in_progress_until.is_some_and(|until| until < now) =>
                {
                    (old.attempts + 1, old.created_at)
                }
                ExecutionStatus::Running => {
                    return Ok(BeginOutcome::InProgress {
                        until: old.in_progress_until.unwrap_or(0),
                    });
                }
                terminal => return Ok(BeginOutcome::AlreadyFinished(terminal)),
            },
        };
        let mut record = ExecutionRecord::started(request, now, attempt, in_progress_until);
        record.created_at = created_at;
        let size = item_size(&record);
        if size > MAX_ITEM_BYTES {
            return Err(item_too_large("update_item", size));
        }
        items.insert(request.execution_id.clone(), record);
        Ok(BeginOutcome::Started { attempt })
    }
    async fn finish(&self, record: &ExecutionRecord) -> Result<bool, StoreError> {
        if let Some(e) = self.failures.error("put_item") {
            return Err(e);
        }
        let size = item_size(record);
        if size > MAX_ITEM_BYTES {
            return Err(item_too_large("put_item", size));
        }
        let mut items = lock(&self.items);
        let current = items.get(&record.execution_id);
        if let Some(created_at) = current
            .filter(|c| c.status == ExecutionStatus::Running && c.attempts == record.attempts)
            .map(|c| c.created_at)
        {
            // As DynamoDB's: the first attempt's `created_at` stays.
            let mut record = record.clone();
            record.created_at = created_at;
            items.insert(record.execution_id.clone(), record);
            Ok(true)
        } else {
            Ok(false)
        }
    }
    async fn release(&self, execution_id: &str, attempt: u32) -> Result<(), StoreError> {
        if let Some(e) = self.failures.error("update_item") {
            return Err(e);
        }
        let mut items = lock(&self.items);
        if let Some(r) = items.get_mut(execution_id)
            && r.status == ExecutionStatus::Running
            && r.attempts == attempt
        {
            r.status = ExecutionStatus::Pending;
            r.in_progress_until = None;
        }
        Ok(())
    }
    async fn get_execution(&self, id: &str) -> Result<Option<ExecutionRecord>, StoreError> {
        Ok(lock(&self.items).get(id).cloned())
    }
    async fn overdue(&self, before: i64, limit: usize) -> Result<Vec<String>, StoreError> {
        if let Some(e) = self.failures.error("query") {
            return Err(e);
        }
        let mut runs: Vec<(i64, String)> = lock(&self.items)
            .values()
            .filter(|r| r.status == ExecutionStatus::Running)
            .filter_map(|r| Some((r.in_progress_until?, r.execution_id.clone())))
            .filter(|(until, _)| *until < before)
            .collect();
        runs.sort();
        Ok(runs.into_iter().take(limit).map(|(_, id)| id).collect())
    }
}

/// [`RunLedger`] over the in-memory tables, all or nothing like DynamoDB's transaction: every
/// condition is checked under the three tables' locks before anything is written. An injected
/// failure of any table the end touches fails the whole write.
#[derive(Debug, Clone)]
pub struct MemoryRunLedger {
    pub executions: std::sync::Arc<MemoryExecutionStore>,
    pub orders: std::sync::Arc<MemoryOrderStore>,
    pub leases: std::sync::Arc<MemoryLeaseStore>,
}

impl MemoryRunLedger {
    pub fn new(
        executions: std::sync::Arc<MemoryExecutionStore>,
        orders: std::sync::Arc<MemoryOrderStore>,
        leases: std::sync::Arc<MemoryLeaseStore>,
    ) -> Self {
        MemoryRunLedger {
            executions,
            orders,
            leases,
        }
    }
}

#[async_trait]
impl RunLedger for MemoryRunLedger {
    async fn end_run(&self, end: &RunEnd<'_>) -> Result<RunEndOutcome, StoreError> {
        const OP: &str = "transact_write_items";
        if let Some(e) = self.executions.failures.error(OP) {
            return Err(e);
        }
        if end.order.is_some()
            && let Some(e) = self.orders.failures.error(OP)
        {
            return Err(e);
        }
        if end.release_lease
            && let Some(e) = self.leases.failures.error(OP)
        {
            return Err(e);
        }
        let record = end.record;
        let size = item_size(record);
        if size > MAX_ITEM_BYTES {
            return Err(item_too_large(OP, size));
        }
        let mut executions = lock(&self.executions.items);
        let mut orders = lock(&self.orders.items);
        let mut leases = lock(&self.leases.items);
        let Some(created_at) = executions
            .get(&record.execution_id)
            .filter(|c| c.status == ExecutionStatus::Running && c.attempts == record.attempts)
            .map(|c| c.created_at)
        else {
            return Ok(RunEndOutcome::TakenOver);
        };
        if let Some(order) = end.order
            && orders.contains_key(&order.order_id)
        {
            return Ok(RunEndOutcome::OrderExists);
        }
        let lease_key = Lease::key(&record.pipeline_id, &record.ticker);
        if end.release_lease
            && leases
                .get(&lease_key)
                .is_none_or(|l| l.lease.execution_id != record.execution_id)
        {
            return Ok(RunEndOutcome::LeaseNotOurs);
        }
        let mut stored = record.clone();
        stored.created_at = created_at;
        executions.insert(stored.execution_id.clone(), stored);
        if let Some(order) = end.order {
            orders.insert(order.order_id.clone(), order.clone());
        }
        if end.release_lease {
            leases.remove(&lease_key);
        }
        Ok(RunEndOutcome::Written)
    }
}

#[derive(Debug, Default)]
pub struct MemoryOrderStore {
    items: Mutex<BTreeMap<String, PaperOrder>>,
    pub failures: FailureSwitch,
}

impl MemoryOrderStore {
    pub fn all(&self) -> Vec<PaperOrder> {
        lock(&self.items).values().cloned().collect()
    }
}

#[async_trait]
impl OrderStore for MemoryOrderStore {
    async fn place(&self, order: &PaperOrder) -> Result<PlaceOutcome, StoreError> {
        if let Some(e) = self.failures.error("put_item") {
            return Err(e);
        }
        let mut items = lock(&self.items);
        if items.contains_key(&order.order_id) {
            return Ok(PlaceOutcome::AlreadyExists);
        }
        items.insert(order.order_id.clone(), order.clone());
        Ok(PlaceOutcome::Created)
    }
    async fn get(&self, order_id: &str) -> Result<Option<PaperOrder>, StoreError> {
        if let Some(e) = self.failures.error("get_item") {
            return Err(e);
        }
        Ok(lock(&self.items).get(order_id).cloned())
    }
}

#[derive(Debug, Default)]
pub struct MemoryCursorStore {
    items: Mutex<HashMap<String, i64>>,
    pub failures: FailureSwitch,
}

#[async_trait]
impl CursorStore for MemoryCursorStore {
    async fn get_cursor(&self, stream: &str) -> Result<Option<i64>, StoreError> {
        if let Some(e) = self.failures.error("get_item") {
            return Err(e);
        }
        Ok(lock(&self.items).get(stream).copied())
    }
    async fn advance(
        &self,
        stream: &str,
        expected: Option<i64>,
        to: i64,
    ) -> Result<bool, StoreError> {
        if let Some(e) = self.failures.error("update_item") {
            return Err(e);
        }
        let mut items = lock(&self.items);
        if items.get(stream).copied() != expected {
            return Ok(false);
        }
        items.insert(stream.to_owned(), to);
        Ok(true)
    }
}

/// A queue that records what was sent, with injectable per-entry and whole-call failures.
///
/// It refuses what SQS refuses: more than [`crate::publish::MAX_BATCH`] entries or bodies
/// totalling more than [`crate::publish::MAX_BATCH_BYTES`] fail the whole call
/// (`TooManyEntriesInBatchRequest`, `BatchRequestTooLong`, permanent); an entry longer than the
/// queue's maximum message size ([`MemoryQueue::set_max_message_bytes`], by default
/// [`crate::publish::MAX_MESSAGE_BYTES`]) fails alone as the sender's fault
/// (`InvalidParameterValue`). (moto 5.2.5 differs: it allows batches up to 1 MiB, SQS's limit
/// since 2025, and refuses a batch with one over-long entry whole.)
#[derive(Debug, Default)]
pub struct MemoryQueue {
    sent: Mutex<Vec<OutgoingMessage>>,
    failing_entries: Mutex<HashMap<String, u32>>,
    rejected_entries: Mutex<HashSet<String>>,
    max_message_bytes: Mutex<Option<usize>>,
    pub call_failures: FailureSwitch,
}

impl MemoryQueue {
    /// Bodies accepted so far, in order.
    pub fn bodies(&self) -> Vec<String> {
        lock(&self.sent).iter().map(|m| m.body.clone()).collect()
    }
    /// Takes and returns everything accepted so far.
    pub fn drain(&self) -> Vec<OutgoingMessage> {
        std::mem::take(&mut *lock(&self.sent))
    }
    /// The entries with these ids fail (retryably) on their next `calls` sends.
    pub fn fail_entries_next_calls(&self, ids: &[&str], calls: u32) {
        let mut f = lock(&self.failing_entries);
        for id in ids {
            f.insert((*id).to_owned(), calls);
        }
    }
    /// The entries with these ids are always refused as the sender's fault.
    pub fn reject_entries(&self, ids: &[&str]) {
        lock(&self.rejected_entries).extend(ids.iter().map(|s| (*s).to_owned()));
    }
    /// The next `calls` SendMessageBatch calls fail whole (transiently).
    pub fn fail_calls(&self, calls: u32) {
        self.call_failures.fail_next(calls);
    }
    /// The queue's `MaximumMessageSize` (SQS allows 1 KiB to 1 MiB).
    pub fn set_max_message_bytes(&self, bytes: usize) {
        *lock(&self.max_message_bytes) = Some(bytes);
    }
}

#[async_trait]
impl QueueSender for MemoryQueue {
    async fn send_batch(
        &self,
        messages: &[OutgoingMessage],
    ) -> Result<Vec<FailedEntry>, QueueError> {
        if messages.len() > MAX_BATCH {
            return Err(QueueError::Permanent {
                operation: "send_message_batch",
                source: "TooManyEntriesInBatchRequest: more than 10 entries".into(),
            });
        }
        let total: usize = messages.iter().map(OutgoingMessage::wire_bytes).sum();
        if total > crate::publish::MAX_BATCH_BYTES {
            return Err(QueueError::Permanent {
                operation: "send_message_batch",
                source: format!(
                    "BatchRequestTooLong: batch requests cannot be longer than {} bytes, \
                     got {total}",
                    crate::publish::MAX_BATCH_BYTES
                )
                .into(),
            });
        }
        let max_message_bytes =
            lock(&self.max_message_bytes).unwrap_or(crate::publish::MAX_MESSAGE_BYTES);
        if self.call_failures.trip() {
            return Err(QueueError::Transient {
                operation: "send_message_batch",
                source: "injected failure".into(),
            });
        }
        let mut failed = Vec::new();
        let mut failing = lock(&self.failing_entries);
        let rejected = lock(&self.rejected_entries);
        let mut sent = lock(&self.sent);
        for m in messages {
            if m.wire_bytes() > max_message_bytes {
                failed.push(FailedEntry {
                    id: m.id.clone(),
                    code: "InvalidParameterValue".into(),
                    sender_fault: true,
                });
                continue;
            }
            if rejected.contains(&m.id) {
                failed.push(FailedEntry {
                    id: m.id.clone(),
                    code: "InvalidMessageContents".into(),
                    sender_fault: true,
                });
                continue;
            }
            if let Some(n) = failing.get_mut(&m.id)
                && *n > 0
            {
                *n -= 1;
                failed.push(FailedEntry {
                    id: m.id.clone(),
                    code: "InternalError".into(),
                    sender_fault: false,
                });
                continue;
            }
            sent.push(m.clone());
        }
        Ok(failed)
    }
}

/// Market data that delegates to another source, with injectable transient (I/O) failures.
pub struct FlakyMarket<M> {
    pub inner: M,
    pub failures: FailureSwitch,
    /// Milliseconds each call takes (a slow source), 0 by default.
    pub delay_ms: AtomicU32,
}

impl<M> FlakyMarket<M> {
    pub fn new(inner: M) -> Self {
        FlakyMarket {
            inner,
            failures: FailureSwitch::default(),
            delay_ms: AtomicU32::new(0),
        }
    }
    async fn pause(&self) {
        let delay = self.delay_ms.load(Ordering::SeqCst);
        if delay > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(u64::from(delay))).await;
        }
    }
}

#[async_trait]
impl<M: crate::market::MarketData> crate::market::MarketData for FlakyMarket<M> {
    async fn closed_bars(
        &self,
        ticker: &str,
        timeframe: crate::vocab::Timeframe,
        now: i64,
        count: usize,
    ) -> Result<Vec<crate::vocab::Bar>, crate::market::MarketDataError> {
        self.pause().await;
        if self.failures.trip() {
            return Err(crate::market::MarketDataError::Io {
                path: "injected".into(),
                source: std::io::Error::other("injected failure"),
            });
        }
        self.inner.closed_bars(ticker, timeframe, now, count).await
    }
    async fn closed_bars_after(
        &self,
        ticker: &str,
        timeframe: crate::vocab::Timeframe,
        now: i64,
        after: i64,
        history: usize,
        count: usize,
    ) -> Result<Vec<crate::vocab::Bar>, crate::market::MarketDataError> {
        self.pause().await;
        if self.failures.trip() {
            return Err(crate::market::MarketDataError::Io {
                path: "injected".into(),
                source: std::io::Error::other("injected failure"),
            });
        }
        self.inner
            .closed_bars_after(ticker, timeframe, now, after, history, count)
            .await
    }
}

/// One [`crate::market::MarketData`] request seen by a [`RecordingMarket`]: (ticker, timeframe,
/// now). `after` is the cursor of a catch-up request (`closed_bars_after`), `None` otherwise.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MarketCall {
    pub ticker: String,
    pub timeframe: crate::vocab::Timeframe,
    pub now: i64,
    pub after: Option<i64>,
    pub count: usize,
}

/// A market source that records every request and fails the series listed in
/// [`RecordingMarket::fail_series`] (a retryable I/O error, every call).
pub struct RecordingMarket<M> {
    pub inner: M,
    calls: Mutex<Vec<MarketCall>>,
    failing: Mutex<HashSet<(String, crate::vocab::Timeframe)>>,
}

impl<M> RecordingMarket<M> {
    pub fn new(inner: M) -> Self {
        RecordingMarket {
            inner,
            calls: Mutex::default(),
            failing: Mutex::default(),
        }
    }
    /// Every request so far, in order.
    pub fn calls(&self) -> Vec<MarketCall> {
        lock(&self.calls).clone()
    }
    /// From now on, every request for this series fails.
    pub fn fail_series(&self, ticker: &str, timeframe: crate::vocab::Timeframe) {
        lock(&self.failing).insert((ticker.to_owned(), timeframe));
    }
    fn record(&self, call: MarketCall) -> Result<(), crate::market::MarketDataError> {
        let failing = lock(&self.failing).contains(&(call.ticker.clone(), call.timeframe));
        let series = format!("{}_{}", call.ticker, call.timeframe);
        lock(&self.calls).push(call);
        if failing {
            return Err(crate::market::MarketDataError::Io {
                path: series.into(),
                source: std::io::Error::other("injected failure"),
            });
        }
        Ok(())
    }
}

#[async_trait]
impl<M: crate::market::MarketData> crate::market::MarketData for RecordingMarket<M> {
    async fn closed_bars(
        &self,
        ticker: &str,
        timeframe: crate::vocab::Timeframe,
        now: i64,
        count: usize,
    ) -> Result<Vec<crate::vocab::Bar>, crate::market::MarketDataError> {
        self.record(MarketCall {
            ticker: ticker.to_owned(),
            timeframe,
            now,
            after: None,
            count,
        })?;
        self.inner.closed_bars(ticker, timeframe, now, count).await
    }
    async fn closed_bars_after(
        &self,
        ticker: &str,
        timeframe: crate::vocab::Timeframe,
        now: i64,
        after: i64,
        history: usize,
        count: usize,
    ) -> Result<Vec<crate::vocab::Bar>, crate::market::MarketDataError> {
        self.record(MarketCall {
            ticker: ticker.to_owned(),
            timeframe,
            now,
            after: Some(after),
            count,
        })?;
        self.inner
            .closed_bars_after(ticker, timeframe, now, after, history, count)
            .await
    }
}

/// One span a [`RecordingTracer`] opened and how it ended.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedSpan {
    /// `signal <id>` or `step <name>`.
    pub name: String,
    /// The context it gave out (`traceparent` `tp-<n>`, n counting from 1).
    pub context: crate::trace::TraceContext,
    /// The `traceparent` of the parent it was opened under.
    pub parent: Option<String>,
    /// `(status, error)` once ended.
    pub end: Option<(String, Option<String>)>,
}

/// A [`Tracer`] that records every span: what the domain opens, under which parent, and how it
/// ends.
#[derive(Debug, Default)]
pub struct RecordingTracer {
    spans: std::sync::Arc<Mutex<Vec<RecordedSpan>>>,
}

impl RecordingTracer {
    /// Every span opened so far, in order.
    pub fn spans(&self) -> Vec<RecordedSpan> {
        lock(&self.spans).clone()
    }

    fn open(&self, name: String, parent: Option<String>) -> Box<dyn SpanHandle> {
        let mut spans = lock(&self.spans);
        let context = crate::trace::TraceContext {
            traceparent: format!("tp-{}", spans.len() + 1),
            tracestate: None,
        };
        spans.push(RecordedSpan {
            name,
            context: context.clone(),
            parent,
            end: None,
        });
        Box::new(RecordingSpan {
            index: spans.len() - 1,
            context,
            spans: std::sync::Arc::clone(&self.spans),
        })
    }
}

struct RecordingSpan {
    index: usize,
    context: crate::trace::TraceContext,
    spans: std::sync::Arc<Mutex<Vec<RecordedSpan>>>,
}

impl SpanHandle for RecordingSpan {
    fn context(&self) -> Option<crate::trace::TraceContext> {
        Some(self.context.clone())
    }

    fn end(self: Box<Self>, status: &str, error: Option<&str>) {
        if let Some(span) = lock(&self.spans).get_mut(self.index) {
            span.end = Some((status.to_owned(), error.map(str::to_owned)));
        }
    }
}

impl Tracer for RecordingTracer {
    fn signal(&self, signal: &crate::signal::Signal) -> Option<Box<dyn SpanHandle>> {
        Some(self.open(format!("signal {}", signal.signal_id), None))
    }

    fn step(
        &self,
        parent: Option<&crate::trace::TraceContext>,
        step: &str,
    ) -> Option<Box<dyn SpanHandle>> {
        Some(self.open(
            format!("step {step}"),
            parent.map(|p| p.traceparent.clone()),
        ))
    }
}
