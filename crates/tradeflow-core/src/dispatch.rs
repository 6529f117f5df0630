//! The trigger-dispatcher's logic: a batch of signal messages in, execution requests out.
//!
//! Per batch: parse every body on its own (a bad one fails alone); match against the cached
//! pipeline index; fan out one execution per (pipeline, ticker) per batch; claim a lease per
//! fan-out with a conditional write (held → skipped), `claim_concurrency` at a time; send the
//! claimed requests in batches of 10. Fails closed: a message whose pipelines could not be loaded, whose
//! lease could not be claimed or whose request could not be sent is reported failed, so the queue
//! redelivers it; the lease of a request that certainly could not be sent is released. A
//! redelivery sends again the requests whose lease is still theirs (the executor runs each
//! execution once), and skips those whose run has started (`AlreadyEnqueued`).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures_util::stream::{self, StreamExt};

use crate::deadline::Deadline;
use crate::error::{StoreError, error_chain};
use crate::execution::RequestView;
use crate::ids::{ExecutionId, ExecutionIdPart};
use crate::matching::{Hit, PipelineIndex};
use crate::pipeline::Pipeline;
use crate::ports::{
    ClaimOutcome, Clock, Lease, LeaseStore, OutgoingMessage, PipelineChange, PipelineStore,
    QueueSender,
};
use crate::publish::{RetryPolicy, send_all};
use crate::signal::Signal;
use crate::vocab::{InboundMessage, Ticker};

/// Labels of the infrastructure failures a message can fail with (not poison).
pub const INFRA_FAILURE_LABELS: [&str; 3] = ["pipeline_store", "lease_store", "execution_queue"];

#[derive(Debug, Clone)]
pub struct DispatcherConfig {
    /// How long the pipeline index is reused across invocations before it is refreshed: with the
    /// pipelines written since the last refresh (one Query of the `updated_at` index), or all of
    /// them once `full_reload_interval` has passed.
    pub cache_ttl: Duration,
    /// How often the index is rebuilt from every pipeline (one Scan of the table), whatever the
    /// incremental refreshes saw: this catches hard deletes and writers that do not stamp
    /// `updated_at`.
    pub full_reload_interval: Duration,
    pub send_retry: RetryPolicy,
    /// Lease writes (claims, marks, releases) in flight at once per batch. One at a time, a
    /// batch of 20 signals x 100 matching pipelines (2,000 claims and 2,000 marks at ~5-10 ms)
    /// would pass the function's 30 s timeout.
    pub claim_concurrency: usize,
    /// Signals stamped before this (Unix seconds) keep the legacy execution ids
    /// ([`crate::ids::legacy_execution_id`]): a dispatcher of before the two-half ids may have
    /// claimed or sent their executions under those, and a redelivery, a retry or a redrive of
    /// the signal must find the same execution. `infra/deploy.sh` sets it, on the first update of
    /// a stack deployed before, to two days after the update (past any signal the old version
    /// could have taken: timestamps more than a day ahead are rejected). 0: every signal gets
    /// the two-half ids.
    pub legacy_execution_ids_before: i64,
}

/// Default of [`DispatcherConfig::claim_concurrency`]: far below DynamoDB's per-partition limits
/// (each lease is its own item), and enough to hide a round trip's latency.
pub const DEFAULT_CLAIM_CONCURRENCY: usize = 32;

impl Default for DispatcherConfig {
    fn default() -> Self {
        DispatcherConfig {
            cache_ttl: Duration::from_secs(30),
            full_reload_interval: Duration::from_secs(15 * 60),
            send_retry: RetryPolicy::default(),
            claim_concurrency: DEFAULT_CLAIM_CONCURRENCY,
            legacy_execution_ids_before: 0,
        }
    }
}

/// A message that failed and why. `label` is from a small fixed set (metrics).
#[derive(Debug, Clone, PartialEq)]
pub struct MessageFailure {
    pub message_id: String,
    pub label: &'static str,
    pub reason: String,
    /// `true` when the body itself is bad (a poison message), `false` for infrastructure failures.
    pub poison: bool,
}

/// What one batch did: the ground truth for logs, metrics and the batch response.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct DispatchReport {
    pub received: usize,
    /// Valid signals.
    pub consumed: usize,
    pub failures: Vec<MessageFailure>,
    /// (pipeline, ticker) fan-outs after de-duplication within the batch.
    pub matched: usize,
    pub enqueued: usize,
    pub skipped_running: usize,
    /// Fan-outs already enqueued by an earlier delivery of the same message.
    pub already_enqueued: usize,
    /// Fan-outs dropped because an earlier signal of the same batch had the same (pipeline, ticker).
    pub deduplicated: usize,
    /// Age of each valid message when consumed, milliseconds.
    pub lags_ms: Vec<i64>,
    /// Signal type of each valid message, for per-type counts.
    pub signal_types: Vec<String>,
    pub cache_size: usize,
    pub cache_refreshed: bool,
    /// Per message of the batch (in input order): its fan-outs after de-duplication, and how
    /// many of their requests the queue accepted (a message's span reports them).
    pub matched_by_message: Vec<usize>,
    pub enqueued_by_message: Vec<usize>,
}

impl DispatchReport {
    /// Ids to return as `batchItemFailures`, each once, in input order.
    pub fn failed_message_ids(&self) -> Vec<String> {
        let mut seen = HashSet::new();
        self.failures
            .iter()
            .filter(|f| seen.insert(f.message_id.clone()))
            .map(|f| f.message_id.clone())
            .collect()
    }
}

/// How far back an incremental refresh reads before the previous one started: writes whose
/// `updated_at` came from a clock behind ours, and the index's propagation delay (eventually
/// consistent, usually well under a second). Re-reading a change is harmless.
const CHANGE_OVERLAP_MS: i64 = 10_000;

struct CachedIndex {
    index: Arc<PipelineIndex>,
    /// The indexed pipelines by id, to apply changes to.
    pipelines: HashMap<String, Pipeline>,
    /// When the last refresh (full or incremental) started.
    loaded_at_ms: i64,
    /// When the last full load started.
    full_at_ms: i64,
}

pub struct Dispatcher {
    pipelines: Arc<dyn PipelineStore>,
    leases: Arc<dyn LeaseStore>,
    executions: Arc<dyn QueueSender>,
    clock: Arc<dyn Clock>,
    config: DispatcherConfig,
    cache: tokio::sync::Mutex<Option<CachedIndex>>,
}

/// One execution to start for one (pipeline, ticker) of a batch, as decided in memory: which
/// signal of the batch and which of its matches. Its execution id, lease and request are derived
/// through the batch's [`FanOuts`] when they are needed (the lease when it is claimed, the
/// request's body when it is sent), so deciding a fan-out allocates nothing.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FanOut {
    /// Index in the batch of the message whose signal triggered it.
    message: u32,
    /// Position of that signal in the `signals` given to [`fan_out`].
    signal: u32,
    hit: Hit,
    /// The lease was already this execution's: an earlier delivery of the message may have sent
    /// the request (see [`ClaimOutcome::Reclaimed`]). `false` from [`fan_out`].
    pub sent_before: bool,
}

/// What [`fan_out`] makes of a batch: its fan-outs, and what derives their ids, leases and
/// requests (the index, the signals, and the signal's half of the execution ids of each
/// (signal, ticker), hashed once however many pipelines the signal reaches).
#[derive(Debug, Clone)]
pub struct FanOuts<'a> {
    index: &'a PipelineIndex,
    signals: &'a [(usize, Signal)],
    now: i64,
    now_ms: i64,
    /// Signals stamped before this get legacy execution ids
    /// ([`DispatcherConfig::legacy_execution_ids_before`]).
    legacy_before: i64,
    /// Where each signal's parts start in `parts` (one per ticker of the signal); only signals
    /// with a match and the two-half ids have theirs.
    part_start: Vec<u32>,
    parts: Vec<ExecutionIdPart>,
    /// One per (pipeline, ticker) of the batch, in signal order, then as
    /// [`PipelineIndex::for_each_hit`] lists them.
    pub fanouts: Vec<FanOut>,
    /// Matches dropped because an earlier signal of the batch had the same (pipeline, ticker)
    /// ([`FanOuts::dropped`] lists them).
    pub deduplicated: usize,
}

impl FanOut {
    /// Index in the batch of the message whose signal triggered it.
    pub fn message_index(&self) -> usize {
        self.message as usize
    }
}

impl<'a> FanOuts<'a> {
    /// The matches dropped as same-pair duplicates, as fan-outs: when the kept fan-out of a pair
    /// finds the lease held by one of them (an earlier delivery claimed it and failed before
    /// sending), that one is sent instead ([`Dispatcher::dispatch`]). Matched again here rather
    /// than kept by [`fan_out`]: at 100,000 pipelines a batch drops tens of thousands, and only
    /// a held lease needs them.
    pub fn dropped(&self) -> Vec<FanOut> {
        let mut seen = self.index.pair_set();
        let mut dropped = Vec::new();
        for (n, (message_index, signal)) in self.signals.iter().enumerate() {
            self.index.for_each_hit(signal, |hit| {
                if !seen.insert(hit.pair) {
                    dropped.push(FanOut {
                        message: *message_index as u32,
                        signal: n as u32,
                        hit,
                        sent_before: false,
                    });
                }
            });
        }
        dropped
    }

    fn signal(&self, f: &FanOut) -> Option<&'a Signal> {
        self.signals.get(f.signal as usize).map(|(_, s)| s)
    }

    pub fn pipeline(&self, f: &FanOut) -> Option<&'a Pipeline> {
        self.index.hit_pipeline(f.hit).map(|p| p.as_ref())
    }

    pub fn ticker(&self, f: &FanOut) -> Option<&'a Ticker> {
        Some(&self.signal(f)?.tickers.get(f.hit.ticker as usize)?.ticker)
    }

    /// Its execution id ([`crate::ids::execution_id`] of its pipeline, ticker and signal), from
    /// the two cached halves: no hashing, no allocation.
    pub fn execution_id(&self, f: &FanOut) -> Option<ExecutionId> {
        let signal = self.signal(f)?;
        if signal.timestamp < self.legacy_before {
            let pipeline = self.pipeline(f)?;
            let ticker = self.ticker(f)?;
            return Some(ExecutionId::legacy(
                &pipeline.pipeline_id,
                ticker.as_str(),
                &signal.signal_id,
            ));
        }
        let start = *self.part_start.get(f.signal as usize)? as usize;
        let signal_part = self.parts.get(start + f.hit.ticker as usize)?;
        let slot = self.index.slot(f.hit)?;
        Some(ExecutionId::new(&slot.execution_part, signal_part))
    }

    /// When its lease runs out: its pipeline's `max_runtime_secs` after the batch's time.
    fn expires_at(&self, f: &FanOut) -> Option<i64> {
        Some(self.now + i64::from(self.index.slot(f.hit)?.max_runtime_secs))
    }

    /// The lease to claim for it.
    pub fn lease(&self, f: &FanOut) -> Option<Lease> {
        Some(Lease {
            pipeline_id: self.pipeline(f)?.pipeline_id.clone(),
            ticker: self.ticker(f)?.clone(),
            execution_id: self.execution_id(f)?.as_str().to_owned(),
            expires_at: self.expires_at(f)?,
        })
    }

    /// Its execution request, borrowing the pipeline and the signal.
    pub fn request(&self, f: &FanOut) -> Option<RequestView<'a>> {
        let pipeline = self.index.hit_pipeline(f.hit)?;
        let signal = self.signal(f)?;
        let ts = signal.tickers.get(f.hit.ticker as usize)?;
        Some(RequestView {
            execution_id: self.execution_id(f)?,
            pipeline,
            signal,
            entry: ts,
            lease_expires_at: self.expires_at(f)?,
            enqueued_at_ms: self.now_ms,
        })
    }
}

/// Step 3 of [`Dispatcher::dispatch`], in memory: matches each signal (`(message index, signal)`,
/// in batch order), keeps the first match of each (pipeline, ticker), and decides its fan-out,
/// the lease running out `max_runtime_secs` after `now_ms`.
///
/// De-duplication is by [`crate::matching::PairId`] in a bit set; a fan-out is a few integers,
/// and the only hashing is the signal's half of the execution ids, once per ticker of a signal
/// with a match (the pipeline's half is the index's). So a duplicate costs a bit test, and a
/// fan-out a push.
pub fn fan_out<'a>(
    index: &'a PipelineIndex,
    signals: &'a [(usize, Signal)],
    now_ms: i64,
) -> FanOuts<'a> {
    fan_out_with_legacy_ids(index, signals, now_ms, i64::MIN)
}

/// [`fan_out`], the signals stamped before `legacy_before` (Unix seconds) getting legacy
/// execution ids ([`DispatcherConfig::legacy_execution_ids_before`]).
pub fn fan_out_with_legacy_ids<'a>(
    index: &'a PipelineIndex,
    signals: &'a [(usize, Signal)],
    now_ms: i64,
    legacy_before: i64,
) -> FanOuts<'a> {
    let mut out = FanOuts {
        index,
        signals,
        now: now_ms.div_euclid(1000),
        now_ms,
        legacy_before,
        part_start: vec![u32::MAX; signals.len()],
        parts: Vec::new(),
        fanouts: Vec::new(),
        deduplicated: 0,
    };
    let mut seen = index.pair_set();
    for (n, (message_index, signal)) in signals.iter().enumerate() {
        let mut hits = false;
        index.for_each_hit(signal, |hit| {
            hits = true;
            let f = FanOut {
                message: *message_index as u32,
                signal: n as u32,
                hit,
                sent_before: false,
            };
            if seen.insert(hit.pair) {
                out.fanouts.push(f);
            } else {
                out.deduplicated += 1;
            }
        });
        if hits
            && signal.timestamp >= legacy_before
            && let Some(start) = out.part_start.get_mut(n)
        {
            *start = out.parts.len() as u32;
            out.parts.extend(
                signal
                    .tickers
                    .iter()
                    .map(|ts| crate::ids::signal_part(ts.ticker.as_str(), &signal.signal_id)),
            );
        }
    }
    out
}

impl Dispatcher {
    pub fn new(
        pipelines: Arc<dyn PipelineStore>,
        leases: Arc<dyn LeaseStore>,
        executions: Arc<dyn QueueSender>,
        clock: Arc<dyn Clock>,
        config: DispatcherConfig,
    ) -> Self {
        Dispatcher {
            pipelines,
            leases,
            executions,
            clock,
            config,
            cache: tokio::sync::Mutex::new(None),
        }
    }

    /// The pipeline index, refreshed when older than the cache TTL. Returns (index, refreshed).
    async fn index(&self) -> Result<(Arc<PipelineIndex>, bool), StoreError> {
        let mut cache = self.cache.lock().await;
        let now = self.clock.now_ms();
        let ttl_ms = duration_ms(self.config.cache_ttl);
        let full_ms = duration_ms(self.config.full_reload_interval);
        if let Some(c) = cache.as_mut() {
            if now - c.loaded_at_ms < ttl_ms {
                return Ok((Arc::clone(&c.index), false));
            }
            if now - c.full_at_ms < full_ms {
                let since = c.loaded_at_ms - CHANGE_OVERLAP_MS;
                match self.pipelines.changed_since(since).await {
                    Ok(changes) => {
                        c.loaded_at_ms = now;
                        if apply_changes(&mut c.pipelines, changes) {
                            c.index = Arc::new(PipelineIndex::new(
                                c.pipelines.values().cloned().collect::<Vec<_>>(),
                            ));
                        }
                        return Ok((Arc::clone(&c.index), true));
                    }
                    // A table without the `updated_at` index (an old stack) answers with a
                    // permanent error: the full load below still works.
                    Err(e) if !e.is_retryable() => tracing::warn!(
                        error = %error_chain(&e),
                        "incremental pipeline refresh failed; loading all pipelines"
                    ),
                    Err(e) => return Err(e),
                }
            }
        }
        let pipelines = self.pipelines.load_signal_pipelines().await?;
        let by_id: HashMap<String, Pipeline> = pipelines
            .iter()
            .map(|p| (p.pipeline_id.clone(), p.clone()))
            .collect();
        let index = Arc::new(PipelineIndex::new(pipelines));
        *cache = Some(CachedIndex {
            index: Arc::clone(&index),
            pipelines: by_id,
            loaded_at_ms: now,
            full_at_ms: now,
        });
        Ok((index, true))
    }

    /// Dispatches one batch. `deadline` is when the invocation must be done; nothing uses it
    /// yet (it is passed down so time budgets can be based on it).
    pub async fn dispatch(
        &self,
        messages: &[InboundMessage],
        deadline: Deadline,
    ) -> DispatchReport {
        let _ = deadline;
        let mut report = DispatchReport {
            received: messages.len(),
            matched_by_message: vec![0; messages.len()],
            enqueued_by_message: vec![0; messages.len()],
            ..DispatchReport::default()
        };
        let now_ms = self.clock.now_ms();
        let now = now_ms.div_euclid(1000);

        // 1. Parse each body on its own.
        let mut signals: Vec<(usize, Signal)> = Vec::new();
        for (i, m) in messages.iter().enumerate() {
            match Signal::parse_at(&m.body, now) {
                Ok(s) => {
                    // Saturating: `sent_at_ms` comes from the queue and is not range-checked.
                    let sent_ms = m
                        .sent_at_ms
                        .unwrap_or_else(|| s.timestamp.saturating_mul(1000));
                    report.lags_ms.push(now_ms.saturating_sub(sent_ms).max(0));
                    report.signal_types.push(s.signal_type.to_string());
                    signals.push((i, s));
                }
                Err(e) => report.failures.push(MessageFailure {
                    message_id: m.message_id.clone(),
                    label: e.reason_label(),
                    reason: e.to_string(),
                    poison: true,
                }),
            }
        }
        report.consumed = signals.len();
        if signals.is_empty() {
            return report;
        }

        // 2. The pipelines. Fail closed: without them no valid message is acknowledged.
        let index = match self.index().await {
            Ok((index, refreshed)) => {
                report.cache_refreshed = refreshed;
                report.cache_size = index.len();
                index
            }
            Err(e) => {
                let reason = format!("loading pipelines: {}", error_chain(&e));
                for (i, _) in &signals {
                    report
                        .failures
                        .push(infra_failure(&messages[*i], "pipeline_store", &reason));
                }
                return report;
            }
        };

        // 3. Match and fan out, one execution per (pipeline, ticker) per batch.
        let plan = fan_out_with_legacy_ids(
            &index,
            &signals,
            now_ms,
            self.config.legacy_execution_ids_before,
        );
        report.deduplicated = plan.deduplicated;
        report.matched = plan.fanouts.len();
        for f in &plan.fanouts {
            if let Some(n) = report.matched_by_message.get_mut(f.message_index()) {
                *n += 1;
            }
        }

        let phase = std::time::Instant::now();
        // 4. Claim a lease per fan-out, `claim_concurrency` at a time (results in fan-out order).
        let concurrency = self.config.claim_concurrency.max(1);
        let leased: Vec<(FanOut, Lease)> = plan
            .fanouts
            .iter()
            .filter_map(|f| Some((*f, plan.lease(f)?)))
            .collect();
        let claims: Vec<(FanOut, Lease, Result<ClaimOutcome, StoreError>)> = stream::iter(leased)
            .map(|(f, lease)| async move {
                let outcome = self.leases.claim(&lease, now).await;
                (f, lease, outcome)
            })
            .buffered(concurrency)
            .collect()
            .await;
        let mut to_send: Vec<(FanOut, Lease)> = Vec::new();
        // Pairs whose lease is held by another execution, and by which.
        let mut held_by: Vec<(Lease, String)> = Vec::new();
        for (mut f, lease, outcome) in claims {
            match outcome {
                Ok(ClaimOutcome::Claimed) => to_send.push((f, lease)),
                Ok(ClaimOutcome::Reclaimed) => {
                    f.sent_before = true;
                    to_send.push((f, lease));
                }
                Ok(ClaimOutcome::AlreadyEnqueued) => report.already_enqueued += 1,
                Ok(ClaimOutcome::Held { execution_id, .. }) => {
                    report.skipped_running += 1;
                    if plan.deduplicated > 0 {
                        held_by.push((lease, execution_id));
                    }
                }
                Err(e) => report.failures.push(infra_failure(
                    &messages[f.message_index()],
                    "lease_store",
                    &format!("claiming lease {}: {}", lease.execution_id, error_chain(&e)),
                )),
            }
        }

        // 4b. A held lease may be held by a fan-out this batch dropped as a same-pair duplicate:
        // an earlier delivery of its message claimed the lease and failed before sending. That
        // fan-out is the one to send (the lease says it runs); dropping it would leave the pair
        // held with nothing queued until the lease ran out.
        let dropped = if held_by.is_empty() {
            Vec::new()
        } else {
            plan.dropped()
        };
        for (kept, holder) in held_by {
            let Some((f, lease)) = dropped
                .iter()
                .filter(|d| {
                    plan.pipeline(d).map(|p| &p.pipeline_id) == Some(&kept.pipeline_id)
                        && plan.ticker(d) == Some(&kept.ticker)
                        && plan
                            .execution_id(d)
                            .is_some_and(|id| id == *holder.as_str())
                })
                .find_map(|d| Some((*d, plan.lease(d)?)))
            else {
                continue;
            };
            match self.leases.claim(&lease, now).await {
                Ok(ClaimOutcome::Claimed | ClaimOutcome::Reclaimed) => {
                    to_send.push((
                        FanOut {
                            sent_before: true,
                            ..f
                        },
                        lease,
                    ));
                }
                Ok(ClaimOutcome::AlreadyEnqueued | ClaimOutcome::Held { .. }) => {}
                Err(e) => report.failures.push(infra_failure(
                    &messages[f.message_index()],
                    "lease_store",
                    &format!("claiming lease {}: {}", lease.execution_id, error_chain(&e)),
                )),
            }
        }

        let claims_ms = phase.elapsed().as_secs_f64() * 1000.0;
        let phase = std::time::Instant::now();
        // 5. Send the claimed requests, 10 per call, retrying failed entries. Each carries the
        // trace context of the message whose signal triggered it. Bodies are built only now, for
        // the claimed fan-outs.
        let outgoing: Vec<OutgoingMessage> = to_send
            .iter()
            .enumerate()
            .map(|(n, (f, _))| OutgoingMessage {
                id: format!("e{n}"),
                body: plan.request(f).map(|r| r.to_json()).unwrap_or_default(),
                trace: messages
                    .get(f.message_index())
                    .and_then(|m| m.trace.clone()),
            })
            .collect();
        let by_entry: HashMap<String, &(FanOut, Lease)> = to_send
            .iter()
            .enumerate()
            .map(|(n, f)| (format!("e{n}"), f))
            .collect();
        let sent = send_all(self.executions.as_ref(), outgoing, self.config.send_retry).await;
        let mut unsent: Vec<&Lease> = Vec::new();
        for u in &sent.undelivered {
            if let Some((f, lease)) = by_entry.get(&u.id) {
                report.failures.push(infra_failure(
                    &messages[f.message_index()],
                    "execution_queue",
                    &format!("sending {}: {}", lease.execution_id, u.reason),
                ));
                if !u.maybe_sent && !f.sent_before {
                    unsent.push(lease);
                }
            }
        }
        // Certainly not queued: free the leases they claimed (only if still theirs), so the
        // pairs do not look held until their expiry. The redelivery claims them again. A request
        // that may be on the queue after all keeps its lease: its call failed whole (a timeout),
        // or an earlier delivery of the message may have sent it (`Reclaimed`). Its executor
        // runs without re-checking the lease while the claim lasts (`execute.rs`), so freeing it
        // could let a newer signal's run overlap. The redelivery of its message finds the lease
        // still its own and sends it again (the executor drops the duplicate).
        stream::iter(unsent)
            .for_each_concurrent(concurrency, |lease| async move {
                if let Err(e) = self
                    .leases
                    .release(&lease.pipeline_id, &lease.ticker, &lease.execution_id)
                    .await
                {
                    tracing::warn!(execution_id = %lease.execution_id, error = %error_chain(&e), "could not release the lease of an unsent request; it expires by itself");
                }
            })
            .await;

        // No "enqueued" mark per sent request (one more write per execution): a redelivery of
        // the message finds the lease still this execution's and sends it again; the executor
        // drops the duplicate.
        report.enqueued += sent.sent.len();
        for id in &sent.sent {
            if let Some((f, _)) = by_entry.get(id)
                && let Some(n) = report.enqueued_by_message.get_mut(f.message_index())
            {
                *n += 1;
            }
        }
        tracing::debug!(
            fan_outs = report.matched,
            claims_ms,
            sends_ms = phase.elapsed().as_secs_f64() * 1000.0,
            send_calls = sent.calls,
            "dispatch phases"
        );
        report
    }
}

fn duration_ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Applies changes to the indexed pipelines; `true` if any changed what the index holds.
fn apply_changes(pipelines: &mut HashMap<String, Pipeline>, changes: Vec<PipelineChange>) -> bool {
    let mut changed = false;
    for change in changes {
        match change {
            PipelineChange::Signal(p) => {
                if pipelines.get(&p.pipeline_id) != Some(&p) {
                    pipelines.insert(p.pipeline_id.clone(), p);
                    changed = true;
                }
            }
            PipelineChange::Gone(id) => changed |= pipelines.remove(&id).is_some(),
        }
    }
    changed
}

fn infra_failure(m: &InboundMessage, label: &'static str, reason: &str) -> MessageFailure {
    MessageFailure {
        message_id: m.message_id.clone(),
        label,
        reason: reason.to_owned(),
        poison: false,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::execution::{ExecutionRequest, SignalContext};
    use crate::fakes::*;
    use crate::pipeline::Pipeline;
    use serde_json::json;

    /// The tests' clock, and the signals' timestamp.
    const T0: i64 = 1_750_000_000;

    fn pipeline(id: &str, tickers: &[&str], subs: serde_json::Value) -> Pipeline {
        crate::fakes::fixtures::pipeline(id, "u", tickers, subs)
    }

    fn body(id: &str, tickers: &[(&str, f64)]) -> String {
        json!({
            "signal_id": id, "signal_type": "rsi_oversold", "source": "rsi_generator", "timestamp": T0,
            "tickers": tickers.iter().map(|(t, c)| json!({"ticker": t, "signal": "BULLISH", "confidence": c})).collect::<Vec<_>>(),
            "metadata": {"timeframe": "5"}
        })
        .to_string()
    }

    fn msg(id: &str, body: String) -> InboundMessage {
        InboundMessage {
            message_id: id.into(),
            body,
            sent_at_ms: Some(T0 * 1000 - 500),
            receive_count: None,
            trace: None,
        }
    }

    struct World {
        pipelines: Arc<MemoryPipelineStore>,
        leases: Arc<MemoryLeaseStore>,
        queue: Arc<MemoryQueue>,
        clock: Arc<ManualClock>,
        dispatcher: Dispatcher,
    }

    fn world(pipelines: Vec<Pipeline>) -> World {
        let pipelines = Arc::new(MemoryPipelineStore::with(pipelines));
        let leases = Arc::new(MemoryLeaseStore::default());
        let queue = Arc::new(MemoryQueue::default());
        let clock = Arc::new(ManualClock::at(T0));
        let config = DispatcherConfig {
            cache_ttl: Duration::from_secs(30),
            send_retry: RetryPolicy {
                attempts: 2,
                base_delay: Duration::from_millis(1),
            },
            ..DispatcherConfig::default()
        };
        let dispatcher = Dispatcher::new(
            pipelines.clone(),
            leases.clone(),
            queue.clone(),
            clock.clone(),
            config,
        );
        World {
            pipelines,
            leases,
            queue,
            clock,
            dispatcher,
        }
    }

    fn sent_requests(q: &MemoryQueue) -> Vec<ExecutionRequest> {
        q.bodies()
            .iter()
            .map(|b| ExecutionRequest::parse(b).unwrap())
            .collect()
    }

    /// A fan-out's id, lease and request, derived from the batch's cached halves and borrowed
    /// data, are the canonical ones: the id is `ids::execution_id` of its pipeline, ticker and
    /// signal, and the body is byte for byte the owned request's JSON and parses as the executor
    /// reads it. Duplicates are dropped with the same derivation.
    #[test]
    fn fan_outs_derive_the_canonical_id_lease_and_request() {
        let mut p2 = pipeline("p2", &["AAPL", "MSFT"], json!([]));
        p2.max_runtime_secs = 77;
        p2.user_id = "u2".into();
        let index = PipelineIndex::new(vec![
            pipeline("p1", &["AAPL"], json!([{"signal_type": "rsi_oversold"}])),
            p2,
        ]);
        let mut with_meta: serde_json::Value =
            serde_json::from_str(&body("s2", &[("MSFT", 61.5), ("AAPL", 70.0)])).unwrap();
        with_meta["metadata"]["rsi"] = json!(27.25);
        let signals: Vec<(usize, Signal)> = vec![
            (3, Signal::parse(&body("s1", &[("AAPL", 80.0)])).unwrap()),
            (5, Signal::parse(&with_meta.to_string()).unwrap()),
        ];
        let now_ms = T0 * 1000 + 250;
        let plan = fan_out(&index, &signals, now_ms);
        let mut seen = Vec::new();
        for f in &plan.fanouts {
            let (message_index, signal) = &signals[f.signal as usize];
            assert_eq!(f.message_index(), *message_index);
            let pipeline = plan.pipeline(f).unwrap();
            let ts = &signal.tickers[f.hit.ticker as usize];
            let id = crate::ids::execution_id(
                &pipeline.pipeline_id,
                ts.ticker.as_str(),
                &signal.signal_id,
            );
            assert_eq!(plan.execution_id(f).unwrap().as_str(), id);
            let lease = plan.lease(f).unwrap();
            assert_eq!(
                lease,
                Lease {
                    pipeline_id: pipeline.pipeline_id.clone(),
                    ticker: ts.ticker.clone(),
                    execution_id: id.clone(),
                    expires_at: T0 + i64::from(pipeline.max_runtime_secs),
                }
            );
            let view = plan.request(f).unwrap();
            let owned = ExecutionRequest {
                execution_id: id,
                pipeline_id: pipeline.pipeline_id.clone(),
                user_id: pipeline.user_id.clone(),
                ticker: ts.ticker.clone(),
                signal_context: SignalContext::of_ticker(
                    signal,
                    &ts.ticker,
                    ts.confidence.value(),
                    ts.signal,
                ),
                lease_expires_at: lease.expires_at,
                enqueued_at_ms: now_ms,
            };
            assert_eq!(view.to_owned(), owned);
            assert_eq!(view.to_json(), owned.to_json());
            assert_eq!(ExecutionRequest::parse(&view.to_json()).unwrap(), owned);
            seen.push((pipeline.pipeline_id.clone(), ts.ticker.to_string()));
        }
        // s1: p1 and p2 on AAPL; s2: p2 on MSFT (p1 has no MSFT), AAPL dropped for both.
        assert_eq!(
            seen,
            [("p1", "AAPL"), ("p2", "AAPL"), ("p2", "MSFT")]
                .map(|(p, t)| (p.to_string(), t.to_string()))
        );
        assert_eq!(plan.deduplicated, 2);
        assert_eq!(plan.dropped().len(), 2);
        for d in &plan.dropped() {
            assert_eq!(d.signal, 1);
            let id = crate::ids::execution_id(&plan.pipeline(d).unwrap().pipeline_id, "AAPL", "s2");
            assert_eq!(plan.execution_id(d).unwrap().as_str(), id);
        }
    }

    /// A lease store whose every call takes `delay` and that records how many calls were in
    /// flight at once.
    struct SlowLeases {
        inner: MemoryLeaseStore,
        delay: Duration,
        in_flight: std::sync::atomic::AtomicUsize,
        max_in_flight: std::sync::atomic::AtomicUsize,
    }

    impl SlowLeases {
        async fn slow<T>(&self, call: impl std::future::Future<Output = T>) -> T {
            use std::sync::atomic::Ordering::SeqCst;
            let now = self.in_flight.fetch_add(1, SeqCst) + 1;
            self.max_in_flight.fetch_max(now, SeqCst);
            tokio::time::sleep(self.delay).await;
            let out = call.await;
            self.in_flight.fetch_sub(1, SeqCst);
            out
        }
    }

    #[async_trait::async_trait]
    impl LeaseStore for SlowLeases {
        async fn claim(&self, lease: &Lease, now: i64) -> Result<ClaimOutcome, StoreError> {
            self.slow(self.inner.claim(lease, now)).await
        }
        async fn hold(
            &self,
            lease: &Lease,
            now: i64,
        ) -> Result<crate::ports::HoldOutcome, StoreError> {
            self.slow(self.inner.hold(lease, now)).await
        }
        async fn release(
            &self,
            pipeline_id: &str,
            ticker: &crate::vocab::Ticker,
            execution_id: &str,
        ) -> Result<(), StoreError> {
            self.slow(self.inner.release(pipeline_id, ticker, execution_id))
                .await
        }
    }

    /// Issue 9: 20 signals x 100 matching pipelines is 2,000 lease claims. One at a time at
    /// 10 ms each that is 20 s of a 30 s timeout; they are issued with bounded concurrency instead: never more than the limit in flight, and the
    /// limit is reached.
    #[tokio::test(start_paused = true)]
    async fn a_2000_fan_out_batch_claims_its_leases_with_bounded_concurrency() {
        let tickers: Vec<String> = (0..20).map(|i| format!("T{i:02}")).collect();
        let refs: Vec<&str> = tickers.iter().map(String::as_str).collect();
        let pipelines: Vec<Pipeline> = (0..100)
            .map(|i| pipeline(&format!("p{i:03}"), &refs, json!([])))
            .collect();
        let leases = Arc::new(SlowLeases {
            inner: MemoryLeaseStore::default(),
            delay: Duration::from_millis(10),
            in_flight: Default::default(),
            max_in_flight: Default::default(),
        });
        let queue = Arc::new(MemoryQueue::default());
        let config = DispatcherConfig::default();
        let limit = config.claim_concurrency;
        let dispatcher = Dispatcher::new(
            Arc::new(MemoryPipelineStore::with(pipelines)),
            leases.clone(),
            queue.clone(),
            Arc::new(ManualClock::at(T0)),
            config,
        );
        let messages: Vec<InboundMessage> = tickers
            .iter()
            .enumerate()
            .map(|(i, t)| msg(&format!("m{i}"), body(&format!("s{i}"), &[(t, 80.0)])))
            .collect();
        let started = tokio::time::Instant::now();
        let r = dispatcher.dispatch(&messages, Deadline::none()).await;
        let elapsed = started.elapsed();
        assert!(r.failures.is_empty(), "{:?}", r.failures);
        assert_eq!((r.matched, r.enqueued), (2_000, 2_000));
        assert_eq!(queue.bodies().len(), 2_000);
        let max = leases
            .max_in_flight
            .load(std::sync::atomic::Ordering::SeqCst);
        assert_eq!(max, limit, "claims in flight at once");
        // Virtual time (the clock is paused): 2,000 claims at 10 ms, `limit` at a time.
        assert!(
            elapsed < Duration::from_millis(10 * 2_000 / limit as u64 + 100),
            "{elapsed:?}"
        );
    }

    /// Each request carries the trace context of the message whose signal triggered it (the
    /// dispatcher's span for that message, set by the handler), and the report counts each
    /// message's fan-outs.
    #[tokio::test]
    async fn each_request_carries_the_trace_context_of_its_message() {
        let w = world(vec![
            pipeline("p1", &["AAPL"], json!([])),
            pipeline("p2", &["AAPL", "MSFT"], json!([])),
        ]);
        let traced = |id: &str, b: String, parent: Option<&str>| InboundMessage {
            trace: parent.map(|p| crate::trace::TraceContext {
                traceparent: p.into(),
                tracestate: Some("k=v".into()),
            }),
            ..msg(id, b)
        };
        let messages = [
            traced("m1", body("s1", &[("AAPL", 80.0)]), Some("tp-1")),
            traced("m2", body("s2", &[("MSFT", 80.0)]), None),
            traced("m3", body("s3", &[("TSLA", 80.0)]), Some("tp-3")),
        ];
        let r = w.dispatcher.dispatch(&messages, Deadline::none()).await;
        assert_eq!((r.matched, r.enqueued), (3, 3));
        assert_eq!(r.matched_by_message, vec![2, 1, 0]);
        assert_eq!(r.enqueued_by_message, vec![2, 1, 0]);
        let mut sent: Vec<(String, Option<String>)> = w
            .queue
            .drain()
            .into_iter()
            .map(|m| {
                let request = ExecutionRequest::parse(&m.body).unwrap();
                (
                    format!("{}:{}", request.pipeline_id, request.ticker),
                    m.trace.map(|t| t.traceparent),
                )
            })
            .collect();
        sent.sort();
        assert_eq!(
            sent,
            vec![
                ("p1:AAPL".into(), Some("tp-1".into())),
                ("p2:AAPL".into(), Some("tp-1".into())),
                ("p2:MSFT".into(), None),
            ]
        );
    }

    #[tokio::test]
    async fn fans_out_one_request_per_pipeline_and_ticker() {
        let w = world(vec![
            pipeline(
                "p1",
                &["AAPL", "MSFT"],
                json!([{"signal_type": "rsi_oversold", "min_confidence": 70}]),
            ),
            pipeline("p2", &["AAPL"], json!([])),
            pipeline("p3", &["TSLA"], json!([])),
        ]);
        let r = w
            .dispatcher
            .dispatch(
                &[msg(
                    "m1",
                    body("s1", &[("AAPL", 80.0), ("MSFT", 60.0), ("NVDA", 90.0)]),
                )],
                Deadline::none(),
            )
            .await;
        assert_eq!(
            (r.consumed, r.matched, r.enqueued, r.skipped_running),
            (1, 2, 2, 0)
        );
        assert!(r.failed_message_ids().is_empty());
        let reqs = sent_requests(&w.queue);
        let pairs: Vec<_> = reqs
            .iter()
            .map(|q| format!("{}:{}", q.pipeline_id, q.ticker))
            .collect();
        assert_eq!(pairs, vec!["p1:AAPL", "p2:AAPL"]);
        assert_eq!(reqs[0].signal_context.signal_id, "s1");
        assert_eq!(reqs[0].signal_context.tickers.len(), 1);
        assert_eq!(reqs[0].lease_expires_at, T0 + 720);
        assert_eq!(r.lags_ms, vec![500]);
        let lease = w.leases.get("p1", &reqs[0].ticker).unwrap();
        assert_eq!(lease.lease.execution_id, reqs[0].execution_id);
        assert_eq!(lease.lease.expires_at, reqs[0].lease_expires_at);
    }

    #[tokio::test]
    async fn a_held_lease_is_skipped_and_an_expired_one_runs() {
        let w = world(vec![pipeline("p1", &["AAPL"], json!([]))]);
        let aapl = crate::vocab::Ticker::parse("AAPL").unwrap();
        w.leases.insert(
            Lease {
                pipeline_id: "p1".into(),
                ticker: aapl.clone(),
                execution_id: "exe-old".into(),
                expires_at: T0 + 500,
            },
            true,
        );
        let r = w
            .dispatcher
            .dispatch(
                &[msg("m1", body("s1", &[("AAPL", 80.0)]))],
                Deadline::none(),
            )
            .await;
        assert_eq!((r.matched, r.enqueued, r.skipped_running), (1, 0, 1));
        assert!(w.queue.bodies().is_empty());

        w.clock.set(T0 + 501);
        let r = w
            .dispatcher
            .dispatch(
                &[msg("m2", body("s2", &[("AAPL", 80.0)]))],
                Deadline::none(),
            )
            .await;
        assert_eq!((r.enqueued, r.skipped_running), (1, 0));
        assert_ne!(
            w.leases.get("p1", &aapl).unwrap().lease.execution_id,
            "exe-old"
        );
    }

    #[tokio::test]
    async fn a_malformed_message_fails_alone() {
        let w = world(vec![pipeline("p1", &["AAPL"], json!([]))]);
        let r = w
            .dispatcher
            .dispatch(
                &[
                    msg("m1", body("s1", &[("AAPL", 80.0)])),
                    msg("bad", "{not json".into()),
                    msg("m3", body("s3", &[("AAPL", 80.0)])),
                ],
                Deadline::none(),
            )
            .await;
        assert_eq!(r.failed_message_ids(), vec!["bad"]);
        assert!(r.failures[0].poison);
        assert_eq!(r.failures[0].label, "malformed_json");
        // s1 and s3 hit the same (pipeline, ticker): one execution per batch.
        assert_eq!(
            (r.consumed, r.matched, r.deduplicated, r.enqueued),
            (2, 1, 1, 1)
        );
    }

    #[tokio::test]
    async fn fails_closed_when_the_pipeline_store_is_down() {
        let w = world(vec![pipeline("p1", &["AAPL"], json!([]))]);
        w.pipelines.failures.fail_next(1);
        let r = w
            .dispatcher
            .dispatch(
                &[
                    msg("m1", body("s1", &[("AAPL", 80.0)])),
                    msg("m2", body("s2", &[("MSFT", 80.0)])),
                ],
                Deadline::none(),
            )
            .await;
        assert_eq!(r.failed_message_ids(), vec!["m1", "m2"]);
        assert!(w.queue.bodies().is_empty());
        // Next delivery works.
        let r = w
            .dispatcher
            .dispatch(
                &[msg("m1", body("s1", &[("AAPL", 80.0)]))],
                Deadline::none(),
            )
            .await;
        assert_eq!(r.enqueued, 1);
    }

    #[tokio::test]
    async fn fails_closed_on_lease_store_errors() {
        let w = world(vec![pipeline("p1", &["AAPL"], json!([]))]);
        w.leases.failures.fail_next(1);
        let r = w
            .dispatcher
            .dispatch(
                &[msg("m1", body("s1", &[("AAPL", 80.0)]))],
                Deadline::none(),
            )
            .await;
        assert_eq!(r.failed_message_ids(), vec!["m1"]);
        assert_eq!(r.failures[0].label, "lease_store");
        assert!(w.queue.bodies().is_empty());
    }

    /// The retry of a message sends again what it sent before while the lease is still that
    /// execution's (no "enqueued" write per request: the executor runs an execution once), and
    /// skips a request whose run has started (the executor's `hold` marked the lease).
    #[tokio::test]
    async fn a_queue_outage_fails_the_message_and_the_retry_sends_what_has_not_started() {
        let w = world(vec![
            pipeline("p1", &["AAPL"], json!([])),
            pipeline("p2", &["AAPL"], json!([])),
            pipeline("p3", &["AAPL"], json!([])),
        ]);
        // p1's and p3's requests go through, p2's entry keeps failing on this delivery.
        w.queue.fail_entries_next_calls(&["e1"], 2);
        let m = msg("m1", body("s1", &[("AAPL", 80.0)]));
        let r = w
            .dispatcher
            .dispatch(std::slice::from_ref(&m), Deadline::none())
            .await;
        assert_eq!(r.failed_message_ids(), vec!["m1"]);
        assert_eq!(r.failures[0].label, "execution_queue");
        let first = sent_requests(&w.queue);
        assert_eq!(first.len(), 2);
        // p3's run has started before the redelivery.
        let p3 = first.iter().find(|q| q.pipeline_id == "p3").unwrap();
        let lease = Lease {
            pipeline_id: "p3".into(),
            ticker: p3.ticker.clone(),
            execution_id: p3.execution_id.clone(),
            expires_at: T0 + 100,
        };
        w.leases.hold(&lease, T0).await.unwrap();
        // Redelivery: p1 is sent again (same execution id), p2 at last, p3 is skipped.
        let r = w.dispatcher.dispatch(&[m], Deadline::none()).await;
        assert!(r.failed_message_ids().is_empty());
        assert_eq!((r.already_enqueued, r.enqueued), (1, 2));
        let reqs = sent_requests(&w.queue);
        let mut ids: Vec<_> = reqs
            .iter()
            .map(|r| (r.pipeline_id.clone(), r.execution_id.clone()))
            .collect();
        ids.sort();
        ids.dedup();
        assert_eq!(
            ids.iter().map(|(p, _)| p.as_str()).collect::<Vec<_>>(),
            vec!["p1", "p2", "p3"],
            "one execution id per (pipeline, ticker)"
        );
    }

    /// Fault 4 of issue 8: a request that could not be sent frees the lease its fan-out claimed,
    /// so the pair does not look held with nothing queued; the other fan-outs keep theirs.
    #[tokio::test]
    async fn an_unsent_request_releases_the_lease_it_claimed() {
        let w = world(vec![
            pipeline("p1", &["AAPL"], json!([])),
            pipeline("p2", &["AAPL"], json!([])),
        ]);
        let aapl = crate::vocab::Ticker::parse("AAPL").unwrap();
        // p2's entry fails on every attempt of this delivery.
        w.queue.fail_entries_next_calls(&["e1"], 5);
        let r = w
            .dispatcher
            .dispatch(
                &[msg("m1", body("s1", &[("AAPL", 80.0)]))],
                Deadline::none(),
            )
            .await;
        assert_eq!(r.failed_message_ids(), vec!["m1"]);
        assert!(
            w.leases.get("p2", &aapl).is_none(),
            "p2's lease is held with nothing queued"
        );
        let p1 = w.leases.get("p1", &aapl).unwrap();
        assert_eq!(
            p1.lease.execution_id,
            sent_requests(&w.queue)[0].execution_id,
            "p1's request was sent: its lease stays"
        );
        // A signal rejected by the queue (sender's fault) frees its lease too.
        w.queue.reject_entries(&["e0"]);
        let r = w
            .dispatcher
            .dispatch(
                &[msg("m2", body("s2", &[("AAPL", 80.0)]))],
                Deadline::none(),
            )
            .await;
        assert_eq!(r.failed_message_ids(), vec!["m2"]);
        assert!(w.leases.get("p2", &aapl).is_none());
    }

    /// A request whose whole send call failed (a timeout: it may be on the queue after all)
    /// keeps its lease: its executor may run under that claim, so freeing it could let a newer
    /// signal's run overlap. The message is retried and sends it again.
    #[tokio::test]
    async fn a_request_that_may_have_been_sent_keeps_its_lease() {
        let w = world(vec![pipeline("p1", &["AAPL"], json!([]))]);
        let aapl = crate::vocab::Ticker::parse("AAPL").unwrap();
        // Both tries of this delivery (the test policy makes 2) fail whole.
        w.queue.fail_calls(2);
        let m = msg("m1", body("s1", &[("AAPL", 80.0)]));
        let r = w
            .dispatcher
            .dispatch(std::slice::from_ref(&m), Deadline::none())
            .await;
        assert_eq!(r.failed_message_ids(), vec!["m1"]);
        let held = w.leases.get("p1", &aapl).unwrap();
        let r = w.dispatcher.dispatch(&[m], Deadline::none()).await;
        assert!(r.failed_message_ids().is_empty());
        let reqs = sent_requests(&w.queue);
        assert_eq!(reqs.len(), 1);
        assert_eq!(reqs[0].execution_id, held.lease.execution_id);
    }

    /// The soak's stale lease: a delivery claims its fan-out's lease and fails before sending;
    /// the redelivery lands in a batch behind another signal of the same (pipeline, ticker).
    /// First-in-batch-wins dropped the redelivered fan-out, the other one was skipped behind the
    /// lease, and the lease stayed held with nothing queued until it expired. The fan-out that
    /// holds the lease is the one sent.
    #[tokio::test]
    async fn a_claimed_fan_out_is_sent_when_its_redelivery_is_batched_behind_its_pair() {
        let w = world(vec![pipeline("p1", &["AAPL"], json!([]))]);
        let aapl = crate::vocab::Ticker::parse("AAPL").unwrap();
        w.queue.fail_calls(2);
        let m1 = msg("m1", body("s1", &[("AAPL", 80.0)]));
        let r = w
            .dispatcher
            .dispatch(std::slice::from_ref(&m1), Deadline::none())
            .await;
        assert_eq!(r.failed_message_ids(), vec!["m1"]);
        let held = w.leases.get("p1", &aapl).unwrap().lease.execution_id;

        let m0 = msg("m0", body("s0", &[("AAPL", 90.0)]));
        let r = w.dispatcher.dispatch(&[m0, m1], Deadline::none()).await;
        assert!(r.failed_message_ids().is_empty(), "{:?}", r.failures);
        let reqs = sent_requests(&w.queue);
        assert_eq!(
            reqs.iter()
                .map(|q| q.execution_id.as_str())
                .collect::<Vec<_>>(),
            vec![held.as_str()],
            "the lease's own fan-out is sent"
        );
        assert_eq!((r.enqueued, r.skipped_running), (1, 1));
        assert_eq!(w.leases.get("p1", &aapl).unwrap().lease.execution_id, held);
    }

    /// The dispatcher of `w`'s stores with the legacy-id cutover at `legacy_before`.
    fn with_cutover(w: &World, legacy_before: i64) -> Dispatcher {
        Dispatcher::new(
            w.pipelines.clone(),
            w.leases.clone(),
            w.queue.clone(),
            w.clock.clone(),
            DispatcherConfig {
                legacy_execution_ids_before: legacy_before,
                ..DispatcherConfig::default()
            },
        )
    }

    /// Signals stamped before the cutover keep the execution ids the previous version gave
    /// them; from the cutover on they get the two-half ids. Both run (the executor takes both).
    #[tokio::test]
    async fn signals_of_before_the_cutover_keep_their_legacy_execution_ids() {
        let w = world(vec![pipeline("p1", &["AAPL", "MSFT"], json!([]))]);
        // Signals stamped T0: before a cutover at T0 + 1, not before one at T0.
        for (cutover, id, ticker) in [(T0 + 1, "s1", "AAPL"), (T0, "s2", "MSFT")] {
            let r = with_cutover(&w, cutover)
                .dispatch(&[msg(id, body(id, &[(ticker, 80.0)]))], Deadline::none())
                .await;
            assert_eq!(r.enqueued, 1);
        }
        let ids: Vec<String> = sent_requests(&w.queue)
            .into_iter()
            .map(|r| r.execution_id)
            .collect();
        assert_eq!(
            ids,
            vec![
                crate::ids::legacy_execution_id("p1", "AAPL", "s1"),
                crate::ids::execution_id("p1", "MSFT", "s2"),
            ]
        );
    }

    /// The upgrade hazard the cutover is for: the previous version claimed a lease under the
    /// legacy id and failed before sending; the signal is redelivered to this version. With the
    /// cutover past the signal's stamp, the redelivery finds its own lease and sends the
    /// execution under that id. Without it (cutover 0) the lease looks held by another execution:
    /// the signal would be skipped and the pair stay held until the lease ran out.
    #[tokio::test]
    async fn a_lease_the_previous_version_claimed_is_sent_under_its_legacy_id() {
        for (cutover, sent) in [(T0 + 2 * 86_400, true), (0, false)] {
            let w = world(vec![pipeline("p1", &["AAPL"], json!([]))]);
            let aapl = crate::vocab::Ticker::parse("AAPL").unwrap();
            let legacy = crate::ids::legacy_execution_id("p1", "AAPL", "s1");
            let claimed = w
                .leases
                .claim(
                    &Lease {
                        pipeline_id: "p1".into(),
                        ticker: aapl.clone(),
                        execution_id: legacy.clone(),
                        expires_at: T0 + 900,
                    },
                    T0,
                )
                .await
                .unwrap();
            assert_eq!(claimed, ClaimOutcome::Claimed);
            let r = with_cutover(&w, cutover)
                .dispatch(
                    &[msg("m1", body("s1", &[("AAPL", 80.0)]))],
                    Deadline::none(),
                )
                .await;
            assert!(r.failures.is_empty(), "{:?}", r.failures);
            let ids: Vec<String> = sent_requests(&w.queue)
                .into_iter()
                .map(|r| r.execution_id)
                .collect();
            if sent {
                assert_eq!(ids, vec![legacy.clone()], "cutover {cutover}");
                assert_eq!((r.enqueued, r.skipped_running), (1, 0));
            } else {
                assert!(ids.is_empty(), "cutover {cutover}: {ids:?}");
                assert_eq!((r.enqueued, r.skipped_running), (0, 1));
            }
            assert_eq!(
                w.leases.get("p1", &aapl).unwrap().lease.execution_id,
                legacy
            );
        }
    }

    #[tokio::test]
    async fn the_pipeline_cache_is_reused_until_its_ttl() {
        use std::sync::atomic::Ordering::SeqCst;
        let w = world(vec![pipeline("p1", &["AAPL"], json!([]))]);
        w.dispatcher
            .dispatch(
                &[msg("m1", body("s1", &[("MSFT", 80.0)]))],
                Deadline::none(),
            )
            .await;
        w.pipelines.set_write_time_ms(w.clock.now_ms() + 500);
        w.pipelines
            .put_pipeline(&pipeline("p2", &["MSFT"], json!([])))
            .await
            .unwrap();
        w.clock.advance(29);
        let r = w
            .dispatcher
            .dispatch(
                &[msg("m2", body("s2", &[("MSFT", 80.0)]))],
                Deadline::none(),
            )
            .await;
        assert_eq!((r.cache_refreshed, r.matched), (false, 0));
        w.clock.advance(1);
        let r = w
            .dispatcher
            .dispatch(
                &[msg("m3", body("s3", &[("MSFT", 80.0)]))],
                Deadline::none(),
            )
            .await;
        assert_eq!((r.cache_refreshed, r.matched, r.cache_size), (true, 1, 2));
        // The refresh read only what changed: one full load at the start, then one change read.
        assert_eq!(
            (
                w.pipelines.loads.load(SeqCst),
                w.pipelines.change_reads.load(SeqCst)
            ),
            (1, 1)
        );
    }

    /// Issue 9: the refresh every 30 s reads the pipelines written since the last one (a Query
    /// of the `updated_at` index), not the whole table: a new or edited pipeline enters the
    /// index, a deactivated one leaves it. Writes nobody stamped (a hard delete here) are caught
    /// by the full load every `full_reload_interval`.
    #[tokio::test]
    async fn the_index_is_refreshed_with_changes_and_reloaded_whole_now_and_then() {
        use std::sync::atomic::Ordering::SeqCst;
        let w = world(vec![
            pipeline("p1", &["AAPL"], json!([])),
            pipeline("p2", &["AAPL"], json!([])),
            pipeline("p3", &["AAPL"], json!([])),
        ]);
        let matched = |r: &DispatchReport| (r.matched, r.cache_size);
        let dispatch = |id: &'static str| {
            let m = msg(id, body(id, &[("AAPL", 80.0)]));
            let d = &w.dispatcher;
            async move { d.dispatch(&[m], Deadline::none()).await }
        };
        assert_eq!(matched(&dispatch("s1").await), (3, 3));
        // p2 deactivated, p4 created, p3 deleted outright (no `updated_at`).
        w.clock.advance(10);
        w.pipelines.set_write_time_ms(w.clock.now_ms());
        let mut off = pipeline("p2", &["AAPL"], json!([]));
        off.is_active = false;
        w.pipelines.put_pipeline(&off).await.unwrap();
        w.pipelines
            .put_pipeline(&pipeline("p4", &["AAPL"], json!([])))
            .await
            .unwrap();
        w.pipelines.hard_delete("p3");
        w.clock.advance(25);
        let r = dispatch("s2").await;
        assert!(r.cache_refreshed);
        assert_eq!(
            matched(&r),
            (3, 3),
            "p1, p4 and the deleted p3 (not seen yet)"
        );
        assert_eq!(
            (
                w.pipelines.loads.load(SeqCst),
                w.pipelines.change_reads.load(SeqCst)
            ),
            (1, 1)
        );
        // 15 minutes on: the full load drops p3.
        w.clock.advance(15 * 60);
        let r = dispatch("s3").await;
        assert_eq!(matched(&r), (2, 2));
        assert_eq!(w.pipelines.loads.load(SeqCst), 2);
    }
}
