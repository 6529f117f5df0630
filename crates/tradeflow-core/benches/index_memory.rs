//! Heap held by the dispatcher's pipeline index (the old system claimed "~10 MB for 1000
//! pipelines"): `cargo bench -p tradeflow-core --bench index_memory`. Counts the bytes live after
//! building the index with a counting global allocator and prints a table.

#![allow(clippy::unwrap_used, clippy::expect_used, unsafe_code)]

#[path = "support/mod.rs"]
mod fixtures;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

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
}
