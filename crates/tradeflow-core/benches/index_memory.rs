//! Heap held by the dispatcher's pipeline index (the old system claimed "~10 MB for 1000
//! pipelines"): `cargo bench -p tradeflow-core --bench index_memory`. Counts the bytes live after
//! building the index with a counting global allocator and prints two tables: the fixtures of
//! `benches/support`, and the shared bench data (`benches/data`, generated with python3 when
//! missing) with the build time.

#![allow(clippy::unwrap_used, clippy::expect_used, unsafe_code)]

#[path = "support/mod.rs"]
mod fixtures;

#[path = "support/bench_data.rs"]
mod bench_data;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::Instant;

use tradeflow_core::matching::PipelineIndex;

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    println!("| pipelines | index heap (MiB) | bytes per pipeline |");
    println!("|---:|---:|---:|");
    for n in [1_000usize, 10_000, 100_000] {
        let pipelines = fixtures::pipelines(n, 500, 1);
        let index = PipelineIndex::new(pipelines);
        // Everything the index owns (the pipelines moved into it and its maps) is what dropping
        // it frees.
        let with_index = LIVE.load(Ordering::Relaxed);
        drop(index);
        let held = (with_index - LIVE.load(Ordering::Relaxed)) as f64;
        println!(
            "| {n} | {:.2} | {:.0} |",
            held / 1_048_576.0,
            held / n as f64
        );
    }
    if !std::env::args().any(|a| a == "--bench") {
        // `cargo test --benches`: the fixtures only.
        return;
    }
    if !bench_data::python3_available() {
        println!("\nbench data: python3 not found, skipped");
        return;
    }
    println!("\nThe shared bench data (`benches/data`):\n");
    println!(
        "| pipelines | (pipeline, ticker) pairs | index heap (MiB) | bytes per pipeline | build (one run) |"
    );
    println!("|---:|---:|---:|---:|---:|");
    for n in [10_000usize, 100_000] {
        let pipelines = bench_data::load(n)
            .unwrap_or_else(|e| panic!("bench data {n}: {e}"))
            .pipelines;
        let started = Instant::now();
        let index = PipelineIndex::new(pipelines);
        let build = started.elapsed();
        let pairs = index.pair_count();
        let with_index = LIVE.load(Ordering::Relaxed);
        drop(index);
        // The pipelines were moved in: what dropping the index frees is all it holds.
        let held = (with_index - LIVE.load(Ordering::Relaxed)) as f64;
        println!(
            "| {n} | {pairs} | {:.2} | {:.0} | {:.1} ms |",
            held / 1_048_576.0,
            held / n as f64,
            build.as_secs_f64() * 1e3
        );
    }
}
