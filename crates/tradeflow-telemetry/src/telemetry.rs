//! The meter provider, logging set-up and the per-invocation flush.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use opentelemetry::KeyValue;
use opentelemetry::metrics::{Counter, Histogram, Meter, MeterProvider as _};
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider, Temporality};
use opentelemetry_sdk::resource::{
    EnvResourceDetector, ResourceDetector, TelemetryResourceDetector,
};
use tracing_subscriber::EnvFilter;

use crate::buckets;
use crate::config::TelemetryConfig;
use crate::error::TelemetryError;
use crate::faas::{FaasMetrics, Invocation};

/// Logs and metrics of one function process. Cheap to clone (one `Arc` inside).
#[derive(Clone)]
pub struct Telemetry {
    inner: Arc<Inner>,
}

struct Inner {
    provider: SdkMeterProvider,
    meter: Meter,
    /// Whether a reader exports anywhere (else `flush` is a no-op).
    exporting: bool,
    flush_budget: Duration,
    /// Set while a force-flush runs on a blocking thread (it may outlive a timed-out `flush`).
    flushing: Arc<AtomicBool>,
    /// Set by the first invocation of the process (cold start).
    invoked: AtomicBool,
    faas: FaasMetrics,
    flush_duration: Histogram<f64>,
    flush_failures: Counter<u64>,
}

impl std::fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Telemetry")
            .field("exporting", &self.inner.exporting)
            .field("flush_budget", &self.inner.flush_budget)
            .finish_non_exhaustive()
    }
}

/// Installs the global `tracing` subscriber: one JSON object per line on stdout, fields at the
/// top level, filtered by `RUST_LOG` (default `info`). Does nothing if a subscriber is already
/// installed (tests call it many times).
pub fn init_logging() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let _already_set = tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(true)
        .with_span_list(false)
        .with_env_filter(filter)
        .with_writer(std::io::stdout)
        .try_init();
}

impl Telemetry {
    /// Logging plus a meter provider configured from the environment (see
    /// [`TelemetryConfig::from_lookup`]); also installed as the global meter provider. Never
    /// fails: if the exporter cannot be built, the problem is logged and nothing is exported.
    pub fn init(service_name: &str) -> Telemetry {
        init_logging();
        let telemetry = Telemetry::from_config(TelemetryConfig::from_env(service_name));
        opentelemetry::global::set_meter_provider(telemetry.inner.provider.clone());
        telemetry
    }

    /// A meter provider for `config` (logging untouched, global provider untouched).
    pub fn from_config(config: TelemetryConfig) -> Telemetry {
        for warning in &config.warnings {
            tracing::warn!(warning = %warning, "telemetry configuration");
        }
        let mut builder = SdkMeterProvider::builder().with_resource(resource(&config));
        let mut exporting = false;
        if let Some(endpoint) = &config.metrics_endpoint {
            match build_exporter(endpoint, config.export_timeout) {
                Ok(exporter) => {
                    // The interval is the SDK's (OTEL_METRIC_EXPORT_INTERVAL, default 60 s): each
                    // invocation flushes anyway.
                    builder = builder.with_reader(PeriodicReader::builder(exporter).build());
                    exporting = true;
                    tracing::debug!(
                        endpoint = %endpoint,
                        export_timeout_ms = config.export_timeout.as_millis() as u64,
                        flush_budget_ms = config.flush_budget.as_millis() as u64,
                        "exporting metrics over OTLP"
                    );
                }
                Err(e) => tracing::warn!(
                    error = %error_chain(&e),
                    "metrics will not be exported"
                ),
            }
        }
        Telemetry::build(builder.build(), exporting, config.flush_budget)
    }

    /// Wraps an existing provider (tests: one with an in-memory exporter). `flush` force-flushes
    /// it within `flush_budget`.
    pub fn from_provider(provider: SdkMeterProvider, flush_budget: Duration) -> Telemetry {
        Telemetry::build(provider, true, flush_budget)
    }

    fn build(provider: SdkMeterProvider, exporting: bool, flush_budget: Duration) -> Telemetry {
        let meter = provider.meter("tradeflow");
        let faas = FaasMetrics::new(&meter);
        let flush_duration = meter
            .f64_histogram("telemetry_flush_duration")
            .with_unit("s")
            .with_description(
                "Time a per-invocation metrics flush took (or waited before giving up).",
            )
            .with_boundaries(buckets::FLUSH_SECONDS.to_vec())
            .build();
        let flush_failures = meter
            .u64_counter("telemetry_flush_failures")
            .with_unit("1")
            .with_description("Metric flushes that failed or ran out of budget, by reason.")
            .build();
        Telemetry {
            inner: Arc::new(Inner {
                provider,
                meter,
                exporting,
                flush_budget,
                flushing: Arc::new(AtomicBool::new(false)),
                invoked: AtomicBool::new(false),
                faas,
                flush_duration,
                flush_failures,
            }),
        }
    }

    /// The meter every instrument of the function is created from.
    pub fn meter(&self) -> Meter {
        self.inner.meter.clone()
    }

    /// Whether metrics are exported anywhere.
    pub fn is_exporting(&self) -> bool {
        self.inner.exporting
    }

    /// The per-flush budget.
    pub fn flush_budget(&self) -> Duration {
        self.inner.flush_budget
    }

    /// Starts timing one invocation. `trigger` is `"pubsub"` (SQS), `"timer"` (schedule), or
    /// `"http"`/`"datasource"`; anything else is recorded as `"other"`. The first invocation of
    /// the process is the cold start.
    pub fn start_invocation(&self, trigger: &'static str) -> Invocation {
        let cold = !self.inner.invoked.swap(true, Ordering::AcqRel);
        Invocation::start(self.inner.faas.clone(), trigger, cold)
    }

    /// Pushes the metrics now, before Lambda freezes the process.
    ///
    /// The SDK's force-flush blocks (HTTP on the reader's thread), so it runs on a blocking
    /// thread and this waits at most the flush budget. It never fails: a timeout or export error
    /// is logged as a warning and counted in `telemetry_flush_failures_total{reason}`; the time
    /// spent goes to `telemetry_flush_duration_seconds` (exported with the next flush). If the
    /// previous flush is still running (a slow collector), this one is skipped (`reason="busy"`)
    /// rather than queueing behind it. Needs a Tokio runtime with timers (the Lambda runtime's);
    /// without a runtime it flushes on the calling thread.
    pub async fn flush(&self) {
        let inner = &self.inner;
        if !inner.exporting {
            return;
        }
        let started = Instant::now();
        if inner.flushing.swap(true, Ordering::AcqRel) {
            self.flush_failed(
                started,
                "busy",
                "the previous flush is still running".into(),
            );
            return;
        }
        let provider = inner.provider.clone();
        let flag = FlushingFlag(Arc::clone(&inner.flushing));
        let result = if tokio::runtime::Handle::try_current().is_ok() {
            let task = tokio::task::spawn_blocking(move || {
                let _flag = flag;
                provider.force_flush()
            });
            match tokio::time::timeout(inner.flush_budget, task).await {
                Ok(Ok(result)) => result.map_err(|e| ("export_error", e.to_string())),
                Ok(Err(join)) => Err(("panic", join.to_string())),
                Err(_) => Err((
                    "timeout",
                    format!(
                        "no answer within the flush budget of {} ms",
                        inner.flush_budget.as_millis()
                    ),
                )),
            }
        } else {
            let _flag = flag;
            provider
                .force_flush()
                .map_err(|e| ("export_error", e.to_string()))
        };
        match result {
            Ok(()) => {
                inner
                    .flush_duration
                    .record(started.elapsed().as_secs_f64(), &[]);
            }
            Err((reason, detail)) => self.flush_failed(started, reason, detail),
        }
    }

    fn flush_failed(&self, started: Instant, reason: &'static str, detail: String) {
        let elapsed = started.elapsed();
        self.inner.flush_duration.record(elapsed.as_secs_f64(), &[]);
        self.inner
            .flush_failures
            .add(1, &[KeyValue::new("reason", reason)]);
        tracing::warn!(
            reason,
            error = %detail,
            elapsed_ms = elapsed.as_secs_f64() * 1000.0,
            "metrics flush failed; the invocation goes on"
        );
    }

    /// Flushes what is left and stops the exporter (process exit). Blocks for at most about the
    /// export timeout; errors are logged. Calling it twice is harmless.
    pub fn shutdown(&self) {
        if let Err(e) = self.inner.provider.shutdown() {
            tracing::debug!(error = %e, "meter provider shutdown");
        }
    }
}

/// Clears the "flush running" flag when the blocking flush ends, even by panic.
struct FlushingFlag(Arc<AtomicBool>);

impl Drop for FlushingFlag {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

/// `service.name`, `service.instance.id`, `faas.name`, `cloud.provider`, `cloud.region`, the SDK
/// attributes, then `OTEL_RESOURCE_ATTRIBUTES` over them, and `OTEL_SERVICE_NAME` (already in
/// `config.service_name`) last.
fn resource(config: &TelemetryConfig) -> Resource {
    let mut ours = vec![
        KeyValue::new("service.name", config.service_name.clone()),
        KeyValue::new("service.instance.id", config.instance_id.clone()),
        KeyValue::new("faas.name", config.faas_name.clone()),
        KeyValue::new("cloud.provider", "aws"),
    ];
    if let Some(region) = &config.region {
        ours.push(KeyValue::new("cloud.region", region.clone()));
    }
    let detectors: [Box<dyn ResourceDetector>; 2] = [
        Box::new(TelemetryResourceDetector),
        Box::new(EnvResourceDetector::new()),
    ];
    let mut builder = Resource::builder_empty()
        .with_attributes(ours)
        .with_detectors(&detectors);
    if std::env::var("OTEL_SERVICE_NAME").is_ok_and(|v| !v.trim().is_empty()) {
        builder = builder.with_service_name(config.service_name.clone());
    }
    builder.build()
}

/// OTLP HTTP/protobuf, cumulative, `export_timeout` per request and as the retry budget, one
/// quick retry (a refused connection or a 503 from a restarting collector).
fn build_exporter(
    endpoint: &str,
    export_timeout: Duration,
) -> Result<opentelemetry_otlp::MetricExporter, TelemetryError> {
    let retry = opentelemetry_otlp::RetryPolicy::recommended()
        .with_max_retries(1)
        .with_initial_delay(Duration::from_millis(5))
        .with_max_delay(Duration::from_millis(10))
        .with_max_jitter(Duration::from_millis(2));
    opentelemetry_otlp::MetricExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(endpoint)
        .with_timeout(export_timeout)
        .with_retry_policy(retry)
        .with_temporality(Temporality::Cumulative)
        .build()
        .map_err(|source| TelemetryError::Exporter {
            endpoint: endpoint.to_owned(),
            source,
        })
}

/// An error and its sources, joined by ": ".
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}
