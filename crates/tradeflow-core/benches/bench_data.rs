//! Matching and the dispatcher's in-memory path on the shared bench data (issue 9):
//! `cargo bench -p tradeflow-core --bench bench_data [-- N ...] [--warm-up-time S]
//! [--measurement-time S]`. BENCHMARKS.md holds the results.
//!
//! For 10 / 1,000 / 10,000 / 100,000 pipelines (or the N given), on one thread, the same 10,000
//! signals in batches of 20:
//! - the index build (median of a few builds);
//! - matching alone: [`PipelineIndex::for_each_hit`] over every signal;
//! - the whole in-memory dispatch path: [`fan_out`] per batch (matching, de-duplication per
//!   (pipeline, ticker), execution ids, leases and requests) and each request's JSON body;
//! - the order-free pair checksum of the data's README, which must equal the README's value
//!   (the run fails otherwise).
//!
//! A measurement repeats whole passes over the 10,000 signals until `--measurement-time`
//! (default 3 s) has elapsed, at least one pass, after `--warm-up-time` (default 1 s) of
//! untimed batches; the figure is the median pass. Data files are generated into the target
//! directory by `benches/data/gen_data.py` (python3) when missing. Run without `--bench` (as
//! `cargo test --benches` does) it only checks the checksum at 10 pipelines.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/bench_data.rs"]
mod bench_data;

use std::hint::black_box;
use std::time::{Duration, Instant};

use bench_data::{BATCH, SIZES};
use tradeflow_core::dispatch::fan_out;
use tradeflow_core::matching::PipelineIndex;
use tradeflow_core::signal::Signal;

/// The clock of the dispatch path (only lease expiries and `enqueued_at_ms` depend on it).
const NOW_MS: i64 = 1_750_000_000_000;

struct Options {
    sizes: Vec<usize>,
    warm_up: Duration,
    measurement: Duration,
    bench: bool,
}

fn options() -> Options {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let seconds = |flag: &str, default: f64| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse::<f64>().ok())
            .map_or(Duration::from_secs_f64(default), Duration::from_secs_f64)
    };
    let mut sizes: Vec<usize> = args
        .iter()
        .filter_map(|a| a.replace(['_', ','], "").parse().ok())
        .filter(|n| SIZES.contains(n))
        .collect();
    if sizes.is_empty() {
        sizes = SIZES.to_vec();
    }
    Options {
        sizes,
        warm_up: seconds("--warm-up-time", 1.0),
        measurement: seconds("--measurement-time", 3.0),
        bench: args.iter().any(|a| a == "--bench"),
    }
}

/// Runs `pass` (one pass over all the signals, returning a count) for the warm-up, then
/// repeatedly for the measurement: (median pass, count of one pass, passes).
fn measure(
    options: &Options,
    mut warm_up_step: impl FnMut(usize),
    mut pass: impl FnMut() -> u64,
) -> (Duration, u64, usize) {
    let start = Instant::now();
    let mut step = 0;
    while start.elapsed() < options.warm_up {
        warm_up_step(step);
        step += 1;
    }
    let start = Instant::now();
    let mut times = Vec::new();
    let mut count = 0;
    while times.is_empty() || start.elapsed() < options.measurement {
        let t = Instant::now();
        count = black_box(pass());
        times.push(t.elapsed());
    }
    times.sort();
    (times[times.len() / 2], count, times.len())
}

fn per_second(count: u64, time: Duration) -> f64 {
    count as f64 / time.as_secs_f64()
}

/// `1234567.8` as `1,234,568`.
fn thousands(x: f64) -> String {
    let digits = format!("{:.0}", x);
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn millis(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

/// Hits of every signal against the index (matching alone).
fn match_all(index: &PipelineIndex, signals: &[Signal]) -> u64 {
    let mut hits = 0u64;
    for batch in signals.chunks(BATCH) {
        for s in batch {
            index.for_each_hit(black_box(s), |h| {
                black_box(h);
                hits += 1;
            });
        }
    }
    hits
}

/// The dispatcher's in-memory work for one batch: fan-outs and their request bodies. Returns
/// (matches before de-duplication, executions).
fn dispatch_batch(index: &PipelineIndex, batch: &[(usize, Signal)]) -> (u64, u64) {
    let out = fan_out(index, black_box(batch), NOW_MS);
    let mut bytes = 0;
    for f in &out.fanouts {
        bytes += f.request.to_json().len();
    }
    black_box(bytes);
    let executions = out.fanouts.len() as u64;
    (executions + out.deduplicated as u64, executions)
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let mut options = options();
    if !options.bench {
        // `cargo test --benches`: a quick correctness check only.
        if !bench_data::python3_available() {
            eprintln!("bench_data: python3 not found, skipped");
            return;
        }
        options.sizes = vec![10];
        options.warm_up = Duration::ZERO;
        options.measurement = Duration::ZERO;
    }
    println!(
        "{} signals in batches of {BATCH}; warm-up {:?}, measurement {:?} per figure (median pass)",
        10_000, options.warm_up, options.measurement
    );
    println!();
    println!(
        "| pipelines | index build | matching alone: signals/s | matches/s | (pipeline, signal) pairs | checksum | whole path: signals/s | matches/s | executions/s | executions per pass |"
    );
    println!("|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|");
    for &n in &options.sizes {
        let data = bench_data::load(n).unwrap_or_else(|e| panic!("bench data {n}: {e}"));
        let signals = data.signals;

        // The index build, median of up to 5 builds within about the measurement time.
        let mut builds = Vec::new();
        let started = Instant::now();
        let mut index = PipelineIndex::new(data.pipelines.clone());
        while builds.len() < 5 && (builds.is_empty() || started.elapsed() < options.measurement) {
            let copy = data.pipelines.clone();
            let t = Instant::now();
            index = black_box(PipelineIndex::new(copy));
            builds.push(t.elapsed());
        }
        builds.sort();
        let build = builds[builds.len() / 2];
        assert_eq!(index.len(), n, "every pipeline of the data is active");

        // The README's checksum (not timed).
        let (pairs, checksum) = bench_data::pair_checksum(&index, &signals);
        let (want_pairs, want_checksum) = bench_data::expected(n).unwrap();
        assert_eq!(
            (pairs, format!("{checksum:016x}")),
            (want_pairs, format!("{want_checksum:016x}")),
            "N = {n}: (pairs, checksum) differ from the bench data's README"
        );

        let (match_time, hits, _) = measure(
            &options,
            |step| {
                let s = &signals[step % signals.len()];
                index.for_each_hit(s, |h| {
                    black_box(h);
                });
            },
            || match_all(&index, &signals),
        );

        let batches = bench_data::batches(&signals);
        let mut per_pass = (0, 0);
        let (whole_time, _, _) = measure(
            &options,
            |step| {
                dispatch_batch(&index, &batches[step % batches.len()]);
            },
            || {
                per_pass = batches.iter().fold((0, 0), |(m, e), b| {
                    let (bm, be) = dispatch_batch(&index, b);
                    (m + bm, e + be)
                });
                per_pass.1
            },
        );
        let (whole_matches, executions) = per_pass;
        assert_eq!(
            whole_matches, hits,
            "the dispatch path matched as matching alone"
        );
        let signal_count = signals.len() as u64;
        println!(
            "| {} | {} | {} | {} | {} | {checksum:016x} (as README) | {} | {} | {} | {} |",
            thousands(n as f64),
            millis(build),
            thousands(per_second(signal_count, match_time)),
            thousands(per_second(hits, match_time)),
            thousands(pairs as f64),
            thousands(per_second(signal_count, whole_time)),
            thousands(per_second(whole_matches, whole_time)),
            thousands(per_second(executions, whole_time)),
            thousands(executions as f64),
        );
    }
}
