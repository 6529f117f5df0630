//! Fault injection for the soak ([`crate::soak`]): wrappers around the real DynamoDB and SQS
//! adapters implementing the same ports the functions use, so the dispatcher and executor run
//! their own code against them unchanged.
//!
//! Faults, each drawn from one seeded generator (a run is reproducible up to thread timing):
//! - transient errors (`StoreError::Transient` / `QueueError::Transient`) on any port call, half
//!   of them *after* the real call went through (a timeout whose write did happen);
//! - executor crashes: an attempt that started (its RUNNING write done) stops at one of three
//!   points (right after the start, right after its order was written, right before the result
//!   write) and never runs another line: the wrapper's future never completes and the invocation
//!   ends at once with a function error, as a Lambda process that died;
//! - dispatcher crashes between the lease claim and the enqueue (at the executions-queue send);
//! - deadline overruns: a call that stalls past the invocation's deadline, which [`Faulty`]
//!   enforces like Lambda (function error, the whole batch stays on the queue);
//! - duplicate deliveries: the executions sender sends some requests twice.
//!
//! The wrappers also record what the accounting needs: every lease claim that found the lease
//! held (with its holder and time), when each execution's lease was claimed and released, and
//! each started attempt's lifetime.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use tradeflow_core::error::{QueueError, StoreError};
use tradeflow_core::execution::{ExecutionRecord, ExecutionRequest};
use tradeflow_core::order::PaperOrder;
use tradeflow_core::pipeline::Pipeline;
use tradeflow_core::ports::{
    BeginOutcome, ClaimOutcome, ExecutionStore, FailedEntry, HoldOutcome, Lease, LeaseStore,
    OrderStore, OutgoingMessage, PipelineChange, PipelineStore, PlaceOutcome, QueueSender, RunEnd,
    RunEndOutcome, RunLedger,
};
use tradeflow_core::vocab::Ticker;

use crate::invoke::SqsFunction;

/// Fault rates, each a probability in 0..=1.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FaultPlan {
    pub seed: u64,
    /// Per execution request sent by the dispatcher (and per signal the soak sends): sent twice.
    pub duplicate_rate: f64,
    /// Per started executor attempt: crashes after its start write, before its result.
    pub crash_rate: f64,
    /// Per port call (DynamoDB and SQS): a transient error.
    pub transient_rate: f64,
    /// Per dispatcher send of execution requests: crashes after the lease claims, before the send.
    pub dispatcher_crash_rate: f64,
    /// Per started executor attempt and per dispatcher send: stalls past the deadline.
    pub deadline_rate: f64,
    /// How long a stalled call stalls (longer than the function timeout).
    pub stall: Duration,
}

impl Default for FaultPlan {
    fn default() -> Self {
        FaultPlan {
            seed: 1,
            duplicate_rate: 0.10,
            crash_rate: 0.05,
            transient_rate: 0.05,
            dispatcher_crash_rate: 0.05,
            deadline_rate: 0.02,
            stall: Duration::from_secs(60),
        }
    }
}

/// SplitMix64: small, seeded, good enough for fault rolls.
#[derive(Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }
}

/// Where a faulty attempt stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopPoint {
    AfterBegin,
    AfterOrder,
    BeforeFinish,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopKind {
    /// The process dies: the invocation ends at once.
    Crash,
    /// The call stalls until the deadline ends the invocation.
    Stall,
}

/// One started executor attempt (begin → `Started`), from its start write to its end: its
/// result write, its release back to PENDING, or the end of its invocation (crash, deadline).
#[derive(Debug, Clone, PartialEq)]
pub struct Attempt {
    pub execution_id: String,
    pub lease_key: String,
    pub attempt: u32,
    pub start_ms: i64,
    pub end_ms: Option<i64>,
    /// It got as far as writing its order.
    pub placed_order: bool,
}

/// A lease claim that found the lease held by another execution.
#[derive(Debug, Clone, PartialEq)]
pub struct Skip {
    pub execution_id: String,
    pub holder: String,
    /// When the skipping claim was issued: its read of the lease came after.
    pub started_ms: i64,
    /// When it returned: its read of the lease came before.
    pub at_ms: i64,
}

/// Counters of injected faults and observed calls.
#[derive(Debug, Default)]
pub struct FaultCounters {
    pub store_calls: AtomicU64,
    pub queue_calls: AtomicU64,
    pub transient_store: AtomicU64,
    pub transient_queue: AtomicU64,
    pub attempts_started: AtomicU64,
    pub executor_crashes: AtomicU64,
    pub dispatcher_sends: AtomicU64,
    pub dispatcher_crashes: AtomicU64,
    pub stalls: AtomicU64,
    pub requests_sent: AtomicU64,
    pub requests_duplicated: AtomicU64,
    pub invocations_crashed: AtomicU64,
    pub invocations_timed_out: AtomicU64,
}

fn get(c: &AtomicU64) -> u64 {
    c.load(Ordering::Relaxed)
}

impl FaultCounters {
    pub fn transient_store(&self) -> u64 {
        get(&self.transient_store)
    }
    pub fn snapshot(&self) -> Vec<(&'static str, u64)> {
        vec![
            ("store calls", get(&self.store_calls)),
            ("transient store errors", get(&self.transient_store)),
            ("queue calls", get(&self.queue_calls)),
            ("transient queue errors", get(&self.transient_queue)),
            ("executor attempts started", get(&self.attempts_started)),
            ("executor crashes", get(&self.executor_crashes)),
            ("dispatcher sends", get(&self.dispatcher_sends)),
            ("dispatcher crashes", get(&self.dispatcher_crashes)),
            ("stalls past the deadline", get(&self.stalls)),
            ("execution requests sent", get(&self.requests_sent)),
            (
                "execution requests duplicated",
                get(&self.requests_duplicated),
            ),
            ("invocations crashed", get(&self.invocations_crashed)),
            ("invocations timed out", get(&self.invocations_timed_out)),
        ]
    }
}

/// What the wrappers saw, for the accounting.
#[derive(Debug, Default)]
pub struct FaultLog {
    pub counters: FaultCounters,
    pub skips: Mutex<Vec<Skip>>,
    /// Execution id → first time its lease was claimed (dispatcher) or held (executor).
    pub claimed_ms: Mutex<HashMap<String, i64>>,
    /// Execution id → last time its lease was claimed or held.
    pub last_claimed_ms: Mutex<HashMap<String, i64>>,
    /// Execution id → last time the executor released its lease (the call returned Ok).
    pub released_ms: Mutex<HashMap<String, i64>>,
    /// Execution id → when its result write succeeded.
    pub finished_ms: Mutex<HashMap<String, i64>>,
    pub attempts: Mutex<Vec<Attempt>>,
    /// Message id → why its last invocation reported it failed.
    pub failure_reasons: Mutex<HashMap<String, String>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

tokio::task_local! {
    static INVOCATION: Arc<Invocation>;
}

/// The invocation a wrapper call runs in (a task-local set by [`Faulty`]).
#[derive(Debug, Default)]
struct Invocation {
    crashed: tokio::sync::Notify,
    /// Indexes into [`FaultLog::attempts`] of attempts started in this invocation, still open.
    open: Mutex<Vec<usize>>,
}

/// The shared fault source: the plan, its generator, the log.
#[derive(Debug)]
pub struct Faults {
    pub plan: FaultPlan,
    rng: Mutex<Rng>,
    pub log: FaultLog,
    /// Execution id → how its current attempt stops.
    stops: Mutex<HashMap<String, (StopPoint, StopKind)>>,
    /// Execution id → index of its latest attempt in the log.
    current: Mutex<HashMap<String, usize>>,
}

enum Transient {
    Before,
    After,
}

impl Faults {
    pub fn new(plan: FaultPlan) -> Arc<Self> {
        Arc::new(Faults {
            plan,
            rng: Mutex::new(Rng::new(plan.seed)),
            log: FaultLog::default(),
            stops: Mutex::new(HashMap::new()),
            current: Mutex::new(HashMap::new()),
        })
    }

    pub fn roll(&self, p: f64) -> bool {
        p > 0.0 && lock(&self.rng).unit() < p
    }

    fn transient(&self) -> Option<Transient> {
        if !self.roll(self.plan.transient_rate) {
            return None;
        }
        if lock(&self.rng).next_u64() % 2 == 0 {
            Some(Transient::Before)
        } else {
            Some(Transient::After)
        }
    }

    /// Runs a store call, or fails it transiently before or after it went through.
    async fn store<T>(
        &self,
        operation: &'static str,
        call: impl std::future::Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        self.store_seen(operation, call, |_| {}).await
    }

    /// As [`Faults::store`]; `seen` gets the real call's result whenever the call went through,
    /// also when a transient error is reported after it (the write happened).
    async fn store_seen<T>(
        &self,
        operation: &'static str,
        call: impl std::future::Future<Output = Result<T, StoreError>>,
        seen: impl FnOnce(&T),
    ) -> Result<T, StoreError> {
        self.log
            .counters
            .store_calls
            .fetch_add(1, Ordering::Relaxed);
        let injected = || {
            self.log
                .counters
                .transient_store
                .fetch_add(1, Ordering::Relaxed);
            StoreError::Transient {
                operation,
                source: "injected fault: throttled / timed out".into(),
            }
        };
        match self.transient() {
            None => {
                let r = call.await;
                if let Ok(v) = &r {
                    seen(v);
                }
                r
            }
            Some(Transient::Before) => Err(injected()),
            Some(Transient::After) => {
                if let Ok(v) = call.await {
                    seen(&v);
                }
                Err(injected())
            }
        }
    }

    /// Forgets every planned stop (the attempts they belonged to are over).
    pub fn clear_stops(&self) {
        lock(&self.stops).clear();
    }

    /// Stops the current invocation here: a crash ends it at once, a stall outlives its deadline.
    /// Never returns.
    async fn stop(&self, kind: StopKind) {
        match kind {
            StopKind::Crash => {
                if let Ok(inv) = INVOCATION.try_with(Arc::clone) {
                    inv.crashed.notify_one();
                }
            }
            StopKind::Stall => {
                self.log.counters.stalls.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(self.plan.stall).await;
            }
        }
        std::future::pending::<()>().await;
    }

    fn open_attempt(&self, request: &ExecutionRequest, attempt: u32) {
        let idx = {
            let mut attempts = lock(&self.log.attempts);
            attempts.push(Attempt {
                execution_id: request.execution_id.clone(),
                lease_key: Lease::key(&request.pipeline_id, &request.ticker),
                attempt,
                start_ms: now_ms(),
                end_ms: None,
                placed_order: false,
            });
            attempts.len() - 1
        };
        lock(&self.current).insert(request.execution_id.clone(), idx);
        if let Ok(inv) = INVOCATION.try_with(Arc::clone) {
            lock(&inv.open).push(idx);
        }
    }

    /// Ends attempt `attempt` of `execution_id` now (its result write or its release).
    fn close_attempt(&self, execution_id: &str, attempt: u32) {
        let now = now_ms();
        let mut attempts = lock(&self.log.attempts);
        if let Some(a) = attempts
            .iter_mut()
            .rev()
            .find(|a| a.execution_id == execution_id && a.attempt == attempt && a.end_ms.is_none())
        {
            a.end_ms = Some(now);
        }
    }

    fn take_stop(&self, execution_id: &str, at: StopPoint) -> Option<StopKind> {
        let mut stops = lock(&self.stops);
        match stops.get(execution_id) {
            Some((point, kind))
                if *point == at || (at == StopPoint::BeforeFinish && *point != at) =>
            {
                let kind = *kind;
                stops.remove(execution_id);
                Some(kind)
            }
            _ => None,
        }
    }
}

/// [`PipelineStore`] with transient faults.
pub struct FaultyPipelines {
    pub inner: Arc<dyn PipelineStore>,
    pub faults: Arc<Faults>,
}

#[async_trait]
impl PipelineStore for FaultyPipelines {
    async fn load_signal_pipelines(&self) -> Result<Vec<Pipeline>, StoreError> {
        self.faults
            .store("load_signal_pipelines", self.inner.load_signal_pipelines())
            .await
    }
    async fn changed_since(&self, since_ms: i64) -> Result<Vec<PipelineChange>, StoreError> {
        self.faults
            .store("changed_since", self.inner.changed_since(since_ms))
            .await
    }
    async fn get_pipeline(&self, pipeline_id: &str) -> Result<Option<Pipeline>, StoreError> {
        self.faults
            .store("get_pipeline", self.inner.get_pipeline(pipeline_id))
            .await
    }
    async fn put_pipeline(&self, pipeline: &Pipeline) -> Result<(), StoreError> {
        self.inner.put_pipeline(pipeline).await
    }
}

/// [`LeaseStore`] with transient faults; records held leases (skips), claims and releases.
pub struct FaultyLeases {
    pub inner: Arc<dyn LeaseStore>,
    pub faults: Arc<Faults>,
}

#[async_trait]
impl LeaseStore for FaultyLeases {
    async fn claim(&self, lease: &Lease, now: i64) -> Result<ClaimOutcome, StoreError> {
        let log = &self.faults.log;
        // Times bound the write, not the reply: under load a claim returns seconds after its
        // write, and a concurrent claim may see the lease meanwhile. A lease is taken no earlier
        // than its claim was issued: that start is what the accounting compares with the end of
        // a skip that saw it (and a skip's start with a release's end).
        let started = now_ms();
        self.faults
            .store_seen("claim", self.inner.claim(lease, now), |outcome| {
                let at = now_ms();
                match outcome {
                    ClaimOutcome::Held { execution_id, .. } => lock(&log.skips).push(Skip {
                        execution_id: lease.execution_id.clone(),
                        holder: execution_id.clone(),
                        started_ms: started,
                        at_ms: at,
                    }),
                    ClaimOutcome::Claimed | ClaimOutcome::Reclaimed => {
                        lock(&log.claimed_ms)
                            .entry(lease.execution_id.clone())
                            .or_insert(started);
                        lock(&log.last_claimed_ms).insert(lease.execution_id.clone(), started);
                    }
                    ClaimOutcome::AlreadyEnqueued => {}
                }
            })
            .await
    }
    async fn hold(&self, lease: &Lease, now: i64) -> Result<HoldOutcome, StoreError> {
        let started = now_ms();
        let outcome = self
            .faults
            .store("hold", self.inner.hold(lease, now))
            .await?;
        if outcome == HoldOutcome::Held {
            let at = started;
            lock(&self.faults.log.claimed_ms)
                .entry(lease.execution_id.clone())
                .or_insert(at);
            lock(&self.faults.log.last_claimed_ms).insert(lease.execution_id.clone(), at);
        }
        Ok(outcome)
    }
    async fn release(
        &self,
        pipeline_id: &str,
        ticker: &Ticker,
        execution_id: &str,
    ) -> Result<(), StoreError> {
        let log = &self.faults.log;
        self.faults
            .store_seen(
                "release_lease",
                self.inner.release(pipeline_id, ticker, execution_id),
                |_| {
                    lock(&log.released_ms).insert(execution_id.to_owned(), now_ms());
                },
            )
            .await
    }
}

/// [`ExecutionStore`] with transient faults and attempts that stop after their start write.
pub struct FaultyExecutions {
    pub inner: Arc<dyn ExecutionStore>,
    pub faults: Arc<Faults>,
}

#[async_trait]
impl ExecutionStore for FaultyExecutions {
    async fn begin(
        &self,
        request: &ExecutionRequest,
        now: i64,
        in_progress_until: i64,
    ) -> Result<BeginOutcome, StoreError> {
        let outcome = self
            .faults
            .store("begin", self.inner.begin(request, now, in_progress_until))
            .await?;
        if let BeginOutcome::Started { attempt } = outcome {
            let f = &self.faults;
            f.log
                .counters
                .attempts_started
                .fetch_add(1, Ordering::Relaxed);
            f.open_attempt(request, attempt);
            let kind = if f.roll(f.plan.crash_rate) {
                Some(StopKind::Crash)
            } else if f.roll(f.plan.deadline_rate) {
                Some(StopKind::Stall)
            } else {
                None
            };
            if let Some(kind) = kind {
                let point = match lock(&f.rng).below(3) {
                    0 => StopPoint::AfterBegin,
                    1 => StopPoint::AfterOrder,
                    _ => StopPoint::BeforeFinish,
                };
                if kind == StopKind::Crash {
                    f.log
                        .counters
                        .executor_crashes
                        .fetch_add(1, Ordering::Relaxed);
                }
                if point == StopPoint::AfterBegin {
                    f.stop(kind).await;
                }
                lock(&f.stops).insert(request.execution_id.clone(), (point, kind));
            } else {
                lock(&f.stops).remove(&request.execution_id);
            }
        }
        Ok(outcome)
    }

    async fn finish(&self, record: &ExecutionRecord) -> Result<bool, StoreError> {
        if let Some(kind) = self
            .faults
            .take_stop(&record.execution_id, StopPoint::BeforeFinish)
        {
            self.faults.stop(kind).await;
        }
        let written = self
            .faults
            .store("finish", self.inner.finish(record))
            .await?;
        self.faults
            .close_attempt(&record.execution_id, record.attempts);
        if written {
            lock(&self.faults.log.finished_ms).insert(record.execution_id.clone(), now_ms());
        }
        Ok(written)
    }

    async fn release(&self, execution_id: &str, attempt: u32) -> Result<(), StoreError> {
        self.faults.close_attempt(execution_id, attempt);
        self.faults
            .store(
                "release_execution",
                self.inner.release(execution_id, attempt),
            )
            .await
    }

    async fn get_execution(
        &self,
        execution_id: &str,
    ) -> Result<Option<ExecutionRecord>, StoreError> {
        self.faults
            .store("get_execution", self.inner.get_execution(execution_id))
            .await
    }

    async fn overdue(&self, before: i64, limit: usize) -> Result<Vec<String>, StoreError> {
        self.faults
            .store("overdue", self.inner.overdue(before, limit))
            .await
    }
}

/// [`OrderStore`] with transient faults and attempts that stop right after writing their order.
pub struct FaultyOrders {
    pub inner: Arc<dyn OrderStore>,
    pub faults: Arc<Faults>,
}

#[async_trait]
impl OrderStore for FaultyOrders {
    async fn place(&self, order: &PaperOrder) -> Result<PlaceOutcome, StoreError> {
        let f = &self.faults;
        if let Some(idx) = lock(&f.current).get(&order.execution_id).copied()
            && let Some(a) = lock(&f.log.attempts).get_mut(idx)
        {
            a.placed_order = true;
        }
        let outcome = f.store("place", self.inner.place(order)).await?;
        if let Some(kind) = f.take_stop(&order.execution_id, StopPoint::AfterOrder) {
            f.stop(kind).await;
        }
        Ok(outcome)
    }
    async fn get(&self, order_id: &str) -> Result<Option<PaperOrder>, StoreError> {
        self.faults
            .store("get_order", self.inner.get(order_id))
            .await
    }
}

/// [`RunLedger`] with transient faults and attempts that stop right before their end is written,
/// or right after (the run's record, order and lease release are written; the invocation dies
/// before acknowledging the message).
pub struct FaultyLedger {
    pub inner: Arc<dyn RunLedger>,
    pub faults: Arc<Faults>,
}

#[async_trait]
impl RunLedger for FaultyLedger {
    async fn end_run(&self, end: &RunEnd<'_>) -> Result<RunEndOutcome, StoreError> {
        let f = &self.faults;
        let id = &end.record.execution_id;
        if end.order.is_some()
            && let Some(idx) = lock(&f.current).get(id).copied()
            && let Some(a) = lock(&f.log.attempts).get_mut(idx)
        {
            a.placed_order = true;
        }
        let after = end.order.is_some()
            && lock(&f.stops)
                .get(id)
                .is_some_and(|(point, _)| *point == StopPoint::AfterOrder);
        if !after && let Some(kind) = f.take_stop(id, StopPoint::BeforeFinish) {
            f.stop(kind).await;
        }
        let outcome = f.store("end_run", self.inner.end_run(end)).await?;
        f.close_attempt(id, end.record.attempts);
        if outcome == RunEndOutcome::Written {
            lock(&f.log.finished_ms).insert(id.clone(), now_ms());
        }
        if after && let Some(kind) = f.take_stop(id, StopPoint::AfterOrder) {
            f.stop(kind).await;
        }
        Ok(outcome)
    }
}

/// The dispatcher's executions-queue sender: transient faults, crashes and stalls before the
/// send (after the lease claims), and duplicate sends.
pub struct FaultyQueue {
    pub inner: Arc<dyn QueueSender>,
    pub faults: Arc<Faults>,
}

#[async_trait]
impl QueueSender for FaultyQueue {
    async fn send_batch(
        &self,
        messages: &[OutgoingMessage],
    ) -> Result<Vec<FailedEntry>, QueueError> {
        let f = &self.faults;
        f.log
            .counters
            .dispatcher_sends
            .fetch_add(1, Ordering::Relaxed);
        if f.roll(f.plan.dispatcher_crash_rate) {
            f.log
                .counters
                .dispatcher_crashes
                .fetch_add(1, Ordering::Relaxed);
            f.stop(StopKind::Crash).await;
        }
        if f.roll(f.plan.deadline_rate) {
            f.stop(StopKind::Stall).await;
        }
        f.log.counters.queue_calls.fetch_add(1, Ordering::Relaxed);
        let injected = || {
            f.log
                .counters
                .transient_queue
                .fetch_add(1, Ordering::Relaxed);
            QueueError::Transient {
                operation: "send_batch",
                source: "injected fault: throttled / timed out".into(),
            }
        };
        let transient = f.transient();
        if matches!(transient, Some(Transient::Before)) {
            return Err(injected());
        }
        let failed = self.inner.send_batch(messages).await?;
        f.log
            .counters
            .requests_sent
            .fetch_add((messages.len() - failed.len()) as u64, Ordering::Relaxed);
        let dups: Vec<OutgoingMessage> = messages
            .iter()
            .filter(|m| !failed.iter().any(|e| e.id == m.id))
            .filter(|_| f.roll(f.plan.duplicate_rate))
            .cloned()
            .collect();
        if !dups.is_empty() && self.inner.send_batch(&dups).await.is_ok() {
            f.log
                .counters
                .requests_duplicated
                .fetch_add(dups.len() as u64, Ordering::Relaxed);
        }
        if matches!(transient, Some(Transient::After)) {
            return Err(injected());
        }
        Ok(failed)
    }
}

/// A function as Lambda runs it for the soak: the invocation ends with a function error when
/// its deadline passes (`timeout`) or when a wrapper crashed the process; attempts still open
/// then end with it. Records why failed records failed.
pub struct Faulty {
    pub inner: Arc<dyn SqsFunction>,
    pub faults: Arc<Faults>,
    pub timeout: Duration,
}

#[async_trait]
impl SqsFunction for Faulty {
    fn name(&self) -> &str {
        self.inner.name()
    }

    async fn invoke(&self, event: SqsEvent) -> Result<SqsBatchResponse, String> {
        let ids: Vec<String> = event
            .records
            .iter()
            .filter_map(|r| r.message_id.clone())
            .collect();
        let inv = Arc::new(Invocation::default());
        let counters = &self.faults.log.counters;
        let result = {
            let call = INVOCATION.scope(Arc::clone(&inv), self.inner.invoke(event));
            tokio::select! {
                r = call => r,
                _ = inv.crashed.notified() => {
                    counters.invocations_crashed.fetch_add(1, Ordering::Relaxed);
                    Err("the process crashed (injected)".to_owned())
                }
                _ = tokio::time::sleep(self.timeout) => {
                    counters.invocations_timed_out.fetch_add(1, Ordering::Relaxed);
                    Err(format!("Task timed out after {:.2} seconds", self.timeout.as_secs_f64()))
                }
            }
        };
        let end = now_ms();
        {
            let mut attempts = lock(&self.faults.log.attempts);
            for idx in lock(&inv.open).iter() {
                if let Some(a) = attempts.get_mut(*idx)
                    && a.end_ms.is_none()
                {
                    a.end_ms = Some(end);
                }
            }
        }
        let mut reasons = lock(&self.faults.log.failure_reasons);
        match &result {
            Ok(resp) => {
                for f in &resp.batch_item_failures {
                    reasons.insert(
                        f.item_identifier.clone(),
                        format!("{}: reported failed (batch item failure)", self.name()),
                    );
                }
            }
            Err(e) => {
                for id in ids {
                    reasons.insert(id, format!("{}: function error: {e}", self.name()));
                }
            }
        }
        result
    }
}
