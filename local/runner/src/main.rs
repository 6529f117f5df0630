//! `tradeflow-local`: the demo, pipeline seeding and the functions' environment for a local stack.
//!
//! ```text
//! tradeflow-local env   [--stack NAME]                 print the functions' environment (KEY=VALUE)
//! tradeflow-local seed  [--stack NAME] [--file PATH]   put the sample pipelines
//! tradeflow-local demo  [--stack NAME] [--watch URL] [--ticks N] [--tick-ms MS] [--start UNIX]
//!                       [--file PATH|none]   (none: do not seed)
//! tradeflow-local load  [--stack NAME] [--watch URL] [--signals N] [--pipelines N]   load harness
//!                       [--rate R --duration-secs D] [--dispatcher-pollers N] [--executor-pollers N]
//! tradeflow-local soak  [--stack NAME] [--signals N] [--pipelines N] [--seed S] [--tickers N]
//!                       [--duplicate-rate 0.1] [--crash-rate 0.05] [--transient-rate 0.05]
//!                       [--dispatcher-crash-rate 0.05] [--deadline-rate 0.02]
//!                       [--contention-rate 0.1] [--send-rate 25] [--drain-secs 900]
//!                       [--executor-pollers 4] [--dispatcher-pollers 2] [--executor-batch 5]
//!                       [--executor-timeout-secs 8] [--retry-delay-secs 12]
//!                                                       fault-injection soak (RELIABILITY.md)
//! ```

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tradeflow_core::pipeline::Pipeline;
use tradeflow_core::ports::PipelineStore;
use tradeflow_local::chain::{Chain, ChainConfig, Functions};
use tradeflow_local::progress::{count_items, executions_by_status};
use tradeflow_local::stack::StackOutputs;

struct Args {
    command: String,
    flags: HashMap<String, String>,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut it = std::env::args().skip(1);
    let command = it.next().unwrap_or_else(|| "help".into());
    let mut flags = HashMap::new();
    while let Some(flag) = it.next() {
        let Some(name) = flag.strip_prefix("--") else {
            bail!("unexpected argument {flag}");
        };
        let value = it
            .next()
            .with_context(|| format!("--{name} needs a value"))?;
        flags.insert(name.to_owned(), value);
    }
    Ok(Args { command, flags })
}

impl Args {
    fn get(&self, name: &str, default: &str) -> String {
        self.flags
            .get(name)
            .cloned()
            .unwrap_or_else(|| default.to_owned())
    }
    fn num<T: std::str::FromStr>(&self, name: &str, default: T) -> anyhow::Result<T> {
        match self.flags.get(name) {
            None => Ok(default),
            Some(v) => v
                .parse()
                .map_err(|_| anyhow::anyhow!("--{name} {v:?} is not a number")),
        }
    }
}

/// Demo settings for the generator, on top of the stack's environment.
fn demo_env() -> HashMap<String, String> {
    HashMap::from([
        ("GENERATOR_BACKFILL_BARS".to_owned(), "24".to_owned()),
        (
            "GENERATOR_TICKERS".to_owned(),
            "AAPL,MSFT,NVDA,TSLA,SPY".to_owned(),
        ),
        ("GENERATOR_TIMEFRAMES".to_owned(), "5,60".to_owned()),
    ])
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = parse_args()?;
    let stack = args.get("stack", "tradeflow-local");
    let sdk = tradeflow_aws::load_aws_config().await?;
    let cfn = aws_sdk_cloudformation::Client::new(&sdk);
    match args.command.as_str() {
        "env" => {
            let outputs = StackOutputs::load(&cfn, &stack).await?;
            let mut env: Vec<(String, String)> = outputs
                .function_env(&sdk)
                .await?
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v))
                .chain(demo_env())
                .collect();
            env.sort();
            for (k, v) in env {
                println!("{k}={v}");
            }
            Ok(())
        }
        "seed" => {
            let outputs = StackOutputs::load(&cfn, &stack).await?;
            let n = seed(
                &sdk,
                &outputs,
                &args.get("file", "local/seed/pipelines.json"),
            )
            .await?;
            println!(
                "seeded {n} pipelines into {}",
                outputs.get("PipelinesTableName")?
            );
            Ok(())
        }
        "demo" => demo(&sdk, &cfn, &stack, &args).await,
        "load" => {
            let outputs = StackOutputs::load(&cfn, &stack).await?;
            let pipelines: usize = args.num("pipelines", 2)?;
            // `--rate R --duration-secs D`: R signals/s for D s; else `--signals N` at once.
            let plan = match args.flags.get("rate") {
                Some(_) => tradeflow_local::load::LoadPlan::Rate {
                    per_sec: args.num("rate", 10.0)?,
                    duration: Duration::from_secs(args.num("duration-secs", 60)?),
                },
                None => tradeflow_local::load::LoadPlan::Burst {
                    signals: args.num("signals", 200)?,
                },
            };
            let capacity_secs: u64 = args.num("capacity-secs", 5)?;
            let emulator = if capacity_secs > 0 {
                eprintln!("load: measuring the emulator's raw capacity ({capacity_secs} s each)");
                Some(
                    tradeflow_local::load::measure_emulator(
                        &sdk,
                        &outputs,
                        Duration::from_secs(capacity_secs),
                    )
                    .await?,
                )
            } else {
                None
            };
            // In-process, the functions' AWS requests are counted (`calls`).
            let (functions, calls) = match args.flags.get("watch") {
                Some(url) => (Functions::watch(url), None),
                None => {
                    let (recorded, calls) = tradeflow_local::calls::recording(&sdk);
                    let functions =
                        Functions::in_process(&recorded, &outputs, &HashMap::new()).await?;
                    (functions, Some(calls))
                }
            };
            // Concurrent invocations per queue: the runner's defaults (1 and 4), or as many as
            // the template's event source mappings allow (MaximumConcurrency 5 and 10).
            let mut chain = tradeflow_local::chain::ChainConfig::default();
            chain.signals.pollers = args.num("dispatcher-pollers", chain.signals.pollers)?;
            chain.executions.pollers = args.num("executor-pollers", chain.executions.pollers)?;
            let mut report = tradeflow_local::load::run_load(
                &sdk,
                &outputs,
                functions,
                calls,
                plan,
                pipelines,
                chain,
                Duration::from_secs(args.num("timeout-secs", 600)?),
                true,
            )
            .await?;
            report.emulator = emulator;
            println!("{}", tradeflow_local::load::LoadReport::table_header());
            println!("{}", report.table_row());
            println!("\n{}", report.capacity_lines());
            if let Some(calls) = &report.aws_calls {
                println!("\nAWS requests by operation: {calls:?}");
            }
            if report.completed < report.executions {
                bail!(
                    "only {} of {} executions completed",
                    report.completed,
                    report.executions
                );
            }
            Ok(())
        }
        "soak" => {
            let outputs = StackOutputs::load(&cfn, &stack).await?;
            let defaults = tradeflow_local::soak::SoakConfig::default();
            let plan = tradeflow_local::faults::FaultPlan {
                seed: args.num("seed", defaults.plan.seed)?,
                duplicate_rate: args.num("duplicate-rate", defaults.plan.duplicate_rate)?,
                crash_rate: args.num("crash-rate", defaults.plan.crash_rate)?,
                transient_rate: args.num("transient-rate", defaults.plan.transient_rate)?,
                dispatcher_crash_rate: args
                    .num("dispatcher-crash-rate", defaults.plan.dispatcher_crash_rate)?,
                deadline_rate: args.num("deadline-rate", defaults.plan.deadline_rate)?,
                ..defaults.plan
            };
            let config = tradeflow_local::soak::SoakConfig {
                signals: args.num("signals", 10_000)?,
                pipelines: args.num("pipelines", defaults.pipelines)?,
                tickers: args.num("tickers", 0)?,
                contention_rate: args.num("contention-rate", defaults.contention_rate)?,
                send_rate: args.num("send-rate", defaults.send_rate)?,
                drain_timeout: Duration::from_secs(args.num("drain-secs", 900)?),
                executor_pollers: args.num("executor-pollers", defaults.executor_pollers)?,
                executor_batch: args.num("executor-batch", defaults.executor_batch)?,
                executor_timeout: Duration::from_secs(
                    args.num("executor-timeout-secs", defaults.executor_timeout.as_secs())?,
                ),
                retry_delay: Duration::from_secs(
                    args.num("retry-delay-secs", defaults.retry_delay.as_secs())?,
                ),
                dispatcher_pollers: args.num("dispatcher-pollers", defaults.dispatcher_pollers)?,
                plan,
                ..defaults
            };
            let report = tradeflow_local::soak::run_soak(&sdk, &outputs, &config).await?;
            println!("\n{}", report.table());
            print!("{}", report.verdict());
            if report.broken() {
                bail!("the soak found broken invariants (ids above)");
            }
            Ok(())
        }
        _ => {
            eprintln!(
                "usage: tradeflow-local env|seed|demo|load|soak [--stack NAME] [--watch URL] [--ticks N] [--tick-ms MS] [--start UNIX] [--file PATH] [--signals N] [--pipelines N]"
            );
            Ok(())
        }
    }
}

async fn seed(
    sdk: &aws_config::SdkConfig,
    outputs: &StackOutputs,
    file: &str,
) -> anyhow::Result<usize> {
    let text = std::fs::read_to_string(file).with_context(|| format!("reading {file}"))?;
    let pipelines: Vec<Pipeline> =
        serde_json::from_str(&text).with_context(|| format!("parsing {file}"))?;
    let store = tradeflow_aws::DynamoPipelineStore::new(
        aws_sdk_dynamodb::Client::new(sdk),
        outputs.get("PipelinesTableName")?.to_owned(),
    );
    for p in &pipelines {
        p.validate()?;
        store.put_pipeline(p).await?;
    }
    Ok(pipelines.len())
}

async fn demo(
    sdk: &aws_config::SdkConfig,
    cfn: &aws_sdk_cloudformation::Client,
    stack: &str,
    args: &Args,
) -> anyhow::Result<()> {
    let outputs = StackOutputs::load(cfn, stack).await?;
    // `--file none`: the pipelines are already there (local/demo.sh creates them with the
    // `tradeflow` CLI).
    let seeded = match args.get("file", "local/seed/pipelines.json").as_str() {
        "none" => None,
        file => Some(seed(sdk, &outputs, file).await?),
    };
    let ticks: u32 = args.num("ticks", 24)?;
    let tick = Duration::from_millis(args.num("tick-ms", 1000)?);
    // Simulated market time: each tick is one 5-minute candle later.
    let start: i64 = args.num("start", 1_767_623_400)?;
    let functions = match args.flags.get("watch") {
        Some(url) => {
            println!("invoking the function binaries through cargo lambda watch at {url}");
            Functions::watch(url)
        }
        None => {
            println!("invoking the function handlers in-process");
            Functions::in_process(sdk, &outputs, &demo_env()).await?
        }
    };
    if let Some(n) = seeded {
        println!("seeded {n} pipelines");
    }
    println!("{ticks} scheduled scans, one 5-minute candle apart\n");
    let chain = Chain::start(sdk, outputs.clone(), functions, ChainConfig::default()).await?;
    let executions_table = outputs.get("ExecutionsTableName")?.to_owned();
    let orders_table = outputs.get("OrdersTableName")?.to_owned();
    let started = Instant::now();
    let mut signals_sent = 0u64;
    let mut scan_errors = 0u64;
    println!(
        "{:>4} {:>7} {:>8} {:>9} {:>8} {:>9} {:>7} {:>7} {:>6}",
        "tick",
        "signals",
        "consumed",
        "requests",
        "running",
        "completed",
        "failed",
        "skipped",
        "orders"
    );
    for n in 0..ticks {
        let time = start + i64::from(n) * 300;
        match chain.fire_generator(time).await {
            Ok(summary) => signals_sent += summary["signals_sent"].as_u64().unwrap_or(0),
            Err(e) => {
                scan_errors += 1;
                eprintln!("scan at {time} failed: {e:#}");
            }
        }
        tokio::time::sleep(tick).await;
        print_progress(
            &chain,
            n + 1,
            signals_sent,
            &executions_table,
            &orders_table,
        )
        .await?;
    }
    let drained = chain.wait_idle(Duration::from_secs(60)).await?;
    print_progress(
        &chain,
        ticks,
        signals_sent,
        &executions_table,
        &orders_table,
    )
    .await?;
    let by_status = executions_by_status(&chain.dynamo, &executions_table).await?;
    let orders = count_items(&chain.dynamo, &orders_table).await?;
    let signals_dlq = chain.dlq_depth("SignalsDlqName").await?;
    let executions_dlq = chain.dlq_depth("ExecutionsDlqName").await?;
    let s = &chain.signals.stats;
    let e = &chain.executions.stats;
    println!("\nSummary after {:.1} s", started.elapsed().as_secs_f64());
    println!("  signals generated and sent      {signals_sent} ({scan_errors} failed scans)");
    println!(
        "  signals consumed by dispatcher  {} in {} batches ({} failed records)",
        s.deleted.load(Ordering::Relaxed),
        s.invocations.load(Ordering::Relaxed),
        s.failed_records.load(Ordering::Relaxed)
    );
    println!(
        "  execution requests (matched pipelines, enqueued)  {} in {} batches ({} failed records)",
        e.records.load(Ordering::Relaxed),
        e.invocations.load(Ordering::Relaxed),
        e.failed_records.load(Ordering::Relaxed)
    );
    for (status, count) in &by_status {
        println!("  executions {status:<10}          {count}");
    }
    println!("  paper orders                    {orders}");
    println!(
        "  dead-letter queues              signals {signals_dlq}, executions {executions_dlq}"
    );
    println!(
        "  queues drained                  {}",
        if drained {
            "yes"
        } else {
            "NO (timed out after 60 s)"
        }
    );
    let consumed = s.deleted.load(Ordering::Relaxed);
    chain.stop().await;
    if !drained || signals_sent == 0 || consumed < signals_sent {
        bail!(
            "the demo did not complete: drained={drained}, signals sent={signals_sent}, consumed={consumed}"
        );
    }
    Ok(())
}

async fn print_progress(
    chain: &Chain,
    tick: u32,
    signals_sent: u64,
    executions_table: &str,
    orders_table: &str,
) -> anyhow::Result<()> {
    let by_status = executions_by_status(&chain.dynamo, executions_table).await?;
    let orders = count_items(&chain.dynamo, orders_table).await?;
    let get = |s: &str| by_status.get(s).copied().unwrap_or(0);
    println!(
        "{:>4} {:>7} {:>8} {:>9} {:>8} {:>9} {:>7} {:>7} {:>6}",
        tick,
        signals_sent,
        chain.signals.stats.deleted.load(Ordering::Relaxed),
        chain.executions.stats.records.load(Ordering::Relaxed),
        get("RUNNING") + get("PENDING"),
        get("COMPLETED"),
        get("FAILED"),
        get("SKIPPED"),
        orders
    );
    Ok(())
}
