//! Explicit histogram boundaries. The SDK's defaults (0, 5, 10 … 10000) say nothing about
//! seconds; these resolve milliseconds.

/// Handler, step, detector and publish durations, seconds: 0.5 ms … 60 s.
pub const DURATION_SECONDS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0,
];

/// Whole pipeline executions, seconds: 0.5 ms … 10 min (the longest allowed run).
pub const EXECUTION_SECONDS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0, 120.0, 300.0, 600.0,
];

/// Queue lag (age of a message when consumed), seconds: 1 ms … 15 min.
pub const LAG_SECONDS: &[f64] = &[
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
    900.0,
];

/// Messages per batch.
pub const BATCH_SIZE: &[f64] = &[1.0, 2.0, 3.0, 5.0, 10.0, 20.0, 50.0];

/// Telemetry flushes, seconds: 0.1 ms … 1 s.
pub const FLUSH_SECONDS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
];
