//! The load harness: signals straight onto the signals queue, each triggering `pipelines`
//! executions, through the whole chain on the emulator. Either a burst of N signals, or a fixed
//! rate for a fixed time. It measures throughput, latency from a signal's send to its executions
//! being picked up by the executor (the run starts: `begin` is its first write) and to their
//! completion, the functions' AWS requests per execution, errors, and, in the same run, the
//! emulator's own raw capacity, so ours can be read as a ratio of it. `tradeflow-local load`
//! runs it; a 20-signal version runs in the integration tests. Results are markdown tables (see
//! BENCHMARKS.md).

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, SendMessageBatchRequestEntry};
use tradeflow_core::pipeline::Pipeline;
use tradeflow_core::ports::PipelineStore;

use crate::calls::CallLog;
use crate::chain::{Chain, ChainConfig, Functions};
use crate::stack::StackOutputs;

/// How signals are sent.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LoadPlan {
    /// All at once, 10 per SendMessageBatch.
    Burst { signals: usize },
    /// `per_sec` signals a second for `duration`, sent every 100 ms.
    Rate { per_sec: f64, duration: Duration },
}

impl LoadPlan {
    pub fn signals(&self) -> usize {
        match *self {
            LoadPlan::Burst { signals } => signals,
            LoadPlan::Rate { per_sec, duration } => {
                (per_sec * duration.as_secs_f64()).round() as usize
            }
        }
    }
}

/// The emulator's raw capacity, measured in the same run before the load.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EmulatorCapacity {
    /// Messages a second through send (batches of 10) + receive (10 at a time) + delete
    /// (batches of 10), one client.
    pub message_round_trips_per_sec: f64,
    /// Conditional PutItems a second (`attribute_not_exists`), 8 in flight like the functions.
    pub conditional_writes_per_sec: f64,
    /// TransactWriteItems a second of three conditional puts each (the size of the executor's
    /// end-of-run transaction: execution, order, lease), 8 in flight. `None`: not measured
    /// (the bound then prices a transaction as one conditional write).
    pub transactions_per_sec: Option<f64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LoadReport {
    pub plan: LoadPlan,
    pub pipelines: usize,
    pub executions: usize,
    pub completed: usize,
    /// From the first send to the last execution finished.
    pub elapsed: Duration,
    /// Per completed execution: when the executor finished it minus when its signal was sent.
    pub latency_ms: Vec<u64>,
    /// Per execution picked up: when the executor's invocation carrying it started minus when
    /// its signal was sent (the run's `begin` write is its first call).
    pub running_latency_ms: Vec<u64>,
    /// AWS requests the functions made, per operation (when their clients were recorded).
    pub aws_calls: Option<BTreeMap<String, usize>>,
    /// Function errors (whole batches failed) and records reported failed, both mappings.
    pub function_errors: u64,
    pub failed_records: u64,
    pub emulator: Option<EmulatorCapacity>,
}

/// Percentile `p` (0-100, nearest rank) of `values`; 0 when empty.
pub fn percentile(values: &[u64], p: f64) -> u64 {
    let mut v = values.to_vec();
    v.sort_unstable();
    if v.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * (v.len() as f64 - 1.0)).round() as usize;
    v[rank.min(v.len() - 1)]
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
        percentile(&self.latency_ms, p)
    }

    /// Executions a second the emulator could carry if it did nothing but this chain's raw
    /// operations: per execution, its DynamoDB requests (from the recorded calls) at the
    /// measured conditional-write rate, its transactions at the measured transaction rate, plus
    /// its message round trips (its share of its signal and its execution request) at the
    /// measured message rate. `None` without the measurements.
    pub fn emulator_bound(&self) -> Option<f64> {
        let capacity = self.emulator?;
        let calls = self.aws_calls.as_ref()?;
        let completed = self.completed.max(1) as f64;
        let count = |keep: &dyn Fn(&str) -> bool| -> f64 {
            calls
                .iter()
                .filter(|(op, _)| keep(op))
                .map(|(_, n)| *n as f64)
                .sum::<f64>()
                / completed
        };
        let transactions = count(&|op| op == "dynamodb:TransactWriteItems");
        let writes = count(&|op| {
            op.starts_with("dynamodb:")
                && !op.ends_with("Scan")
                && op != "dynamodb:TransactWriteItems"
        });
        let messages_per_execution = 1.0 + 1.0 / self.pipelines.max(1) as f64;
        let transaction_rate = capacity
            .transactions_per_sec
            .unwrap_or(capacity.conditional_writes_per_sec);
        let seconds = writes / capacity.conditional_writes_per_sec
            + transactions / transaction_rate
            + messages_per_execution / capacity.message_round_trips_per_sec;
        Some(1.0 / seconds)
    }

    pub fn table_header() -> &'static str {
        "| signals | pipelines | executions | elapsed (s) | executions/s | to RUNNING p50 / p95 / p99 (ms) | to COMPLETED p50 / p95 / p99 (ms) | AWS requests / execution | errors |\n|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    }

    pub fn table_row(&self) -> String {
        let calls = self
            .calls_per_execution()
            .map_or_else(|| "not recorded".to_owned(), |c| format!("{c:.2}"));
        let r = &self.running_latency_ms;
        format!(
            "| {} | {} | {} | {:.2} | {:.1} | {} / {} / {} | {} / {} / {} | {calls} | {} function, {} records |",
            self.plan.signals(),
            self.pipelines,
            self.completed,
            self.elapsed.as_secs_f64(),
            self.throughput(),
            percentile(r, 50.0),
            percentile(r, 95.0),
            percentile(r, 99.0),
            self.percentile(50.0),
            self.percentile(95.0),
            self.percentile(99.0),
            self.function_errors,
            self.failed_records,
        )
    }

    /// The emulator's capacity and ours as a ratio of it, or why not.
    pub fn capacity_lines(&self) -> String {
        match (self.emulator, self.emulator_bound()) {
            (Some(c), Some(bound)) => format!(
                "emulator raw capacity: {:.0} message round trips/s, {:.0} conditional writes/s, \
                 {} three-item transactions/s; \
                 that bounds this chain at {bound:.1} executions/s; measured {:.1} = {:.0} % of it",
                c.message_round_trips_per_sec,
                c.conditional_writes_per_sec,
                c.transactions_per_sec
                    .map_or_else(|| "(not measured)".to_owned(), |t| format!("{t:.0}")),
                self.throughput(),
                100.0 * self.throughput() / bound
            ),
            _ => "emulator raw capacity: not measured".to_owned(),
        }
    }
}

fn load_ticker(i: usize) -> String {
    format!("L{i:05}")
}

fn signal_body(i: usize, timestamp: i64) -> String {
    serde_json::json!({
        "signal_id": format!("load-{i}"), "signal_type": "load_test", "source": "load_harness",
        "timestamp": timestamp,
        "tickers": [{"ticker": load_ticker(i), "signal": if i % 2 == 0 { "BULLISH" } else { "BEARISH" }, "confidence": 80, "reasoning": null}],
        "metadata": {"timeframe": "5"}
    })
    .to_string()
}

/// Measures the emulator's raw capacity for `window` each: message round trips on a scratch
/// queue and conditional writes on the stack's leases table (keys no run uses, deleted after).
pub async fn measure_emulator(
    sdk: &aws_config::SdkConfig,
    outputs: &StackOutputs,
    window: Duration,
) -> anyhow::Result<EmulatorCapacity> {
    let sqs = aws_sdk_sqs::Client::new(sdk);
    let dynamo = aws_sdk_dynamodb::Client::new(sdk);
    let queue = sqs
        .create_queue()
        .queue_name(format!("{}-capacity-probe", outputs.stack_name))
        .send()
        .await
        .context("creating the capacity probe queue")?;
    let url = queue.queue_url().unwrap_or_default().to_owned();
    let started = Instant::now();
    let mut messages = 0usize;
    while started.elapsed() < window {
        let entries: Vec<SendMessageBatchRequestEntry> = (0..10)
            .map(|i| {
                SendMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .message_body("{}")
                    .build()
            })
            .collect::<Result<_, _>>()?;
        sqs.send_message_batch()
            .queue_url(&url)
            .set_entries(Some(entries))
            .send()
            .await?;
        let mut got = 0;
        while got < 10 {
            let resp = sqs
                .receive_message()
                .queue_url(&url)
                .max_number_of_messages(10)
                .send()
                .await?;
            let handles: Vec<DeleteMessageBatchRequestEntry> = resp
                .messages()
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
            if handles.is_empty() {
                break;
            }
            got += handles.len();
            sqs.delete_message_batch()
                .queue_url(&url)
                .set_entries(Some(handles))
                .send()
                .await?;
        }
        messages += got;
    }
    let message_round_trips_per_sec = messages as f64 / started.elapsed().as_secs_f64();
    sqs.delete_queue().queue_url(&url).send().await.ok();

    let table = outputs.get("LeasesTableName")?.to_owned();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for worker in 0..8 {
        let dynamo = dynamo.clone();
        let table = table.clone();
        tasks.push(tokio::spawn(async move {
            let mut n = 0usize;
            while started.elapsed() < window {
                let key = format!("capacity-probe-{worker}-{n}");
                let put = dynamo
                    .put_item()
                    .table_name(&table)
                    .item("lease_key", AttributeValue::S(key))
                    .condition_expression("attribute_not_exists(lease_key)")
                    .send()
                    .await;
                if put.is_err() {
                    break;
                }
                n += 1;
            }
            n
        }));
    }
    let mut writes = 0usize;
    for t in tasks {
        writes += t.await.unwrap_or(0);
    }
    let conditional_writes_per_sec = writes as f64 / started.elapsed().as_secs_f64();
    for worker in 0..8 {
        for n in 0..writes {
            let key = format!("capacity-probe-{worker}-{n}");
            let deleted = dynamo
                .delete_item()
                .table_name(&table)
                .key("lease_key", AttributeValue::S(key))
                .return_values(aws_sdk_dynamodb::types::ReturnValue::AllOld)
                .send()
                .await?;
            if deleted.attributes().is_none() {
                break;
            }
        }
    }
    let transactions_per_sec = measure_transactions(&dynamo, &table, window).await?;
    Ok(EmulatorCapacity {
        message_round_trips_per_sec,
        conditional_writes_per_sec,
        transactions_per_sec,
    })
}

/// TransactWriteItems of three conditional puts each on `table` for `window`, 8 in flight, a
/// second; `None` when not one succeeded. The items (keys no run uses) are deleted afterwards.
async fn measure_transactions(
    dynamo: &aws_sdk_dynamodb::Client,
    table: &str,
    window: Duration,
) -> anyhow::Result<Option<f64>> {
    use aws_sdk_dynamodb::types::{Put, TransactWriteItem};
    let started = Instant::now();
    let mut tasks = Vec::new();
    for worker in 0..8 {
        let dynamo = dynamo.clone();
        let table = table.to_owned();
        tasks.push(tokio::spawn(async move {
            // Keys of the transactions that succeeded (a failed one wrote nothing).
            let mut written: Vec<String> = Vec::new();
            let mut done = 0usize;
            while started.elapsed() < window {
                let keys: Vec<String> = (0..3)
                    .map(|k| format!("capacity-tx-{worker}-{done}-{k}"))
                    .collect();
                let items = keys
                    .iter()
                    .map(|key| {
                        Put::builder()
                            .table_name(&table)
                            .item("lease_key", AttributeValue::S(key.clone()))
                            .condition_expression("attribute_not_exists(lease_key)")
                            .build()
                            .map(|put| TransactWriteItem::builder().put(put).build())
                    })
                    .collect::<Result<Vec<_>, _>>();
                let Ok(items) = items else { break };
                let sent = dynamo
                    .transact_write_items()
                    .set_transact_items(Some(items))
                    .send()
                    .await;
                if sent.is_err() {
                    break;
                }
                done += 1;
                written.extend(keys);
            }
            (done, written)
        }));
    }
    let mut transactions = 0usize;
    let mut keys = Vec::new();
    for t in tasks {
        if let Ok((n, k)) = t.await {
            transactions += n;
            keys.extend(k);
        }
    }
    let per_sec = (transactions > 0).then(|| transactions as f64 / started.elapsed().as_secs_f64());
    for chunk in keys.chunks(25) {
        let deletes = chunk
            .iter()
            .filter_map(|key| {
                let delete = aws_sdk_dynamodb::types::DeleteRequest::builder()
                    .key("lease_key", AttributeValue::S(key.clone()))
                    .build()
                    .ok()?;
                Some(
                    aws_sdk_dynamodb::types::WriteRequest::builder()
                        .delete_request(delete)
                        .build(),
                )
            })
            .collect::<Vec<_>>();
        dynamo
            .batch_write_item()
            .request_items(table, deletes)
            .send()
            .await?;
    }
    Ok(per_sec)
}

/// Runs the load on a deployed (empty) stack with `functions`. Every signal has its own ticker,
/// so each (pipeline, ticker) runs once and nothing is skipped. `progress`: print a line to
/// stderr every 5 s.
#[allow(clippy::too_many_arguments)]
pub async fn run_load(
    sdk: &aws_config::SdkConfig,
    outputs: &StackOutputs,
    functions: Functions,
    calls: Option<CallLog>,
    plan: LoadPlan,
    pipelines: usize,
    mut config: ChainConfig,
    timeout: Duration,
    progress: bool,
) -> anyhow::Result<LoadReport> {
    let dynamo = aws_sdk_dynamodb::Client::new(sdk);
    let sqs = aws_sdk_sqs::Client::new(sdk);
    let signals = plan.signals();
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
    config.executions.record_completions = true;
    let chain = Chain::start(sdk, outputs.clone(), functions, config).await?;
    let queue_url =
        tradeflow_aws::resolve_queue_url(&sqs, outputs.get("SignalsQueueName")?).await?;
    // Signal time: one with plenty of synthetic candles before it.
    let timestamp = 1_767_623_400;
    let started = Instant::now();
    let mut sent_at: HashMap<String, Duration> = HashMap::new();
    // Sending times: all at once, or `per_sec` a second in ticks of 100 ms.
    let schedule: Vec<Duration> = match plan {
        LoadPlan::Burst { .. } => vec![Duration::ZERO; signals],
        LoadPlan::Rate { per_sec, .. } => (0..signals)
            .map(|i| Duration::from_secs_f64(i as f64 / per_sec.max(1e-9)))
            .collect(),
    };
    let mut next = 0usize;
    let mut last_progress = Instant::now();
    while next < signals {
        let due = started.elapsed();
        let mut batch = Vec::new();
        while next < signals && schedule[next] <= due {
            batch.push(next);
            next += 1;
        }
        for chunk in batch.chunks(10) {
            let entries: Vec<SendMessageBatchRequestEntry> = chunk
                .iter()
                .map(|&i| {
                    SendMessageBatchRequestEntry::builder()
                        .id(format!("e{i}"))
                        .message_body(signal_body(i, timestamp))
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
        if progress && last_progress.elapsed() >= Duration::from_secs(5) {
            last_progress = Instant::now();
            let done = chain
                .executions
                .stats
                .completions
                .lock()
                .map_or(0, |c| c.len());
            eprintln!(
                "load: {:>6.1} s  sent {next}/{signals} signals  executions done {done}/{}",
                started.elapsed().as_secs_f64(),
                signals * pipelines
            );
        }
        if next < signals {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let expected = sent_at.len();
    // Completion = the executor returned success for the request (its record is then final);
    // checked against the table at the end.
    let deadline = Instant::now() + timeout;
    let request_times = |records: &std::sync::Mutex<Vec<(String, Instant)>>| {
        let mut out: HashMap<String, Duration> = HashMap::new();
        let records = records.lock().map(|c| c.clone()).unwrap_or_default();
        for (body, at) in records {
            if let Ok(req) = tradeflow_core::execution::ExecutionRequest::parse(&body) {
                out.entry(req.execution_id)
                    .or_insert_with(|| at.saturating_duration_since(started));
            }
        }
        out
    };
    let mut done = request_times(&chain.executions.stats.completions);
    while done.len() < expected && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        done = request_times(&chain.executions.stats.completions);
        if progress && last_progress.elapsed() >= Duration::from_secs(5) {
            last_progress = Instant::now();
            eprintln!(
                "load: {:>6.1} s  sent {signals}/{signals} signals  executions done {}/{expected}",
                started.elapsed().as_secs_f64(),
                done.len()
            );
        }
    }
    let picked = request_times(&chain.executions.stats.pickups);
    let stats = [&chain.signals.stats, &chain.executions.stats];
    let function_errors = stats
        .iter()
        .map(|s| s.function_errors.load(Ordering::Relaxed))
        .sum();
    let failed_records = stats
        .iter()
        .map(|s| s.failed_records.load(Ordering::Relaxed))
        .sum();
    chain.stop().await;
    let table = outputs.get("ExecutionsTableName")?.to_owned();
    let completed_in_table = completed_ids(&dynamo, &table).await?;
    done.retain(|id, _| completed_in_table.contains(id));
    let elapsed = done
        .values()
        .max()
        .copied()
        .unwrap_or_else(|| started.elapsed());
    let since_sent = |times: &HashMap<String, Duration>| -> Vec<u64> {
        times
            .iter()
            .filter_map(|(id, t)| Some(t.saturating_sub(*sent_at.get(id)?).as_millis() as u64))
            .collect()
    };
    Ok(LoadReport {
        plan,
        pipelines,
        executions: expected,
        completed: done.len(),
        elapsed,
        latency_ms: since_sent(&done),
        running_latency_ms: since_sent(&picked),
        aws_calls: calls.map(|c| c.by_operation()),
        function_errors,
        failed_records,
        emulator: None,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn report(completed: usize, calls: &[(&str, usize)]) -> LoadReport {
        LoadReport {
            plan: LoadPlan::Rate {
                per_sec: 10.0,
                duration: Duration::from_secs(10),
            },
            pipelines: 2,
            executions: completed,
            completed,
            elapsed: Duration::from_secs(10),
            latency_ms: vec![100, 200, 300, 400],
            running_latency_ms: vec![50, 60],
            aws_calls: Some(calls.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()),
            function_errors: 0,
            failed_records: 1,
            emulator: Some(EmulatorCapacity {
                message_round_trips_per_sec: 300.0,
                conditional_writes_per_sec: 150.0,
                transactions_per_sec: None,
            }),
        }
    }

    /// With the transaction rate measured, each TransactWriteItems is priced at it: 200 writes
    /// at 150/s (1.33 s) + 100 transactions at 50/s (2 s) + 150 round trips at 300/s (0.5 s)
    /// = 3.83 s for 100 executions: 26.1 executions/s.
    #[test]
    fn a_measured_transaction_rate_prices_the_transactions() {
        let mut r = report(
            100,
            &[
                ("dynamodb:PutItem", 100),
                ("dynamodb:UpdateItem", 100),
                ("dynamodb:TransactWriteItems", 100),
                ("sqs:SendMessageBatch", 15),
            ],
        );
        if let Some(c) = r.emulator.as_mut() {
            c.transactions_per_sec = Some(50.0);
        }
        let bound = r.emulator_bound().unwrap_or_default();
        let expected = 100.0 / (200.0 / 150.0 + 2.0 + 0.5);
        assert!((bound - expected).abs() < 1e-9, "{bound} vs {expected}");
        assert!(r.capacity_lines().contains("50 three-item transactions/s"));
    }

    #[test]
    fn a_rate_plan_sends_rate_times_duration_signals() {
        let plan = LoadPlan::Rate {
            per_sec: 2.5,
            duration: Duration::from_secs(8),
        };
        assert_eq!(plan.signals(), 20);
        assert_eq!(LoadPlan::Burst { signals: 7 }.signals(), 7);
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        assert_eq!(percentile(&[], 95.0), 0);
        assert_eq!(percentile(&[400, 100, 300, 200], 50.0), 300);
        assert_eq!(percentile(&[400, 100, 300, 200], 100.0), 400);
    }

    /// 100 executions, 3 DynamoDB writes each (300 at 150/s: 2 s) and 1.5 message round trips
    /// each (150 at 300/s: 0.5 s): the emulator carries at most 100 / 2.5 s = 40 executions/s.
    #[test]
    fn the_emulator_bound_adds_the_time_of_each_raw_operation() {
        let r = report(
            100,
            &[
                ("dynamodb:PutItem", 100),
                ("dynamodb:UpdateItem", 100),
                ("dynamodb:TransactWriteItems", 100),
                ("dynamodb:Scan", 1),
                ("sqs:SendMessageBatch", 15),
            ],
        );
        let bound = r.emulator_bound().unwrap_or_default();
        assert!((bound - 40.0).abs() < 1e-9, "{bound}");
        assert!(
            r.capacity_lines().contains("= 25 % of it"),
            "{}",
            r.capacity_lines()
        );
        assert!(
            r.table_row()
                .starts_with("| 100 | 2 | 100 | 10.00 | 10.0 | 60 / 60 / 60 |")
        );
    }
}
