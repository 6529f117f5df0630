//! The index and the dispatcher's fan-out as they were before issue 9 (main at e34641f), kept
//! only so `benches/bench_data.rs` can measure the old and the new path in the same run.
//! Same results (the bench asserts it); not used by anything else.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use tradeflow_core::execution::{ExecutionRequest, SignalContext};
use tradeflow_core::matching::{Match, confidence_threshold};
use tradeflow_core::pipeline::Pipeline;
use tradeflow_core::ports::Lease;
use tradeflow_core::signal::Signal;
use tradeflow_core::vocab::{SignalType, Ticker};

/// The old index: slots by (ticker, type) and by ticker, each match re-checked against the
/// pipeline's subscriptions.
#[derive(Default)]
pub struct LegacyIndex {
    pipelines: Vec<Arc<Pipeline>>,
    by_ticker_and_type: HashMap<(Ticker, SignalType), Vec<usize>>,
    any_type_by_ticker: HashMap<Ticker, Vec<usize>>,
}

impl LegacyIndex {
    pub fn new(pipelines: impl IntoIterator<Item = Pipeline>) -> Self {
        let mut index = LegacyIndex::default();
        for pipeline in pipelines {
            if !pipeline.is_signal_triggered() {
                continue;
            }
            let slot = index.pipelines.len();
            let tickers: BTreeSet<&Ticker> = pipeline.tickers.iter().collect();
            let types: BTreeSet<&SignalType> = pipeline
                .signal_subscriptions
                .iter()
                .map(|s| &s.signal_type)
                .collect();
            for ticker in tickers {
                if types.is_empty() {
                    index
                        .any_type_by_ticker
                        .entry(ticker.clone())
                        .or_default()
                        .push(slot);
                }
                for signal_type in &types {
                    index
                        .by_ticker_and_type
                        .entry((ticker.clone(), (*signal_type).clone()))
                        .or_default()
                        .push(slot);
                }
            }
            index.pipelines.push(Arc::new(pipeline));
        }
        index
    }

    pub fn matches(&self, signal: &Signal) -> Vec<Match> {
        let mut out = Vec::new();
        for ts in &signal.tickers {
            let typed = self
                .by_ticker_and_type
                .get(&(ts.ticker.clone(), signal.signal_type.clone()));
            let any = self.any_type_by_ticker.get(&ts.ticker);
            let mut slots: Vec<usize> = typed
                .into_iter()
                .chain(any)
                .flat_map(|v| v.iter().copied())
                .collect();
            slots.sort_unstable();
            slots.dedup();
            for slot in slots {
                let Some(pipeline) = self.pipelines.get(slot) else {
                    continue;
                };
                let Some(threshold) = confidence_threshold(pipeline, signal) else {
                    continue;
                };
                if ts.confidence.value() >= threshold {
                    out.push(Match {
                        pipeline: Arc::clone(pipeline),
                        ticker: ts.ticker.clone(),
                        confidence: ts.confidence.value(),
                        direction: ts.signal,
                    });
                }
            }
        }
        out
    }
}

/// The old de-duplication alone: a `format!`ed lease key per match in a `HashSet<String>`.
/// Returns the executions kept.
pub fn match_and_dedup(index: &LegacyIndex, batch: &[Signal]) -> u64 {
    let mut seen: HashSet<String> = HashSet::new();
    let mut kept = 0;
    for s in batch {
        for m in index.matches(s) {
            kept += u64::from(seen.insert(Lease::key(&m.pipeline.pipeline_id, &m.ticker)));
        }
    }
    kept
}

/// The old step 3 of `Dispatcher::dispatch` and the request bodies: (message index, lease,
/// request) per execution. Returns (matches, executions, body bytes).
pub fn dispatch_batch(
    index: &LegacyIndex,
    batch: &[(usize, Signal)],
    now_ms: i64,
) -> (u64, u64, usize) {
    let now = now_ms.div_euclid(1000);
    let mut seen: HashSet<String> = HashSet::new();
    let mut fanouts: Vec<(usize, Lease, ExecutionRequest)> = Vec::new();
    let mut matches = 0;
    for (i, signal) in batch {
        for m in index.matches(signal) {
            matches += 1;
            let key = Lease::key(&m.pipeline.pipeline_id, &m.ticker);
            if !seen.insert(key) {
                continue;
            }
            let execution_id = tradeflow_core::ids::legacy_execution_id(
                &m.pipeline.pipeline_id,
                m.ticker.as_str(),
                &signal.signal_id,
            );
            let expires_at = now + i64::from(m.pipeline.max_runtime_secs);
            fanouts.push((
                *i,
                Lease {
                    pipeline_id: m.pipeline.pipeline_id.clone(),
                    ticker: m.ticker.clone(),
                    execution_id: execution_id.clone(),
                    expires_at,
                },
                ExecutionRequest {
                    execution_id,
                    pipeline_id: m.pipeline.pipeline_id.clone(),
                    user_id: m.pipeline.user_id.clone(),
                    ticker: m.ticker.clone(),
                    signal_context: SignalContext::new(signal, &m),
                    lease_expires_at: expires_at,
                    enqueued_at_ms: now_ms,
                },
            ));
        }
    }
    let bytes = fanouts.iter().map(|f| f.2.to_json().len()).sum();
    (matches, fanouts.len() as u64, bytes)
}
