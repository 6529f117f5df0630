//! Matching and the dispatcher's in-memory path on the shared bench data (issue 9):
//! `cargo bench -p tradeflow-core --bench bench_data [-- N ...] [--warm-up-time S]
//! [--measurement-time S]`. BENCHMARKS.md holds the results.
//!
//! For 10 / 1,000 / 10,000 / 100,000 pipelines (or the N given), on one thread, the same 10,000
//! signals in batches of 20:
//! - the index build (median of up to 5 builds, wall time);
//! - matching alone: [`PipelineIndex::for_each_hit`] over every signal;
//! - matching and the de-duplication per (pipeline, ticker) of each batch, nothing built;
//! - the whole in-memory dispatch path: [`fan_out`] per batch (matching, de-duplication, the
//!   signal's half of the execution ids) and, for every fan-out, its execution id and request
//!   (what the dispatcher claims and sends);
//! - the same and each request's JSON body, which the dispatcher builds only once a lease is
//!   claimed;
//! - per execution, the cost of one execution id (from the cached halves, and as one SHA-256 the
//!   old way) and one request body;
//! - the old index and fan-out (`benches/support/legacy.rs`), same data; the old whole path and
//!   ours with bodies (the same work) are measured in interleaved passes, so both see the same
//!   heap and cache state;
//! - the order-free pair checksum of the data's README, which must equal the README's value
//!   (the run fails otherwise).
//!
//! A measurement repeats whole passes over the 10,000 signals until `--measurement-time`
//! (default 3 s) has elapsed, at least one pass, after `--warm-up-time` (default 1 s) of
//! untimed batches; the figure is the median pass (a sample repeats short passes to last at
//! least 200 ms). Times are the bench thread's CPU time
//! (`/proc/thread-self/schedstat`, wall time where that is missing), so a figure does not count
//! the time other processes of a shared machine hold the core. Data files are generated into
//! the target directory by `benches/data/gen_data.py` (python3) when missing. Run without
//! `--bench` (as `cargo test --benches` does) it only checks the checksum at 10 pipelines.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/bench_data.rs"]
mod bench_data;

#[path = "support/legacy.rs"]
mod legacy;

use std::hint::black_box;
use std::time::{Duration, Instant};

use bench_data::{BATCH, SIZES};
use tradeflow_core::dispatch::{FanOut, FanOuts, fan_out};
use tradeflow_core::ids::legacy_execution_id;
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

/// CPU time of this thread, from `/proc/thread-self/schedstat` (nanoseconds on a CPU).
fn thread_cpu() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns: u64 = stat.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_nanos(ns))
}

/// A start point in CPU time (wall time where the thread's CPU time cannot be read).
struct Stopwatch {
    wall: Instant,
    cpu: Option<Duration>,
}

impl Stopwatch {
    fn start() -> Self {
        Stopwatch {
            wall: Instant::now(),
            cpu: thread_cpu(),
        }
    }
    fn elapsed(&self) -> Duration {
        match (self.cpu, thread_cpu()) {
            (Some(start), Some(now)) => now.saturating_sub(start),
            _ => self.wall.elapsed(),
        }
    }
}

/// Runs `warm_up_step` for the warm-up, then `pass` (one pass over all the signals, returning a
/// count) repeatedly for the measurement: (median pass, count of one pass).
fn measure(
    options: &Options,
    mut warm_up_step: impl FnMut(usize),
    mut pass: impl FnMut() -> u64,
) -> (Duration, u64) {
    let start = Stopwatch::start();
    let mut step = 0;
    while start.elapsed() < options.warm_up {
        warm_up_step(step);
        step += 1;
    }
    // The thread's CPU time advances in scheduler ticks (a few ms): a sample repeats the pass
    // until it lasts at least MIN_SAMPLE of wall time.
    let t = Instant::now();
    let mut count = black_box(pass());
    let once = t.elapsed().max(Duration::from_micros(1));
    let reps = (MIN_SAMPLE.as_secs_f64() / once.as_secs_f64())
        .ceil()
        .max(1.0) as u32;
    let start = Stopwatch::start();
    let mut times = Vec::new();
    while times.is_empty() || start.elapsed() < options.measurement {
        let t = Stopwatch::start();
        for _ in 0..reps {
            count = black_box(pass());
        }
        times.push(t.elapsed() / reps);
    }
    times.sort();
    (times[times.len() / 2], count)
}

/// Like [`measure`] for two passes at once, ours and the old code's, interleaved (ours, old,
/// ours, old…) so both see the same heap and cache state: (median pass of each). The first,
/// untimed pass of each (which sets how many passes a sample takes) is the warm-up.
fn measure_pair(
    options: &Options,
    mut ours: impl FnMut(),
    mut old: impl FnMut(),
) -> (Duration, Duration) {
    let reps = |f: &mut dyn FnMut()| {
        let t = Instant::now();
        f();
        let once = t.elapsed().max(Duration::from_micros(1));
        (MIN_SAMPLE.as_secs_f64() / once.as_secs_f64())
            .ceil()
            .max(1.0) as u32
    };
    let (ours_reps, old_reps) = (reps(&mut ours), reps(&mut old));
    let start = Stopwatch::start();
    let (mut ours_times, mut old_times) = (Vec::new(), Vec::new());
    while ours_times.is_empty() || start.elapsed() < options.measurement {
        let t = Stopwatch::start();
        for _ in 0..ours_reps {
            ours();
        }
        ours_times.push(t.elapsed() / ours_reps);
        let t = Stopwatch::start();
        for _ in 0..old_reps {
            old();
        }
        old_times.push(t.elapsed() / old_reps);
    }
    ours_times.sort();
    old_times.sort();
    (
        ours_times[ours_times.len() / 2],
        old_times[old_times.len() / 2],
    )
}

/// The median time of a pass of `cost` over every fan-out of `sample`.
fn over_fan_outs(
    options: &Options,
    sample: &[FanOuts],
    cost: impl Fn(&FanOuts, &FanOut) -> u64,
) -> Duration {
    measure(
        options,
        |_| {},
        || {
            sample
                .iter()
                .flat_map(|o| o.fanouts.iter().map(move |f| (o, f)))
                .map(|(o, f)| cost(o, f))
                .sum()
        },
    )
    .0
}

/// Signals the whole path runs on at 100,000 pipelines (all 10,000 below).
const WHOLE_PATH_SIGNALS_AT_100K: usize = 2_000;

/// Shortest sample (see [`measure`]).
const MIN_SAMPLE: Duration = Duration::from_millis(200);

fn per_second(count: u64, time: Duration) -> f64 {
    count as f64 / time.as_secs_f64()
}

/// `1234567.8` as `1,234,568`.
fn thousands(x: f64) -> String {
    let digits = format!("{x:.0}");
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
    if d < Duration::from_millis(1) {
        format!("{} µs", d.as_micros())
    } else {
        format!("{:.1} ms", d.as_secs_f64() * 1e3)
    }
}

/// Hits of every signal against the index (matching alone).
fn match_all(index: &PipelineIndex, signals: &[Signal]) -> u64 {
    let mut hits = 0u64;
    for s in signals {
        index.for_each_hit(black_box(s), |h| {
            black_box(h);
            hits += 1;
        });
    }
    hits
}

/// Matching and the de-duplication per (pipeline, ticker) of each batch, without building
/// anything: the executions of the signals.
fn match_and_dedup(index: &PipelineIndex, signals: &[Signal]) -> u64 {
    let mut kept = 0u64;
    for batch in signals.chunks(BATCH) {
        let mut seen = index.pair_set();
        for s in batch {
            index.for_each_hit(black_box(s), |h| {
                kept += u64::from(seen.insert(h.pair));
            });
        }
    }
    kept
}

/// The dispatcher's in-memory work for one batch: fan-outs, and the execution id and request of
/// each (with its JSON body when `bodies`). Returns (matches before de-duplication, executions).
fn dispatch_batch(index: &PipelineIndex, batch: &[(usize, Signal)], bodies: bool) -> (u64, u64) {
    let out = fan_out(index, black_box(batch), NOW_MS);
    let mut bytes = 0;
    for f in &out.fanouts {
        let request = out.request(f).expect("a fan-out of this index");
        if bodies {
            bytes += request.to_json().len();
        } else {
            black_box(&request);
        }
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
        "10,000 signals in batches of {BATCH}; warm-up {:?}, measurement {:?} per figure (median pass, thread CPU time{})",
        options.warm_up,
        options.measurement,
        if thread_cpu().is_some() {
            ""
        } else {
            ": not readable, wall time used"
        }
    );
    println!();
    println!(
        "| pipelines | index build | matching alone: signals/s | matches/s | (pipeline, signal) pairs, checksum | matching + dedup: signals/s | whole path: signals/s | matches/s | executions/s | executions per signal | with bodies: signals/s (signals) |"
    );
    println!("|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|");
    let mut breakdown = Vec::new();
    let mut comparison = Vec::new();
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
            let built = black_box(PipelineIndex::new(copy));
            builds.push(t.elapsed());
            // Dropping the previous index is not part of a build.
            index = built;
        }
        builds.sort();
        let build = builds[builds.len() / 2];
        assert_eq!(index.len(), n, "every pipeline of the data is active");
        let copy = data.pipelines.clone();
        let t = Instant::now();
        let old = legacy::LegacyIndex::new(copy);
        let old_build = t.elapsed();

        // The README's checksum (not timed).
        let (pairs, checksum) = bench_data::pair_checksum(&index, &signals);
        let (want_pairs, want_checksum) = bench_data::expected(n).unwrap();
        assert_eq!(
            (pairs, format!("{checksum:016x}")),
            (want_pairs, format!("{want_checksum:016x}")),
            "N = {n}: (pairs, checksum) differ from the bench data's README"
        );

        let (match_time, hits) = measure(
            &options,
            |step| {
                match_all(&index, &signals[step % signals.len()..][..1]);
            },
            || match_all(&index, &signals),
        );

        let (dedup_time, kept) = measure(
            &options,
            |step| {
                let start = (step * BATCH) % signals.len();
                match_and_dedup(&index, &signals[start..start + BATCH]);
            },
            || match_and_dedup(&index, &signals),
        );

        // The whole path, every signal.
        let all_batches = bench_data::batches(&signals);
        let mut per_pass = (0, 0);
        let (whole_time, _) = measure(
            &options,
            |step| {
                let b = &all_batches[step % all_batches.len()];
                black_box(dispatch_batch(&index, b, false));
            },
            || {
                per_pass = all_batches.iter().fold((0, 0), |(m, e), b| {
                    let (bm, be) = dispatch_batch(&index, b, false);
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
        assert_eq!(executions, kept, "the dispatch path de-duplicated alike");

        // With JSON bodies, against the old code (which built every body): at 100,000 pipelines
        // a pass of 10,000 signals takes over a minute, so both run on the first
        // WHOLE_PATH_SIGNALS_AT_100K.
        let body_signals = if n >= 100_000 {
            WHOLE_PATH_SIGNALS_AT_100K
        } else {
            signals.len()
        };
        let batches = bench_data::batches(&signals[..body_signals]);
        let mut body_executions = 0;
        let mut old_executions = 0;
        let (bodies_time, old_whole_time) = measure_pair(
            &options,
            || {
                body_executions = batches
                    .iter()
                    .map(|b| dispatch_batch(&index, b, true).1)
                    .sum();
            },
            || {
                old_executions = batches
                    .iter()
                    .map(|b| black_box(legacy::dispatch_batch(&old, b, NOW_MS)).1)
                    .sum();
            },
        );
        // Where an execution's time goes, on the executions of the first 1,000 signals.
        let sample: Vec<_> = batches
            .iter()
            .take(1_000 / BATCH)
            .map(|b| fan_out(&index, b, NOW_MS))
            .collect();
        let sample_len: u64 = sample.iter().map(|o| o.fanouts.len() as u64).sum();
        let id_time = over_fan_outs(&options, &sample, |o, f| {
            black_box(o.execution_id(f)).map_or(0, |id| id.as_str().len()) as u64
        });
        let old_id_time = over_fan_outs(&options, &sample, |o, f| {
            o.request(f).map_or(0, |r| {
                legacy_execution_id(
                    &r.pipeline.pipeline_id,
                    r.entry.ticker.as_str(),
                    &r.signal.signal_id,
                )
                .len() as u64
            })
        });
        let body_time = over_fan_outs(&options, &sample, |o, f| {
            o.request(f).map_or(0, |r| r.to_json().len() as u64)
        });
        let ns_per = |d: Duration, count: u64| d.as_secs_f64() * 1e9 / count.max(1) as f64;
        breakdown.push(format!(
            "| {} | {:.0} ns | {:.0} ns | {:.0} ns | {:.0} ns | {:.0} ns |",
            thousands(n as f64),
            ns_per(whole_time, executions),
            ns_per(bodies_time, body_executions),
            ns_per(id_time, sample_len),
            ns_per(old_id_time, sample_len),
            ns_per(body_time, sample_len),
        ));
        drop(sample);

        // The old path, same data, same run.
        let (old_match_time, old_hits) = measure(
            &options,
            |_| {},
            || signals.iter().map(|s| old.matches(s).len() as u64).sum(),
        );
        assert_eq!(old_hits, hits, "the old index matched alike");
        let old_dedup_signals = &signals[..body_signals];
        let (old_dedup_time, _) = measure(
            &options,
            |_| {},
            || {
                old_dedup_signals
                    .chunks(BATCH)
                    .map(|b| legacy::match_and_dedup(&old, b))
                    .sum()
            },
        );
        assert_eq!(
            old_executions, body_executions,
            "the old path fanned out alike"
        );
        drop(old);
        let signal_count = signals.len() as u64;
        let whole_rate = per_second(signal_count, whole_time);
        let bodies_rate = per_second(body_signals as u64, bodies_time);
        let old_whole_rate = per_second(body_signals as u64, old_whole_time);
        comparison.push(format!(
            "| {} | {} | {} | {} | {} ({}) | {} | {:.1}× | {} |",
            thousands(n as f64),
            millis(old_build),
            thousands(per_second(signals.len() as u64, old_match_time)),
            thousands(per_second(old_dedup_signals.len() as u64, old_dedup_time)),
            thousands(old_whole_rate),
            thousands(body_signals as f64),
            thousands(bodies_rate),
            bodies_rate / old_whole_rate,
            thousands(whole_rate),
        ));
        println!(
            "| {} | {} | {} | {} | {}, {checksum:016x} (= README) | {} | {} | {} | {} | {:.1} | {} ({}) |",
            thousands(n as f64),
            millis(build),
            thousands(per_second(signal_count, match_time)),
            thousands(per_second(hits, match_time)),
            thousands(pairs as f64),
            thousands(per_second(signal_count, dedup_time)),
            thousands(whole_rate),
            thousands(per_second(whole_matches, whole_time)),
            thousands(per_second(executions, whole_time)),
            executions as f64 / signal_count as f64,
            thousands(bodies_rate),
            thousands(body_signals as f64),
        );
    }
    println!();
    println!(
        "Per execution (a path's time over its executions), and what one execution id (from the cached halves; one SHA-256 over all three parts, the old way) and one request body (JSON) cost measured alone, on the executions of the first 1,000 signals:"
    );
    println!();
    println!(
        "| pipelines | whole path | with bodies | execution id | execution id, old way | request body |"
    );
    println!("|---:|---:|---:|---:|---:|---:|");
    for row in breakdown {
        println!("{row}");
    }
    println!();
    println!(
        "The old index and fan-out (benches/support/legacy.rs: main before issue 9, on today's Ticker, ids and bodies), same run, signals/s:"
    );
    println!();
    println!(
        "| pipelines | old index build | old matching alone | old matching + dedup | old whole path, with bodies (signals) | now, with bodies | speed-up | now, whole path |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|");
    for row in comparison {
        println!("{row}");
    }
}
