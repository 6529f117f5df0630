//! The narrow interfaces the handlers are written against. `tradeflow-aws` implements them on
//! DynamoDB and SQS; the in-memory fakes (`fakes`, behind the `test-util` feature) implement them
//! for handler tests.
//!
//! No SDK type crosses these traits: adapters map their errors to [`StoreError`] / [`QueueError`],
//! classifying conditional-check failures as outcomes, throttling/timeouts/5xx as transient and
//! validation/access errors as permanent.

use async_trait::async_trait;

use crate::error::{QueueError, StoreError};
use crate::execution::{ExecutionRecord, ExecutionRequest, ExecutionStatus};
use crate::order::PaperOrder;
use crate::pipeline::Pipeline;
use crate::signal::Signal;
use crate::trace::TraceContext;
use crate::vocab::Ticker;

/// Wall clock. Seconds and milliseconds since the Unix epoch.
pub trait Clock: Send + Sync {
    fn now_ms(&self) -> i64;
    fn now(&self) -> i64 {
        self.now_ms().div_euclid(1000)
    }
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0)
    }
}

/// Pipelines table.
#[async_trait]
pub trait PipelineStore: Send + Sync {
    /// Every pipeline that is active and signal-triggered. Reads all pages: a partial result is an
    /// error, never a silently shorter list. Items that do not decode are skipped and logged, so one
    /// bad item cannot stop dispatch for everyone.
    async fn load_signal_pipelines(&self) -> Result<Vec<Pipeline>, StoreError>;
    /// Every pipeline written at or after `since_ms` (Unix ms: the `updated_at` every
    /// [`PipelineStore::put_pipeline`] sets), whatever its state, all pages: the dispatcher's
    /// incremental refresh. Writes that do not set `updated_at` (another writer, a hard delete)
    /// are not seen here; the dispatcher's periodic full load catches them.
    async fn changed_since(&self, since_ms: i64) -> Result<Vec<PipelineChange>, StoreError>;
    /// One pipeline by id (strongly consistent), `None` when absent.
    async fn get_pipeline(&self, pipeline_id: &str) -> Result<Option<Pipeline>, StoreError>;
    /// Creates or replaces a pipeline (seeding, tests, admin tools).
    async fn put_pipeline(&self, pipeline: &Pipeline) -> Result<(), StoreError>;
}

/// A pipeline written since a point in time ([`PipelineStore::changed_since`]).
#[derive(Debug, Clone, PartialEq)]
pub enum PipelineChange {
    /// Active and signal-triggered: it (re)enters the dispatcher's index.
    Signal(Pipeline),
    /// Deactivated, not signal-triggered, or no longer a valid pipeline: it leaves the index.
    Gone(String),
}

/// A running lease on one (pipeline, ticker).
#[derive(Debug, Clone, PartialEq)]
pub struct Lease {
    pub pipeline_id: String,
    pub ticker: Ticker,
    pub execution_id: String,
    /// Unix seconds after which the lease is free again (the pipeline's max runtime).
    pub expires_at: i64,
}

impl Lease {
    /// `"<pipeline_id>#<ticker>"`, the table key.
    pub fn key(pipeline_id: &str, ticker: &Ticker) -> String {
        format!("{pipeline_id}#{ticker}")
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum ClaimOutcome {
    /// The lease is ours, newly: it was free, expired, or another execution's expired lease.
    /// Nothing of this execution can be on the queue under it yet.
    Claimed,
    /// The lease is ours again: it was already this execution's and its run had not started (an
    /// earlier delivery of the signal claimed it, and may have sent the request). The claim
    /// refreshed it; the request may be sent again (the executor runs an execution once), but a
    /// failed send must not free the lease, since the earlier request may be on the queue.
    Reclaimed,
    /// Ours already and its run has started (the executor's [`LeaseStore::hold`]): its request
    /// was delivered; do not send it again.
    AlreadyEnqueued,
    /// Another execution holds it until `expires_at`.
    Held {
        execution_id: String,
        expires_at: i64,
    },
}

impl ClaimOutcome {
    /// `Claimed` or `Reclaimed`: the lease is this execution's now.
    pub fn is_ours(&self) -> bool {
        matches!(self, ClaimOutcome::Claimed | ClaimOutcome::Reclaimed)
    }
}

/// What [`LeaseStore::hold`] found.
#[derive(Debug, Clone, PartialEq)]
pub enum HoldOutcome {
    /// The lease is this execution's until at least the requested expiry.
    Held,
    /// Another execution holds it, live, until `expires_at`: this run must not start.
    Lost {
        execution_id: String,
        expires_at: i64,
    },
}

/// Leases table: at most one active run per (pipeline, ticker).
///
/// Lifecycle: the dispatcher `claim`s (not started), sends the request (or `release`s the lease
/// when the request was certainly not sent); the executor runs under that claim while it lasts,
/// `hold`s the lease when its attempt may outlast the claim (which marks the run started), and
/// `release`s it when the run has ended (or was a re-send of a finished run).
#[async_trait]
pub trait LeaseStore: Send + Sync {
    /// One conditional write: takes the lease when it is absent, expired at `now`, or held by the
    /// same execution id whose run has not started (`Reclaimed`). Idempotent for the same lease.
    async fn claim(&self, lease: &Lease, now: i64) -> Result<ClaimOutcome, StoreError>;
    /// The executor's check before a run: one conditional write that succeeds when the lease is
    /// absent, expired at `now`, or held by `lease.execution_id`; it then holds
    /// `lease.execution_id`, expires at `lease.expires_at` or later (a longer expiry of ours is
    /// kept) and counts as started (a claim of the same execution answers `AlreadyEnqueued`).
    /// Otherwise reports the live holder. Idempotent.
    async fn hold(&self, lease: &Lease, now: i64) -> Result<HoldOutcome, StoreError>;
    /// Frees the lease if `execution_id` still holds it; a no-op otherwise.
    async fn release(
        &self,
        pipeline_id: &str,
        ticker: &Ticker,
        execution_id: &str,
    ) -> Result<(), StoreError>;
}

#[derive(Debug, Clone, PartialEq)]
pub enum BeginOutcome {
    /// This worker runs attempt `attempt` (1 for the first).
    Started { attempt: u32 },
    /// Already in a terminal state: a redelivery, nothing to do.
    AlreadyFinished(ExecutionStatus),
    /// Another worker is running it and its in-progress window has not expired.
    InProgress { until: i64 },
}

/// Executions table. The conditional writes here make a redelivered request run at most once.
#[async_trait]
pub trait ExecutionStore: Send + Sync {
    /// Atomically starts a run: writes RUNNING with `in_progress_until` when the record is absent,
    /// PENDING (released after a transient failure), or RUNNING past its `in_progress_until`
    /// (a crashed worker), incrementing `attempts`. Otherwise reports why not.
    async fn begin(
        &self,
        request: &ExecutionRequest,
        now: i64,
        in_progress_until: i64,
    ) -> Result<BeginOutcome, StoreError>;
    /// Writes the finished record, only if the stored one is still this attempt's RUNNING record;
    /// returns `false` when another worker took over meanwhile.
    async fn finish(&self, record: &ExecutionRecord) -> Result<bool, StoreError>;
    /// Puts this attempt's RUNNING record back to PENDING so a redelivery can run it at once.
    async fn release(&self, execution_id: &str, attempt: u32) -> Result<(), StoreError>;
    async fn get_execution(
        &self,
        execution_id: &str,
    ) -> Result<Option<ExecutionRecord>, StoreError>;
    /// Ids of RUNNING records whose `in_progress_until` is before `before`, at most `limit`
    /// (oldest windows first where the store can order them): runs whose attempt died, for
    /// [`crate::execute::Executor::sweep`].
    async fn overdue(&self, before: i64, limit: usize) -> Result<Vec<String>, StoreError>;
}

/// The end of a run, written by [`RunLedger::end_run`] as one: the final record, the paper order
/// it placed, and the freed lease.
#[derive(Debug, Clone, Copy)]
pub struct RunEnd<'a> {
    /// The final record (COMPLETED, FAILED or SKIPPED) of attempt `record.attempts`: written only
    /// over that attempt's RUNNING record.
    pub record: &'a ExecutionRecord,
    /// The run's paper order: written only if no order with its id exists.
    pub order: Option<&'a PaperOrder>,
    /// Free the run's (pipeline, ticker) lease: only if `record.execution_id` holds it.
    pub release_lease: bool,
}

/// Why [`RunLedger::end_run`] wrote nothing (all or nothing: one condition failing cancels it
/// all). When several fail, the first of this list is reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunEndOutcome {
    /// Record, order and lease release are written.
    Written,
    /// The stored record is not this attempt's RUNNING record: another attempt took the run
    /// over, its result is not written.
    TakenOver,
    /// An order with this id exists already (an earlier attempt placed it).
    OrderExists,
    /// The lease is not this execution's (expired and taken by another, or already free).
    LeaseNotOurs,
}

/// The end of a run across the executions, orders and leases tables in one atomic write (a
/// DynamoDB transaction): one request where separate writes took three, and no state where an
/// order exists beside an unfinished run, or a finished run's lease stays held.
#[async_trait]
pub trait RunLedger: Send + Sync {
    async fn end_run(&self, end: &RunEnd<'_>) -> Result<RunEndOutcome, StoreError>;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlaceOutcome {
    Created,
    /// The order with this id exists already (a retried run): nothing written.
    AlreadyExists,
}

/// Orders table.
#[async_trait]
pub trait OrderStore: Send + Sync {
    /// Writes the order if no order with its id exists. Idempotent.
    async fn place(&self, order: &PaperOrder) -> Result<PlaceOutcome, StoreError>;
    /// The stored order with this id (strongly consistent), `None` when absent: what an earlier
    /// attempt placed, so the execution record describes the order that really exists.
    async fn get(&self, order_id: &str) -> Result<Option<PaperOrder>, StoreError>;
}

/// Most messages one [`QueueSender::send_batch`] call takes (SQS's `SendMessageBatch` limit).
pub const MAX_BATCH: usize = 10;

/// One message to send; `id` is unique within a batch (`[A-Za-z0-9_-]{1,80}`).
#[derive(Debug, Clone, PartialEq)]
pub struct OutgoingMessage {
    pub id: String,
    pub body: String,
    /// The trace context the message carries to its consumer (the SQS adapter sends it as
    /// message attributes); `None` sends none.
    pub trace: Option<TraceContext>,
}

impl OutgoingMessage {
    /// A message without a trace context.
    pub fn new(id: impl Into<String>, body: impl Into<String>) -> Self {
        OutgoingMessage {
            id: id.into(),
            body: body.into(),
            trace: None,
        }
    }

    /// Its size as SQS counts it against the message and batch limits: the body plus the
    /// trace context's attributes.
    pub fn wire_bytes(&self) -> usize {
        self.body.len() + self.trace.as_ref().map_or(0, TraceContext::wire_bytes)
    }
}

/// A batch entry the queue refused.
#[derive(Debug, Clone, PartialEq)]
pub struct FailedEntry {
    pub id: String,
    pub code: String,
    /// The queue blamed the sender (bad message): retrying the same entry cannot help.
    pub sender_fault: bool,
}

/// A queue to send to (signals, executions).
#[async_trait]
pub trait QueueSender: Send + Sync {
    /// Sends 1 to [`MAX_BATCH`] messages whose bodies total at most
    /// [`crate::publish::MAX_BATCH_BYTES`] in one call ([`crate::publish::send_all`] splits
    /// larger sets). `Ok` lists the entries that failed (empty when all were accepted), e.g. one
    /// longer than the queue's maximum message size; `Err` means the whole call failed and
    /// nothing can be assumed sent.
    async fn send_batch(
        &self,
        messages: &[OutgoingMessage],
    ) -> Result<Vec<FailedEntry>, QueueError>;
}

/// The generator's progress per stream (generator set, ticker, timeframe).
#[async_trait]
pub trait CursorStore: Send + Sync {
    /// Open time of the last candle fully processed, if any.
    async fn get_cursor(&self, stream: &str) -> Result<Option<i64>, StoreError>;
    /// Moves the cursor from `expected` to `to` with a conditional write. Returns `false` when the
    /// stored value is not `expected` (a concurrent scan moved it).
    async fn advance(
        &self,
        stream: &str,
        expected: Option<i64>,
        to: i64,
    ) -> Result<bool, StoreError>;
}

/// A span the domain opened through a [`Tracer`]: the context of the messages it causes, ended
/// once with how its work went. Dropping it unended drops the span (nothing is exported).
pub trait SpanHandle: Send {
    /// The context to send with the messages this span causes (`None`: send none).
    fn context(&self) -> Option<TraceContext>;
    /// Ends the span: `status` is a short label recorded on it (`sent`, `COMPLETED`,
    /// `SKIPPED`...), `error` the reason when its work failed (the span's error status).
    fn end(self: Box<Self>, status: &str, error: Option<&str>);
}

/// The hooks through which the domain opens the spans only it sees: a signal about to be sent, a
/// pipeline step. The telemetry crate implements it; [`NoTracer`] (the default) opens none.
/// Never fails and never blocks: a hook returns `None` when it traces nothing.
pub trait Tracer: Send + Sync {
    /// The span of one signal the generator is about to send (a new trace, its root): its
    /// context goes with the signal's message.
    fn signal(&self, signal: &Signal) -> Option<Box<dyn SpanHandle>>;
    /// The span of one pipeline step, under `parent` (the context of the message whose run it
    /// is; `None` or malformed: a new trace).
    fn step(&self, parent: Option<&TraceContext>, step: &str) -> Option<Box<dyn SpanHandle>>;
}

/// Traces nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoTracer;

impl Tracer for NoTracer {
    fn signal(&self, _signal: &Signal) -> Option<Box<dyn SpanHandle>> {
        None
    }

    fn step(&self, _parent: Option<&TraceContext>, _step: &str) -> Option<Box<dyn SpanHandle>> {
        None
    }
}

/// Reads a queue's depth (for DLQ gauges).
#[async_trait]
pub trait QueueDepth: Send + Sync {
    async fn approximate_depth(&self) -> Result<u64, QueueError>;
}
