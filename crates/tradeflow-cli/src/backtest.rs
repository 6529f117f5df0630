//! `tradeflow backtest`: recorded CSV bars (or the synthetic feed) replayed through the
//! production code at full speed, in this process: the generator ([`Generator`], with the
//! detectors the function builds by default), the dispatcher ([`Dispatcher`]) and the executor
//! ([`Executor`] with [`BuiltinSteps`]), on the in-memory stores and queues of
//! `tradeflow_core::fakes` (the same conditional-write semantics as the DynamoDB and SQS
//! adapters). Only the Lambda and SQS plumbing is replaced: each simulated scan's signals are
//! dispatched in batches of 20 and the requests executed in batches of 10 (the template's event
//! source mappings), a failed message is delivered again on the next scan, and a message failing
//! on its 5th delivery is counted as dead-lettered (the queues' `maxReceiveCount`).

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tradeflow_core::deadline::Deadline;
use tradeflow_core::detectors::detectors_from_json;
use tradeflow_core::dispatch::{Dispatcher, DispatcherConfig};
use tradeflow_core::execute::Executor;
use tradeflow_core::fakes::{
    ManualClock, MemoryCursorStore, MemoryExecutionStore, MemoryLeaseStore, MemoryOrderStore,
    MemoryPipelineStore, MemoryQueue, MemoryRunLedger,
};
use tradeflow_core::generate::{Generator, GeneratorConfig};
use tradeflow_core::market::{CsvReplay, MarketData, SyntheticFeed};
use tradeflow_core::steps::BuiltinSteps;
use tradeflow_core::vocab::{InboundMessage, Ticker, Timeframe};

use crate::cli::{BacktestArgs, Global};
use crate::output::{Output, time};

/// The signals queue's batch size and the executions queue's (infra/template.yaml).
const SIGNAL_BATCH: usize = 20;
const EXECUTION_BATCH: usize = 10;
/// The queues' `maxReceiveCount`.
const MAX_RECEIVES: u32 = 5;

fn parse_time(flag: &str, text: &str) -> anyhow::Result<i64> {
    let t = text.trim();
    if let Ok(secs) = t.parse::<i64>() {
        return Ok(secs);
    }
    if let Ok(date) = chrono::NaiveDate::parse_from_str(t, "%Y-%m-%d") {
        return Ok(date
            .and_hms_opt(0, 0, 0)
            .map_or(0, |d| d.and_utc().timestamp()));
    }
    chrono::DateTime::parse_from_rfc3339(t)
        .map(|d| d.timestamp())
        .with_context(|| format!("{flag} {text:?}: expected YYYY-MM-DD, RFC 3339 or Unix seconds"))
}

/// Tickers scanned at one timeframe, one generator each.
type Streams = Vec<(Vec<Ticker>, Timeframe)>;

/// What a run is over: market, streams, range and scan step.
pub(crate) struct Plan {
    pub market: Arc<dyn MarketData>,
    pub source: String,
    /// One generator per entry: its tickers at one timeframe (CSV files need not cover every
    /// ticker at every timeframe).
    pub streams: Streams,
    pub from: i64,
    pub to: i64,
    pub step: i64,
    /// The functions' market settings for the same source (the emulator path).
    pub market_env: Vec<(&'static str, String)>,
}

fn plan(args: &BacktestArgs) -> anyhow::Result<Plan> {
    let parse_tickers = |raw: &[String]| -> anyhow::Result<Vec<Ticker>> {
        raw.iter()
            .map(|t| Ticker::parse(t).map_err(|e| anyhow::anyhow!("--tickers: {e}")))
            .collect()
    };
    let parse_timeframes = |raw: &[String]| -> anyhow::Result<Vec<Timeframe>> {
        raw.iter()
            .map(|t| Timeframe::parse(t).map_err(|e| anyhow::anyhow!("--timeframes: {e}")))
            .collect()
    };
    let from = args
        .from
        .as_deref()
        .map(|t| parse_time("--from", t))
        .transpose()?;
    let to = args
        .to
        .as_deref()
        .map(|t| parse_time("--to", t))
        .transpose()?;
    let market_env: Vec<(&'static str, String)>;
    let (market, source, streams, from, to): (Arc<dyn MarketData>, String, Streams, i64, i64) =
        match &args.csv {
            Some(dir) => {
                let replay = CsvReplay::from_dir(dir)
                    .map_err(|e| anyhow::anyhow!("{}", crate::output::short_error(&e)))?;
                let series = replay.series();
                if series.is_empty() {
                    bail!(
                        "{}: no <TICKER>_<TIMEFRAME>.csv files with bars",
                        dir.display()
                    );
                }
                let wanted_tickers = parse_tickers(&args.tickers)?;
                let wanted_timeframes = parse_timeframes(&args.timeframes)?;
                let mut timeframes: Vec<Timeframe> = if wanted_timeframes.is_empty() {
                    series.iter().map(|(_, tf)| *tf).collect()
                } else {
                    wanted_timeframes
                };
                timeframes.sort();
                timeframes.dedup();
                // Each timeframe with the tickers that have a file at it (or the asked ones).
                let mut streams = Vec::new();
                for tf in &timeframes {
                    let tickers: Vec<Ticker> = if wanted_tickers.is_empty() {
                        series
                            .iter()
                            .filter(|(_, f)| f == tf)
                            .map(|(t, _)| Ticker::parse(t))
                            .collect::<Result<_, _>>()?
                    } else {
                        wanted_tickers.clone()
                    };
                    if !tickers.is_empty() {
                        streams.push((tickers, *tf));
                    }
                }
                let bounds = series.iter().filter_map(|(t, tf)| {
                    let bars = replay.bars(t, *tf)?;
                    Some((bars.first()?.time, bars.last()?.close_time(*tf)))
                });
                let first = bounds.clone().map(|b| b.0).min().unwrap_or_default();
                let last = bounds.map(|b| b.1).max().unwrap_or_default();
                let abs = std::fs::canonicalize(dir)
                    .with_context(|| format!("reading {}", dir.display()))?;
                market_env = vec![
                    ("MARKET_DATA", "csv".to_owned()),
                    ("MARKET_DATA_CSV_DIR", abs.display().to_string()),
                ];
                (
                    Arc::new(replay),
                    format!("CSV files in {}", dir.display()),
                    streams,
                    from.unwrap_or(first),
                    to.unwrap_or(last + 1),
                )
            }
            None => {
                let tickers = parse_tickers(&args.tickers)?;
                if tickers.is_empty() {
                    bail!("--synthetic needs --tickers (e.g. --tickers AAPL,MSFT)");
                }
                let mut timeframes = parse_timeframes(&args.timeframes)?;
                if timeframes.is_empty() {
                    timeframes = vec![Timeframe::M5];
                }
                let (Some(from), Some(to)) = (from, to) else {
                    bail!(
                        "--synthetic needs --from and --to (e.g. --from 2026-01-05 --to 2026-01-06)"
                    );
                };
                market_env = vec![
                    ("MARKET_DATA", "synthetic".to_owned()),
                    ("SYNTHETIC_SEED", args.seed.to_string()),
                ];
                (
                    Arc::new(SyntheticFeed::new(args.seed)),
                    format!("synthetic feed (seed {})", args.seed),
                    timeframes
                        .into_iter()
                        .map(|tf| (tickers.clone(), tf))
                        .collect(),
                    from,
                    to,
                )
            }
        };
    if to <= from {
        bail!(
            "the range is empty: --to {} is not after --from {}",
            time(to),
            time(from)
        );
    }
    let smallest = streams
        .iter()
        .map(|(_, tf)| tf.seconds())
        .min()
        .unwrap_or(300);
    let step = args.step_secs.unwrap_or(smallest);
    if step <= 0 {
        bail!("--step-secs must be positive");
    }
    if (to - from) / step > 2_000_000 {
        bail!(
            "{} scans is too many: use a larger --step-secs or a shorter range",
            (to - from) / step
        );
    }
    Ok(Plan {
        market,
        source,
        streams,
        from,
        to,
        step,
        market_env,
    })
}

/// Time spent in one phase.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub(crate) struct Timing {
    pub calls: u64,
    pub total_ms: f64,
    pub max_ms: f64,
}

impl Timing {
    pub(crate) fn add(&mut self, d: Duration) {
        let ms = d.as_secs_f64() * 1e3;
        self.calls += 1;
        self.total_ms += ms;
        self.max_ms = self.max_ms.max(ms);
    }

    fn mean_ms(&self) -> f64 {
        if self.calls == 0 {
            0.0
        } else {
            self.total_ms / self.calls as f64
        }
    }
}

#[derive(Debug, Default, serde::Serialize)]
pub(crate) struct Report {
    /// `in-process` or `emulator`.
    pub mode: &'static str,
    pub source: String,
    pub from: i64,
    pub to: i64,
    pub step_secs: i64,
    pub scans: u64,
    pub candles_evaluated: u64,
    pub signals_by_type: BTreeMap<String, u64>,
    pub signals: u64,
    pub signals_rejected: u64,
    pub fan_outs_matched: u64,
    pub executions_enqueued: u64,
    pub skipped_running: u64,
    pub executions_by_status: BTreeMap<String, u64>,
    pub redeliveries: u64,
    pub dead_lettered: u64,
    pub orders: u64,
    pub orders_by_side: BTreeMap<String, u64>,
    /// The chain's phases: generator scans, dispatcher batches, executor batches.
    pub phases: BTreeMap<String, Timing>,
    /// The executor's steps, from the execution records (`duration_ms` of each step).
    pub steps: BTreeMap<String, Timing>,
    /// Scan errors (stream: reason) and how many scans had each.
    pub scan_errors: BTreeMap<String, u64>,
    pub wall_secs: f64,
    pub orders_list: Vec<tradeflow_core::order::PaperOrder>,
}

pub async fn run(global: &Global, args: BacktestArgs) -> anyhow::Result<()> {
    let out = Output::new(global.json);
    let plan = plan(&args)?;
    let pipelines = match &args.pipelines {
        Some(path) => crate::files::read_pipelines(path)?,
        None => crate::files::parse_pipelines(
            std::path::Path::new("local/seed/pipelines.json"),
            include_str!("../../../local/seed/pipelines.json"),
        )?,
    };
    let started = Instant::now();

    if args.emulator {
        return crate::backtest_emulator::run(&out, &plan, &pipelines).await;
    }
    let clock = Arc::new(ManualClock::at(plan.from));
    let signals_queue = Arc::new(MemoryQueue::default());
    let executions_queue = Arc::new(MemoryQueue::default());
    let executions = Arc::new(MemoryExecutionStore::default());
    let orders = Arc::new(MemoryOrderStore::default());
    let leases = Arc::new(MemoryLeaseStore::default());
    let pipeline_store = Arc::new(MemoryPipelineStore::with(pipelines));
    let cursors = Arc::new(MemoryCursorStore::default());
    let mut generators = Vec::new();
    for (tickers, timeframe) in &plan.streams {
        // The function's detectors without family overrides (GENERATOR_FAMILY_PARAMS unset).
        let detectors = detectors_from_json("").map_err(|e| anyhow::anyhow!("detectors: {e}"))?;
        generators.push(Generator::new(
            Arc::clone(&plan.market),
            cursors.clone(),
            signals_queue.clone(),
            detectors,
            GeneratorConfig {
                tickers: tickers.clone(),
                timeframes: vec![*timeframe],
                backfill_bars: 1,
                ..GeneratorConfig::default()
            },
        ));
    }
    let dispatcher = Dispatcher::new(
        pipeline_store.clone(),
        leases.clone(),
        executions_queue.clone(),
        clock.clone(),
        DispatcherConfig::default(),
    );
    let executor = Executor::new(
        pipeline_store,
        executions.clone(),
        leases.clone(),
        Arc::new(MemoryRunLedger::new(
            executions.clone(),
            orders.clone(),
            leases.clone(),
        )),
        BuiltinSteps::new(Arc::clone(&plan.market), orders.clone(), Timeframe::M5),
        clock.clone(),
    )
    .with_max_deliveries(Some(MAX_RECEIVES));

    let mut report = Report {
        mode: "in-process",
        source: plan.source.clone(),
        from: plan.from,
        to: plan.to,
        step_secs: plan.step,
        ..Report::default()
    };
    let total_scans = ((plan.to - plan.from) / plan.step).max(1) as u64;
    let progress = std::io::stderr().is_terminal() && !out.json;
    let mut next_id = 0u64;
    let mut signal_retries: Vec<InboundMessage> = Vec::new();
    let mut execution_retries: Vec<InboundMessage> = Vec::new();
    let mut message = |body: String, now: i64| {
        next_id += 1;
        InboundMessage {
            message_id: format!("m{next_id}"),
            body,
            sent_at_ms: Some(now * 1000),
            receive_count: Some(1),
            trace: None,
        }
    };
    let mut t = plan.from;
    while t < plan.to {
        // The scheduled scan fires once the step's candles have closed.
        let now = t + plan.step;
        clock.set(now);
        report.scans += 1;
        for generator in &generators {
            let phase = Instant::now();
            let scan = generator.scan(now, Deadline::none()).await;
            report
                .phases
                .entry("generator scan".into())
                .or_default()
                .add(phase.elapsed());
            report.candles_evaluated += scan.candles_evaluated as u64;
            for s in &scan.sent {
                *report
                    .signals_by_type
                    .entry(s.signal_type.as_str().to_owned())
                    .or_default() += 1;
            }
            report.signals += scan.sent.len() as u64;
            for e in &scan.errors {
                *report
                    .scan_errors
                    .entry(format!("{}: {}", e.stream, e.reason))
                    .or_default() += 1;
            }
        }

        let mut inbound: Vec<InboundMessage> = std::mem::take(&mut signal_retries);
        inbound.extend(
            signals_queue
                .drain()
                .into_iter()
                .map(|m| message(m.body, now)),
        );
        for batch in inbound.chunks(SIGNAL_BATCH) {
            let phase = Instant::now();
            let r = dispatcher.dispatch(batch, Deadline::none()).await;
            report
                .phases
                .entry("dispatcher batch".into())
                .or_default()
                .add(phase.elapsed());
            report.fan_outs_matched += r.matched as u64;
            report.executions_enqueued += r.enqueued as u64;
            report.skipped_running += r.skipped_running as u64;
            for f in &r.failures {
                let Some(m) = batch.iter().find(|m| m.message_id == f.message_id) else {
                    continue;
                };
                if f.poison {
                    report.signals_rejected += 1;
                }
                redeliver(m, &mut signal_retries, &mut report);
            }
        }

        let mut requests: Vec<InboundMessage> = std::mem::take(&mut execution_retries);
        requests.extend(
            executions_queue
                .drain()
                .into_iter()
                .map(|m| message(m.body, now)),
        );
        for batch in requests.chunks(EXECUTION_BATCH) {
            let phase = Instant::now();
            let reports = executor.execute_batch(batch, Deadline::none()).await;
            report
                .phases
                .entry("executor batch".into())
                .or_default()
                .add(phase.elapsed());
            for (m, r) in batch.iter().zip(&reports) {
                if r.failed() {
                    redeliver(m, &mut execution_retries, &mut report);
                }
            }
        }
        if progress {
            let done = report.scans;
            let width = 30;
            let filled = (done * width / total_scans).min(width) as usize;
            eprint!(
                "\r[{}{}] {:>3}% {}  signals {}  executions {}  orders {}",
                "#".repeat(filled),
                ".".repeat(width as usize - filled),
                done * 100 / total_scans,
                time(now),
                report.signals,
                report.executions_enqueued,
                orders.all().len()
            );
            let _ = std::io::stderr().flush();
        }
        t += plan.step;
    }
    if progress {
        eprintln!();
    }
    for r in executions.all() {
        *report
            .executions_by_status
            .entry(r.status.as_str().to_owned())
            .or_default() += 1;
        for s in &r.steps {
            let timing = report.steps.entry(s.step.clone()).or_default();
            timing.calls += 1;
            timing.total_ms += s.duration_ms;
            timing.max_ms = timing.max_ms.max(s.duration_ms);
        }
    }
    let mut all_orders = orders.all();
    all_orders.sort_by(|a, b| (a.created_at, &a.order_id).cmp(&(b.created_at, &b.order_id)));
    report.orders = all_orders.len() as u64;
    for o in &all_orders {
        let side = serde_json::to_value(o.side)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        *report.orders_by_side.entry(side).or_default() += 1;
    }
    report.orders_list = all_orders;
    report.wall_secs = started.elapsed().as_secs_f64();
    print(&out, &report)
}

/// A failed message comes back on the next scan, until its last delivery (then: DLQ).
fn redeliver(m: &InboundMessage, retries: &mut Vec<InboundMessage>, report: &mut Report) {
    let count = m.receive_count.unwrap_or(1);
    if count >= MAX_RECEIVES {
        report.dead_lettered += 1;
        return;
    }
    report.redeliveries += 1;
    let mut again = m.clone();
    again.receive_count = Some(count + 1);
    retries.push(again);
}

pub(crate) fn print(out: &Output, r: &Report) -> anyhow::Result<()> {
    if out.json {
        out.json(&serde_json::to_value(r)?);
        return Ok(());
    }
    println!(
        "backtest ({}) of {} from {} to {} UTC: {} scans {} s apart, {} candles, in {:.2} s",
        r.mode,
        r.source,
        time(r.from),
        time(r.to),
        r.scans,
        r.step_secs,
        r.candles_evaluated,
        r.wall_secs
    );
    println!();
    let mut types: Vec<(&String, &u64)> = r.signals_by_type.iter().collect();
    types.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    if r.mode == "emulator" {
        println!(
            "{} signals (by type: not on the emulator path, the generator's invocation result \
             counts them only)",
            r.signals
        );
    }
    let mut rows: Vec<Vec<String>> = types
        .iter()
        .map(|(t, n)| vec![(*t).clone(), n.to_string()])
        .collect();
    rows.push(vec!["(total)".into(), r.signals.to_string()]);
    if r.mode != "emulator" {
        out.table(&["SIGNAL TYPE", "SIGNALS"], &rows);
    }
    println!();
    let rows: Vec<Vec<String>> = r
        .executions_by_status
        .iter()
        .map(|(s, n)| vec![out.status(s), n.to_string()])
        .collect();
    println!(
        "{} (pipeline, ticker) matches, {} executions enqueued, {} skipped as already running",
        r.fan_outs_matched, r.executions_enqueued, r.skipped_running
    );
    if !rows.is_empty() {
        out.table(&["EXECUTION STATUS", "COUNT"], &rows);
    }
    let sides: Vec<String> = r
        .orders_by_side
        .iter()
        .map(|(s, n)| format!("{n} {s}"))
        .collect();
    println!(
        "paper orders: {}{}",
        r.orders,
        if sides.is_empty() {
            String::new()
        } else {
            format!(" ({})", sides.join(", "))
        }
    );
    println!(
        "redeliveries {}, dead-lettered {}, signals rejected {}",
        r.redeliveries, r.dead_lettered, r.signals_rejected
    );
    println!();
    let mut rows: Vec<Vec<String>> = Vec::new();
    for (name, t) in r.phases.iter().chain(r.steps.iter()) {
        rows.push(vec![
            name.clone(),
            t.calls.to_string(),
            format!("{:.1}", t.total_ms),
            format!("{:.3}", t.mean_ms()),
            format!("{:.3}", t.max_ms),
        ]);
    }
    out.table(
        &["PHASE / STEP", "CALLS", "TOTAL MS", "MEAN MS", "MAX MS"],
        &rows,
    );
    if !r.scan_errors.is_empty() {
        println!();
        for (error, scans) in &r.scan_errors {
            println!("scan error in {scans} scan(s): {error}");
        }
    }
    Ok(())
}
