//! The pipeline-executor's logic: run each execution request at most once, while holding its
//! (pipeline, ticker) lease.
//!
//! Per message: parse the request (a bad body is a poison message); load the pipeline; start the
//! run with one conditional write whose in-progress expiry is the invocation's deadline (a
//! redelivery of a finished run is acknowledged and frees the lease if it re-claimed it; one that
//! finds the run in progress is retried, so it comes back and takes over a dead attempt); hold the
//! lease for as long as the run may last (a run whose lease another execution holds ends SKIPPED,
//! `lease_lost`); run the pipeline's steps in order within the attempt's time, recording each
//! step's status and duration; write the final status; release the lease. A transient failure
//! puts the execution back to PENDING and fails the message, so the queue redelivers it; a
//! permanent store error ends the run FAILED when that can still be recorded, else rejects the
//! message (to the DLQ) with its reason. Design: `docs/data-model.md`, "Run lifecycle".

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::deadline::Deadline;
use crate::error::{StoreError, error_chain};
use crate::execution::{
    ExecutionRecord, ExecutionRequest, ExecutionStatus, MAX_STEP_OUTPUTS, StepResult, StepStatus,
    bounded_text,
};
use crate::pipeline::{DEFAULT_MAX_RUNTIME_SECS, Pipeline};
use crate::ports::{
    BeginOutcome, Clock, ExecutionStore, HoldOutcome, Lease, LeaseStore, NoTracer, PipelineStore,
    RunEnd, RunEndOutcome, RunLedger, Tracer,
};
use crate::steps::{BuiltinSteps, StepContext, StepError, StepFlow};
use crate::trace::TraceContext;
use crate::vocab::InboundMessage;

/// Labels of [`Outcome::Retry`], the one list (metrics initialise a series per label from it).
pub const RETRY_LABELS: [&str; 6] = [
    "pipeline_store",
    "execution_store",
    "step_transient",
    "in_progress",
    "lease_store",
    "order_store",
];

/// Decision of a run whose last delivery before the DLQ failed too (FAILED).
pub const DECISION_RETRIES_EXHAUSTED: &str = "retries_exhausted";

/// Decision of a run that found its lease held by another live execution (SKIPPED).
pub const DECISION_LEASE_LOST: &str = "lease_lost";

/// Every decision a SKIPPED run can end with, the one list (metrics label skipped runs with it).
pub const SKIP_DECISIONS: [&str; 3] =
    ["pipeline_inactive", "pipeline_missing", DECISION_LEASE_LOST];

/// Time kept back from the invocation's deadline to write the result after the steps.
pub const SAFETY_MARGIN_MS: i64 = 2_000;

/// Added to the invocation's deadline for the in-progress expiry (clock skew between workers).
pub const IN_PROGRESS_GRACE_SECS: i64 = 1;

/// What happened to one message.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The run ended with this record (COMPLETED, FAILED or SKIPPED).
    Finished(Box<ExecutionRecord>),
    /// A redelivery of a run that had already ended: nothing ran.
    Duplicate(ExecutionStatus),
    /// Another attempt took the run over while this one ran (its in-progress expiry passed):
    /// this attempt's result was not written; the message is acknowledged.
    InProgressElsewhere,
    /// The run ended and is recorded, but freeing its lease failed: the message is redelivered so
    /// the redelivery (a duplicate of a finished run) frees it, instead of the pair looking held
    /// with nothing running until the lease expires.
    FinishedLeaseHeld {
        record: Box<ExecutionRecord>,
        reason: String,
    },
    /// A transient failure, or the run is in progress elsewhere: the message must be redelivered.
    Retry { label: &'static str, reason: String },
    /// A bad body (poison message), or a run that cannot be recorded (a permanent store error):
    /// it goes to the DLQ.
    Rejected { reason: String },
}

/// Decision of a run [`Executor::sweep`] ended: its last attempt died with no delivery left.
pub const ABANDONED: &str = "abandoned";

/// What one [`Executor::sweep`] did.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct SweepReport {
    /// Overdue RUNNING records the store listed.
    pub found: usize,
    /// Ended FAILED [`ABANDONED`], their leases freed.
    pub abandoned: Vec<ExecutionRecord>,
    /// No longer overdue when read (taken over, finished or released meanwhile): left alone.
    pub left: usize,
    /// (execution id, error) of those that could not be ended; the next sweep tries again.
    pub errors: Vec<(String, String)>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct MessageReport {
    pub message_id: String,
    pub outcome: Outcome,
    pub duration: Duration,
    /// Age of the request when it was picked up, milliseconds.
    pub lag_ms: Option<i64>,
}

impl MessageReport {
    /// Whether the message must be reported as a batch item failure.
    pub fn failed(&self) -> bool {
        matches!(
            self.outcome,
            Outcome::Retry { .. } | Outcome::Rejected { .. } | Outcome::FinishedLeaseHeld { .. }
        )
    }
}

pub struct Executor {
    pipelines: Arc<dyn PipelineStore>,
    executions: Arc<dyn ExecutionStore>,
    leases: Arc<dyn LeaseStore>,
    ledger: Arc<dyn RunLedger>,
    steps: BuiltinSteps,
    clock: Arc<dyn Clock>,
    max_deliveries: Option<u32>,
    pipeline_cache: Option<PipelineCache>,
    batch_concurrency: usize,
    tracer: Arc<dyn Tracer>,
}

/// Messages of one batch run at once by default: the template's batch size (10), so a batch
/// takes about as long as its slowest run instead of the sum of them.
pub const DEFAULT_BATCH_CONCURRENCY: usize = 10;

/// Pipelines read by this executor instance, each reused for `ttl_ms` (one read fewer per run).
/// A deactivation or an edit reaches the runs within the TTL, as it reaches the dispatcher's
/// index. Bounded: emptied when it reaches [`PipelineCache::MAX_ENTRIES`].
struct PipelineCache {
    ttl_ms: i64,
    entries: std::sync::Mutex<std::collections::HashMap<String, (Option<Pipeline>, i64)>>,
}

impl PipelineCache {
    const MAX_ENTRIES: usize = 10_000;

    fn get(&self, pipeline_id: &str, now_ms: i64) -> Option<Option<Pipeline>> {
        let entries = self.entries.lock().ok()?;
        let (pipeline, loaded_ms) = entries.get(pipeline_id)?;
        (now_ms - loaded_ms < self.ttl_ms).then(|| pipeline.clone())
    }

    fn put(&self, pipeline_id: &str, pipeline: &Option<Pipeline>, now_ms: i64) {
        if let Ok(mut entries) = self.entries.lock() {
            if entries.len() >= Self::MAX_ENTRIES {
                entries.clear();
            }
            entries.insert(pipeline_id.to_owned(), (pipeline.clone(), now_ms));
        }
    }
}

/// The time of one attempt.
#[derive(Debug, Clone, Copy)]
struct AttemptTime {
    now: i64,
    /// Unix ms by which the steps must be done: the pipeline's max runtime, or the invocation's
    /// deadline less [`SAFETY_MARGIN_MS`], whichever comes first.
    run_until_ms: i64,
    /// Unix seconds after which another delivery may take the run over (and the lease expires):
    /// the invocation's deadline plus [`IN_PROGRESS_GRACE_SECS`]; without a deadline, the max
    /// runtime.
    in_progress_until: i64,
    max_runtime: u32,
    /// Whether `run_until_ms` is the invocation's deadline (sooner than the max runtime).
    cut_by_deadline: bool,
}

impl AttemptTime {
    fn new(now_ms: i64, deadline: Deadline, max_runtime: u32) -> Self {
        let now = now_ms.div_euclid(1000);
        let max_ms = now_ms.saturating_add(i64::from(max_runtime) * 1000);
        if deadline.is_none() {
            return AttemptTime {
                now,
                run_until_ms: max_ms,
                in_progress_until: now + i64::from(max_runtime),
                max_runtime,
                cut_by_deadline: false,
            };
        }
        let deadline_ms = deadline.epoch_ms();
        let until_deadline_ms = deadline_ms.saturating_sub(SAFETY_MARGIN_MS);
        AttemptTime {
            now,
            run_until_ms: max_ms.min(until_deadline_ms),
            cut_by_deadline: until_deadline_ms < max_ms,
            // Rounded up to the second: the attempt may live until the deadline itself.
            in_progress_until: deadline_ms.saturating_add(999).div_euclid(1000)
                + IN_PROGRESS_GRACE_SECS,
            max_runtime,
        }
    }
}

impl Executor {
    pub fn new(
        pipelines: Arc<dyn PipelineStore>,
        executions: Arc<dyn ExecutionStore>,
        leases: Arc<dyn LeaseStore>,
        ledger: Arc<dyn RunLedger>,
        steps: BuiltinSteps,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Executor {
            pipelines,
            executions,
            leases,
            ledger,
            steps,
            clock,
            max_deliveries: None,
            pipeline_cache: None,
            batch_concurrency: DEFAULT_BATCH_CONCURRENCY,
            tracer: Arc::new(NoTracer),
        }
    }

    /// Opens a span per pipeline step ([`Tracer::step`]) under the trace context of the
    /// message whose run it is ([`InboundMessage::trace`]); a step that does not run (after a
    /// stop or a failure) gets an empty span with status `SKIPPED`.
    pub fn with_tracer(mut self, tracer: Arc<dyn Tracer>) -> Self {
        self.tracer = tracer;
        self
    }

    /// Reuses each pipeline read for `ttl` (zero: read it for every run).
    pub fn with_pipeline_cache(mut self, ttl: Duration) -> Self {
        let ttl_ms = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
        self.pipeline_cache = (ttl_ms > 0).then(|| PipelineCache {
            ttl_ms,
            entries: Default::default(),
        });
        self
    }

    /// The pipeline, from the cache when it is fresh.
    async fn pipeline(&self, pipeline_id: &str) -> Result<Option<Pipeline>, StoreError> {
        let now_ms = self.clock.now_ms();
        if let Some(cached) = self
            .pipeline_cache
            .as_ref()
            .and_then(|c| c.get(pipeline_id, now_ms))
        {
            return Ok(cached);
        }
        let pipeline = self.pipelines.get_pipeline(pipeline_id).await?;
        if let Some(cache) = &self.pipeline_cache {
            cache.put(pipeline_id, &pipeline, now_ms);
        }
        Ok(pipeline)
    }

    /// The queue's `maxReceiveCount`: a delivery with this receive count is the last before the
    /// DLQ. `None` (unknown): never give up, the queue decides.
    pub fn with_max_deliveries(mut self, max: Option<u32>) -> Self {
        self.max_deliveries = max;
        self
    }

    /// Runs `n` messages of a batch at a time (default [`DEFAULT_BATCH_CONCURRENCY`]; 1: one
    /// after the other). Each run is I/O: its begin and end writes and the market data.
    pub fn with_batch_concurrency(mut self, n: usize) -> Self {
        self.batch_concurrency = n.max(1);
        self
    }

    /// Runs every message of a batch within the invocation's `deadline`, `batch_concurrency` at
    /// a time; the reports are in message order. Two messages of one execution in a batch are
    /// kept apart by the run's conditional `begin` (the second finds it in progress and comes
    /// back), two executions of one (pipeline, ticker) by the lease.
    pub async fn execute_batch(
        &self,
        messages: &[InboundMessage],
        deadline: Deadline,
    ) -> Vec<MessageReport> {
        use futures_util::stream::{FuturesOrdered, StreamExt};
        // A plain loop, no closure: a closure returning the run's future trips rustc's
        // higher-ranked `Send` check in the Lambda handler (rust-lang/rust#64552).
        let mut out = Vec::with_capacity(messages.len());
        let mut running = FuturesOrdered::new();
        for m in messages {
            if running.len() >= self.batch_concurrency
                && let Some(report) = running.next().await
            {
                out.push(report);
            }
            running.push_back(self.execute(m, deadline));
        }
        while let Some(report) = running.next().await {
            out.push(report);
        }
        out
    }

    /// Runs one message. `deadline` is when the invocation must be done: it bounds the steps and
    /// sets the run's in-progress expiry (and its lease's), after which another delivery may take
    /// a dead attempt over.
    pub async fn execute(&self, message: &InboundMessage, deadline: Deadline) -> MessageReport {
        let started = Instant::now();
        let (outcome, lag_ms) = match ExecutionRequest::parse(&message.body) {
            Err(e) => (
                Outcome::Rejected {
                    reason: e.to_string(),
                },
                None,
            ),
            Ok(request) => {
                let lag = self.clock.now_ms() - request.enqueued_at_ms;
                let outcome = match self.run(&request, deadline, message.trace.as_ref()).await {
                    Outcome::Retry { label, reason }
                        if label != "in_progress" && self.is_last_delivery(message) =>
                    {
                        self.give_up(&request, deadline, message, label, reason)
                            .await
                    }
                    outcome => outcome,
                };
                (outcome, Some(lag.max(0)))
            }
        };
        MessageReport {
            message_id: message.message_id.clone(),
            outcome,
            duration: started.elapsed(),
            lag_ms,
        }
    }

    async fn run(
        &self,
        request: &ExecutionRequest,
        deadline: Deadline,
        trace: Option<&TraceContext>,
    ) -> Outcome {
        let pipeline = match self.pipeline(&request.pipeline_id).await {
            Ok(p) => p,
            Err(e) => return retry("pipeline_store", error_chain(&e)),
        };
        let max_runtime = pipeline
            .as_ref()
            .map_or(DEFAULT_MAX_RUNTIME_SECS, |p| p.max_runtime_secs);
        let time = AttemptTime::new(self.clock.now_ms(), deadline, max_runtime);
        let now = time.now;
        let attempt = match self
            .executions
            .begin(request, now, time.in_progress_until)
            .await
        {
            Ok(BeginOutcome::Started { attempt }) => attempt,
            Ok(BeginOutcome::AlreadyFinished(status)) => {
                // A re-send of a finished run re-claimed the lease at dispatch: free it (only if
                // this execution holds it), or the pair stays blocked with nothing running.
                if let Err(e) = self.release_lease(request).await {
                    return retry("lease_store", error_chain(&e));
                }
                return Outcome::Duplicate(status);
            }
            Ok(BeginOutcome::InProgress { until }) => {
                // Comes back after the visibility timeout: by then a dead attempt has expired.
                return retry(
                    "in_progress",
                    format!("running in another attempt until {until}"),
                );
            }
            Err(e) if e.is_retryable() => return retry("execution_store", error_chain(&e)),
            Err(e) => {
                return Outcome::Rejected {
                    reason: format!("the execution cannot be recorded: {}", error_chain(&e)),
                };
            }
        };
        let mut record = ExecutionRecord::started(request, now, attempt, time.in_progress_until);

        let mut order = None;
        let final_status = match pipeline {
            Some(p) if p.is_active && p.user_id == request.user_id => {
                let lease = Lease {
                    pipeline_id: request.pipeline_id.clone(),
                    ticker: request.ticker.clone(),
                    execution_id: request.execution_id.clone(),
                    expires_at: time.in_progress_until,
                };
                // The dispatcher claimed the lease for this execution until
                // `request.lease_expires_at`, and only this execution frees it before then: an
                // attempt that ends by then runs under that claim without another write. A later
                // attempt (a redelivery after the claim ran out) must hold it again, and finds out
                // if a newer signal took it.
                let covered = time.in_progress_until <= request.lease_expires_at;
                let held = if covered {
                    Ok(HoldOutcome::Held)
                } else {
                    self.leases.hold(&lease, now).await
                };
                match held {
                    Ok(HoldOutcome::Held) => {}
                    Ok(HoldOutcome::Lost {
                        execution_id,
                        expires_at,
                    }) => {
                        return self
                            .lease_lost(request, record, attempt, &execution_id, expires_at)
                            .await;
                    }
                    Err(e) => {
                        self.release_execution(request, attempt).await;
                        return retry("lease_store", error_chain(&e));
                    }
                }
                match self.run_steps(request, p, time, &mut record, trace).await {
                    Ok((status, placed)) => {
                        order = placed;
                        status
                    }
                    Err(transient) => {
                        // Back to PENDING so the redelivery can start at once; the lease stays
                        // ours until the in-progress expiry, and the redelivery holds it again.
                        self.release_execution(request, attempt).await;
                        return retry("step_transient", transient.to_string());
                    }
                }
            }
            Some(p) if p.user_id != request.user_id => {
                record.decision = Some("pipeline_owner_mismatch".into());
                record.error = Some("request user does not own the pipeline".into());
                ExecutionStatus::Failed
            }
            Some(_) => {
                record.decision = Some("pipeline_inactive".into());
                ExecutionStatus::Skipped
            }
            None => {
                record.decision = Some("pipeline_missing".into());
                ExecutionStatus::Skipped
            }
        };
        self.finish(request, record, final_status, order, true)
            .await
    }

    /// Ends the runs whose attempt died with no delivery left to finish them: RUNNING records
    /// whose in-progress window ended more than `abandon_after_secs` ago. The run goes FAILED
    /// with decision [`ABANDONED`] and its lease is freed, in one write (the [`RunLedger`]: only
    /// over the same attempt's RUNNING record, so a redelivery that took the run over meanwhile
    /// wins). `abandon_after_secs` must cover every redelivery the queue can still make after a
    /// dead attempt (the template: `maxReceiveCount` x the visibility timeout): until then a
    /// redelivery takes the run over and runs it.
    ///
    /// Why this exists: when the request's last delivery (the DLQ's `maxReceiveCount`) is the
    /// one whose attempt crashes or times out after the RUNNING write, nothing else would ever
    /// end the record, and its lease would block the (pipeline, ticker) until it expires.
    pub async fn sweep(
        &self,
        abandon_after_secs: i64,
        limit: usize,
    ) -> Result<SweepReport, StoreError> {
        let now = self.clock.now();
        let cutoff = now.saturating_sub(abandon_after_secs.max(0));
        let ids = self.executions.overdue(cutoff, limit).await?;
        let mut report = SweepReport {
            found: ids.len(),
            ..SweepReport::default()
        };
        for id in ids {
            match self.abandon(&id, now, cutoff).await {
                Ok(Some(record)) => report.abandoned.push(record),
                Ok(None) => report.left += 1,
                Err(e) => report.errors.push((id, error_chain(&e))),
            }
        }
        Ok(report)
    }

    /// Ends one overdue run as [`ABANDONED`]; `None` when it is no longer an overdue RUNNING
    /// record (taken over, finished, or released meanwhile).
    async fn abandon(
        &self,
        execution_id: &str,
        now: i64,
        cutoff: i64,
    ) -> Result<Option<ExecutionRecord>, StoreError> {
        let Some(mut record) = self.executions.get_execution(execution_id).await? else {
            return Ok(None);
        };
        let until = match (record.status, record.in_progress_until) {
            (ExecutionStatus::Running, Some(until)) if until < cutoff => until,
            _ => return Ok(None),
        };
        let reason = format!(
            "attempt {} stopped without a result (its invocation crashed or timed out) and no \
             delivery of the request was left to finish it; it was in progress until {until}",
            record.attempts
        );
        record.decision = Some(ABANDONED.into());
        if let Err(e) = record.finish(ExecutionStatus::Failed, now, Some(reason)) {
            return Err(StoreError::Corrupt {
                entity: "execution",
                key: execution_id.to_owned(),
                reason: e.to_string(),
            });
        }
        let mut release_lease = true;
        for _ in 0..2 {
            let end = RunEnd {
                record: &record,
                order: None,
                release_lease,
            };
            match self.ledger.end_run(&end).await? {
                RunEndOutcome::Written => return Ok(Some(record)),
                RunEndOutcome::LeaseNotOurs => release_lease = false,
                RunEndOutcome::TakenOver | RunEndOutcome::OrderExists => return Ok(None),
            }
        }
        Ok(None)
    }

    fn is_last_delivery(&self, message: &InboundMessage) -> bool {
        matches!(
            (message.receive_count, self.max_deliveries),
            (Some(n), Some(max)) if n >= max
        )
    }

    /// The last delivery before the DLQ failed like the others. Failing the message again would
    /// leave the run PENDING in the DLQ and the lease the dispatcher claimed for it blocking the
    /// (pipeline, ticker) with nothing running. Instead the run ends FAILED with the reason (or
    /// COMPLETED, if an earlier attempt placed its order) and frees the lease. What cannot be
    /// recorded (the executions or orders table is down too, or a live attempt holds the run)
    /// stays a failure and goes to the DLQ as before.
    async fn give_up(
        &self,
        request: &ExecutionRequest,
        deadline: Deadline,
        message: &InboundMessage,
        label: &'static str,
        reason: String,
    ) -> Outcome {
        let time = AttemptTime::new(self.clock.now_ms(), deadline, DEFAULT_MAX_RUNTIME_SECS);
        let attempt = match self
            .executions
            .begin(request, time.now, time.in_progress_until)
            .await
        {
            Ok(BeginOutcome::Started { attempt }) => attempt,
            Ok(BeginOutcome::AlreadyFinished(status)) => {
                if let Err(e) = self.release_lease(request).await {
                    return retry("lease_store", error_chain(&e));
                }
                return Outcome::Duplicate(status);
            }
            Ok(BeginOutcome::InProgress { .. }) | Err(_) => return retry(label, reason),
        };
        let mut record =
            ExecutionRecord::started(request, time.now, attempt, time.in_progress_until);
        let order_id = crate::ids::order_id(&request.execution_id);
        let status = match self.steps.orders().get(&order_id).await {
            Ok(Some(order)) => {
                record.order_id = Some(order.order_id);
                record.decision = Some("order_placed".into());
                ExecutionStatus::Completed
            }
            Ok(None) => {
                record.decision = Some(DECISION_RETRIES_EXHAUSTED.into());
                ExecutionStatus::Failed
            }
            Err(_) => {
                self.release_execution(request, attempt).await;
                return retry(label, reason);
            }
        };
        let deliveries = message.receive_count.unwrap_or_default();
        let max = self.max_deliveries.unwrap_or_default();
        record.error = Some(match status {
            ExecutionStatus::Completed => format!(
                "an earlier attempt placed the order; delivery {deliveries} of {max} failed: \
                 {label}: {reason}"
            ),
            _ => format!("gave up on delivery {deliveries} of {max}: {label}: {reason}"),
        });
        tracing::warn!(
            execution_id = %request.execution_id,
            deliveries,
            label,
            reason = %reason,
            "last delivery before the DLQ failed: run recorded {} and lease freed",
            status.as_str()
        );
        self.finish(request, record, status, None, true).await
    }

    /// Another live execution holds the lease: this run must not start. If an earlier attempt of
    /// this execution got as far as placing its order, the run is recorded COMPLETED with that
    /// order; else SKIPPED with the holder named. Nothing is released (the lease is not ours).
    async fn lease_lost(
        &self,
        request: &ExecutionRequest,
        mut record: ExecutionRecord,
        attempt: u32,
        holder: &str,
        expires_at: i64,
    ) -> Outcome {
        let order_id = crate::ids::order_id(&request.execution_id);
        let status = match self.steps.orders().get(&order_id).await {
            Ok(Some(order)) => {
                record.order_id = Some(order.order_id);
                record.decision = Some("order_placed".into());
                record.error = Some(format!(
                    "lease taken by execution {holder} after an earlier attempt placed the order"
                ));
                ExecutionStatus::Completed
            }
            Ok(None) => {
                record.decision = Some(DECISION_LEASE_LOST.into());
                record.error = Some(format!(
                    "lease held by execution {holder} until {expires_at}: not run"
                ));
                ExecutionStatus::Skipped
            }
            Err(e) => {
                self.release_execution(request, attempt).await;
                return retry("order_store", error_chain(&e));
            }
        };
        self.finish(request, record, status, None, false).await
    }

    /// Ends the run in one write (the [`RunLedger`]): the final record, the run's paper order
    /// (`order`), and, when `release_lease`, the lease freed if still ours. A condition that
    /// cancels the write is dealt with and the write tried again: an order an earlier attempt
    /// placed is read back and recorded instead; a lease no longer ours is left alone.
    async fn finish(
        &self,
        request: &ExecutionRequest,
        mut record: ExecutionRecord,
        status: ExecutionStatus,
        mut order: Option<crate::order::PaperOrder>,
        mut release_lease: bool,
    ) -> Outcome {
        let attempt = record.attempts;
        let error = record.error.take().map(bounded_text);
        if let Err(e) = record.finish(status, self.clock.now(), error) {
            return Outcome::Rejected {
                reason: e.to_string(),
            };
        }
        // At most one retry per condition that can cancel it.
        for _ in 0..3 {
            let end = RunEnd {
                record: &record,
                order: order.as_ref(),
                release_lease,
            };
            let ended = self.ledger.end_run(&end).await;
            if let Ok(outcome) = &ended
                && *outcome != RunEndOutcome::Written
            {
                tracing::debug!(execution_id = %record.execution_id, attempt, ?outcome, "the run's end was refused");
            }
            match ended {
                Ok(RunEndOutcome::Written) => return Outcome::Finished(Box::new(record)),
                Ok(RunEndOutcome::TakenOver) => {
                    tracing::warn!(execution_id = %record.execution_id, attempt, "another worker took over this execution; result not written");
                    return Outcome::InProgressElsewhere;
                }
                Ok(RunEndOutcome::OrderExists) => {
                    // An earlier attempt placed it (maybe from other prices): record that one.
                    let order_id = crate::ids::order_id(&request.execution_id);
                    match self.steps.orders().get(&order_id).await {
                        Ok(Some(stored)) => {
                            describe_earlier_order(&mut record, &stored);
                            record.order_id = Some(stored.order_id);
                            record.decision = Some("order_placed".into());
                            order = None;
                        }
                        Ok(None) => {
                            self.release_execution(request, attempt).await;
                            return retry(
                                "order_store",
                                format!("paper order {order_id} exists but could not be read back"),
                            );
                        }
                        Err(e) => {
                            self.release_execution(request, attempt).await;
                            return retry("order_store", error_chain(&e));
                        }
                    }
                }
                Ok(RunEndOutcome::LeaseNotOurs) => release_lease = false,
                Err(e) if e.is_retryable() => {
                    self.release_execution(request, attempt).await;
                    return retry("execution_store", error_chain(&e));
                }
                Err(e) => return self.end_failed(request, &record, &e, release_lease).await,
            }
        }
        self.release_execution(request, attempt).await;
        retry(
            "execution_store",
            "the run's end was refused three times by changing conditions".into(),
        )
    }

    /// The run's end could not be written (a permanent store error, e.g. a record over the item
    /// size limit): a minimal FAILED record naming the error (no order: none was written), then
    /// the lease freed on its own.
    async fn end_failed(
        &self,
        request: &ExecutionRequest,
        record: &ExecutionRecord,
        cause: &StoreError,
        release_lease: bool,
    ) -> Outcome {
        let record = match self.finish_failed(record, cause).await {
            Ok(Some(failed)) => failed,
            Ok(None) => return Outcome::InProgressElsewhere,
            Err(reason) => return Outcome::Rejected { reason },
        };
        if release_lease && let Err(e) = self.release_lease(request).await {
            return Outcome::FinishedLeaseHeld {
                record: Box::new(record),
                reason: format!("releasing the lease: {}", error_chain(&e)),
            };
        }
        Outcome::Finished(Box::new(record))
    }

    /// The result could not be written (a permanent store error): one try to write a minimal
    /// FAILED record naming the error (no step outputs). `Ok(None)`: another attempt took over.
    /// `Err`: that failed too; the reason for the DLQ.
    async fn finish_failed(
        &self,
        record: &ExecutionRecord,
        cause: &StoreError,
    ) -> Result<Option<ExecutionRecord>, String> {
        let mut failed = record.clone();
        failed.status = ExecutionStatus::Failed;
        failed.steps.clear();
        failed.order_id = None;
        failed.decision = None;
        failed.error = Some(bounded_text(format!(
            "the result could not be recorded: {}",
            error_chain(cause)
        )));
        match self.executions.finish(&failed).await {
            Ok(true) => Ok(Some(failed)),
            Ok(false) => Ok(None),
            Err(e) => Err(format!(
                "the result could not be recorded: {}; nor a FAILED record: {}",
                error_chain(cause),
                error_chain(&e)
            )),
        }
    }

    /// Frees the (pipeline, ticker) lease if this execution holds it. A failure is the caller's
    /// to report: the message must come back, or the pair looks held with nothing running.
    async fn release_lease(&self, request: &ExecutionRequest) -> Result<(), StoreError> {
        self.leases
            .release(&request.pipeline_id, &request.ticker, &request.execution_id)
            .await
    }

    /// Puts this attempt's RUNNING record back to PENDING for the redelivery. A failure is only
    /// logged: the redelivery takes over after the in-progress expiry.
    async fn release_execution(&self, request: &ExecutionRequest, attempt: u32) {
        if let Err(e) = self
            .executions
            .release(&request.execution_id, attempt)
            .await
        {
            tracing::warn!(execution_id = %request.execution_id, error = %error_chain(&e), "could not release execution for retry");
        }
    }

    /// Runs the steps within the attempt's time; `Err` is a transient failure of one of them.
    async fn run_steps(
        &self,
        request: &ExecutionRequest,
        pipeline: Pipeline,
        time: AttemptTime,
        record: &mut ExecutionRecord,
        trace: Option<&TraceContext>,
    ) -> Result<(ExecutionStatus, Option<crate::order::PaperOrder>), StepTransient> {
        let kinds = pipeline.steps.clone();
        let mut ctx = StepContext {
            request: request.clone(),
            pipeline,
            now: time.now,
            bars: Vec::new(),
            bias: None,
            plan: None,
            quantity: None,
            order: None,
        };
        let mut stopped: Option<(StepStatus, String)> = None;
        let mut status = ExecutionStatus::Completed;
        for kind in kinds {
            let span = self.tracer.step(trace, kind.as_str());
            if let Some((_, why)) = &stopped {
                if let Some(span) = span {
                    span.end(status_label(StepStatus::Skipped), None);
                }
                record.steps.push(StepResult {
                    step: kind.as_str().into(),
                    status: StepStatus::Skipped,
                    duration_ms: 0.0,
                    summary: why.clone(),
                    outputs: Default::default(),
                });
                continue;
            }
            let Some(step) = self.steps.get(kind) else {
                let error = format!("no implementation for step {}", kind.as_str());
                if let Some(span) = span {
                    span.end(status_label(StepStatus::Failed), Some(&error));
                }
                record.error = Some(error);
                status = ExecutionStatus::Failed;
                stopped = Some((StepStatus::Failed, "an earlier step failed".into()));
                continue;
            };
            let started = Instant::now();
            let left_ms = time.run_until_ms.saturating_sub(self.clock.now_ms()).max(0);
            let remaining = Duration::from_millis(u64::try_from(left_ms).unwrap_or(0));
            let result = match tokio::time::timeout(remaining, step.run(&mut ctx)).await {
                Ok(r) => r,
                // The invocation's deadline is no fault of the run: another invocation has time.
                Err(_) if time.cut_by_deadline => Err(StepError::Transient(
                    "the invocation's deadline came before the step finished".into(),
                )),
                Err(_) => Err(StepError::Permanent(format!(
                    "max runtime of {} s exceeded",
                    time.max_runtime
                ))),
            };
            let duration_ms = started.elapsed().as_secs_f64() * 1000.0;
            if let Some(span) = span {
                match &result {
                    Ok(_) => span.end(status_label(StepStatus::Completed), None),
                    Err(StepError::Transient(reason)) => span.end("RETRY", Some(reason)),
                    Err(StepError::Permanent(reason)) => {
                        span.end(status_label(StepStatus::Failed), Some(reason));
                    }
                }
            }
            match result {
                Ok(out) => {
                    if let StepFlow::Stop(label) = out.flow {
                        record.decision = Some(label.into());
                        stopped = Some((StepStatus::Skipped, format!("not run: {label}")));
                    }
                    record.steps.push(StepResult {
                        step: kind.as_str().into(),
                        status: StepStatus::Completed,
                        duration_ms,
                        summary: bounded_text(out.summary),
                        outputs: out.outputs.into_iter().take(MAX_STEP_OUTPUTS).collect(),
                    });
                }
                Err(StepError::Transient(reason)) => {
                    return Err(StepTransient {
                        step: kind.as_str(),
                        reason,
                    });
                }
                Err(StepError::Permanent(reason)) => {
                    record.steps.push(StepResult {
                        step: kind.as_str().into(),
                        status: StepStatus::Failed,
                        duration_ms,
                        summary: bounded_text(reason.clone()),
                        outputs: Default::default(),
                    });
                    record.error = Some(format!("step {} failed: {reason}", kind.as_str()));
                    status = ExecutionStatus::Failed;
                    stopped = Some((StepStatus::Failed, "not run: an earlier step failed".into()));
                }
            }
        }
        // The order is written with the run's end, and only by a run that completed.
        let order = ctx
            .order
            .take()
            .filter(|_| status == ExecutionStatus::Completed);
        if let Some(order) = &order {
            record.order_id = Some(order.order_id.clone());
            record.decision = Some("order_placed".into());
        } else if record.decision.is_none() && status == ExecutionStatus::Completed {
            record.decision = Some("no_order_step".into());
        }
        Ok((status, order))
    }
}

/// A step status as the execution record spells it (`COMPLETED`, `FAILED`, `SKIPPED`).
fn status_label(status: StepStatus) -> &'static str {
    match status {
        StepStatus::Completed => "COMPLETED",
        StepStatus::Failed => "FAILED",
        StepStatus::Skipped => "SKIPPED",
    }
}

/// A step failed transiently (market data or a store unavailable): the run is put back to
/// PENDING and the message retried. `reason` is the step's own reason, which already renders the
/// port error's chain (see [`StepError`]).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("step {step}: {reason}")]
pub struct StepTransient {
    pub step: &'static str,
    pub reason: String,
}

impl StepTransient {
    pub fn is_retryable(&self) -> bool {
        true
    }
}

/// The paper-order step's result describes the order that exists (an earlier attempt's, maybe
/// from other prices), not the one this attempt prepared.
fn describe_earlier_order(record: &mut ExecutionRecord, stored: &crate::order::PaperOrder) {
    let step_name = crate::pipeline::StepKind::PaperOrder.as_str();
    if let Some(step) = record.steps.iter_mut().find(|s| s.step == step_name) {
        step.summary = format!(
            "paper order {} already placed by an earlier attempt",
            stored.order_id
        );
        step.outputs = [
            ("quantity", stored.quantity as f64),
            ("entry_price", stored.entry_price),
            ("stop_price", stored.stop_price),
            ("target_price", stored.target_price),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
    }
}

fn retry(label: &'static str, reason: String) -> Outcome {
    Outcome::Retry { label, reason }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::fakes::*;
    use crate::market::SyntheticFeed;
    use crate::pipeline::Pipeline;
    use crate::ports::{ExecutionStore, Lease, OrderStore, PipelineStore};
    use crate::vocab::{Direction, Timeframe};
    use serde_json::json;

    const NOW: i64 = 1_750_000_000;

    struct World {
        pipelines: Arc<MemoryPipelineStore>,
        executions: Arc<MemoryExecutionStore>,
        leases: Arc<MemoryLeaseStore>,
        orders: Arc<MemoryOrderStore>,
        market: Arc<FlakyMarket<SyntheticFeed>>,
        clock: Arc<ManualClock>,
        executor: Executor,
    }

    fn pipeline(id: &str, active: bool) -> Pipeline {
        let mut pipeline = fixtures::pipeline(id, "u1", &["AAPL"], json!([]));
        pipeline.is_active = active;
        pipeline
    }

    fn world() -> World {
        let pipelines = Arc::new(MemoryPipelineStore::with([
            pipeline("p1", true),
            pipeline("off", false),
        ]));
        let executions = Arc::new(MemoryExecutionStore::default());
        let leases = Arc::new(MemoryLeaseStore::default());
        let orders = Arc::new(MemoryOrderStore::default());
        let market = Arc::new(FlakyMarket::new(SyntheticFeed { seed: 7 }));
        let clock = Arc::new(ManualClock::at(NOW));
        let executor = Executor::new(
            pipelines.clone(),
            executions.clone(),
            leases.clone(),
            Arc::new(MemoryRunLedger::new(
                executions.clone(),
                orders.clone(),
                leases.clone(),
            )),
            BuiltinSteps::new(market.clone(), orders.clone(), Timeframe::M5),
            clock.clone(),
        );
        World {
            pipelines,
            executions,
            leases,
            orders,
            market,
            clock,
            executor,
        }
    }

    fn request(pipeline_id: &str, signal: Direction) -> ExecutionRequest {
        let signal_id = format!("sig-{pipeline_id}-{signal:?}");
        let mut request = fixtures::request(pipeline_id, &signal_id, NOW - 60);
        request.signal_context.signal = signal;
        request.signal_context.metadata.timeframe = Some(Timeframe::M5);
        request.lease_expires_at = NOW + 720;
        request.enqueued_at_ms = NOW * 1000 - 250;
        request
    }

    fn message(req: &ExecutionRequest) -> InboundMessage {
        InboundMessage {
            message_id: format!("m-{}", req.execution_id),
            body: req.to_json(),
            sent_at_ms: None,
            receive_count: None,
            trace: None,
        }
    }

    fn finished(r: &MessageReport) -> &ExecutionRecord {
        match &r.outcome {
            Outcome::Finished(rec) => rec,
            other => panic!("expected a finished run, got {other:?}"),
        }
    }

    /// Issue 8, the 10,000-signal soak's stuck runs: the request's last delivery started its
    /// attempt (RUNNING) and that attempt died, so nothing ever ended the record and its lease
    /// blocked the pair. The sweep ends it FAILED `abandoned` and frees the lease, once the
    /// queue cannot redeliver it any more; a run still in its window, or within the grace, is
    /// left alone; a redelivery that took the run over wins.
    #[tokio::test]
    async fn the_sweep_ends_runs_whose_last_attempt_died_and_frees_their_leases() {
        let w = world();
        let grace = 3_600;
        let start = |pipeline: &str, signal: Direction, until: i64| {
            let req = request(pipeline, signal);
            let lease = Lease {
                pipeline_id: req.pipeline_id.clone(),
                ticker: req.ticker.clone(),
                execution_id: req.execution_id.clone(),
                expires_at: until,
            };
            (req, lease)
        };
        // Died an hour and a minute ago: abandoned.
        let (dead, dead_lease) = start("p1", Direction::Bullish, NOW - grace - 60);
        w.executions
            .begin(&dead, NOW - grace - 180, NOW - grace - 60)
            .await
            .unwrap();
        w.leases.insert(dead_lease, true);
        // Died ten minutes ago: a redelivery may still come and run it.
        let (recent, _) = start("p1", Direction::Bearish, NOW - 600);
        w.executions
            .begin(&recent, NOW - 720, NOW - 600)
            .await
            .unwrap();
        // Running now.
        let (live, _) = start("off", Direction::Bullish, NOW + 100);
        w.executions
            .begin(&live, NOW - 20, NOW + 100)
            .await
            .unwrap();

        let report = w.executor.sweep(grace, 100).await.unwrap();
        assert_eq!((report.found, report.left), (1, 0), "{report:?}");
        assert!(report.errors.is_empty());
        let rec = w
            .executions
            .get_execution(&dead.execution_id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(rec.status, ExecutionStatus::Failed);
        assert_eq!(rec.decision.as_deref(), Some(ABANDONED));
        assert_eq!(rec.completed_at, Some(NOW));
        assert_eq!(rec.in_progress_until, None);
        assert!(
            rec.error.as_deref().unwrap_or("").contains("attempt 1"),
            "{:?}",
            rec.error
        );
        assert_eq!(report.abandoned, vec![rec]);
        assert!(
            w.leases.get("p1", &dead.ticker).is_none(),
            "the lease is freed"
        );
        for r in [&recent, &live] {
            let rec = w
                .executions
                .get_execution(&r.execution_id)
                .await
                .unwrap()
                .unwrap();
            assert_eq!(rec.status, ExecutionStatus::Running, "{}", r.execution_id);
        }
        // Nothing left to do: a second sweep finds nothing.
        let again = w.executor.sweep(grace, 100).await.unwrap();
        assert_eq!((again.found, again.abandoned.len()), (0, 0));

        // A redelivery takes the recent one over before the sweep reaches it: the sweep's write
        // is refused (another attempt's RUNNING record) and the run goes on.
        w.clock.advance(grace);
        let list = w.executions.overdue(NOW, 100).await.unwrap();
        assert_eq!(list, vec![recent.execution_id.clone()]);
        w.executions
            .begin(&recent, NOW + grace, NOW + grace + 120)
            .await
            .unwrap();
        let report = w.executor.sweep(0, 100).await.unwrap();
        let ids: Vec<&str> = report
            .abandoned
            .iter()
            .map(|r| r.execution_id.as_str())
            .collect();
        assert_eq!(ids, vec![live.execution_id.as_str()], "{report:?}");
        let rec = w
            .executions
            .get_execution(&recent.execution_id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!((rec.status, rec.attempts), (ExecutionStatus::Running, 2));
    }

    /// A sweep whose store fails reports it; one whose end write fails for one run reports that
    /// run and goes on.
    #[tokio::test]
    async fn the_sweep_reports_store_failures() {
        let w = world();
        w.executions.failures.fail_next(1);
        assert!(w.executor.sweep(0, 10).await.is_err());
    }

    /// Each step runs in a span under the message's trace context, ended with the step's
    /// status; a transient failure ends its step's span as an error and opens no more.
    #[tokio::test]
    async fn each_step_gets_a_span_under_the_message_context() {
        let World {
            executor,
            leases,
            market,
            ..
        } = world();
        let tracer = Arc::new(RecordingTracer::default());
        let executor = executor.with_tracer(tracer.clone());
        let req = request("p1", Direction::Bullish);
        leases.insert(
            Lease {
                pipeline_id: "p1".into(),
                ticker: req.ticker.clone(),
                execution_id: req.execution_id.clone(),
                expires_at: NOW + 720,
            },
            true,
        );
        let parent = TraceContext {
            traceparent: "execute-span".into(),
            tracestate: None,
        };
        market.failures.fail_next(1);
        let traced = InboundMessage {
            trace: Some(parent.clone()),
            ..message(&req)
        };
        let r = executor.execute(&traced, Deadline::none()).await;
        assert!(matches!(r.outcome, Outcome::Retry { .. }), "{r:?}");
        let r = executor.execute(&traced, Deadline::none()).await;
        assert_eq!(finished(&r).status, ExecutionStatus::Completed);
        let spans: Vec<(String, Option<String>, String, bool)> = tracer
            .spans()
            .into_iter()
            .map(|s| {
                let (status, error) = s.end.unwrap();
                (s.name, s.parent, status, error.is_some())
            })
            .collect();
        let step = |name: &str, status: &str, error: bool| {
            (
                format!("step {name}"),
                Some("execute-span".to_owned()),
                status.to_owned(),
                error,
            )
        };
        assert_eq!(
            spans,
            vec![
                step("market_snapshot", "RETRY", true),
                step("market_snapshot", "COMPLETED", false),
                step("bias", "COMPLETED", false),
                step("strategy", "COMPLETED", false),
                step("risk", "COMPLETED", false),
                step("paper_order", "COMPLETED", false),
            ]
        );
    }

    #[tokio::test]
    async fn runs_every_step_records_them_and_places_one_paper_order() {
        let w = world();
        let req = request("p1", Direction::Bullish);
        w.leases.insert(
            Lease {
                pipeline_id: "p1".into(),
                ticker: req.ticker.clone(),
                execution_id: req.execution_id.clone(),
                expires_at: NOW + 720,
            },
            true,
        );
        let r = w.executor.execute(&message(&req), Deadline::none()).await;
        assert!(!r.failed());
        assert_eq!(r.lag_ms, Some(250));
        let rec = finished(&r);
        assert_eq!(rec.status, ExecutionStatus::Completed);
        assert_eq!(rec.attempts, 1);
        let steps: Vec<_> = rec
            .steps
            .iter()
            .map(|s| (s.step.as_str(), s.status))
            .collect();
        assert_eq!(
            steps,
            vec![
                ("market_snapshot", StepStatus::Completed),
                ("bias", StepStatus::Completed),
                ("strategy", StepStatus::Completed),
                ("risk", StepStatus::Completed),
                ("paper_order", StepStatus::Completed),
            ]
        );
        let orders = w.orders.all();
        assert_eq!(orders.len(), 1);
        let o = &orders[0];
        assert_eq!(rec.order_id.as_deref(), Some(o.order_id.as_str()));
        assert_eq!(rec.decision.as_deref(), Some("order_placed"));
        assert_eq!(o.side, crate::order::OrderSide::Buy);
        assert!(o.stop_price < o.entry_price && o.entry_price < o.target_price);
        // Risk limits: at most 1 % of 100k between entry and stop, at most 20 % notional.
        assert!(o.quantity as f64 * (o.entry_price - o.stop_price) <= 1_000.0 + 1e-6);
        assert!(o.quantity as f64 * o.entry_price <= 20_000.0 + 1e-6);
        // Stored, with its signal context, and the lease is released.
        let stored = w
            .executions
            .get_execution(&req.execution_id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&stored, rec);
        assert_eq!(
            stored.signal_context.signal_id,
            req.signal_context.signal_id
        );
        assert!(w.leases.get("p1", &req.ticker).is_none());
    }

    #[tokio::test]
    async fn a_redelivered_request_never_runs_twice() {
        let w = world();
        let req = request("p1", Direction::Bearish);
        let first = w.executor.execute(&message(&req), Deadline::none()).await;
        assert_eq!(finished(&first).status, ExecutionStatus::Completed);
        let second = w.executor.execute(&message(&req), Deadline::none()).await;
        assert_eq!(
            second.outcome,
            Outcome::Duplicate(ExecutionStatus::Completed)
        );
        assert!(!second.failed());
        assert_eq!(w.orders.all().len(), 1);
        assert_eq!(w.orders.all()[0].side, crate::order::OrderSide::Sell);
    }

    #[tokio::test]
    async fn a_run_in_progress_elsewhere_is_left_alone_until_its_expiry() {
        let w = world();
        let req = request("p1", Direction::Bullish);
        w.executions.begin(&req, NOW - 10, NOW + 100).await.unwrap();
        let r = w.executor.execute(&message(&req), Deadline::none()).await;
        // Issue 8, fault 1: retried (it comes back), no longer acknowledged as running elsewhere.
        assert!(matches!(
            r.outcome,
            Outcome::Retry {
                label: "in_progress",
                ..
            }
        ));
        assert!(w.orders.all().is_empty());
        // The other worker crashed: after its in-progress window another delivery takes over.
        w.clock.set(NOW + 101);
        let r = w.executor.execute(&message(&req), Deadline::none()).await;
        let rec = finished(&r);
        assert_eq!((rec.status, rec.attempts), (ExecutionStatus::Completed, 2));
        assert_eq!(w.orders.all().len(), 1);
    }

    #[tokio::test]
    async fn a_transient_failure_releases_the_run_for_a_retry() {
        let w = world();
        let req = request("p1", Direction::Bullish);
        w.market.failures.fail_next(1);
        let r = w.executor.execute(&message(&req), Deadline::none()).await;
        assert!(r.failed());
        assert!(matches!(
            r.outcome,
            Outcome::Retry {
                label: "step_transient",
                ..
            }
        ));
        let stored = w
            .executions
            .get_execution(&req.execution_id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(stored.status, ExecutionStatus::Pending);
        let r = w.executor.execute(&message(&req), Deadline::none()).await;
        let rec = finished(&r);
        assert_eq!((rec.status, rec.attempts), (ExecutionStatus::Completed, 2));
    }

    #[tokio::test]
    async fn store_outages_fail_the_message_without_running() {
        let w = world();
        let req = request("p1", Direction::Bullish);
        w.pipelines.failures.fail_next(1);
        assert!(matches!(
            w.executor
                .execute(&message(&req), Deadline::none())
                .await
                .outcome,
            Outcome::Retry {
                label: "pipeline_store",
                ..
            }
        ));
        w.executions.failures.fail_next(1);
        assert!(matches!(
            w.executor
                .execute(&message(&req), Deadline::none())
                .await
                .outcome,
            Outcome::Retry {
                label: "execution_store",
                ..
            }
        ));
        assert!(w.orders.all().is_empty());
    }

    /// With the pipeline cache, runs of one pipeline read it once per TTL (one AWS request
    /// fewer per run); an edit (here: deactivation) reaches the runs once the TTL has passed.
    #[tokio::test]
    async fn the_pipeline_is_read_once_per_cache_ttl() {
        let mut w = world();
        w.executor = w.executor.with_pipeline_cache(Duration::from_secs(30));
        let first = request("p1", Direction::Bullish);
        let r = w.executor.execute(&message(&first), Deadline::none()).await;
        assert_eq!(finished(&r).status, ExecutionStatus::Completed);
        // Deactivated in the table; within the TTL the cached copy still runs.
        w.pipelines
            .put_pipeline(&pipeline("p1", false))
            .await
            .unwrap();
        w.pipelines.failures.fail_next(1);
        w.clock.advance(29);
        let second = request("p1", Direction::Bearish);
        let r = w
            .executor
            .execute(&message(&second), Deadline::none())
            .await;
        assert_eq!(
            finished(&r).status,
            ExecutionStatus::Completed,
            "cached, no read"
        );
        w.pipelines.failures.fail_next(0);
        w.clock.advance(1);
        let mut third = request("p1", Direction::Neutral);
        third.lease_expires_at = NOW + 30 + 720;
        let r = w.executor.execute(&message(&third), Deadline::none()).await;
        let rec = finished(&r);
        assert_eq!(rec.status, ExecutionStatus::Skipped);
        assert_eq!(rec.decision.as_deref(), Some("pipeline_inactive"));
    }

    /// A pipelines table whose reads take 100 ms.
    struct SlowPipelines(Arc<MemoryPipelineStore>);

    #[async_trait::async_trait]
    impl PipelineStore for SlowPipelines {
        async fn load_signal_pipelines(&self) -> Result<Vec<Pipeline>, StoreError> {
            self.0.load_signal_pipelines().await
        }
        async fn changed_since(
            &self,
            since_ms: i64,
        ) -> Result<Vec<crate::ports::PipelineChange>, StoreError> {
            self.0.changed_since(since_ms).await
        }
        async fn get_pipeline(&self, id: &str) -> Result<Option<Pipeline>, StoreError> {
            tokio::time::sleep(Duration::from_millis(100)).await;
            self.0.get_pipeline(id).await
        }
        async fn put_pipeline(&self, p: &Pipeline) -> Result<(), StoreError> {
            self.0.put_pipeline(p).await
        }
    }

    /// Issue 9: the runs of a batch go on at once (each is I/O), so a batch of 10 takes about
    /// as long as one run, not ten; the reports stay in message order.
    #[tokio::test(start_paused = true)]
    async fn the_runs_of_a_batch_go_on_at_once() {
        let w = world();
        let executor = Executor::new(
            Arc::new(SlowPipelines(w.pipelines.clone())),
            w.executions.clone(),
            w.leases.clone(),
            Arc::new(MemoryRunLedger::new(
                w.executions.clone(),
                w.orders.clone(),
                w.leases.clone(),
            )),
            BuiltinSteps::new(w.market.clone(), w.orders.clone(), Timeframe::M5),
            w.clock.clone(),
        );
        let messages: Vec<InboundMessage> = (0..10)
            .map(|i| {
                // Ten (pipeline, ticker) pairs, as the dispatcher fans a batch out.
                let mut req = request("p1", Direction::Bullish);
                let ticker = format!("T{i}");
                req.ticker = crate::vocab::Ticker::parse(&ticker).unwrap();
                req.signal_context.signal_id = format!("sig-{i}");
                req.execution_id = crate::ids::execution_id("p1", &ticker, &format!("sig-{i}"));
                message(&req)
            })
            .collect();
        let started = tokio::time::Instant::now();
        let reports = executor.execute_batch(&messages, Deadline::none()).await;
        let took = started.elapsed();
        assert_eq!(
            reports
                .iter()
                .map(|r| r.message_id.as_str())
                .collect::<Vec<_>>(),
            messages
                .iter()
                .map(|m| m.message_id.as_str())
                .collect::<Vec<_>>()
        );
        assert!(reports.iter().all(|r| !r.failed()), "{reports:?}");
        assert!(
            took < Duration::from_millis(300),
            "{took:?}: one after the other"
        );
        let one_by_one = executor.with_batch_concurrency(1);
        let started = tokio::time::Instant::now();
        one_by_one.execute_batch(&messages, Deadline::none()).await;
        assert!(started.elapsed() >= Duration::from_millis(1_000));
    }

    #[tokio::test]
    async fn inactive_or_missing_pipelines_are_skipped() {
        let w = world();
        for (id, decision) in [("off", "pipeline_inactive"), ("gone", "pipeline_missing")] {
            let req = request(id, Direction::Bullish);
            let r = w.executor.execute(&message(&req), Deadline::none()).await;
            let rec = finished(&r);
            assert_eq!(rec.status, ExecutionStatus::Skipped);
            assert_eq!(rec.decision.as_deref(), Some(decision));
        }
        assert!(w.orders.all().is_empty());
    }

    #[tokio::test]
    async fn a_neutral_signal_completes_without_an_order() {
        let w = world();
        let r = w
            .executor
            .execute(
                &message(&request("p1", Direction::Neutral)),
                Deadline::none(),
            )
            .await;
        let rec = finished(&r);
        assert_eq!(rec.status, ExecutionStatus::Completed);
        assert_eq!(rec.decision.as_deref(), Some("no_trade_neutral_signal"));
        let statuses: Vec<_> = rec.steps.iter().map(|s| s.status).collect();
        assert_eq!(
            statuses,
            vec![
                StepStatus::Completed,
                StepStatus::Completed,
                StepStatus::Completed,
                StepStatus::Skipped,
                StepStatus::Skipped
            ]
        );
    }

    #[tokio::test]
    async fn missing_market_data_fails_the_execution() {
        let w = world();
        let mut req = request("p1", Direction::Bullish);
        // Before the synthetic feed's start of time there are no candles.
        req.signal_context.timestamp = 1_000;
        let r = w.executor.execute(&message(&req), Deadline::none()).await;
        let rec = finished(&r);
        assert_eq!(rec.status, ExecutionStatus::Failed);
        assert!(rec.error.as_deref().unwrap().contains("market_snapshot"));
        assert_eq!(rec.steps[0].status, StepStatus::Failed);
        assert!(
            rec.steps[1..]
                .iter()
                .all(|s| s.status == StepStatus::Skipped)
        );
    }

    #[tokio::test]
    async fn a_malformed_request_is_rejected() {
        let w = world();
        let r = w
            .executor
            .execute(
                &InboundMessage {
                    message_id: "bad".into(),
                    body: "{}".into(),
                    sent_at_ms: None,
                    receive_count: None,
                    trace: None,
                },
                Deadline::none(),
            )
            .await;
        assert!(r.failed());
        assert!(matches!(r.outcome, Outcome::Rejected { .. }));
        let _ = &w.pipelines;
    }

    // ---- issue 8: the run lifecycle (lease and in-progress expiry) ----

    async fn stored(w: &World, req: &ExecutionRequest) -> ExecutionRecord {
        w.executions
            .get_execution(&req.execution_id)
            .await
            .unwrap()
            .unwrap()
    }

    fn lease_of(req: &ExecutionRequest, execution_id: &str, expires_at: i64) -> Lease {
        Lease {
            pipeline_id: req.pipeline_id.clone(),
            ticker: req.ticker.clone(),
            execution_id: execution_id.into(),
            expires_at,
        }
    }

    /// Fault 1: a redelivery that finds the run in progress must come back (batch item failure),
    /// not be acknowledged and lost.
    #[tokio::test]
    async fn a_redelivery_that_finds_the_run_in_progress_comes_back_later() {
        let w = world();
        let req = request("p1", Direction::Bullish);
        w.executions.begin(&req, NOW - 10, NOW + 100).await.unwrap();
        let r = w.executor.execute(&message(&req), Deadline::none()).await;
        assert!(
            matches!(
                r.outcome,
                Outcome::Retry {
                    label: "in_progress",
                    ..
                }
            ),
            "{:?}",
            r.outcome
        );
        assert!(r.failed());
        assert!(w.orders.all().is_empty());
    }

    /// Fault 1: the in-progress expiry is the invocation's deadline (plus a second of grace), so
    /// the delivery after a crash or timeout takes the run over instead of leaving it RUNNING.
    #[tokio::test]
    async fn a_dead_attempt_is_taken_over_once_its_lambda_deadline_passed() {
        let w = world();
        let req = request("p1", Direction::Bullish);
        // The function times out after 120 s: the result is never written (the store calls after
        // `begin` fail), as if Lambda had killed the attempt.
        w.executions.failures.fail_after(1, 2);
        let r = w
            .executor
            .execute(&message(&req), Deadline::at_ms((NOW + 120) * 1000))
            .await;
        assert!(r.failed());
        let rec = stored(&w, &req).await;
        assert_eq!(rec.status, ExecutionStatus::Running);
        assert_eq!(rec.in_progress_until, Some(NOW + 121));
        // The queue redelivers after its visibility timeout (longer than the function's timeout).
        w.clock.set(NOW + 130);
        let r = w
            .executor
            .execute(&message(&req), Deadline::at_ms((NOW + 250) * 1000))
            .await;
        let rec = finished(&r);
        assert_eq!((rec.status, rec.attempts), (ExecutionStatus::Completed, 2));
        assert_eq!(w.orders.all().len(), 1);
        assert!(w.leases.get("p1", &req.ticker).is_none());
    }

    /// Fault 2: a re-sent finished request re-claimed the lease at dispatch; the executor must
    /// free it (only if it is this execution's).
    #[tokio::test]
    async fn a_resent_finished_request_releases_the_lease_it_claimed_again() {
        let w = world();
        let req = request("p1", Direction::Bullish);
        let r = w.executor.execute(&message(&req), Deadline::none()).await;
        assert_eq!(finished(&r).status, ExecutionStatus::Completed);
        // The dispatcher re-sends it (redelivery after a partial failure): its claim succeeds.
        let lease = lease_of(&req, &req.execution_id, NOW + 720);
        w.leases.claim(&lease, NOW).await.unwrap();
        let r = w.executor.execute(&message(&req), Deadline::none()).await;
        assert_eq!(r.outcome, Outcome::Duplicate(ExecutionStatus::Completed));
        assert!(
            w.leases.get("p1", &req.ticker).is_none(),
            "the pair stays blocked with nothing running"
        );
        // Someone else's lease is left alone.
        w.leases.insert(lease_of(&req, "other", NOW + 720), true);
        let r = w.executor.execute(&message(&req), Deadline::none()).await;
        assert_eq!(r.outcome, Outcome::Duplicate(ExecutionStatus::Completed));
        assert_eq!(
            w.leases.get("p1", &req.ticker).unwrap().lease.execution_id,
            "other"
        );
    }

    fn delivery(req: &ExecutionRequest, receive_count: u32) -> InboundMessage {
        InboundMessage {
            receive_count: Some(receive_count),
            ..message(req)
        }
    }

    /// The soak's last "lost" signals: a request that fails on every delivery went to the DLQ
    /// PENDING, and the lease the dispatcher claimed for it kept the pair blocked with nothing
    /// running. On the last delivery the run ends FAILED with the reason and the lease is freed.
    #[tokio::test]
    async fn the_last_delivery_of_a_failing_run_ends_it_failed_and_frees_the_lease() {
        let mut w = world();
        w.executor = w.executor.with_max_deliveries(Some(5));
        let req = request("p1", Direction::Bullish);
        w.leases
            .insert(lease_of(&req, &req.execution_id, NOW + 720), true);
        // Deliveries 1-4 fail transiently and come back; the pair stays held meanwhile.
        for n in 1..=4 {
            w.market.failures.fail_next(1);
            let r = w
                .executor
                .execute(&delivery(&req, n), Deadline::none())
                .await;
            assert!(
                matches!(
                    r.outcome,
                    Outcome::Retry {
                        label: "step_transient",
                        ..
                    }
                ),
                "delivery {n}: {:?}",
                r.outcome
            );
            assert!(w.leases.get("p1", &req.ticker).is_some());
        }
        w.market.failures.fail_next(1);
        let r = w
            .executor
            .execute(&delivery(&req, 5), Deadline::none())
            .await;
        assert!(!r.failed(), "{:?}", r.outcome);
        let rec = finished(&r);
        assert_eq!(rec.status, ExecutionStatus::Failed);
        assert_eq!(rec.decision.as_deref(), Some(DECISION_RETRIES_EXHAUSTED));
        let error = rec.error.as_deref().unwrap();
        assert!(error.contains("delivery 5 of 5"), "{error}");
        assert!(error.contains("step_transient"), "{error}");
        assert_eq!(stored(&w, &req).await.status, ExecutionStatus::Failed);
        assert!(
            w.leases.get("p1", &req.ticker).is_none(),
            "the pair stays blocked"
        );
        assert!(w.orders.all().is_empty());
    }

    /// A store outage before the run started (the pipeline could not be read) on the last
    /// delivery: the run is recorded FAILED and the lease freed, as long as the executions table
    /// answers.
    #[tokio::test]
    async fn the_last_delivery_records_a_run_that_never_started() {
        let mut w = world();
        w.executor = w.executor.with_max_deliveries(Some(5));
        let req = request("p1", Direction::Bullish);
        w.leases
            .insert(lease_of(&req, &req.execution_id, NOW + 720), true);
        w.pipelines.failures.fail_next(1);
        let r = w
            .executor
            .execute(&delivery(&req, 7), Deadline::none())
            .await;
        let rec = finished(&r);
        assert_eq!(rec.status, ExecutionStatus::Failed);
        assert!(rec.error.as_deref().unwrap().contains("pipeline_store"));
        assert!(w.leases.get("p1", &req.ticker).is_none());
    }

    /// An earlier attempt placed the order before failing: the last delivery records the run
    /// COMPLETED with that order, never FAILED beside an order.
    #[tokio::test]
    async fn the_last_delivery_keeps_an_order_an_earlier_attempt_placed() {
        let mut w = world();
        w.executor = w.executor.with_max_deliveries(Some(5));
        let req = request("p1", Direction::Bullish);
        w.orders.place(&earlier_order(&req, 3)).await.unwrap();
        w.pipelines.failures.fail_next(1);
        let r = w
            .executor
            .execute(&delivery(&req, 5), Deadline::none())
            .await;
        let rec = finished(&r);
        assert_eq!(rec.status, ExecutionStatus::Completed);
        assert_eq!(rec.decision.as_deref(), Some("order_placed"));
        assert_eq!(rec.order_id, Some(crate::ids::order_id(&req.execution_id)));
    }

    /// What the last delivery must not give up on: a run in progress in a live attempt (that
    /// attempt finishes it), a run it cannot record (the executions table is down: the DLQ keeps
    /// the message), and any delivery before the last, or without a known limit.
    #[tokio::test]
    async fn the_last_delivery_leaves_live_runs_and_unrecordable_ones_to_the_queue() {
        let mut w = world();
        w.executor = w.executor.with_max_deliveries(Some(5));
        let req = request("p1", Direction::Bullish);
        w.executions.begin(&req, NOW - 10, NOW + 100).await.unwrap();
        let r = w
            .executor
            .execute(&delivery(&req, 5), Deadline::none())
            .await;
        assert!(matches!(
            r.outcome,
            Outcome::Retry {
                label: "in_progress",
                ..
            }
        ));
        assert_eq!(stored(&w, &req).await.status, ExecutionStatus::Running);

        let other = request("p1", Direction::Bearish);
        w.executions.failures.fail_next(3);
        let r = w
            .executor
            .execute(&delivery(&other, 5), Deadline::none())
            .await;
        assert!(matches!(
            r.outcome,
            Outcome::Retry {
                label: "execution_store",
                ..
            }
        ));

        let third = request("off", Direction::Bullish);
        w.market.failures.fail_next(1);
        w.pipelines.failures.fail_next(1);
        let r = w
            .executor
            .execute(&delivery(&third, 4), Deadline::none())
            .await;
        assert!(r.failed());
        w.executor = w.executor.with_max_deliveries(None);
        w.pipelines.failures.fail_next(1);
        let r = w
            .executor
            .execute(&delivery(&third, 50), Deadline::none())
            .await;
        assert!(r.failed());
    }

    /// Fault 3: a run whose lease expired and was claimed by a newer signal must not run.
    #[tokio::test]
    async fn a_run_whose_lease_a_newer_signal_took_is_skipped_with_a_reason() {
        let w = world();
        let mut req = request("p1", Direction::Bullish);
        // The dispatcher's claim ran out before this delivery; then a newer signal took the lease.
        req.lease_expires_at = NOW - 1;
        w.leases.insert(lease_of(&req, "newer", NOW + 500), true);
        let r = w.executor.execute(&message(&req), Deadline::none()).await;
        let rec = finished(&r);
        assert_eq!(rec.status, ExecutionStatus::Skipped, "{rec:?}");
        assert_eq!(rec.decision.as_deref(), Some("lease_lost"));
        assert!(rec.error.as_deref().unwrap().contains("newer"));
        assert!(w.orders.all().is_empty());
        assert_eq!(
            w.leases.get("p1", &req.ticker).unwrap().lease.execution_id,
            "newer"
        );
    }

    /// Fault 3: the run holds the lease for as long as it may run (its in-progress expiry), even
    /// when the dispatcher's claim expired meanwhile.
    #[tokio::test]
    async fn a_run_holds_its_lease_for_as_long_as_it_may_run() {
        let w = world();
        let mut req = request("p1", Direction::Bullish);
        req.lease_expires_at = NOW - 1;
        // The dispatcher's claim ran out before this delivery.
        w.leases
            .insert(lease_of(&req, &req.execution_id, NOW - 1), true);
        w.executions.failures.fail_after(1, 2);
        let r = w
            .executor
            .execute(&message(&req), Deadline::at_ms((NOW + 120) * 1000))
            .await;
        assert!(r.failed());
        let held = w.leases.get("p1", &req.ticker).unwrap();
        assert_eq!(held.lease.execution_id, req.execution_id);
        assert_eq!(held.lease.expires_at, NOW + 121);
    }

    fn earlier_order(req: &ExecutionRequest, quantity: u64) -> crate::order::PaperOrder {
        crate::order::PaperOrder {
            order_id: crate::ids::order_id(&req.execution_id),
            execution_id: req.execution_id.clone(),
            pipeline_id: req.pipeline_id.clone(),
            user_id: req.user_id.clone(),
            ticker: req.ticker.clone(),
            signal_id: req.signal_context.signal_id.clone(),
            side: crate::order::OrderSide::Buy,
            quantity,
            entry_price: 100.0,
            stop_price: 95.0,
            target_price: 110.0,
            mode: "paper".into(),
            created_at: NOW - 30,
        }
    }

    /// Fault 3: an earlier attempt placed the order, then lost the lease: the run is recorded
    /// COMPLETED with that order, not SKIPPED beside an order.
    #[tokio::test]
    async fn a_run_that_lost_its_lease_after_placing_its_order_completes_with_it() {
        use crate::ports::OrderStore;
        let w = world();
        let req = request("p1", Direction::Bullish);
        w.orders.place(&earlier_order(&req, 7)).await.unwrap();
        w.leases.insert(lease_of(&req, "newer", NOW + 500), true);
        let r = w.executor.execute(&message(&req), Deadline::none()).await;
        let rec = finished(&r);
        assert_eq!(rec.status, ExecutionStatus::Completed);
        assert_eq!(
            rec.order_id.as_deref(),
            Some(crate::ids::order_id(&req.execution_id).as_str())
        );
        assert_eq!(w.orders.all().len(), 1);
        assert_eq!(
            w.leases.get("p1", &req.ticker).unwrap().lease.execution_id,
            "newer"
        );
    }

    /// Fault 9: the order an earlier attempt placed is read back; the record describes it.
    #[tokio::test]
    async fn an_order_placed_by_an_earlier_attempt_is_read_back_into_the_record() {
        use crate::ports::OrderStore;
        let w = world();
        let req = request("p1", Direction::Bullish);
        w.orders.place(&earlier_order(&req, 7)).await.unwrap();
        let r = w.executor.execute(&message(&req), Deadline::none()).await;
        let rec = finished(&r);
        assert_eq!(rec.status, ExecutionStatus::Completed);
        let step = rec.steps.iter().find(|s| s.step == "paper_order").unwrap();
        assert_eq!(step.outputs.get("quantity"), Some(&7.0), "{step:?}");
        assert_eq!(step.outputs.get("entry_price"), Some(&100.0), "{step:?}");
        assert_eq!(w.orders.all(), vec![earlier_order(&req, 7)]);
    }

    /// Fault 9: a permanent store error writing the result is recorded as FAILED, not retried.
    #[tokio::test]
    async fn a_permanent_error_writing_the_result_ends_the_run_failed() {
        let w = world();
        let req = request("p1", Direction::Bullish);
        w.executions.failures.fail_permanently_after(1, 1);
        let r = w.executor.execute(&message(&req), Deadline::none()).await;
        let rec = finished(&r);
        assert_eq!(rec.status, ExecutionStatus::Failed, "{rec:?}");
        assert!(rec.error.as_deref().unwrap().contains("permanent"));
        let s = stored(&w, &req).await;
        assert_eq!(s.status, ExecutionStatus::Failed);
        assert!(w.leases.get("p1", &req.ticker).is_none());
    }

    /// Fault 9: a permanent store error starting the run is not retried: it is rejected with its
    /// reason (to the DLQ).
    #[tokio::test]
    async fn a_permanent_error_starting_the_run_is_rejected_not_retried() {
        let w = world();
        let req = request("p1", Direction::Bullish);
        w.executions.failures.fail_permanently_after(0, 1);
        let r = w.executor.execute(&message(&req), Deadline::none()).await;
        assert!(
            matches!(r.outcome, Outcome::Rejected { .. }),
            "{:?}",
            r.outcome
        );
        assert!(w.orders.all().is_empty());
    }

    /// Fault 7: a request whose record cannot be stored never places an order.
    #[tokio::test]
    async fn a_request_too_large_to_record_never_places_an_order() {
        let w = world();
        let mut req = request("p1", Direction::Bullish);
        // Larger than any valid signal's metadata (signals are bounded at 16 KiB), e.g. from an
        // older dispatcher: 450 KB would not fit a DynamoDB item.
        req.signal_context
            .metadata
            .values
            .insert("notes".into(), json!("x".repeat(450 * 1024)));
        let r = w.executor.execute(&message(&req), Deadline::none()).await;
        assert!(w.orders.all().is_empty(), "an order was placed");
        assert!(
            !matches!(r.outcome, Outcome::Retry { .. }),
            "retried: {:?}",
            r.outcome
        );
        // Whatever was recorded fits.
        if let Some(rec) = w.executions.get_execution(&req.execution_id).await.unwrap() {
            assert!(serde_json::to_vec(&rec).unwrap().len() < crate::fakes::MAX_ITEM_BYTES);
            assert_ne!(rec.status, ExecutionStatus::Running);
        }
    }

    /// Steps get the time left before the invocation's deadline (less the margin to write the
    /// result); running out of it is not the run's fault: retried, not FAILED.
    #[tokio::test]
    async fn a_run_cut_short_by_the_invocation_deadline_is_retried_not_failed() {
        let w = world();
        let req = request("p1", Direction::Bullish);
        w.market
            .delay_ms
            .store(5_000, std::sync::atomic::Ordering::SeqCst);
        let deadline = Deadline::at_ms(NOW * 1000 + SAFETY_MARGIN_MS + 200);
        let r = w.executor.execute(&message(&req), deadline).await;
        assert!(
            matches!(
                r.outcome,
                Outcome::Retry {
                    label: "step_transient",
                    ..
                }
            ),
            "{:?}",
            r.outcome
        );
        assert!(r.duration < Duration::from_secs(2), "{:?}", r.duration);
        assert_eq!(stored(&w, &req).await.status, ExecutionStatus::Pending);
        assert!(w.orders.all().is_empty());
    }

    /// Fault 7: the worst-case record of a maximal valid signal fits a DynamoDB item.
    #[tokio::test]
    async fn the_largest_record_of_a_valid_signal_fits_a_dynamodb_item() {
        use crate::signal::{MAX_ID_BYTES, MAX_METADATA_BYTES, Signal};
        let mut v = json!({
            "signal_id": "s".repeat(MAX_ID_BYTES), "signal_type": "rsi_oversold",
            "source": "g".repeat(MAX_ID_BYTES), "timestamp": NOW,
            "tickers": [{"ticker": "AAPL", "signal": "BULLISH", "confidence": 75,
                         "reasoning": "r".repeat(crate::signal::MAX_REASONING_BYTES)}],
            "metadata": {"timeframe": "5", "notes": ""}
        });
        let base = serde_json::to_vec(&v["metadata"]).unwrap().len();
        v["metadata"]["notes"] = "x".repeat(MAX_METADATA_BYTES - base).into();
        let signal = Signal::parse(&v.to_string()).unwrap();
        let w = world();
        let mut req = request("p1", Direction::Bullish);
        req.signal_context.signal_id = signal.signal_id.clone();
        req.signal_context.source = signal.source.clone();
        req.signal_context.metadata = signal.metadata.clone();
        req.execution_id =
            crate::ids::execution_id(&req.pipeline_id, req.ticker.as_str(), &signal.signal_id);
        let mut rec = ExecutionRecord::started(&req, NOW, 3, NOW + 720);
        for kind in crate::pipeline::StepKind::ALL {
            let mut outputs = std::collections::BTreeMap::new();
            for i in 0..MAX_STEP_OUTPUTS {
                outputs.insert(format!("output_{i:02}_{}", "k".repeat(40)), f64::MAX);
            }
            rec.steps.push(StepResult {
                step: kind.as_str().into(),
                status: StepStatus::Failed,
                duration_ms: f64::MAX,
                summary: bounded_text("y".repeat(100_000)),
                outputs,
            });
        }
        rec.error = Some(bounded_text("e".repeat(1_000_000)));
        rec.decision = Some("lease_lost".into());
        rec.order_id = Some(crate::ids::order_id(&req.execution_id));
        // The request passes the executor's own bound, and its record with every text and output
        // at its bound stays far below DynamoDB's 400 KB.
        assert!(ExecutionRequest::parse(&req.to_json()).is_ok());
        let size = serde_json::to_vec(&rec).unwrap().len();
        assert!(size < 100 * 1024, "{size} bytes");
        let _ = w;
    }
}
