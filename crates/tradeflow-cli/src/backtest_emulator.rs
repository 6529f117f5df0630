//! `tradeflow backtest --emulator`: the same replay on a throwaway stack deployed to the emulator
//! from infra/template.yaml, with the three functions' handlers (their Lambda glue and the
//! DynamoDB and SQS adapters) run by tradeflow-local's event source mappings, as the demo runs
//! them. Each simulated scan fires the generator's handler with the scan's time as the scheduled
//! event's time, then waits until both queues are empty before the next one.
//!
//! The generator function scans every ticker at every timeframe (its configuration is two
//! lists): CSV files that do not cover each pair show up as scan errors, as they would deployed.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tradeflow_core::pipeline::Pipeline;
use tradeflow_core::ports::PipelineStore;
use tradeflow_local::chain::{Chain, ChainConfig, Functions};
use tradeflow_local::esm::MappingConfig;
use tradeflow_local::stack::{StackOutputs, TEMPLATE_BODY, create_stack, delete_stack};
use tradeflow_telemetry::{Telemetry, TelemetryConfig};

use crate::backtest::{Plan, Report, print};
use crate::output::{Output, short_error, time};

/// How long one scan's signals may take to go through the chain.
const SCAN_DRAIN: Duration = Duration::from_secs(120);

pub async fn run(out: &Output, plan: &Plan, pipelines: &[Pipeline]) -> anyhow::Result<()> {
    let endpoint = std::env::var("AWS_ENDPOINT_URL").unwrap_or_default();
    if endpoint.trim().is_empty() {
        bail!(
            "--emulator deploys a throwaway stack, so it needs AWS_ENDPOINT_URL set to the emulator \
             (source local/env.sh && local/emulator.sh start); it never deploys to AWS"
        );
    }
    let sdk = tradeflow_aws::load_aws_config().await?;
    let cfn = aws_sdk_cloudformation::Client::new(&sdk);
    let stage = format!("bt{:x}", chrono::Utc::now().timestamp_millis());
    if !out.json {
        eprintln!("deploying throwaway stack tradeflow-{stage} to {endpoint}");
    }
    let outputs = create_stack(&cfn, TEMPLATE_BODY, &stage).await?;
    let result = run_on(out, &sdk, &outputs, plan, pipelines).await;
    // The stack goes whatever happened; the template retains two tables: delete them too.
    let dynamo = aws_sdk_dynamodb::Client::new(&sdk);
    let _ = delete_stack(&cfn, &stage).await;
    for output in ["ExecutionsTableName", "OrdersTableName"] {
        if let Ok(table) = outputs.get(output) {
            let _ = dynamo
                .update_table()
                .table_name(table)
                .deletion_protection_enabled(false)
                .send()
                .await;
            let _ = dynamo.delete_table().table_name(table).send().await;
        }
    }
    let report = result?;
    print(out, &report)
}

async fn run_on(
    out: &Output,
    sdk: &aws_config::SdkConfig,
    outputs: &StackOutputs,
    plan: &Plan,
    pipelines: &[Pipeline],
) -> anyhow::Result<Report> {
    let started = Instant::now();
    let dynamo = aws_sdk_dynamodb::Client::new(sdk);
    let store =
        tradeflow_aws::DynamoPipelineStore::new(dynamo.clone(), outputs.get("PipelinesTableName")?);
    for p in pipelines {
        store
            .put_pipeline(p)
            .await
            .map_err(|e| anyhow::anyhow!("{}", short_error(&e)))
            .with_context(|| format!("writing pipeline {}", p.pipeline_id))?;
    }
    let mut tickers: Vec<String> = Vec::new();
    let mut timeframes: Vec<String> = Vec::new();
    for (ts, tf) in &plan.streams {
        for t in ts {
            if !tickers.contains(&t.to_string()) {
                tickers.push(t.to_string());
            }
        }
        if !timeframes.contains(&tf.as_str().to_owned()) {
            timeframes.push(tf.as_str().to_owned());
        }
    }
    let mut extra: HashMap<String, String> = plan
        .market_env
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect();
    extra.insert("GENERATOR_TICKERS".into(), tickers.join(","));
    extra.insert("GENERATOR_TIMEFRAMES".into(), timeframes.join(","));
    extra.insert("GENERATOR_BACKFILL_BARS".into(), "1".into());
    // No log lines and no metrics export from the functions: this process prints the result.
    let quiet = |service: &str| {
        Telemetry::from_config(TelemetryConfig::from_lookup(service, |k| {
            (k == "AWS_REGION").then(|| "us-east-1".to_owned())
        }))
    };
    let functions = Functions::in_process_with(sdk, outputs, &extra, &quiet).await?;
    let fast = |batch_size, window_ms| MappingConfig {
        batch_size,
        batching_window: Duration::from_millis(window_ms),
        wait_time_secs: 1,
        retry_delay: Some(Duration::from_secs(1)),
        ..MappingConfig::default()
    };
    let chain = Chain::start(
        sdk,
        outputs.clone(),
        functions,
        ChainConfig {
            signals: fast(20, 100),
            executions: MappingConfig {
                pollers: 4,
                ..fast(10, 0)
            },
        },
    )
    .await?;
    let mut report = Report {
        mode: "emulator",
        source: plan.source.clone(),
        from: plan.from,
        to: plan.to,
        step_secs: plan.step,
        ..Report::default()
    };
    let total = ((plan.to - plan.from) / plan.step).max(1) as u64;
    let progress = std::io::stderr().is_terminal() && !out.json;
    let mut t = plan.from;
    let outcome: anyhow::Result<()> = async {
        while t < plan.to {
            let now = t + plan.step;
            let phase = Instant::now();
            let summary = chain.fire_generator(now).await?;
            report
                .phases
                .entry("generator invocation".into())
                .or_default()
                .add(phase.elapsed());
            report.scans += 1;
            let count = |k: &str| summary[k].as_u64().unwrap_or(0);
            report.signals += count("signals_sent");
            report.candles_evaluated += count("candles_evaluated");
            if count("stream_errors") > 0 {
                *report
                    .scan_errors
                    .entry("streams that failed to scan (see the generator's result)".into())
                    .or_default() += count("stream_errors");
            }
            let phase = Instant::now();
            if !chain.wait_idle(SCAN_DRAIN).await? {
                bail!(
                    "the scan at {} did not drain in {} s",
                    time(now),
                    SCAN_DRAIN.as_secs()
                );
            }
            report
                .phases
                .entry("dispatch and execute (queues drained)".into())
                .or_default()
                .add(phase.elapsed());
            if progress {
                let width = 30u64;
                let filled = (report.scans * width / total).min(width) as usize;
                eprint!(
                    "\r[{}{}] {:>3}% {}  signals {}",
                    "#".repeat(filled),
                    ".".repeat(width as usize - filled),
                    report.scans * 100 / total,
                    time(now),
                    report.signals
                );
                let _ = std::io::stderr().flush();
            }
            t += plan.step;
        }
        Ok(())
    }
    .await;
    if progress {
        eprintln!();
    }
    let signals_dlq = chain.dlq_depth("SignalsDlqName").await.unwrap_or(0);
    let executions_dlq = chain.dlq_depth("ExecutionsDlqName").await.unwrap_or(0);
    let stats = (
        chain
            .signals
            .stats
            .failed_records
            .load(std::sync::atomic::Ordering::Relaxed),
        chain
            .executions
            .stats
            .failed_records
            .load(std::sync::atomic::Ordering::Relaxed),
    );
    chain.stop().await;
    outcome?;
    report.dead_lettered = signals_dlq + executions_dlq;
    report.redeliveries = stats.0 + stats.1;

    let executions = tradeflow_aws::DynamoExecutionStore::new(
        dynamo.clone(),
        outputs.get("ExecutionsTableName")?,
    )
    .list(None)
    .await
    .map_err(|e| anyhow::anyhow!("{}", short_error(&e)))?;
    let mut fan_outs = HashSet::new();
    for r in executions.into_iter().flatten() {
        fan_outs.insert(r.execution_id.clone());
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
    report.executions_enqueued = fan_outs.len() as u64;
    report.fan_outs_matched = fan_outs.len() as u64;
    let mut orders: Vec<_> =
        tradeflow_aws::DynamoOrderStore::new(dynamo, outputs.get("OrdersTableName")?)
            .list_all()
            .await
            .map_err(|e| anyhow::anyhow!("{}", short_error(&e)))?
            .into_iter()
            .flatten()
            .collect();
    orders.sort_by(|a, b| (a.created_at, &a.order_id).cmp(&(b.created_at, &b.order_id)));
    let mut by_side: BTreeMap<String, u64> = BTreeMap::new();
    for o in &orders {
        let side = serde_json::to_value(o.side)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        *by_side.entry(side).or_default() += 1;
    }
    report.orders = orders.len() as u64;
    report.orders_by_side = by_side;
    report.orders_list = orders;
    report.wall_secs = started.elapsed().as_secs_f64();
    Ok(report)
}
