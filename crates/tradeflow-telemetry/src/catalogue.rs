//! The metric catalogue: every instrument the functions create, as data. The metric sets build
//! their instruments from these definitions (name, unit, description, buckets), and the project
//! checks (`cargo xtask check-observability`) read the same list, so dashboards and alert rules
//! are checked against exactly what the code exports.

use opentelemetry::metrics::{Counter, Gauge, Histogram, Meter};

use crate::buckets;

/// The OpenTelemetry instrument kind, which decides the Prometheus series names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetricKind {
    /// A monotonic counter: one series, its name already ends in `_total`.
    Counter,
    /// A gauge: one series.
    Gauge,
    /// A histogram: `<name>_bucket`, `<name>_sum` and `<name>_count`.
    Histogram,
}

/// One metric: its Prometheus name (as created, unchanged by the OTLP → Prometheus naming, see
/// the crate docs), kind, unit, description, label keys and, for histograms, the boundaries.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MetricDef {
    pub name: &'static str,
    pub kind: MetricKind,
    /// `1` on counters, `s` on durations, empty on gauges and `batch_size`.
    pub unit: &'static str,
    pub description: &'static str,
    /// Every label key the code records on it (before `job`/`instance` are added on the way in).
    pub labels: &'static [&'static str],
    /// Histogram bucket boundaries; empty for other kinds.
    pub buckets: &'static [f64],
}

/// Suffixes of a histogram's Prometheus series.
pub const HISTOGRAM_SUFFIXES: [&str; 3] = ["_bucket", "_sum", "_count"];

impl MetricDef {
    /// The series names Prometheus stores for this metric.
    pub fn exported_names(&self) -> Vec<String> {
        match self.kind {
            MetricKind::Histogram => HISTOGRAM_SUFFIXES
                .iter()
                .map(|s| format!("{}{s}", self.name))
                .collect(),
            MetricKind::Counter | MetricKind::Gauge => vec![self.name.to_owned()],
        }
    }

    pub(crate) fn u64_counter(&self, meter: &Meter) -> Counter<u64> {
        debug_assert_eq!(self.kind, MetricKind::Counter, "{}", self.name);
        meter
            .u64_counter(self.name)
            .with_unit(self.unit)
            .with_description(self.description)
            .build()
    }

    pub(crate) fn f64_histogram(&self, meter: &Meter) -> Histogram<f64> {
        debug_assert_eq!(self.kind, MetricKind::Histogram, "{}", self.name);
        meter
            .f64_histogram(self.name)
            .with_unit(self.unit)
            .with_description(self.description)
            .with_boundaries(self.buckets.to_vec())
            .build()
    }

    pub(crate) fn u64_histogram(&self, meter: &Meter) -> Histogram<u64> {
        debug_assert_eq!(self.kind, MetricKind::Histogram, "{}", self.name);
        meter
            .u64_histogram(self.name)
            .with_unit(self.unit)
            .with_description(self.description)
            .with_boundaries(self.buckets.to_vec())
            .build()
    }

    pub(crate) fn u64_gauge(&self, meter: &Meter) -> Gauge<u64> {
        debug_assert_eq!(self.kind, MetricKind::Gauge, "{}", self.name);
        meter
            .u64_gauge(self.name)
            .with_unit(self.unit)
            .with_description(self.description)
            .build()
    }

    pub(crate) fn f64_gauge(&self, meter: &Meter) -> Gauge<f64> {
        debug_assert_eq!(self.kind, MetricKind::Gauge, "{}", self.name);
        meter
            .f64_gauge(self.name)
            .with_unit(self.unit)
            .with_description(self.description)
            .build()
    }
}

const fn counter(
    name: &'static str,
    description: &'static str,
    labels: &'static [&'static str],
) -> MetricDef {
    MetricDef {
        name,
        kind: MetricKind::Counter,
        unit: "1",
        description,
        labels,
        buckets: &[],
    }
}

const fn seconds(
    name: &'static str,
    description: &'static str,
    labels: &'static [&'static str],
    buckets: &'static [f64],
) -> MetricDef {
    MetricDef {
        name,
        kind: MetricKind::Histogram,
        unit: "s",
        description,
        labels,
        buckets,
    }
}

const fn gauge(
    name: &'static str,
    unit: &'static str,
    description: &'static str,
    labels: &'static [&'static str],
) -> MetricDef {
    MetricDef {
        name,
        kind: MetricKind::Gauge,
        unit,
        description,
        labels,
        buckets: &[],
    }
}

// ----------------------------------------------------------------------------- every function

pub const FAAS_INVOCATIONS: MetricDef = counter(
    "faas_invocations_total",
    "Invocations of the function.",
    &["trigger"],
);
pub const FAAS_ERRORS: MetricDef = counter(
    "faas_errors_total",
    "Invocations that ended in an error.",
    &["trigger"],
);
pub const FAAS_COLDSTARTS: MetricDef = counter(
    "faas_coldstarts_total",
    "Invocations that were the first of their process.",
    &["trigger"],
);
pub const FAAS_INVOKE_DURATION: MetricDef = seconds(
    "faas_invoke_duration_seconds",
    "Handler time per invocation (before the metrics flush).",
    &["trigger"],
    buckets::DURATION_SECONDS,
);
pub const TELEMETRY_FLUSH_DURATION: MetricDef = seconds(
    "telemetry_flush_duration_seconds",
    "Time a per-invocation flush of the metrics (and spans) took (or waited before giving up).",
    &[],
    buckets::FLUSH_SECONDS,
);
pub const TELEMETRY_FLUSH_FAILURES: MetricDef = counter(
    "telemetry_flush_failures_total",
    "Telemetry flushes (metrics, and spans) that failed or ran out of budget, by reason.",
    &["reason"],
);

// ----------------------------------------------------------------------------- signal-generator

pub const SIGNALS_GENERATED: MetricDef = counter(
    "signals_generated_total",
    "Signals generated and accepted by the signal queue.",
    &["signal_type", "source", "generator"],
);
pub const SIGNAL_GENERATION_DURATION: MetricDef = seconds(
    "signal_generation_duration_seconds",
    "Time spent in one detector family during one scan.",
    &["generator"],
    buckets::DURATION_SECONDS,
);
pub const GENERATOR_SCANS: MetricDef =
    counter("generator_scans_total", "Scans run.", &["generator"]);
pub const GENERATOR_SCAN_DURATION: MetricDef = seconds(
    "generator_scan_duration_seconds",
    "Duration of a whole scan.",
    &[],
    buckets::DURATION_SECONDS,
);
pub const GENERATOR_SCAN_ERRORS: MetricDef = counter(
    "generator_scan_errors_total",
    "Streams that could not be scanned, by error type.",
    &["generator", "error_type"],
);
pub const GENERATOR_CANDLES_EVALUATED: MetricDef = counter(
    "generator_candles_evaluated_total",
    "Closed candles run through the detectors.",
    &[],
);
pub const GENERATOR_CURSOR_CONFLICTS: MetricDef = counter(
    "generator_cursor_conflicts_total",
    "Streams whose cursor another scan moved first.",
    &[],
);
pub const QUEUE_PUBLISH_DURATION: MetricDef = seconds(
    "queue_publish_duration_seconds",
    "Time spent sending one scan's signals to the queue (all batches and retries).",
    &[],
    buckets::DURATION_SECONDS,
);
pub const QUEUE_PUBLISH_SUCCESS: MetricDef = counter(
    "queue_publish_success_total",
    "Signals the queue accepted.",
    &["signal_type"],
);
pub const QUEUE_PUBLISH_FAILURE: MetricDef = counter(
    "queue_publish_failure_total",
    "Signals the queue did not accept after retries.",
    &["signal_type", "error_type"],
);
pub const DLQ_DEPTH: MetricDef = gauge(
    "dlq_depth",
    "",
    "Messages waiting in a dead-letter queue.",
    &["queue"],
);
pub const QUEUE_DEPTH: MetricDef = gauge(
    "queue_depth",
    "",
    "Messages waiting (visible) in a source queue, read by the generator on every scan.",
    &["queue"],
);

// ----------------------------------------------------------------------------- trigger-dispatcher

pub const SIGNALS_CONSUMED: MetricDef =
    counter("signals_consumed_total", "Valid signals received.", &[]);
pub const PIPELINES_MATCHED: MetricDef = counter(
    "pipelines_matched_total",
    "(pipeline, ticker) fan-outs matched, after de-duplication within the batch.",
    &[],
);
pub const PIPELINES_ENQUEUED: MetricDef =
    counter("pipelines_enqueued_total", "Execution requests sent.", &[]);
pub const PIPELINES_SKIPPED_RUNNING: MetricDef = counter(
    "pipelines_skipped_running_total",
    "Fan-outs skipped because the (pipeline, ticker) was already running.",
    &[],
);
pub const PIPELINES_DEDUPLICATED: MetricDef = counter(
    "pipelines_deduplicated_total",
    "Fan-outs dropped because an earlier signal of the batch had the same (pipeline, ticker).",
    &[],
);
pub const PIPELINES_ALREADY_ENQUEUED: MetricDef = counter(
    "pipelines_already_enqueued_total",
    "Fan-outs an earlier delivery of the same message had already enqueued.",
    &[],
);
pub const BATCH_SIZE: MetricDef = MetricDef {
    name: "batch_size",
    kind: MetricKind::Histogram,
    unit: "",
    description: "Messages received per batch.",
    labels: &[],
    buckets: buckets::BATCH_SIZE,
};
pub const BATCH_PROCESSING_DURATION: MetricDef = seconds(
    "batch_processing_duration_seconds",
    "Time to dispatch one batch.",
    &[],
    buckets::DURATION_SECONDS,
);
pub const PIPELINE_CACHE_SIZE: MetricDef = gauge(
    "pipeline_cache_size",
    "",
    "Signal-triggered pipelines in the cached index.",
    &[],
);
pub const PIPELINE_CACHE_REFRESHES: MetricDef = counter(
    "pipeline_cache_refreshes_total",
    "Reloads of the pipeline index.",
    &[],
);
pub const QUEUE_CONSUMER_LAG: MetricDef = seconds(
    "queue_consumer_lag_seconds",
    "Age of a signal when the dispatcher consumed it.",
    &[],
    buckets::LAG_SECONDS,
);
pub const QUEUE_CONSUMER_LAG_MAX: MetricDef = gauge(
    "queue_consumer_lag_max_seconds",
    "s",
    "Age of the oldest signal of the last batch.",
    &[],
);
/// Created by the dispatcher and the executor (each its own `reason` values).
pub const MESSAGES_REJECTED: MetricDef = counter(
    "messages_rejected_total",
    "Poison messages (bad bodies), by reason.",
    &["reason"],
);
pub const DISPATCH_FAILURES: MetricDef = counter(
    "dispatch_failures_total",
    "Messages failed for redelivery because of an infrastructure error, by reason.",
    &["reason"],
);

// ----------------------------------------------------------------------------- pipeline-executor

pub const PIPELINE_EXECUTIONS: MetricDef = counter(
    "pipeline_executions_total",
    "Pipeline runs that ended, by final status.",
    &["status"],
);
pub const PIPELINE_EXECUTION_DURATION: MetricDef = seconds(
    "pipeline_execution_duration_seconds",
    "Time to handle a run that ended, by final status.",
    &["status"],
    buckets::EXECUTION_SECONDS,
);
pub const PIPELINE_STEP_DURATION: MetricDef = seconds(
    "pipeline_step_duration_seconds",
    "Time of one pipeline step that ran, by step and status.",
    &["step", "status"],
    buckets::DURATION_SECONDS,
);
pub const ORDERS_CREATED: MetricDef = counter(
    "orders_created_total",
    "Paper orders placed by pipeline runs.",
    &[],
);
pub const EXECUTION_DUPLICATES: MetricDef = counter(
    "execution_duplicates_total",
    "Redelivered requests acknowledged without running anything.",
    &["status"],
);
pub const EXECUTIONS_SKIPPED: MetricDef = counter(
    "pipeline_executions_skipped_total",
    "Runs that ended SKIPPED, by decision (pipeline inactive or missing, lease lost).",
    &["decision"],
);
pub const EXECUTION_RETRIES: MetricDef = counter(
    "execution_retries_total",
    "Requests failed for redelivery after a transient error, by reason.",
    &["reason"],
);
pub const EXECUTION_QUEUE_LAG: MetricDef = seconds(
    "execution_queue_lag_seconds",
    "Age of an execution request when the executor picked it up.",
    &[],
    buckets::LAG_SECONDS,
);

/// Every metric the functions export. Dashboards and alert rules may only use these (histograms
/// as `_bucket`/`_sum`/`_count`, see [`MetricDef::exported_names`]) plus the `job`/`instance`
/// labels added on the way in; a test keeps the list equal to the instruments created.
pub const METRICS: &[MetricDef] = &[
    // every function
    FAAS_INVOCATIONS,
    FAAS_ERRORS,
    FAAS_COLDSTARTS,
    FAAS_INVOKE_DURATION,
    TELEMETRY_FLUSH_DURATION,
    TELEMETRY_FLUSH_FAILURES,
    // signal-generator
    SIGNALS_GENERATED,
    SIGNAL_GENERATION_DURATION,
    GENERATOR_SCANS,
    GENERATOR_SCAN_DURATION,
    GENERATOR_SCAN_ERRORS,
    GENERATOR_CANDLES_EVALUATED,
    GENERATOR_CURSOR_CONFLICTS,
    QUEUE_PUBLISH_DURATION,
    QUEUE_PUBLISH_SUCCESS,
    QUEUE_PUBLISH_FAILURE,
    DLQ_DEPTH,
    QUEUE_DEPTH,
    // trigger-dispatcher
    SIGNALS_CONSUMED,
    PIPELINES_MATCHED,
    PIPELINES_ENQUEUED,
    PIPELINES_SKIPPED_RUNNING,
    PIPELINES_DEDUPLICATED,
    PIPELINES_ALREADY_ENQUEUED,
    BATCH_SIZE,
    BATCH_PROCESSING_DURATION,
    PIPELINE_CACHE_SIZE,
    PIPELINE_CACHE_REFRESHES,
    QUEUE_CONSUMER_LAG,
    QUEUE_CONSUMER_LAG_MAX,
    MESSAGES_REJECTED,
    DISPATCH_FAILURES,
    // pipeline-executor (and messages_rejected_total)
    PIPELINE_EXECUTIONS,
    PIPELINE_EXECUTION_DURATION,
    PIPELINE_STEP_DURATION,
    ORDERS_CREATED,
    EXECUTION_DUPLICATES,
    EXECUTIONS_SKIPPED,
    EXECUTION_RETRIES,
    EXECUTION_QUEUE_LAG,
];

const fn names<const N: usize>() -> [&'static str; N] {
    let mut out = [""; N];
    let mut i = 0;
    while i < N {
        out[i] = METRICS[i].name;
        i += 1;
    }
    out
}

/// The names of [`METRICS`], in the same order (histograms without their suffixes).
pub const METRIC_NAMES: &[&str] = &names::<{ METRICS.len() }>();

/// The catalogue entry named `name`.
pub fn metric(name: &str) -> Option<&'static MetricDef> {
    METRICS.iter().find(|m| m.name == name)
}
