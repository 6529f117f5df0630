//! CPU cost of the domain logic, without AWS: `cargo bench -p tradeflow-core --bench core`.
//! Results are summarised in BENCHMARKS.md.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/mod.rs"]
mod fixtures;

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use tradeflow_core::deadline::Deadline;
use tradeflow_core::detectors::{
    HigherSeries, all_detectors, higher_timeframes_of, required_lookback,
};
use tradeflow_core::dispatch::{Dispatcher, DispatcherConfig};
use tradeflow_core::fakes::{
    ManualClock, MemoryCursorStore, MemoryLeaseStore, MemoryPipelineStore, MemoryQueue,
};
use tradeflow_core::generate::{Generator, GeneratorConfig};
use tradeflow_core::market::{MarketData, SyntheticFeed};
use tradeflow_core::matching::PipelineIndex;
use tradeflow_core::vocab::{Bar, InboundMessage, Ticker, Timeframe};

fn matching(c: &mut Criterion) {
    let mut group = c.benchmark_group("matching");
    for n in [1_000usize, 10_000] {
        let index = PipelineIndex::new(fixtures::pipelines(n, 500, 1));
        let signals = fixtures::signals(1_000, 500, 2);
        group.throughput(Throughput::Elements(signals.len() as u64));
        group.bench_function(format!("1000 signals vs {n} pipelines"), |b| {
            b.iter(|| {
                let mut fanout = 0;
                for s in &signals {
                    fanout += index.matches(black_box(s)).len();
                }
                fanout
            })
        });
        group.throughput(Throughput::Elements(n as u64));
        group.bench_function(format!("build index of {n} pipelines"), |b| {
            b.iter_batched(
                || fixtures::pipelines(n, 500, 1),
                PipelineIndex::new,
                BatchSize::LargeInput,
            )
        });
    }
    group.finish();
}

fn dispatch(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut group = c.benchmark_group("dispatch");
    let bodies: Vec<InboundMessage> = fixtures::signals(20, 500, 3)
        .iter()
        .enumerate()
        .map(|(i, s)| InboundMessage {
            message_id: format!("m{i}"),
            body: s.to_json(),
            sent_at_ms: None,
            receive_count: None,
            trace: None,
        })
        .collect();
    group.throughput(Throughput::Elements(bodies.len() as u64));
    group.bench_function(
        "batch of 20 signals, 1000 pipelines, in-memory ports",
        |b| {
            b.iter_batched(
                || {
                    Dispatcher::new(
                        Arc::new(MemoryPipelineStore::with(fixtures::pipelines(
                            1_000, 500, 1,
                        ))),
                        Arc::new(MemoryLeaseStore::default()),
                        Arc::new(MemoryQueue::default()),
                        Arc::new(ManualClock::at(1_750_000_000)),
                        DispatcherConfig {
                            cache_ttl: Duration::from_secs(3600),
                            ..DispatcherConfig::default()
                        },
                    )
                },
                |d| rt.block_on(d.dispatch(black_box(&bodies), Deadline::none())),
                BatchSize::LargeInput,
            )
        },
    );
    group.finish();
}

fn detectors(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // Every family's full window before the evaluated candle.
    let n = required_lookback() + 1;
    let bars = rt
        .block_on(SyntheticFeed { seed: 1 }.closed_bars("AAPL", Timeframe::M5, 1_750_000_000, n))
        .unwrap();
    let detectors = all_detectors();
    // The higher series the families read for a 5-minute candle (1 h, 4 h, D), as the
    // generator fetches them.
    let fetched: Vec<(Timeframe, Vec<Bar>)> = higher_timeframes_of(&detectors, Timeframe::M5)
        .into_iter()
        .map(|(tf, count)| {
            let bars = rt
                .block_on(SyntheticFeed { seed: 1 }.closed_bars(
                    "AAPL",
                    tf,
                    1_750_000_000,
                    count + 1,
                ))
                .unwrap();
            (tf, bars)
        })
        .collect();
    let higher: Vec<HigherSeries<'_>> = fetched
        .iter()
        .map(|(timeframe, bars)| HigherSeries {
            timeframe: *timeframe,
            bars,
        })
        .collect();
    let mut group = c.benchmark_group("detectors");
    group.bench_function(
        format!("all {} families on one new candle", detectors.len()),
        |b| {
            b.iter(|| {
                detectors
                    .iter()
                    .filter_map(|d| {
                        d.detect_with(black_box(&bars), bars.len() - 1, Timeframe::M5, &higher)
                    })
                    .count()
            })
        },
    );
    for d in &detectors {
        group.bench_function(format!("family {} on one new candle", d.name()), |b| {
            b.iter(|| d.detect_with(black_box(&bars), bars.len() - 1, Timeframe::M5, &higher))
        });
    }
    group.bench_function(format!("synthetic feed, {n} bars"), |b| {
        b.iter(|| {
            rt.block_on(SyntheticFeed { seed: 1 }.closed_bars(
                "AAPL",
                Timeframe::M5,
                black_box(1_750_000_000),
                n,
            ))
        })
    });
    group.finish();
}

/// One scheduled scan of 500 tickers × 4 timeframes, each stream with one new candle: fetch
/// its lookback from the synthetic feed, run every family on the new candle, send the signals
/// to an in-memory queue and move the cursors (fresh cursors each time, backfill 1).
fn scan(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let tickers: Vec<Ticker> = (0..500)
        .map(|i| Ticker::parse(&fixtures::ticker(i)).unwrap())
        .collect();
    let mut group = c.benchmark_group("generator");
    group.sample_size(10);
    // The old platform's four (5, 15, 60, D), and all five the generator serves.
    let sets: [(&str, Vec<Timeframe>); 2] = [
        (
            "4 timeframes",
            vec![Timeframe::M5, Timeframe::M15, Timeframe::H1, Timeframe::D1],
        ),
        (
            "5 timeframes",
            vec![
                Timeframe::M5,
                Timeframe::M15,
                Timeframe::H1,
                Timeframe::H4,
                Timeframe::D1,
            ],
        ),
    ];
    for (name, timeframes) in sets {
        let streams = 500 * timeframes.len();
        group.bench_function(
            format!("scan of 500 tickers x {name}, one new candle each"),
            |b| {
                b.iter_batched(
                    || {
                        Generator::new(
                            Arc::new(SyntheticFeed { seed: 1 }),
                            Arc::new(MemoryCursorStore::default()),
                            Arc::new(MemoryQueue::default()),
                            all_detectors(),
                            GeneratorConfig {
                                tickers: tickers.clone(),
                                timeframes: timeframes.clone(),
                                backfill_bars: 1,
                                ..GeneratorConfig::default()
                            },
                        )
                    },
                    |g| {
                        let r = rt.block_on(g.scan(1_750_000_000, Deadline::none()));
                        assert_eq!(r.candles_evaluated, streams);
                        r.sent.len()
                    },
                    BatchSize::PerIteration,
                )
            },
        );
    }
    group.finish();
}

criterion_group!(benches, matching, dispatch, detectors, scan);
criterion_main!(benches);
