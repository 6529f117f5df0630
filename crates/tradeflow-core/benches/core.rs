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
use tradeflow_core::detectors::all_detectors;
use tradeflow_core::dispatch::{Dispatcher, DispatcherConfig};
use tradeflow_core::fakes::{ManualClock, MemoryLeaseStore, MemoryPipelineStore, MemoryQueue};
use tradeflow_core::market::{MarketData, SyntheticFeed};
use tradeflow_core::matching::PipelineIndex;
use tradeflow_core::vocab::{InboundMessage, Timeframe};

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
    let bars = rt
        .block_on(SyntheticFeed { seed: 1 }.closed_bars("AAPL", Timeframe::M5, 1_750_000_000, 751))
        .unwrap();
    let detectors = all_detectors();
    let mut group = c.benchmark_group("detectors");
    group.bench_function("all 6 families on one new candle (250-bar window)", |b| {
        b.iter(|| {
            detectors
                .iter()
                .filter_map(|d| d.detect(black_box(&bars), bars.len() - 1))
                .count()
        })
    });
    group.bench_function("synthetic feed, 751 bars", |b| {
        b.iter(|| {
            rt.block_on(SyntheticFeed { seed: 1 }.closed_bars(
                "AAPL",
                Timeframe::M5,
                black_box(1_750_000_000),
                751,
            ))
        })
    });
    group.finish();
}

criterion_group!(benches, matching, dispatch, detectors);
criterion_main!(benches);
