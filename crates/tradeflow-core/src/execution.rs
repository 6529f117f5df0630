//! Executions: the request the dispatcher enqueues, the record the executor keeps, and the state
//! machine their statuses follow.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::matching::Match;
use crate::signal::{Signal, SignalMetadata};
use crate::vocab::{Direction, Ticker};

/// The triggering signal, narrowed to one ticker, stored on the execution (the old system lost it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SignalContext {
    pub signal_id: String,
    pub signal_type: String,
    pub source: String,
    pub timestamp: i64,
    /// Always the one ticker of this execution (kept as a list for wire compatibility).
    pub tickers: Vec<Ticker>,
    pub confidence: f64,
    pub signal: Direction,
    #[serde(default)]
    pub metadata: SignalMetadata,
}

impl SignalContext {
    pub fn new(signal: &Signal, m: &Match) -> Self {
        Self::of_ticker(signal, &m.ticker, m.confidence, m.direction)
    }

    /// The context of `signal` narrowed to `ticker`, of that ticker's confidence and direction.
    pub fn of_ticker(
        signal: &Signal,
        ticker: &Ticker,
        confidence: f64,
        direction: Direction,
    ) -> Self {
        SignalContext {
            signal_id: signal.signal_id.clone(),
            signal_type: signal.signal_type.as_str().to_owned(),
            source: signal.source.clone(),
            timestamp: signal.timestamp,
            tickers: vec![ticker.clone()],
            confidence,
            signal: direction,
            metadata: signal.metadata.clone(),
        }
    }
}

/// Body of a message on the executions queue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExecutionRequest {
    pub execution_id: String,
    pub pipeline_id: String,
    pub user_id: String,
    pub ticker: Ticker,
    pub signal_context: SignalContext,
    /// When the dispatcher's lease on (pipeline, ticker) runs out, Unix seconds.
    pub lease_expires_at: i64,
    /// Unix milliseconds when the dispatcher enqueued it.
    pub enqueued_at_ms: i64,
}

/// An [`ExecutionRequest`] that borrows the signal and the pipeline instead of copying them: what
/// the dispatcher builds for each of a batch's fan-outs (thousands per signal at 100,000
/// pipelines) and serializes once its lease is claimed. Building one reads nothing of the
/// pipeline (its ids are read when serialized). Its JSON is byte for byte the owned request's.
#[derive(Debug, Clone)]
pub struct RequestView<'a> {
    pub execution_id: crate::ids::ExecutionId,
    pub pipeline: &'a std::sync::Arc<crate::pipeline::Pipeline>,
    pub signal: &'a Signal,
    /// The signal's entry of this execution's ticker.
    pub entry: &'a crate::signal::TickerSignal,
    pub lease_expires_at: i64,
    pub enqueued_at_ms: i64,
}

impl Serialize for RequestView<'_> {
    /// As [`ExecutionRequest`]'s derived form: the same fields in the same order.
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut s = serializer.serialize_struct("ExecutionRequest", 7)?;
        s.serialize_field("execution_id", &self.execution_id)?;
        s.serialize_field("pipeline_id", &self.pipeline.pipeline_id)?;
        s.serialize_field("user_id", &self.pipeline.user_id)?;
        s.serialize_field("ticker", &self.entry.ticker)?;
        s.serialize_field("signal_context", &self.signal_context())?;
        s.serialize_field("lease_expires_at", &self.lease_expires_at)?;
        s.serialize_field("enqueued_at_ms", &self.enqueued_at_ms)?;
        s.end()
    }
}

/// [`SignalContext`], borrowed from the signal.
#[derive(Debug, Clone, Serialize)]
pub struct SignalContextView<'a> {
    pub signal_id: &'a str,
    pub signal_type: &'a str,
    pub source: &'a str,
    pub timestamp: i64,
    pub tickers: [&'a Ticker; 1],
    pub confidence: f64,
    pub signal: Direction,
    pub metadata: &'a SignalMetadata,
}

impl<'a> SignalContextView<'a> {
    /// The context of `signal` narrowed to its ticker entry `ts`.
    pub fn of_ticker(signal: &'a Signal, ts: &'a crate::signal::TickerSignal) -> Self {
        SignalContextView {
            signal_id: &signal.signal_id,
            signal_type: signal.signal_type.as_str(),
            source: &signal.source,
            timestamp: signal.timestamp,
            tickers: [&ts.ticker],
            confidence: ts.confidence.value(),
            signal: ts.signal,
            metadata: &signal.metadata,
        }
    }
}

impl<'a> RequestView<'a> {
    pub fn signal_context(&self) -> SignalContextView<'a> {
        SignalContextView::of_ticker(self.signal, self.entry)
    }

    /// The message body: the same bytes as [`ExecutionRequest::to_json`] of [`Self::to_owned`].
    pub fn to_json(&self) -> String {
        let mut body = Vec::with_capacity(640);
        if serde_json::to_writer(&mut body, self).is_err() {
            return String::new();
        }
        String::from_utf8(body).unwrap_or_default()
    }

    pub fn to_owned(&self) -> ExecutionRequest {
        let c = self.signal_context();
        ExecutionRequest {
            execution_id: self.execution_id.as_str().to_owned(),
            pipeline_id: self.pipeline.pipeline_id.clone(),
            user_id: self.pipeline.user_id.clone(),
            ticker: self.entry.ticker.clone(),
            signal_context: SignalContext {
                signal_id: c.signal_id.to_owned(),
                signal_type: c.signal_type.to_owned(),
                source: c.source.to_owned(),
                timestamp: c.timestamp,
                tickers: vec![self.entry.ticker.clone()],
                confidence: c.confidence,
                signal: c.signal,
                metadata: c.metadata.clone(),
            },
            lease_expires_at: self.lease_expires_at,
            enqueued_at_ms: self.enqueued_at_ms,
        }
    }
}

/// Most bytes the signal context of a request may take as JSON. A valid signal's context is far
/// smaller (metadata is bounded at [`crate::signal::MAX_METADATA_BYTES`], ids and source are short);
/// the bound keeps every execution record well under DynamoDB's 400 KB item limit.
pub const MAX_SIGNAL_CONTEXT_BYTES: usize = 32 * 1024;

/// Most bytes kept of a free text written to an execution record (step summary, error).
pub const MAX_RECORD_TEXT_BYTES: usize = 2 * 1024;

/// Most outputs kept per step on an execution record.
pub const MAX_STEP_OUTPUTS: usize = 16;

/// `text` cut to at most [`MAX_RECORD_TEXT_BYTES`] bytes on a character boundary, marked with
/// `…` when cut.
pub fn bounded_text(text: String) -> String {
    if text.len() <= MAX_RECORD_TEXT_BYTES {
        return text;
    }
    let mut end = MAX_RECORD_TEXT_BYTES - '…'.len_utf8();
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let mut cut = text[..end].to_owned();
    cut.push('…');
    cut
}

/// Why a message body is not a valid execution request (a poison message: never retryable).
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    #[error("invalid execution request: {0}")]
    Json(#[source] serde_json::Error),
    #[error("invalid execution request: execution_id, pipeline_id and user_id are required")]
    MissingIds,
    #[error(
        "invalid execution request: execution_id {0} does not derive from its pipeline, ticker and signal"
    )]
    ForeignId(String),
    #[error(
        "invalid execution request: its signal context is {0} bytes as JSON, more than the limit of {MAX_SIGNAL_CONTEXT_BYTES} (the execution could not be recorded)"
    )]
    TooLarge(usize),
}

impl RequestError {
    pub fn is_retryable(&self) -> bool {
        false
    }
}

impl ExecutionRequest {
    pub fn parse(body: &str) -> Result<Self, RequestError> {
        let req: ExecutionRequest = serde_json::from_str(body).map_err(RequestError::Json)?;
        if req.execution_id.is_empty() || req.pipeline_id.is_empty() || req.user_id.is_empty() {
            return Err(RequestError::MissingIds);
        }
        if !crate::ids::derives_execution_id(
            &req.execution_id,
            &req.pipeline_id,
            req.ticker.as_str(),
            &req.signal_context.signal_id,
        ) {
            return Err(RequestError::ForeignId(req.execution_id));
        }
        let size = serde_json::to_vec(&req.signal_context).map_or(usize::MAX, |v| v.len());
        if size > MAX_SIGNAL_CONTEXT_BYTES {
            return Err(RequestError::TooLarge(size));
        }
        Ok(req)
    }

    pub fn to_json(&self) -> String {
        // Sized for a request without metadata values, so the body is not grown and copied.
        let mut body = Vec::with_capacity(640);
        if serde_json::to_writer(&mut body, self).is_err() {
            return String::new();
        }
        String::from_utf8(body).unwrap_or_default()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ExecutionStatus {
    Pending,
    Running,
    Completed,
    Failed,
    Skipped,
}

impl ExecutionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ExecutionStatus::Pending => "PENDING",
            ExecutionStatus::Running => "RUNNING",
            ExecutionStatus::Completed => "COMPLETED",
            ExecutionStatus::Failed => "FAILED",
            ExecutionStatus::Skipped => "SKIPPED",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        [
            ExecutionStatus::Pending,
            ExecutionStatus::Running,
            ExecutionStatus::Completed,
            ExecutionStatus::Failed,
            ExecutionStatus::Skipped,
        ]
        .into_iter()
        .find(|s| s.as_str() == raw)
    }

    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            ExecutionStatus::Completed | ExecutionStatus::Failed | ExecutionStatus::Skipped
        )
    }

    /// The transitions an execution may take:
    /// PENDING → RUNNING | SKIPPED; RUNNING → COMPLETED | FAILED | SKIPPED | PENDING (released for a
    /// retry after a transient failure) | RUNNING (taken over after its in-progress expiry).
    /// Terminal states never change.
    pub fn can_become(self, next: ExecutionStatus) -> bool {
        use ExecutionStatus::*;
        matches!(
            (self, next),
            (Pending, Running)
                | (Pending, Skipped)
                | (Running, Completed)
                | (Running, Failed)
                | (Running, Skipped)
                | (Running, Pending)
                | (Running, Running)
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum StepStatus {
    Completed,
    Failed,
    /// Not run, because an earlier step decided there is no trade or failed.
    Skipped,
}

/// What one step did, recorded on the execution.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepResult {
    pub step: String,
    pub status: StepStatus,
    pub duration_ms: f64,
    /// Human-readable outcome, e.g. "bias BULLISH: close above SMA 20 and 50".
    pub summary: String,
    /// Numbers the step produced (entry, stop, quantity...).
    #[serde(default)]
    pub outputs: BTreeMap<String, f64>,
}

/// The stored execution.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExecutionRecord {
    pub execution_id: String,
    pub pipeline_id: String,
    pub user_id: String,
    pub ticker: Ticker,
    pub status: ExecutionStatus,
    pub signal_context: SignalContext,
    /// Unix seconds.
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub completed_at: Option<i64>,
    #[serde(default)]
    pub steps: Vec<StepResult>,
    pub error: Option<String>,
    /// How many times a run was started (1 on the first delivery).
    pub attempts: u32,
    /// While RUNNING: when another worker may take over (a crashed run).
    pub in_progress_until: Option<i64>,
    pub order_id: Option<String>,
    /// Short outcome label, e.g. "order_placed", "no_trade", "pipeline_inactive".
    pub decision: Option<String>,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("execution {execution_id} cannot go from {from:?} to {to:?}")]
pub struct TransitionError {
    pub execution_id: String,
    pub from: ExecutionStatus,
    pub to: ExecutionStatus,
}

impl ExecutionRecord {
    /// The record a worker writes when it starts attempt `attempt` of `req`.
    pub fn started(req: &ExecutionRequest, now: i64, attempt: u32, in_progress_until: i64) -> Self {
        ExecutionRecord {
            execution_id: req.execution_id.clone(),
            pipeline_id: req.pipeline_id.clone(),
            user_id: req.user_id.clone(),
            ticker: req.ticker.clone(),
            status: ExecutionStatus::Running,
            signal_context: req.signal_context.clone(),
            created_at: now,
            started_at: Some(now),
            completed_at: None,
            steps: Vec::new(),
            error: None,
            attempts: attempt,
            in_progress_until: Some(in_progress_until),
            order_id: None,
            decision: None,
        }
    }

    /// Moves to a terminal status, checked against the state machine.
    pub fn finish(
        &mut self,
        status: ExecutionStatus,
        now: i64,
        error: Option<String>,
    ) -> Result<(), TransitionError> {
        if !status.is_terminal() || !self.status.can_become(status) {
            return Err(TransitionError {
                execution_id: self.execution_id.clone(),
                from: self.status,
                to: status,
            });
        }
        self.status = status;
        self.completed_at = Some(now);
        self.in_progress_until = None;
        self.error = error;
        Ok(())
    }

    pub fn duration_secs(&self) -> Option<i64> {
        Some(self.completed_at? - self.started_at?)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use ExecutionStatus::*;

    const ALL: [ExecutionStatus; 5] = [Pending, Running, Completed, Failed, Skipped];

    #[test]
    fn terminal_states_never_change() {
        for from in [Completed, Failed, Skipped] {
            for to in ALL {
                assert!(!from.can_become(to), "{from:?} -> {to:?}");
            }
        }
    }

    #[test]
    fn allowed_transitions_are_exactly_the_documented_ones() {
        let allowed: Vec<(ExecutionStatus, ExecutionStatus)> = ALL
            .iter()
            .flat_map(|a| ALL.iter().map(move |b| (*a, *b)))
            .filter(|(a, b)| a.can_become(*b))
            .collect();
        assert_eq!(
            allowed,
            vec![
                (Pending, Running),
                (Pending, Skipped),
                (Running, Pending),
                (Running, Running),
                (Running, Completed),
                (Running, Failed),
                (Running, Skipped),
            ]
        );
    }

    #[test]
    fn status_wire_names_round_trip() {
        for s in ALL {
            assert_eq!(ExecutionStatus::parse(s.as_str()), Some(s));
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        assert_eq!(ExecutionStatus::parse("running"), None);
    }

    fn request() -> ExecutionRequest {
        crate::fakes::fixtures::request("p1", "sig-1", 1_700_000_000)
    }

    #[test]
    fn request_round_trips_and_checks_its_id() {
        let req = request();
        assert_eq!(ExecutionRequest::parse(&req.to_json()).unwrap(), req);
        let mut forged = req.clone();
        forged.execution_id = "exe-other".into();
        assert!(ExecutionRequest::parse(&forged.to_json()).is_err());
        assert!(ExecutionRequest::parse("{}").is_err());
    }

    /// Requests enqueued by a dispatcher of before the two-half execution ids (still on the
    /// queue, or redelivered, across the upgrade) run: their id is the legacy form.
    #[test]
    fn a_request_with_a_legacy_execution_id_still_parses() {
        let mut req = request();
        req.execution_id = crate::ids::legacy_execution_id(
            &req.pipeline_id,
            req.ticker.as_str(),
            &req.signal_context.signal_id,
        );
        assert_eq!(req.execution_id.len(), 36);
        assert_eq!(ExecutionRequest::parse(&req.to_json()).unwrap(), req);
        req.pipeline_id = "p2".into();
        assert!(matches!(
            ExecutionRequest::parse(&req.to_json()),
            Err(RequestError::ForeignId(_))
        ));
    }

    #[test]
    fn a_record_finishes_once() {
        let mut r = ExecutionRecord::started(&request(), 100, 1, 820);
        r.finish(Completed, 103, None).unwrap();
        assert_eq!(r.duration_secs(), Some(3));
        assert_eq!(r.in_progress_until, None);
        assert!(r.finish(Failed, 104, Some("late".into())).is_err());
        assert!(
            ExecutionRecord::started(&request(), 1, 1, 2)
                .finish(Running, 2, None)
                .is_err()
        );
    }
}
