//! Logs, metrics and traces for the three functions.
//!
//! - [`Telemetry::init`] installs JSON logs on stdout (filtered by `RUST_LOG`, default `info`) and
//!   an OpenTelemetry meter provider. With `OTEL_EXPORTER_OTLP_ENDPOINT` (or
//!   `OTEL_EXPORTER_OTLP_METRICS_ENDPOINT`) set, metrics are pushed over OTLP HTTP/protobuf,
//!   cumulative; without it the instruments work and nothing is exported.
//! - [`Telemetry::flush`] pushes the metrics before Lambda freezes the process: collected from a
//!   manual reader and sent in one request on the function's runtime ([`http`]), bounded by
//!   `TELEMETRY_FLUSH_TIMEOUT_MS` (default 50 ms), never failing the invocation.
//! - [`Traces`] (module [`traces`]): with `OTEL_TRACES_EXPORTER=otlp` (or
//!   `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`), spans over OTLP to `/v1/traces`, same resource,
//!   flushed with the metrics: one trace per signal across the generator, the dispatcher and the
//!   executor, the W3C trace context travelling in SQS message attributes. Off otherwise.
//! - [`Telemetry::start_invocation`] records the FaaS invocation metrics (invocations, errors,
//!   cold starts, duration).
//! - [`GeneratorMetrics`], [`DispatcherMetrics`] and [`ExecutorMetrics`] derive each function's
//!   metrics from the same report its handler logs, so logs and metrics never disagree.
//! - [`METRICS`] (module [`catalogue`]) lists every instrument as data (name, kind, unit, labels,
//!   buckets); the metric sets build their instruments from it and `cargo xtask
//!   check-observability` checks the dashboards and alert rules against it.
//!
//! Instruments are named exactly as they appear in Prometheus (`signals_generated_total`,
//! `batch_processing_duration_seconds`), with unit `1` on counters, `s` on durations and none on
//! gauges or `batch_size`. The OTLP → Prometheus conversion (vmagent
//! `-opentelemetry.usePrometheusNaming`, the Collector, Prometheus' OTLP receiver) adds `_total`
//! and `_seconds` only when missing, so the names come out unchanged on every path, and grepping
//! a dashboard's metric name finds the code. (A gauge with unit `1` would gain `_ratio`: gauges
//! here have no unit or `s`.) Every label comes from a small fixed set; never an id.

pub mod buckets;
pub mod catalogue;
mod config;
mod dispatcher;
mod error;
mod executor;
mod faas;
mod generator;
pub mod http;
mod labels;
mod telemetry;
pub mod traces;

#[cfg(any(test, feature = "testing"))]
pub mod testing;

pub use catalogue::{METRIC_NAMES, METRICS, MetricDef, MetricKind};
pub use config::{
    DEFAULT_FLUSH_BUDGET, DEFAULT_STAGE, FLUSH_TIMEOUT_ENV, STAGE_ENV, TelemetryConfig,
    TraceSampling, lambda_log_stream_or_random_id,
};
pub use dispatcher::DispatcherMetrics;
pub use error::TelemetryError;
pub use executor::ExecutorMetrics;
pub use faas::{Invocation, InvocationGuard, TRIGGER_PUBSUB, TRIGGER_TIMER};
pub use generator::{DLQ_EXECUTIONS, DLQ_SIGNALS, GeneratorMetrics};
pub use telemetry::{Telemetry, init_logging};
pub use traces::{MessageSpan, Traces};
