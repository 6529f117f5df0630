//! The per-invocation metrics flush, timed against a collector on localhost that answers at once
//! (what the Lambda collector layer's decouple processor does), on a generator-sized set of
//! series. Issue 10's target: ≤ 2 ms at p95. BENCHMARKS.md "Per-invocation metrics flush".
//!
//! ```text
//! cargo run --release -p tradeflow-telemetry --example flush_bench -- \
//!   [--invocations 500] [--families 28] [--types-per-family 3] [--current-thread] [--endpoint URL]
//! ```
//!
//! Without `--endpoint` the collector is a thread of this process on 127.0.0.1 that reads each
//! request and answers 200 with an empty body, over kept-alive connections; with it, the flushes go
//! to that OTLP/HTTP metrics URL instead (e.g. vmagent's, to compare). Prints one JSON line: the
//! flush times (p50, p95, p99, max in ms), the request size and the number of data points.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;
use tradeflow_core::generate::ScanReport;
use tradeflow_core::signal::Signal;
use tradeflow_telemetry::{GeneratorMetrics, TRIGGER_TIMER, Telemetry, TelemetryConfig};

struct Args {
    invocations: usize,
    families: usize,
    types_per_family: usize,
    current_thread: bool,
    endpoint: Option<String>,
}

fn parse_args() -> Result<Args, String> {
    let mut parsed = Args {
        invocations: 500,
        families: 28,
        types_per_family: 3,
        current_thread: false,
        endpoint: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut number = |name: &str| -> Result<usize, String> {
            args.next()
                .and_then(|n| n.parse().ok())
                .ok_or(format!("{name} needs a number"))
        };
        match arg.as_str() {
            "--invocations" => parsed.invocations = number("--invocations")?,
            "--families" => parsed.families = number("--families")?,
            "--types-per-family" => parsed.types_per_family = number("--types-per-family")?,
            "--current-thread" => parsed.current_thread = true,
            "--endpoint" => parsed.endpoint = Some(args.next().ok_or("--endpoint needs a URL")?),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(parsed)
}

fn main() -> Result<(), String> {
    let args = parse_args()?;
    let runtime = if args.current_thread {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
    }
    .map_err(|e| e.to_string())?;
    runtime.block_on(run(args))
}

/// Request sizes seen by the built-in collector.
#[derive(Default)]
struct Seen {
    requests: AtomicUsize,
    last_bytes: AtomicUsize,
}

/// A collector that answers every request at once (HTTP/1.1, kept-alive connections).
fn start_collector(seen: Arc<Seen>) -> Result<String, String> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let seen = Arc::clone(&seen);
            std::thread::spawn(move || serve(stream, &seen));
        }
    });
    Ok(format!("http://{addr}/v1/metrics"))
}

fn serve(stream: TcpStream, seen: &Seen) {
    let _ = stream.set_nodelay(true);
    let Ok(clone) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(clone);
    let mut writer = stream;
    loop {
        let mut line = String::new();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let mut length = 0usize;
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header).unwrap_or(0) == 0 {
                return;
            }
            if header.trim().is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        seen.requests.fetch_add(1, Ordering::Relaxed);
        seen.last_bytes.store(length, Ordering::Relaxed);
        if writer
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\n\r\n")
            .is_err()
        {
            return;
        }
    }
}

async fn run(args: Args) -> Result<(), String> {
    let seen = Arc::new(Seen::default());
    let endpoint = match &args.endpoint {
        Some(url) => url.clone(),
        None => start_collector(Arc::clone(&seen))?,
    };
    let telemetry =
        Telemetry::from_config(TelemetryConfig::from_lookup("flush-bench", |k| match k {
            "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT" => Some(endpoint.clone()),
            _ => None,
        }));
    if !telemetry.is_exporting() {
        return Err(format!("no exporter for {endpoint}"));
    }
    let generator = GeneratorMetrics::new(&telemetry.meter());
    let report = scan_report(args.families, args.types_per_family)?;
    let mut flush_us: Vec<u64> = Vec::with_capacity(args.invocations);
    for _ in 0..args.invocations {
        let invocation = telemetry.start_invocation(TRIGGER_TIMER);
        generator.record_scan(&report, Duration::from_millis(35));
        invocation.finish(true);
        let started = Instant::now();
        telemetry.flush().await;
        flush_us.push(started.elapsed().as_micros() as u64);
    }
    telemetry.shutdown().await;
    let mut sorted = flush_us.clone();
    sorted.sort_unstable();
    let pct = |p: f64| {
        let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
        sorted[i] as f64 / 1000.0
    };
    println!(
        "{}",
        json!({
            "flush_bench": "done",
            "endpoint": if args.endpoint.is_some() { endpoint.as_str() } else { "built-in (answers at once)" },
            "runtime": if args.current_thread { "current_thread" } else { "multi_thread" },
            "invocations": args.invocations,
            "signal_series": args.families * args.types_per_family,
            "requests_seen": seen.requests.load(Ordering::Relaxed),
            "request_bytes": seen.last_bytes.load(Ordering::Relaxed),
            "flush_ms": {"p50": pct(0.50), "p95": pct(0.95), "p99": pct(0.99), "max": pct(1.0)},
        })
    );
    Ok(())
}

/// One scan that sent a signal of each of `types_per_family` types from each of `families`
/// generator families (the generator's widest label sets), with a detector time per family.
fn scan_report(families: usize, types_per_family: usize) -> Result<ScanReport, String> {
    let mut report = ScanReport {
        streams: 40,
        candles_evaluated: 40,
        publish_calls: 4,
        publish_time: Duration::from_millis(4),
        ..ScanReport::default()
    };
    for f in 0..families {
        let source: &'static str = Box::leak(format!("family_{f:02}_generator").into_boxed_str());
        report
            .detector_time
            .insert(source, Duration::from_micros(300 + f as u64));
        for t in 0..types_per_family {
            let signal = Signal::parse(
                &json!({
                    "signal_id": format!("s{f}-{t}"), "signal_type": format!("family_{f:02}_type_{t}"),
                    "source": source, "timestamp": 1_700_000_000,
                    "tickers": [{"ticker": "AAPL", "signal": "BULLISH", "confidence": 75}],
                    "metadata": {"timeframe": "5"}
                })
                .to_string(),
            )
            .map_err(|e| e.to_string())?;
            report.sent.push(signal);
        }
    }
    Ok(report)
}
