//! Logs and metrics for the three functions.
//!
//! - [`Telemetry::init`] installs JSON logs on stdout (filtered by `RUST_LOG`, default `info`) and
//!   an OpenTelemetry meter provider. With `OTEL_EXPORTER_OTLP_ENDPOINT` (or
//!   `OTEL_EXPORTER_OTLP_METRICS_ENDPOINT`) set, metrics are pushed over OTLP HTTP/protobuf,
//!   cumulative; without it the instruments work and nothing is exported.
//! - [`Telemetry::flush`] pushes the metrics before Lambda freezes the process: off the async
//!   worker, bounded by `TELEMETRY_FLUSH_TIMEOUT_MS` (default 50 ms), never failing the invocation.
//! - [`Telemetry::start_invocation`] records the FaaS invocation metrics (invocations, errors,
//!   cold starts, duration).
//! - [`GeneratorMetrics`], [`DispatcherMetrics`] and [`ExecutorMetrics`] derive each function's
//!   metrics from the same report its handler logs, so logs and metrics never disagree.
//!
//! Instruments are named exactly as they appear in Prometheus (`signals_generated_total`,
//! `batch_processing_duration_seconds`), with unit `1` on counters, `s` on durations and none on
//! gauges or `batch_size`. The OTLP → Prometheus conversion (vmagent
//! `-opentelemetry.usePrometheusNaming`, the Collector, Prometheus' OTLP receiver) adds `_total`
//! and `_seconds` only when missing, so the names come out unchanged on every path, and grepping
//! a dashboard's metric name finds the code. (A gauge with unit `1` would gain `_ratio`: gauges
//! here have no unit or `s`.) Every label comes from a small fixed set; never an id.

pub mod buckets;
mod config;
mod dispatcher;
mod error;
mod executor;
mod faas;
mod generator;
mod labels;
mod telemetry;

#[cfg(any(test, feature = "testing"))]
pub mod testing;

pub use config::{
    DEFAULT_FLUSH_BUDGET, FLUSH_TIMEOUT_ENV, TelemetryConfig, lambda_log_stream_or_random_id,
};
pub use dispatcher::DispatcherMetrics;
pub use error::TelemetryError;
pub use executor::ExecutorMetrics;
pub use faas::{Invocation, InvocationGuard, TRIGGER_PUBSUB, TRIGGER_TIMER};
pub use generator::{DLQ_EXECUTIONS, DLQ_SIGNALS, GeneratorMetrics};
pub use telemetry::{Telemetry, init_logging};

/// Every metric this crate exports, by its Prometheus name (histograms without the
/// `_bucket`/`_sum`/`_count` suffixes). Dashboards and alert rules may only use these (plus the
/// `job`/`instance` labels added on the way in); a test keeps the list equal to the instruments.
pub const METRIC_NAMES: &[&str] = &[
    // every function
    "faas_invocations_total",
    "faas_errors_total",
    "faas_coldstarts_total",
    "faas_invoke_duration_seconds",
    "telemetry_flush_duration_seconds",
    "telemetry_flush_failures_total",
    // signal-generator
    "signals_generated_total",
    "signal_generation_duration_seconds",
    "generator_scans_total",
    "generator_scan_duration_seconds",
    "generator_scan_errors_total",
    "generator_candles_evaluated_total",
    "generator_cursor_conflicts_total",
    "queue_publish_duration_seconds",
    "queue_publish_success_total",
    "queue_publish_failure_total",
    "dlq_depth",
    // trigger-dispatcher
    "signals_consumed_total",
    "pipelines_matched_total",
    "pipelines_enqueued_total",
    "pipelines_skipped_running_total",
    "pipelines_deduplicated_total",
    "pipelines_already_enqueued_total",
    "batch_size",
    "batch_processing_duration_seconds",
    "pipeline_cache_size",
    "pipeline_cache_refreshes_total",
    "queue_consumer_lag_seconds",
    "queue_consumer_lag_max_seconds",
    "messages_rejected_total",
    "dispatch_failures_total",
    // pipeline-executor (and messages_rejected_total)
    "pipeline_executions_total",
    "pipeline_execution_duration_seconds",
    "pipeline_step_duration_seconds",
    "orders_created_total",
    "execution_duplicates_total",
    "execution_retries_total",
    "execution_queue_lag_seconds",
];
