//! The binary starts with its Lambda environment (dummy tables and queues, endpoints on a
//! closed local port) and asks the local Runtime API for its first event: init (configuration,
//! telemetry, SDK clients) succeeds without touching the network. One run of whatever build the
//! test uses; the timed runs are `cargo xtask bench-init` (BENCHMARKS.md).

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::time::Duration;

#[test]
fn the_binary_initialises_and_asks_for_its_first_event() {
    let api = init_probe::RuntimeApi::start().unwrap();
    let sample = api
        .measure(
            Path::new(env!("CARGO_BIN_EXE_pipeline-executor")),
            "pipeline-executor",
            Duration::from_secs(30),
        )
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(sample.peak_rss_kib > 0);
}
