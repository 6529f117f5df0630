//! The Runtime API measures a real `lambda_runtime` process: the floor binary reaches `next`.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::time::Duration;

use init_probe::{FLOOR, RuntimeApi};

#[test]
fn the_floor_binary_reaches_its_first_next() {
    let api = RuntimeApi::start().unwrap();
    let sample = api
        .measure(
            Path::new(env!("CARGO_BIN_EXE_init-floor")),
            FLOOR,
            Duration::from_secs(30),
        )
        .unwrap();
    assert!(sample.init > Duration::ZERO);
    assert!(sample.peak_rss_kib > 0);
    // The same listener serves the next process.
    api.measure(
        Path::new(env!("CARGO_BIN_EXE_init-floor")),
        FLOOR,
        Duration::from_secs(30),
    )
    .unwrap();
}
