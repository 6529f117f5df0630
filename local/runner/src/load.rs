//! The load harness: N signals straight onto the signals queue, each triggering `pipelines`
//! executions, through the whole chain on the emulator; measures throughput and signal-to-
//! execution latency. `tradeflow-local load --signals 500` runs it; a 20-signal version runs in
//! the integration tests. Results are a markdown table row (see BENCHMARKS.md).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
use tradeflow_core::pipeline::Pipeline;
use tradeflow_core::ports::PipelineStore;

use crate::calls::CallLog;
use crate::chain::{Chain, ChainConfig, Functions};
use crate::stack::StackOutputs;

#[derive(Debug, Clone, PartialEq)]
pub struct LoadReport {
    pub signals: usize,
    pub pipelines: usize,
    pub executions: usize,
    pub completed: usize,
    /// From the first send to the last execution finished.
    pub elapsed: Duration,
    /// Per execution: when the executor finished it minus when its signal was sent.
    pub latency_ms: Vec<u64>,
    /// AWS requests the functions made, per operation (when their clients were recorded).
    pub aws_calls: Option<std::collections::BTreeMap<String, usize>>,
}

impl LoadReport {
    /// AWS requests of the three functions per completed execution (the functions' own calls,
    /// not the event source mappings' receives and deletes).
    pub fn calls_per_execution(&self) -> Option<f64> {
        let total: usize = self.aws_calls.as_ref()?.values().sum();
        Some(total as f64 / self.completed.max(1) as f64)
    }

    pub fn throughput(&self) -> f64 {
        self.completed as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    pub fn percentile(&self, p: f64) -> u64 {
        let mut v = self.latency_ms.clone();
        v.sort_unstable();
        if v.is_empty() {
            return 0;
        }
        let rank = ((p / 100.0) * (v.len() as f64 - 1.0)).round() as usize;
        v[rank.min(v.len() - 1)]
    }

    pub fn table_header() -> &'static str {
        "| signals | pipelines | executions | elapsed (s) | executions/s | latency p50 (ms) | p95 (ms) | p99 (ms) | max (ms) | AWS requests / execution |\n|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    }

    pub fn table_row(&self) -> String {
        let calls = self
            .calls_per_execution()
            .map_or_else(|| "not recorded".to_owned(), |c| format!("{c:.2}"));
        format!(
            "| {} | {} | {} | {:.2} | {:.1} | {} | {} | {} | {} | {calls} |",
            self.signals,
            self.pipelines,
            self.completed,
            self.elapsed.as_secs_f64(),
            self.throughput(),
            self.percentile(50.0),
            self.percentile(95.0),
            self.percentile(99.0),
            self.percentile(100.0)
        )
    }
}

fn load_ticker(i: usize) -> String {
    format!("L{i:05}")
}

/// Runs the load on a deployed (empty) stack with `functions`. Every signal has its own ticker,
/// so each (pipeline, ticker) runs once and nothing is skipped.
pub async fn run_load(
    sdk: &aws_config::SdkConfig,
    outputs: &StackOutputs,
    functions: Functions,
    calls: Option<CallLog>,
    signals: usize,
    pipelines: usize,
    timeout: Duration,
) -> anyhow::Result<LoadReport> {
    let dynamo = aws_sdk_dynamodb::Client::new(sdk);
    let sqs = aws_sdk_sqs::Client::new(sdk);
    let store = tradeflow_aws::DynamoPipelineStore::new(
        dynamo.clone(),
        outputs.get("PipelinesTableName")?.to_owned(),
    );
    let tickers: Vec<String> = (0..signals).map(load_ticker).collect();
    for p in 0..pipelines {
        let pipeline: Pipeline = serde_json::from_value(serde_json::json!({
            "pipeline_id": format!("load-{p}"), "user_id": "load", "name": format!("load {p}"),
            "is_active": true, "trigger_mode": "signal", "tickers": tickers,
            "signal_subscriptions": [{"signal_type": "load_test"}]
        }))?;
        store.put_pipeline(&pipeline).await?;
    }
    let mut config = ChainConfig::default();
    config.executions.record_completions = true;
    let chain = Chain::start(sdk, outputs.clone(), functions, config).await?;
    let queue_url =
        tradeflow_aws::resolve_queue_url(&sqs, outputs.get("SignalsQueueName")?).await?;
    // Signal time: one with plenty of synthetic candles before it.
    let timestamp = 1_767_623_400;
    let started = Instant::now();
    let mut sent_at: HashMap<String, Duration> = HashMap::new();
    for chunk in (0..signals).collect::<Vec<_>>().chunks(10) {
        let entries: Vec<SendMessageBatchRequestEntry> = chunk
            .iter()
            .map(|&i| {
                let body = serde_json::json!({
                    "signal_id": format!("load-{i}"), "signal_type": "load_test", "source": "load_harness",
                    "timestamp": timestamp,
                    "tickers": [{"ticker": load_ticker(i), "signal": if i % 2 == 0 { "BULLISH" } else { "BEARISH" }, "confidence": 80, "reasoning": null}],
                    "metadata": {"timeframe": "5"}
                });
                SendMessageBatchRequestEntry::builder()
                    .id(format!("e{i}"))
                    .message_body(body.to_string())
                    .build()
            })
            .collect::<Result<_, _>>()?;
        let resp = sqs
            .send_message_batch()
            .queue_url(&queue_url)
            .set_entries(Some(entries))
            .send()
            .await
            .context("sending load signals")?;
        if !resp.failed().is_empty() {
            bail!("{} load signals were refused", resp.failed().len());
        }
        let now = started.elapsed();
        for &i in chunk {
            for p in 0..pipelines {
                let id = tradeflow_core::ids::execution_id(
                    &format!("load-{p}"),
                    &load_ticker(i),
                    &format!("load-{i}"),
                );
                sent_at.insert(id, now);
            }
        }
    }
    let expected = sent_at.len();
    // Completion = the executor returned success for the request (its record is then final);
    // checked against the table at the end.
    let deadline = Instant::now() + timeout;
    let mut done: HashMap<String, Duration> = HashMap::new();
    while done.len() < expected && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let completions = chain
            .executions
            .stats
            .completions
            .lock()
            .map(|c| c.clone())
            .unwrap_or_default();
        for (body, at) in completions {
            if let Ok(req) = tradeflow_core::execution::ExecutionRequest::parse(&body) {
                done.entry(req.execution_id)
                    .or_insert_with(|| at.saturating_duration_since(started));
            }
        }
    }
    chain.stop().await;
    let table = outputs.get("ExecutionsTableName")?.to_owned();
    let completed_in_table = completed_ids(&dynamo, &table).await?;
    done.retain(|id, _| completed_in_table.contains(id));
    let elapsed = done
        .values()
        .max()
        .copied()
        .unwrap_or_else(|| started.elapsed());
    let latency_ms = done
        .iter()
        .filter_map(|(id, t)| Some(t.saturating_sub(*sent_at.get(id)?).as_millis() as u64))
        .collect();
    Ok(LoadReport {
        signals,
        pipelines,
        executions: expected,
        completed: done.len(),
        elapsed,
        latency_ms,
        aws_calls: calls.map(|c| c.by_operation()),
    })
}

async fn completed_ids(
    dynamo: &aws_sdk_dynamodb::Client,
    table: &str,
) -> anyhow::Result<std::collections::HashSet<String>> {
    let mut ids = std::collections::HashSet::new();
    let mut start = None;
    loop {
        let resp = dynamo
            .scan()
            .table_name(table)
            .projection_expression("execution_id, #s")
            .expression_attribute_names("#s", "status")
            .set_exclusive_start_key(start.take())
            .send()
            .await?;
        for item in resp.items() {
            if let (Some(AttributeValue::S(id)), Some(AttributeValue::S(status))) =
                (item.get("execution_id"), item.get("status"))
                && status == "COMPLETED"
            {
                ids.insert(id.clone());
            }
        }
        match resp.last_evaluated_key() {
            Some(k) if !k.is_empty() => start = Some(k.clone()),
            _ => return Ok(ids),
        }
    }
}
