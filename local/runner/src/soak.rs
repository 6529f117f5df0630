//! The fault-injection soak: N signals through the real chain on the emulator (dispatcher and
//! executor in-process, built like their `from_aws` but on [`crate::faults`]' wrappers), then an
//! account of every (pipeline, ticker) fan-out the signals matched.
//!
//! `tradeflow-local soak --signals 10000` runs it on a deployed stack (RELIABILITY.md); a
//! 500-signal version runs in the integration tests.
//!
//! Every fan-out must end as one of: a COMPLETED execution (with its one order when the steps
//! traded), a SKIPPED/FAILED execution with a reason, a skip at dispatch by a lease whose holder
//! was really live then (claimed before, released after), a skip because an earlier signal of the
//! same dispatcher batch had the same (pipeline, ticker), or a message in a DLQ (with the reason
//! the runner saw). Anything else is `lost`. Also counted: `duplicate executions` (more than one
//! order per execution, orders without their COMPLETED execution, or two attempts of the same
//! (pipeline, ticker) that reached the order step at overlapping times), `stuck RUNNING` and
//! `leases held with nothing running` (unexpired leases whose holder is not running).

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use async_trait::async_trait;
use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use aws_lambda_events::event::sqs::SqsEvent;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_sqs::types::{MessageSystemAttributeName, SendMessageBatchRequestEntry};
use tradeflow_core::dispatch::{Dispatcher, DispatcherConfig};
use tradeflow_core::execute::Executor;
use tradeflow_core::execution::ExecutionRequest;
use tradeflow_core::matching::PipelineIndex;
use tradeflow_core::pipeline::Pipeline;
use tradeflow_core::ports::{Lease, PipelineStore, SystemClock};
use tradeflow_core::signal::Signal;
use tradeflow_core::steps::BuiltinSteps;
use tradeflow_telemetry::Telemetry;

use crate::chain::{Chain, ChainConfig, Functions};
use crate::esm::MappingConfig;
use crate::faults::{
    FaultPlan, Faults, Faulty, FaultyExecutions, FaultyLeases, FaultyLedger, FaultyOrders,
    FaultyPipelines, FaultyQueue, Rng, now_ms,
};
use crate::invoke::{InProcess, ScheduledFunction};
use crate::stack::StackOutputs;

#[derive(Debug, Clone)]
pub struct SoakConfig {
    pub signals: usize,
    pub pipelines: usize,
    /// Size of the ticker pool the signals draw from (each pipeline lists all of them).
    pub tickers: usize,
    /// Share of signals that reuse the ticker of one of the 3 signals just before them.
    pub contention_rate: f64,
    /// Signals sent per second.
    pub send_rate: f64,
    pub plan: FaultPlan,
    pub dispatcher_timeout: Duration,
    pub executor_timeout: Duration,
    /// When failed records are visible again (must exceed the executor's in-progress grace).
    pub retry_delay: Duration,
    /// The soak pipelines' `max_runtime_secs` (lease length at dispatch).
    pub max_runtime_secs: u32,
    pub executor_pollers: usize,
    pub executor_batch: usize,
    pub dispatcher_pollers: usize,
    pub drain_timeout: Duration,
    pub progress_every: Duration,
}

impl Default for SoakConfig {
    fn default() -> Self {
        SoakConfig {
            signals: 500,
            pipelines: 2,
            tickers: 0,
            contention_rate: 0.10,
            send_rate: 25.0,
            plan: FaultPlan::default(),
            dispatcher_timeout: Duration::from_secs(10),
            executor_timeout: Duration::from_secs(8),
            retry_delay: Duration::from_secs(12),
            max_runtime_secs: 30,
            executor_pollers: 4,
            executor_batch: 5,
            dispatcher_pollers: 2,
            drain_timeout: Duration::from_secs(900),
            progress_every: Duration::from_secs(5),
        }
    }
}

impl SoakConfig {
    /// The ticker pool: as set, or a fifth of the signals (at least 20).
    pub fn ticker_pool(&self) -> usize {
        if self.tickers > 0 {
            self.tickers
        } else {
            (self.signals / 5).max(20)
        }
    }
}

/// The account of one soak.
#[derive(Debug, Default, Clone)]
pub struct SoakReport {
    pub signals: usize,
    pub signals_sent_twice: usize,
    pub fanouts: usize,
    pub completed_with_order: usize,
    pub completed_without_order: usize,
    /// SKIPPED / FAILED executions by decision (or error).
    pub ended_otherwise: BTreeMap<String, usize>,
    pub skipped_live_lease: usize,
    pub skipped_same_batch: usize,
    /// In a DLQ, by the reason the runner saw.
    pub in_dlq: BTreeMap<String, usize>,
    pub lost: Vec<String>,
    pub duplicates: Vec<String>,
    pub stuck_running: Vec<String>,
    /// Runs the executor's sweep ended (FAILED `abandoned`) after the drain: their last
    /// delivery's attempt died after starting them.
    pub abandoned_by_sweep: usize,
    pub stale_leases: Vec<String>,
    pub faults: Vec<(&'static str, u64)>,
    /// Injected faults over the opportunities they had, in %.
    pub rates: Vec<(&'static str, f64)>,
    pub elapsed: Duration,
    pub drained: bool,
}

impl SoakReport {
    pub fn broken(&self) -> bool {
        !self.lost.is_empty()
            || !self.duplicates.is_empty()
            || !self.stuck_running.is_empty()
            || !self.stale_leases.is_empty()
            || !self.drained
    }

    /// The markdown table RELIABILITY.md shows.
    pub fn table(&self) -> String {
        let mut t = String::from("| | count |\n|---|---:|\n");
        let mut row = |k: &str, v: String| t.push_str(&format!("| {k} | {v} |\n"));
        row("signals sent", self.signals.to_string());
        row(
            "signals sent twice (duplicate deliveries)",
            self.signals_sent_twice.to_string(),
        );
        row(
            "matched (pipeline, ticker) fan-outs",
            self.fanouts.to_string(),
        );
        row(
            "COMPLETED with one order",
            self.completed_with_order.to_string(),
        );
        row(
            "COMPLETED without a trade",
            self.completed_without_order.to_string(),
        );
        for (k, v) in &self.ended_otherwise {
            row(&format!("ended {k}"), v.to_string());
        }
        row(
            "skipped: lease held by a live run",
            self.skipped_live_lease.to_string(),
        );
        row(
            "skipped: same (pipeline, ticker) earlier in the batch",
            self.skipped_same_batch.to_string(),
        );
        for (k, v) in &self.in_dlq {
            row(&format!("in a DLQ: {k}"), v.to_string());
        }
        for (k, v) in &self.faults {
            row(&format!("fault/observed: {k}"), v.to_string());
        }
        for (k, v) in &self.rates {
            row(&format!("rate: {k}"), format!("{v:.1} %"));
        }
        row("elapsed (s)", format!("{:.0}", self.elapsed.as_secs_f64()));
        row(
            "queues drained",
            if self.drained { "yes" } else { "NO" }.into(),
        );
        row("**lost**", self.lost.len().to_string());
        row(
            "**duplicate executions**",
            self.duplicates.len().to_string(),
        );
        row(
            "ended by the sweep (last attempt died)",
            self.abandoned_by_sweep.to_string(),
        );
        row("**stuck RUNNING**", self.stuck_running.len().to_string());
        row(
            "**leases held with nothing running**",
            self.stale_leases.len().to_string(),
        );
        t
    }

    /// The four counters, and the ids behind any that is not zero.
    pub fn verdict(&self) -> String {
        let mut out = String::new();
        for (name, ids) in [
            ("lost", &self.lost),
            ("duplicate executions", &self.duplicates),
            ("stuck RUNNING", &self.stuck_running),
            ("leases held with nothing running", &self.stale_leases),
        ] {
            out.push_str(&format!("{name} = {}\n", ids.len()));
            for id in ids.iter().take(25) {
                out.push_str(&format!("  {id}\n"));
            }
            if ids.len() > 25 {
                out.push_str(&format!("  ... and {} more\n", ids.len() - 25));
            }
        }
        if !self.drained {
            out.push_str("the queues did not drain before the timeout\n");
        }
        out
    }
}

/// The soak needs no generator.
struct NoGenerator;

#[async_trait]
impl ScheduledFunction for NoGenerator {
    fn name(&self) -> &str {
        "no-generator"
    }
    async fn invoke(
        &self,
        _event: EventBridgeEvent<serde_json::Value>,
    ) -> Result<serde_json::Value, String> {
        Err("the soak runs no generator".into())
    }
}

/// A fan-out dropped by the dispatcher because an earlier signal of its batch had the same
/// (pipeline, ticker): (dropped execution, kept execution).
type SameBatch = Arc<Mutex<Vec<(String, String)>>>;

/// Records, per dispatcher batch, the fan-outs the dispatcher drops as same-batch duplicates
/// (the same rule as `tradeflow_core::dispatch`: first signal in batch order wins).
struct ObserveBatches {
    inner: Faulty,
    index: Arc<PipelineIndex>,
    same_batch: SameBatch,
}

#[async_trait]
impl crate::invoke::SqsFunction for ObserveBatches {
    fn name(&self) -> &str {
        self.inner.name()
    }
    async fn invoke(
        &self,
        event: SqsEvent,
    ) -> Result<aws_lambda_events::event::sqs::SqsBatchResponse, String> {
        let now = chrono::Utc::now().timestamp();
        let mut first: HashMap<String, String> = HashMap::new();
        let mut dropped = Vec::new();
        for r in &event.records {
            let Some(signal) = r
                .body
                .as_deref()
                .and_then(|b| Signal::parse_at(b, now).ok())
            else {
                continue;
            };
            for m in self.index.matches(&signal) {
                let id = tradeflow_core::ids::execution_id(
                    &m.pipeline.pipeline_id,
                    m.ticker.as_str(),
                    &signal.signal_id,
                );
                let key = Lease::key(&m.pipeline.pipeline_id, &m.ticker);
                match first.get(&key) {
                    Some(kept) if *kept != id => dropped.push((id, kept.clone())),
                    Some(_) => {}
                    None => {
                        first.insert(key, id);
                    }
                }
            }
        }
        if let Ok(mut v) = self.same_batch.lock() {
            v.extend(dropped);
        }
        self.inner.invoke(event).await
    }
}

fn soak_ticker(n: usize) -> String {
    format!("K{n:05}")
}

/// Runs the soak on a deployed stack. Its pipelines, signals and so its executions, orders and
/// leases carry a run tag, so a stack can be reused; the DLQs are read whole (only this run's
/// messages count).
pub async fn run_soak(
    sdk: &aws_config::SdkConfig,
    outputs: &StackOutputs,
    config: &SoakConfig,
) -> anyhow::Result<SoakReport> {
    if config.retry_delay <= config.executor_timeout {
        bail!("the retry delay must exceed the executor timeout (and its 1 s in-progress grace)");
    }
    let started = Instant::now();
    let tag = format!(
        "soak{}t{}",
        config.plan.seed,
        chrono::Utc::now().timestamp()
    );
    let dynamo = aws_sdk_dynamodb::Client::new(sdk);
    let sqs = aws_sdk_sqs::Client::new(sdk);
    let pool = config.ticker_pool();
    let tickers: Vec<String> = (0..pool).map(soak_ticker).collect();
    let mut pipelines = Vec::new();
    for p in 0..config.pipelines {
        let pipeline: Pipeline = serde_json::from_value(serde_json::json!({
            "pipeline_id": format!("{tag}-p{p}"), "user_id": "soak", "name": format!("soak {p}"),
            "is_active": true, "trigger_mode": "signal", "tickers": tickers,
            "signal_subscriptions": [{"signal_type": "soak_test"}],
            "max_runtime_secs": config.max_runtime_secs
        }))?;
        pipeline.validate()?;
        pipelines.push(pipeline);
    }
    let real_pipelines = Arc::new(tradeflow_aws::DynamoPipelineStore::new(
        dynamo.clone(),
        outputs.get("PipelinesTableName")?.to_owned(),
    ));
    for p in &pipelines {
        real_pipelines.put_pipeline(p).await?;
    }
    let index = Arc::new(PipelineIndex::new(pipelines.clone()));

    // The two functions, built as their `from_aws` builds them, on faulty ports.
    let faults = Faults::new(config.plan);
    let env: HashMap<String, String> = outputs
        .function_env(sdk)
        .await?
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
    let lookup = |k: &str| env.get(k).cloned();
    let dconf = trigger_dispatcher::Config::from_lookup(lookup)?;
    let econf = pipeline_executor::Config::from_lookup(lookup)?;
    let pipelines_port = |table: &str| -> Arc<dyn PipelineStore> {
        Arc::new(FaultyPipelines {
            inner: Arc::new(tradeflow_aws::DynamoPipelineStore::new(
                dynamo.clone(),
                table.to_owned(),
            )),
            faults: Arc::clone(&faults),
        })
    };
    let leases_port = |table: &str| {
        Arc::new(FaultyLeases {
            inner: Arc::new(tradeflow_aws::DynamoLeaseStore::new(
                dynamo.clone(),
                table.to_owned(),
            )),
            faults: Arc::clone(&faults),
        })
    };
    let executions_url = tradeflow_aws::resolve_queue_url(&sqs, &dconf.executions_queue).await?;
    let dispatcher = Dispatcher::new(
        pipelines_port(&dconf.pipelines_table),
        leases_port(&dconf.leases_table),
        Arc::new(FaultyQueue {
            inner: Arc::new(tradeflow_aws::SqsQueue::new(sqs.clone(), executions_url)),
            faults: Arc::clone(&faults),
        }),
        Arc::new(SystemClock),
        DispatcherConfig {
            cache_ttl: dconf.pipeline_cache_ttl,
            legacy_execution_ids_before: dconf.legacy_execution_ids_before,
            ..DispatcherConfig::default()
        },
    );
    let market = econf
        .market
        .build()
        .map_err(|e| anyhow::anyhow!("market data: {e}"))?;
    let executor = Executor::new(
        pipelines_port(&econf.pipelines_table),
        Arc::new(FaultyExecutions {
            inner: Arc::new(tradeflow_aws::DynamoExecutionStore::new(
                dynamo.clone(),
                econf.executions_table.clone(),
            )),
            faults: Arc::clone(&faults),
        }),
        leases_port(&econf.leases_table),
        Arc::new(FaultyLedger {
            inner: Arc::new(tradeflow_aws::DynamoRunLedger::new(
                dynamo.clone(),
                econf.executions_table.clone(),
                econf.orders_table.clone(),
                econf.leases_table.clone(),
            )),
            faults: Arc::clone(&faults),
        }),
        BuiltinSteps::new(
            market,
            Arc::new(FaultyOrders {
                inner: Arc::new(tradeflow_aws::DynamoOrderStore::new(
                    dynamo.clone(),
                    econf.orders_table.clone(),
                )),
                faults: Arc::clone(&faults),
            }),
            econf.default_timeframe,
        ),
        Arc::new(SystemClock),
    )
    .with_max_deliveries(econf.max_receive_count)
    .with_pipeline_cache(econf.pipeline_cache_ttl);
    let dtel = Telemetry::init(trigger_dispatcher::FUNCTION_NAME);
    let etel = Telemetry::init(pipeline_executor::FUNCTION_NAME);
    let same_batch: SameBatch = Arc::default();
    let executor_handler = pipeline_executor::Handler::new(executor, &etel);
    // The executor's scheduled sweep, run once the queues have drained: then no delivery of
    // any request is left, which is what the deployed sweep waits `ABANDON_AFTER_SECS` for
    // (maxReceiveCount x the visibility timeout), so it may end every run past its window.
    let sweeper = executor_handler.sweeper(0, &etel);
    let functions = Functions {
        generator: Arc::new(NoGenerator),
        dispatcher: Arc::new(ObserveBatches {
            inner: Faulty {
                inner: Arc::new(InProcess::with_timeout(
                    trigger_dispatcher::Handler::new(dispatcher, &dtel),
                    dtel,
                    config.dispatcher_timeout,
                )),
                faults: Arc::clone(&faults),
                timeout: config.dispatcher_timeout,
            },
            index: Arc::clone(&index),
            same_batch: Arc::clone(&same_batch),
        }),
        executor: Arc::new(Faulty {
            inner: Arc::new(InProcess::with_timeout(
                executor_handler,
                etel,
                config.executor_timeout,
            )),
            faults: Arc::clone(&faults),
            timeout: config.executor_timeout,
        }),
    };
    // The template's rule for the queues' visibility timeout (6 x the consumer's function
    // timeout), applied to the soak's short timeouts: a batch whose receive or result got lost
    // comes back after a minute, not after the deployed 12 minutes.
    for (queue, timeout) in [
        ("SignalsQueueName", config.dispatcher_timeout),
        ("ExecutionsQueueName", config.executor_timeout),
    ] {
        let url = tradeflow_aws::resolve_queue_url(&sqs, outputs.get(queue)?).await?;
        sqs.set_queue_attributes()
            .queue_url(&url)
            .attributes(
                aws_sdk_sqs::types::QueueAttributeName::VisibilityTimeout,
                (6 * timeout.as_secs()).to_string(),
            )
            .send()
            .await
            .with_context(|| format!("setting the visibility timeout of {queue}"))?;
    }
    let mapping = |batch_size, window_ms, pollers| MappingConfig {
        batch_size,
        batching_window: Duration::from_millis(window_ms),
        wait_time_secs: 1,
        retry_delay: Some(config.retry_delay),
        pollers,
        record_completions: false,
    };
    let chain = Chain::start(
        sdk,
        outputs.clone(),
        functions,
        ChainConfig {
            signals: mapping(10, 200, config.dispatcher_pollers),
            executions: mapping(config.executor_batch, 0, config.executor_pollers),
        },
    )
    .await?;

    // The signals, their fan-outs (by the real matching code) and the paced send.
    let mut rng = Rng::new(config.plan.seed ^ 0x5eed);
    let now = chrono::Utc::now().timestamp();
    let timestamp = 1_767_623_400;
    let mut ticker_of: Vec<usize> = Vec::with_capacity(config.signals);
    let mut bodies: Vec<String> = Vec::with_capacity(config.signals);
    // Execution id → signal id; signal id → execution ids.
    let mut fanouts: BTreeMap<String, String> = BTreeMap::new();
    let mut by_signal: HashMap<String, Vec<String>> = HashMap::new();
    for i in 0..config.signals {
        let t = if i > 0 && rng.unit() < config.contention_rate {
            ticker_of[i - 1 - rng.below(3.min(i))]
        } else {
            rng.below(pool)
        };
        ticker_of.push(t);
        let signal_id = format!("{tag}-s{i}");
        let body = serde_json::json!({
            "signal_id": signal_id, "signal_type": "soak_test", "source": "soak",
            "timestamp": timestamp,
            "tickers": [{"ticker": soak_ticker(t), "signal": if rng.below(2) == 0 { "BULLISH" } else { "BEARISH" }, "confidence": 80, "reasoning": null}],
            "metadata": {"timeframe": "5"}
        })
        .to_string();
        let signal = Signal::parse_at(&body, now).context("a soak signal does not parse")?;
        for m in index.matches(&signal) {
            let id = tradeflow_core::ids::execution_id(
                &m.pipeline.pipeline_id,
                m.ticker.as_str(),
                &signal_id,
            );
            fanouts.insert(id.clone(), signal_id.clone());
            by_signal.entry(signal_id.clone()).or_default().push(id);
        }
        bodies.push(body);
    }
    let signals_url =
        tradeflow_aws::resolve_queue_url(&sqs, outputs.get("SignalsQueueName")?).await?;
    let mut outgoing: Vec<String> = Vec::new();
    let mut sent_twice = 0usize;
    for body in &bodies {
        outgoing.push(body.clone());
        if rng.unit() < config.plan.duplicate_rate {
            // The copy goes out a little later (the next batches), as a redelivery would.
            sent_twice += 1;
            outgoing.push(String::new());
        }
    }
    // Fill each placeholder with the body of the signal 1–20 places before it.
    let mut pending_dups: Vec<String> = Vec::new();
    let mut stream: Vec<String> = Vec::with_capacity(outgoing.len());
    for (n, b) in outgoing.into_iter().enumerate() {
        if b.is_empty() {
            pending_dups.push(stream.last().cloned().unwrap_or_default());
        } else {
            stream.push(b);
        }
        if n % 20 == 19 {
            stream.append(&mut pending_dups);
        }
    }
    stream.append(&mut pending_dups);

    let send_started = Instant::now();
    let mut last_progress = Instant::now();
    println!(
        "soak {tag}: {} signals ({} sent twice), {} pipelines, {pool} tickers, {} fan-outs",
        config.signals,
        sent_twice,
        config.pipelines,
        fanouts.len()
    );
    let header = format!(
        "{:>6} {:>7} {:>9} {:>9} {:>8} {:>8} {:>7} {:>7} {:>9} {:>7}",
        "secs",
        "sent",
        "consumed",
        "exec-recs",
        "attempts",
        "crashes",
        "transnt",
        "timeout",
        "failed-rc",
        "backlog"
    );
    println!("{header}");
    for (n, chunk) in stream.chunks(10).enumerate() {
        let entries: Vec<SendMessageBatchRequestEntry> = chunk
            .iter()
            .enumerate()
            .map(|(i, body)| {
                SendMessageBatchRequestEntry::builder()
                    .id(format!("s{i}"))
                    .message_body(body)
                    .build()
            })
            .collect::<Result<_, _>>()?;
        let mut tries = 0;
        loop {
            match sqs
                .send_message_batch()
                .queue_url(&signals_url)
                .set_entries(Some(entries.clone()))
                .send()
                .await
            {
                Ok(resp) if resp.failed().is_empty() => break,
                Ok(resp) => bail!("{} soak signals were refused", resp.failed().len()),
                Err(e) if tries < 5 => {
                    tries += 1;
                    tracing::warn!(error = %e, "sending soak signals; retrying");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                Err(e) => return Err(e).context("sending soak signals"),
            }
        }
        let sent = (n + 1) * 10;
        let due = Duration::from_secs_f64(sent as f64 / config.send_rate.max(0.1));
        if let Some(wait) = due.checked_sub(send_started.elapsed()) {
            tokio::time::sleep(wait).await;
        }
        if last_progress.elapsed() >= config.progress_every {
            last_progress = Instant::now();
            print_progress(&chain, &faults, started, sent.min(stream.len())).await;
        }
    }
    // Drain: both queues empty (nothing visible, nothing in flight), twice in a row.
    let drain_deadline = Instant::now() + config.drain_timeout;
    let mut quiet = 0;
    let mut drained = false;
    while Instant::now() < drain_deadline {
        tokio::time::sleep(Duration::from_millis(500)).await;
        if chain.backlog().await.unwrap_or(1) == 0 {
            quiet += 1;
            if quiet >= 3 {
                drained = true;
                break;
            }
        } else {
            quiet = 0;
        }
        if last_progress.elapsed() >= config.progress_every {
            last_progress = Instant::now();
            print_progress(&chain, &faults, started, stream.len()).await;
        }
    }
    print_progress(&chain, &faults, started, stream.len()).await;
    chain.stop().await;
    let abandoned = if drained {
        sweep_abandoned(&sweeper, &faults).await
    } else {
        0
    };
    let elapsed = started.elapsed();
    println!("accounting…");

    let mut report = account(
        &dynamo,
        &sqs,
        outputs,
        &tag,
        &fanouts,
        &by_signal,
        &faults,
        &same_batch,
    )
    .await?;
    let c = &faults.log.counters;
    let pct = |a: u64, b: u64| 100.0 * a as f64 / b.max(1) as f64;
    let g = |x: &std::sync::atomic::AtomicU64| x.load(Ordering::Relaxed);
    report.rates = vec![
        (
            "signals delivered twice / signals",
            pct(sent_twice as u64, config.signals as u64),
        ),
        (
            "execution requests sent twice / sent",
            pct(g(&c.requests_duplicated), g(&c.requests_sent)),
        ),
        (
            "executor crashes / attempts started",
            pct(g(&c.executor_crashes), g(&c.attempts_started)),
        ),
        (
            "transient errors / store and queue calls",
            pct(
                g(&c.transient_store) + g(&c.transient_queue),
                g(&c.store_calls) + g(&c.queue_calls),
            ),
        ),
        (
            "dispatcher crashes / sends",
            pct(g(&c.dispatcher_crashes), g(&c.dispatcher_sends)),
        ),
        (
            "invocations ended by their deadline / stalls injected",
            pct(g(&c.invocations_timed_out), g(&c.stalls)),
        ),
    ];
    report.signals = config.signals;
    report.signals_sent_twice = sent_twice;
    report.elapsed = elapsed;
    report.drained = drained;
    report.abandoned_by_sweep = abandoned;
    Ok(report)
}

/// The executor's sweep after the drain, as its schedule would run it: through the same faulty
/// stores, so a sweep can fail and is run again (as the next scheduled one would), up to ten
/// times. Returns how many runs it ended as abandoned.
async fn sweep_abandoned(sweeper: &pipeline_executor::Sweeper, faults: &Faults) -> usize {
    // The processes of the dead attempts are gone: no injected stop is pending any more.
    faults.clear_stops();
    let mut abandoned = 0;
    for _ in 0..10 {
        match tokio::time::timeout(Duration::from_secs(120), sweeper.sweep()).await {
            Ok(Ok(report)) => {
                abandoned += report.abandoned.len();
                if report.errors.is_empty() && report.found == report.abandoned.len() + report.left
                {
                    let more = report.found >= pipeline_executor::SWEEP_LIMIT;
                    if !more {
                        break;
                    }
                }
            }
            Ok(Err(e)) => tracing::warn!(error = %e, "sweep failed; running it again"),
            Err(_) => tracing::warn!("sweep took over 120 s; running it again"),
        }
    }
    println!("sweep: {abandoned} abandoned runs ended FAILED");
    abandoned
}

async fn print_progress(chain: &Chain, faults: &Faults, started: Instant, sent: usize) {
    let s = &chain.signals.stats;
    let e = &chain.executions.stats;
    let c = &faults.log.counters;
    let backlog = chain
        .backlog()
        .await
        .map_or_else(|_| "?".to_owned(), |b| b.to_string());
    println!(
        "{:>6.0} {:>7} {:>9} {:>9} {:>8} {:>8} {:>7} {:>7} {:>9} {:>7}",
        started.elapsed().as_secs_f64(),
        sent,
        s.deleted.load(Ordering::Relaxed),
        e.deleted.load(Ordering::Relaxed),
        c.attempts_started.load(Ordering::Relaxed),
        c.executor_crashes.load(Ordering::Relaxed) + c.dispatcher_crashes.load(Ordering::Relaxed),
        c.transient_store() + c.transient_queue.load(Ordering::Relaxed),
        c.invocations_timed_out.load(Ordering::Relaxed),
        s.failed_records.load(Ordering::Relaxed) + e.failed_records.load(Ordering::Relaxed),
        backlog
    );
}

type Item = HashMap<String, AttributeValue>;

fn s<'a>(item: &'a Item, k: &str) -> Option<&'a str> {
    match item.get(k) {
        Some(AttributeValue::S(v)) => Some(v.as_str()),
        _ => None,
    }
}

fn n(item: &Item, k: &str) -> Option<i64> {
    match item.get(k) {
        Some(AttributeValue::N(v)) => v.parse().ok(),
        _ => None,
    }
}

/// Every item of `table` whose `pipeline_id` starts with `tag`.
async fn scan_tagged(
    dynamo: &aws_sdk_dynamodb::Client,
    table: &str,
    tag: &str,
) -> anyhow::Result<Vec<Item>> {
    let mut out = Vec::new();
    let mut start: Option<Item> = None;
    loop {
        let resp = dynamo
            .scan()
            .table_name(table)
            .set_exclusive_start_key(start.take())
            .send()
            .await
            .with_context(|| format!("scanning {table}"))?;
        out.extend(
            resp.items()
                .iter()
                .filter(|i| s(i, "pipeline_id").is_some_and(|p| p.starts_with(tag)))
                .cloned(),
        );
        match resp.last_evaluated_key() {
            Some(k) if !k.is_empty() => start = Some(k.clone()),
            _ => return Ok(out),
        }
    }
}

/// Every message on a DLQ: (message id, body, receive count). Received, not deleted.
async fn read_queue(
    sqs: &aws_sdk_sqs::Client,
    name: &str,
) -> anyhow::Result<Vec<(String, String, String)>> {
    let url = tradeflow_aws::resolve_queue_url(sqs, name).await?;
    let mut out = Vec::new();
    let mut empty = 0;
    while empty < 2 {
        let resp = sqs
            .receive_message()
            .queue_url(&url)
            .max_number_of_messages(10)
            .visibility_timeout(300)
            .wait_time_seconds(0)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .send()
            .await
            .context("reading a DLQ")?;
        if resp.messages().is_empty() {
            empty += 1;
            continue;
        }
        for m in resp.messages() {
            let count = m
                .attributes()
                .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
                .cloned()
                .unwrap_or_default();
            out.push((
                m.message_id().unwrap_or_default().to_owned(),
                m.body().unwrap_or_default().to_owned(),
                count,
            ));
        }
    }
    Ok(out)
}

#[allow(clippy::too_many_arguments)]
async fn account(
    dynamo: &aws_sdk_dynamodb::Client,
    sqs: &aws_sdk_sqs::Client,
    outputs: &StackOutputs,
    tag: &str,
    fanouts: &BTreeMap<String, String>,
    by_signal: &HashMap<String, Vec<String>>,
    faults: &Faults,
    same_batch: &SameBatch,
) -> anyhow::Result<SoakReport> {
    let check_ms = now_ms();
    let check = check_ms / 1000;
    let executions = scan_tagged(dynamo, outputs.get("ExecutionsTableName")?, tag).await?;
    let orders = scan_tagged(dynamo, outputs.get("OrdersTableName")?, tag).await?;
    let leases = scan_tagged(dynamo, outputs.get("LeasesTableName")?, tag).await?;
    let records: HashMap<&str, &Item> = executions
        .iter()
        .filter_map(|i| Some((s(i, "execution_id")?, i)))
        .collect();
    let mut orders_by_execution: HashMap<&str, Vec<&str>> = HashMap::new();
    for o in &orders {
        if let (Some(e), Some(id)) = (s(o, "execution_id"), s(o, "order_id")) {
            orders_by_execution.entry(e).or_default().push(id);
        }
    }

    // DLQs: which fan-outs sit there, and why.
    let reasons = faults
        .log
        .failure_reasons
        .lock()
        .map(|r| r.clone())
        .unwrap_or_default();
    let mut dlq: HashMap<String, String> = HashMap::new();
    for (id, body, count) in read_queue(sqs, outputs.get("SignalsDlqName")?).await? {
        let signal_id = serde_json::from_str::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v["signal_id"].as_str().map(str::to_owned))
            .unwrap_or_default();
        let why = reasons
            .get(&id)
            .cloned()
            .unwrap_or_else(|| "no failure seen by the runner".into());
        for x in by_signal.get(&signal_id).into_iter().flatten() {
            dlq.insert(
                x.clone(),
                format!("signals DLQ after {count} receives ({why})"),
            );
        }
    }
    for (id, body, count) in read_queue(sqs, outputs.get("ExecutionsDlqName")?).await? {
        if let Ok(req) = ExecutionRequest::parse(&body)
            && fanouts.contains_key(&req.execution_id)
        {
            let why = reasons
                .get(&id)
                .cloned()
                .unwrap_or_else(|| "no failure seen by the runner".into());
            dlq.insert(
                req.execution_id,
                format!("executions DLQ after {count} receives ({why})"),
            );
        }
    }

    let skips = faults
        .log
        .skips
        .lock()
        .map(|s| s.clone())
        .unwrap_or_default();
    let claimed = faults
        .log
        .claimed_ms
        .lock()
        .map(|m| m.clone())
        .unwrap_or_default();
    let released = faults
        .log
        .released_ms
        .lock()
        .map(|m| m.clone())
        .unwrap_or_default();
    let last_claimed = faults
        .log
        .last_claimed_ms
        .lock()
        .map(|m| m.clone())
        .unwrap_or_default();
    let finished = faults
        .log
        .finished_ms
        .lock()
        .map(|m| m.clone())
        .unwrap_or_default();
    let same = same_batch.lock().map(|v| v.clone()).unwrap_or_default();
    let mut skips_of: HashMap<&str, Vec<(&str, i64, i64)>> = HashMap::new();
    for k in &skips {
        skips_of.entry(k.execution_id.as_str()).or_default().push((
            k.holder.as_str(),
            k.started_ms,
            k.at_ms,
        ));
    }
    let same_of: HashMap<&str, &str> = same.iter().map(|(x, y)| (x.as_str(), y.as_str())).collect();
    let status_of = |id: &str| records.get(id).and_then(|i| s(i, "status"));
    // Was `holder` a live run when the skipping claim read the lease (between `start` and
    // `at`): its lease claimed before, not yet released (or its run not yet finished)?
    let live = |holder: &str, start: i64, at: i64| -> Result<(), String> {
        if claimed.get(holder).is_some_and(|c| *c > at + 1000) {
            return Err(format!("{holder} claimed its lease only after the skip"));
        }
        if let Some(r) = released.get(holder) {
            return if *r >= start {
                Ok(())
            } else if last_claimed.get(holder).is_some_and(|c| c > r) {
                Err(format!(
                    "{holder} released its lease {} ms before, then a duplicate delivery re-claimed it for the finished run",
                    start - r
                ))
            } else {
                Err(format!(
                    "{holder} had released its lease {} ms before",
                    start - r
                ))
            };
        }
        if let Some(f) = finished.get(holder) {
            return if *f >= start {
                Ok(())
            } else {
                Err(format!(
                    "{holder} had finished {} ms before and never released its lease",
                    start - f
                ))
            };
        }
        let completed = records
            .get(holder)
            .and_then(|i| n(i, "completed_at"))
            .map(|c| c * 1000);
        if let Some(c) = completed {
            return if c + 1000 >= start {
                Ok(())
            } else {
                Err(format!(
                    "{holder} had ended {} ms before ({}; its result write was reported failed) and never released its lease",
                    start - c,
                    status_of(holder).unwrap_or("?")
                ))
            };
        }
        Err(format!(
            "{holder} never finished (status {}{})",
            status_of(holder).unwrap_or("none"),
            if dlq.contains_key(holder) {
                ", in a DLQ"
            } else {
                ""
            }
        ))
    };

    let mut report = SoakReport {
        fanouts: fanouts.len(),
        faults: faults.log.counters.snapshot(),
        ..SoakReport::default()
    };
    for x in fanouts.keys() {
        let x = x.as_str();
        match records.get(x) {
            Some(item) => {
                let status = s(item, "status").unwrap_or("?");
                let reason = s(item, "decision")
                    .or_else(|| s(item, "error"))
                    .unwrap_or("no reason");
                match status {
                    "COMPLETED" => {
                        let placed = orders_by_execution.get(x).cloned().unwrap_or_default();
                        match s(item, "order_id") {
                            Some(o) if placed == [o] => report.completed_with_order += 1,
                            Some(o) => report.lost.push(format!(
                                "{x}: COMPLETED with order {o}, orders table has {placed:?}"
                            )),
                            None if placed.is_empty() => report.completed_without_order += 1,
                            None => report.duplicates.push(format!(
                                "{x}: COMPLETED without an order ({reason}) but orders {placed:?} exist"
                            )),
                        }
                    }
                    "SKIPPED" | "FAILED" => {
                        *report
                            .ended_otherwise
                            .entry(format!("{status} ({reason})"))
                            .or_default() += 1;
                        if let Some(placed) = orders_by_execution.get(x) {
                            report.duplicates.push(format!(
                                "{x}: {status} ({reason}) but orders {placed:?} exist"
                            ));
                        }
                    }
                    "RUNNING" => report.stuck_running.push(format!(
                        "{x}: RUNNING, attempts {}, in_progress_until {} ({} s before the check){}",
                        n(item, "attempts").unwrap_or(0),
                        n(item, "in_progress_until").unwrap_or(0),
                        check - n(item, "in_progress_until").unwrap_or(0),
                        dlq.get(x).map_or(String::new(), |why| format!("; {why}"))
                    )),
                    other => match dlq.get(x) {
                        Some(why) => *report.in_dlq.entry(dlq_label(why)).or_default() += 1,
                        None => report.lost.push(format!(
                            "{x}: {other} (attempts {}), not in a DLQ",
                            n(item, "attempts").unwrap_or(0)
                        )),
                    },
                }
            }
            None => {
                if let Some(why) = dlq.get(x) {
                    *report.in_dlq.entry(dlq_label(why)).or_default() += 1;
                } else if let Some(list) = skips_of.get(x) {
                    // Any skip whose holder was live accounts for it.
                    let verdicts: Vec<Result<(), String>> = list
                        .iter()
                        .map(|(h, start, at)| live(h, *start, *at))
                        .collect();
                    if verdicts.iter().any(Result::is_ok) {
                        report.skipped_live_lease += 1;
                    } else {
                        let why: Vec<String> =
                            verdicts.into_iter().filter_map(Result::err).collect();
                        report.lost.push(format!(
                            "{x}: skipped at dispatch by a lease nobody ran under: {}",
                            why.join("; ")
                        ));
                    }
                } else if let Some(kept) = same_of.get(x) {
                    if fanouts.contains_key(*kept) {
                        report.skipped_same_batch += 1;
                    } else {
                        report
                            .lost
                            .push(format!("{x}: dropped for {kept}, which is not a fan-out"));
                    }
                } else {
                    report.lost.push(format!(
                        "{x}: no execution, no skip, not in a DLQ (signal {})",
                        fanouts.get(x).map_or("?", String::as_str)
                    ));
                }
            }
        }
    }
    // Orders and executions nobody expected.
    for (e, placed) in &orders_by_execution {
        if !fanouts.contains_key(*e) {
            report
                .duplicates
                .push(format!("orders {placed:?} of unexpected execution {e}"));
        }
    }
    for id in records.keys() {
        if !fanouts.contains_key(*id) {
            report
                .duplicates
                .push(format!("{id}: an execution no signal fanned out to"));
        }
    }
    // Two attempts of one (pipeline, ticker) that reached the order step at overlapping times:
    // one started (its `begin` returned, so its RUNNING write had landed) before the other had
    // even issued its end write (or was stopped). Times between an end write's issue and its
    // reply cannot be told apart from here (under load a reply can take seconds, and the lease
    // that write frees can be claimed and run by the next signal before the reply arrives), so
    // they do not count as overlap.
    let attempts = faults
        .log
        .attempts
        .lock()
        .map(|a| a.clone())
        .unwrap_or_default();
    let mut by_key: HashMap<&str, Vec<&crate::faults::Attempt>> = HashMap::new();
    for a in attempts.iter().filter(|a| a.placed_order) {
        by_key.entry(a.lease_key.as_str()).or_default().push(a);
    }
    for (key, mut list) in by_key {
        list.sort_by_key(|a| a.start_ms);
        for (i, a) in list.iter().enumerate() {
            let a_end = a.ended_by().unwrap_or(check_ms);
            for b in list.iter().skip(i + 1) {
                if b.start_ms >= a_end {
                    continue;
                }
                let t =
                    |ms: Option<i64>| ms.map_or("-".to_owned(), |ms| (ms - a.start_ms).to_string());
                report.duplicates.push(format!(
                    "{key}: {} (attempt {}) and {} (attempt {}) ran to the order step at the same time \
                     (ms after the first's start: first end issued {}, ended {}; second started {}, end issued {}, ended {})",
                    a.execution_id,
                    a.attempt,
                    b.execution_id,
                    b.attempt,
                    t(a.end_issued_ms),
                    t(a.end_ms),
                    t(Some(b.start_ms)),
                    t(b.end_issued_ms),
                    t(b.end_ms),
                ));
            }
        }
    }
    // Unexpired leases whose holder is not running.
    for l in &leases {
        let expires = n(l, "expires_at").unwrap_or(0);
        if expires < check {
            continue;
        }
        let holder = s(l, "execution_id").unwrap_or("?");
        let running = records.get(holder).is_some_and(|r| {
            s(r, "status") == Some("RUNNING")
                && n(r, "in_progress_until").is_some_and(|u| u >= check)
        });
        if !running {
            report.stale_leases.push(format!(
                "{}: held by {holder} ({}) for {} s more",
                s(l, "lease_key").unwrap_or("?"),
                status_of(holder).unwrap_or("no execution"),
                expires - check
            ));
        }
    }
    report.lost.sort();
    report.duplicates.sort();
    report.stuck_running.sort();
    report.stale_leases.sort();
    Ok(report)
}

/// The reason without the per-message counts, for grouping.
fn dlq_label(why: &str) -> String {
    let queue = if why.starts_with("signals") {
        "signals DLQ"
    } else {
        "executions DLQ"
    };
    let cause = why
        .split_once('(')
        .map(|(_, c)| c.trim_end_matches(')'))
        .unwrap_or(why);
    let cause = if cause.contains("crashed") {
        "last invocation crashed"
    } else if cause.contains("timed out") {
        "last invocation timed out"
    } else if cause.contains("batch item failure") || cause.contains("records of the batch failed")
    {
        "reported failed by the function"
    } else {
        cause
    };
    format!("{queue}, {cause}")
}
