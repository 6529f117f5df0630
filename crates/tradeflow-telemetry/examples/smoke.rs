//! End-to-end check of the telemetry crate: records every metric set from hand-built reports,
//! flushes the way a function does after each invocation, and prints the flush timings.
//!
//! ```text
//! local/metrics.sh start
//! OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318/opentelemetry \
//!   cargo run -p tradeflow-telemetry --example smoke -- [--current-thread] [--invocations N]
//! curl -sG http://127.0.0.1:9090/api/v1/query --data-urlencode 'query=signals_generated_total'
//! ```
//!
//! Exits non-zero only on bad arguments: like the functions, it never fails because of telemetry.

use std::time::{Duration, Instant};

use serde_json::json;
use tradeflow_core::dispatch::{DispatchReport, MessageFailure};
use tradeflow_core::execute::{MessageReport, Outcome};
use tradeflow_core::execution::{ExecutionRecord, ExecutionStatus};
use tradeflow_core::generate::{ScanReport, StreamError};
use tradeflow_core::signal::Signal;
use tradeflow_telemetry::{
    DLQ_EXECUTIONS, DLQ_SIGNALS, DispatcherMetrics, ExecutorMetrics, GeneratorMetrics,
    TRIGGER_PUBSUB, TRIGGER_TIMER, Telemetry,
};

fn main() -> Result<(), String> {
    let mut current_thread = false;
    let mut invocations = 3usize;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--current-thread" => current_thread = true,
            "--invocations" => {
                invocations = args
                    .next()
                    .and_then(|n| n.parse().ok())
                    .ok_or("--invocations needs a number")?;
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    let runtime = if current_thread {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
    }
    .map_err(|e| e.to_string())?;
    runtime.block_on(run(invocations, current_thread))
}

async fn run(invocations: usize, current_thread: bool) -> Result<(), String> {
    let init_started = Instant::now();
    let telemetry = Telemetry::init("tradeflow-smoke");
    let init_ms = ms(init_started.elapsed());
    let generator = GeneratorMetrics::new(&telemetry.meter());
    let dispatcher = DispatcherMetrics::new(&telemetry.meter());
    let executor = ExecutorMetrics::new(&telemetry.meter());

    let mut flush_ms = Vec::new();
    for n in 0..invocations {
        // A scheduled scan.
        let invocation = telemetry.start_invocation(TRIGGER_TIMER);
        generator.record_scan(&scan_report()?, Duration::from_millis(35));
        generator.record_dlq_depth(DLQ_SIGNALS, 0);
        generator.record_dlq_depth(DLQ_EXECUTIONS, n as u64);
        invocation.finish(true);

        // An SQS batch for the dispatcher, one for the executor.
        let invocation = telemetry.start_invocation(TRIGGER_PUBSUB);
        dispatcher.record_batch(&dispatch_report(), Duration::from_millis(18));
        executor.record_batch(&executor_reports()?);
        invocation.finish(n % 2 == 0);

        let started = Instant::now();
        telemetry.flush().await;
        flush_ms.push(ms(started.elapsed()));
    }
    let started = Instant::now();
    telemetry.shutdown().await;
    let shutdown_ms = ms(started.elapsed());
    println!(
        "{}",
        json!({
            "smoke": "done",
            "runtime": if current_thread { "current_thread" } else { "multi_thread" },
            "exporting": telemetry.is_exporting(),
            "flush_budget_ms": ms(telemetry.flush_budget()),
            "init_ms": init_ms,
            "flush_ms": flush_ms,
            "shutdown_ms": shutdown_ms,
        })
    );
    Ok(())
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

fn signal(id: &str, signal_type: &str, source: &str) -> Result<Signal, String> {
    Signal::parse(
        &json!({
            "signal_id": id, "signal_type": signal_type, "source": source,
            "timestamp": 1_700_000_000,
            "tickers": [{"ticker": "AAPL", "signal": "BULLISH", "confidence": 75}],
            "metadata": {"timeframe": "5"}
        })
        .to_string(),
    )
    .map_err(|e| e.to_string())
}

fn scan_report() -> Result<ScanReport, String> {
    let mut report = ScanReport {
        streams: 2,
        candles_evaluated: 2,
        cursor_conflicts: 1,
        publish_calls: 1,
        publish_time: Duration::from_millis(4),
        ..ScanReport::default()
    };
    report.sent = vec![
        signal("s1", "rsi_oversold", "rsi_generator")?,
        signal("s2", "golden_cross", "ma_cross_generator")?,
    ];
    report.undelivered = vec![(
        signal("s3", "rsi_oversold", "rsi_generator")?,
        "rejected by the queue: InvalidMessageContents".into(),
    )];
    report.errors = vec![StreamError {
        stream: "MSFT#5".into(),
        error_type: "market_data",
        reason: "no candles".into(),
        retryable: true,
    }];
    report
        .detector_time
        .insert("rsi_generator", Duration::from_micros(800));
    report
        .detector_time
        .insert("ma_cross_generator", Duration::from_micros(300));
    Ok(report)
}

fn dispatch_report() -> DispatchReport {
    DispatchReport {
        received: 3,
        consumed: 2,
        failures: vec![
            MessageFailure {
                message_id: "m3".into(),
                label: "malformed_json",
                reason: "expected value at line 1".into(),
                poison: true,
            },
            MessageFailure {
                message_id: "m2".into(),
                label: "lease_store",
                reason: "throttled".into(),
                poison: false,
            },
        ],
        matched: 3,
        enqueued: 2,
        skipped_running: 1,
        lags_ms: vec![250, 1200],
        signal_types: vec!["rsi_oversold".into(), "golden_cross".into()],
        cache_size: 12,
        cache_refreshed: true,
        ..DispatchReport::default()
    }
}

fn record(status: ExecutionStatus, decision: &str) -> Result<ExecutionRecord, String> {
    serde_json::from_value(json!({
        "execution_id": "e1", "pipeline_id": "p1", "user_id": "u1", "ticker": "AAPL",
        "status": status.as_str(),
        "signal_context": {
            "signal_id": "s1", "signal_type": "rsi_oversold", "source": "rsi_generator",
            "timestamp": 1_700_000_000, "tickers": ["AAPL"], "confidence": 75.0, "signal": "BULLISH"
        },
        "created_at": 1_700_000_000, "started_at": 1_700_000_000, "completed_at": 1_700_000_001,
        "steps": [
            {"step": "market_snapshot", "status": "COMPLETED", "duration_ms": 3.2, "summary": ""},
            {"step": "bias", "status": "COMPLETED", "duration_ms": 0.4, "summary": ""},
            {"step": "paper_order", "status": "COMPLETED", "duration_ms": 6.5, "summary": ""}
        ],
        "error": null, "attempts": 1, "in_progress_until": null,
        "order_id": "o1", "decision": decision,
    }))
    .map_err(|e| e.to_string())
}

fn executor_reports() -> Result<Vec<MessageReport>, String> {
    let report = |outcome, ms, lag_ms| MessageReport {
        message_id: "m".into(),
        outcome,
        duration: Duration::from_millis(ms),
        lag_ms,
    };
    Ok(vec![
        report(
            Outcome::Finished(Box::new(record(
                ExecutionStatus::Completed,
                "order_placed",
            )?)),
            14,
            Some(90),
        ),
        report(
            Outcome::Finished(Box::new(record(ExecutionStatus::Failed, "step_failed")?)),
            9,
            Some(40),
        ),
        report(Outcome::Duplicate(ExecutionStatus::Completed), 1, Some(20)),
        report(
            Outcome::Retry {
                label: "execution_store",
                reason: "throttled".into(),
            },
            2,
            Some(30),
        ),
        report(
            Outcome::Rejected {
                reason: "bad body".into(),
            },
            0,
            None,
        ),
    ])
}
