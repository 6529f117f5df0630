//! The meter and tracer providers, logging set-up and the per-invocation flush.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use opentelemetry::KeyValue;
use opentelemetry::metrics::{Counter, Histogram, Meter, MeterProvider as _};
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::metrics::data::ResourceMetrics;
#[cfg(test)]
use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData};
use opentelemetry_sdk::metrics::exporter::PushMetricExporter as _;
use opentelemetry_sdk::metrics::reader::MetricReader;
use opentelemetry_sdk::metrics::{
    InstrumentKind, ManualReader, Pipeline, SdkMeterProvider, Temporality,
};
use opentelemetry_sdk::resource::{
    EnvResourceDetector, ResourceDetector, TelemetryResourceDetector,
};
use opentelemetry_sdk::trace::Sampler;
use tracing::Level;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tradeflow_core::error::error_chain;

use crate::catalogue;
use crate::config::{TelemetryConfig, TraceSampling};
use crate::error::TelemetryError;
use crate::faas::{FaasMetrics, Invocation};
use crate::http::OtlpHttpClient;
use crate::traces::Traces;

/// `reason` label values of `telemetry_flush_failures_total`.
const FLUSH_FAILURE_REASONS: [&str; 4] = ["timeout", "export_error", "busy", "panic"];

/// Logs and metrics of one function process. Cheap to clone (one `Arc` inside).
#[derive(Clone)]
pub struct Telemetry {
    inner: Arc<Inner>,
}

struct Inner {
    provider: SdkMeterProvider,
    meter: Meter,
    /// Whether a reader exports anywhere (`flush` is a no-op when it does not and traces are
    /// off).
    exporting: bool,
    /// The OTLP export, collected and sent by `flush` itself; `None` for a wrapped provider
    /// ([`Telemetry::from_provider`]), which is force-flushed instead.
    otlp: Option<OtlpExport>,
    /// The spans; sent by `flush` before the metrics (`flush` is a no-op when neither
    /// exports).
    traces: Traces,
    flush_budget: Duration,
    /// Set while a force-flush runs on a blocking thread (it may outlive a timed-out `flush`).
    flushing: Arc<AtomicBool>,
    /// Set by `shutdown`: later flushes do nothing (the readers are closed).
    shut_down: AtomicBool,
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
            .field("traces", &self.inner.traces)
            .field("flush_budget", &self.inner.flush_budget)
            .finish_non_exhaustive()
    }
}

/// The log filter: `RUST_LOG` as `target=level` directives (`info`, `debug,aws_smithy=warn`...),
/// or, when it is unset, blank or not valid, info with only warnings from the OpenTelemetry
/// crates (their info lines, e.g. "Global meter provider is set", are start-up noise).
///
/// A [`Targets`] filter, not an `EnvFilter`: the functions take no span or field directives,
/// and `EnvFilter` links a regex engine (regex-automata) into each binary.
pub fn log_filter(rust_log: Option<&str>) -> Targets {
    rust_log
        .filter(|v| !v.trim().is_empty())
        .and_then(|v| v.trim().parse::<Targets>().ok())
        .unwrap_or_else(|| {
            Targets::new()
                .with_default(Level::INFO)
                .with_target("opentelemetry", Level::WARN)
        })
}

/// Installs the global `tracing` subscriber: one JSON object per line on stdout, fields at the
/// top level, filtered by `RUST_LOG` ([`log_filter`]). Does nothing if a subscriber is already
/// installed (tests call it many times).
pub fn init_logging() {
    let filter = log_filter(std::env::var("RUST_LOG").ok().as_deref());
    let json = tracing_subscriber::fmt::layer()
        .json()
        .flatten_event(true)
        .with_current_span(true)
        .with_span_list(false)
        .with_writer(std::io::stdout);
    let _already_set = tracing_subscriber::registry()
        .with(json)
        .with(filter)
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
        let mut otlp = None;
        if let Some(endpoint) = &config.metrics_endpoint {
            match build_exporter(endpoint, config.export_timeout) {
                Ok(exporter) => {
                    // No periodic reader and no thread of its own: each invocation's flush
                    // collects and exports on the function's runtime.
                    let reader = SharedReader(Arc::new(
                        ManualReader::builder()
                            .with_temporality(Temporality::Cumulative)
                            .build(),
                    ));
                    builder = builder.with_reader(reader.clone());
                    otlp = Some(OtlpExport {
                        reader,
                        exporter: Arc::new(exporter),
                    });
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
        let exporting = otlp.is_some();
        let traces = match &config.traces_endpoint {
            None => Traces::disabled(),
            Some(endpoint) => match build_span_exporter(endpoint, config.export_timeout) {
                Ok(exporter) => {
                    tracing::debug!(
                        endpoint = %endpoint,
                        parent_based = config.sampling.parent_based,
                        ratio = config.sampling.root_ratio,
                        "exporting traces over OTLP"
                    );
                    Traces::otlp(resource(&config), sampler(config.sampling), exporter)
                }
                Err(e) => {
                    tracing::warn!(error = %error_chain(&e), "traces will not be exported");
                    Traces::disabled()
                }
            },
        };
        Telemetry::build(
            builder.build(),
            exporting,
            otlp,
            traces,
            config.flush_budget,
        )
    }

    /// Wraps an existing provider (tests: one with an in-memory exporter). `flush` force-flushes
    /// it within `flush_budget`. No traces ([`Telemetry::with_traces`] adds them).
    pub fn from_provider(provider: SdkMeterProvider, flush_budget: Duration) -> Telemetry {
        Telemetry::build(provider, true, None, Traces::disabled(), flush_budget)
    }

    /// The same metrics with `traces` instead (tests: a tracer provider with an in-memory
    /// exporter), flushed with them.
    pub fn with_traces(self, traces: Traces) -> Telemetry {
        let inner = &self.inner;
        Telemetry::build(
            inner.provider.clone(),
            inner.exporting,
            inner.otlp.clone(),
            traces,
            inner.flush_budget,
        )
    }

    fn build(
        provider: SdkMeterProvider,
        exporting: bool,
        otlp: Option<OtlpExport>,
        traces: Traces,
        flush_budget: Duration,
    ) -> Telemetry {
        let meter = provider.meter("tradeflow");
        let faas = FaasMetrics::new(&meter);
        let flush_duration = catalogue::TELEMETRY_FLUSH_DURATION.f64_histogram(&meter);
        let flush_failures = catalogue::TELEMETRY_FLUSH_FAILURES.u64_counter(&meter);
        if exporting {
            // Zero series, so failure ratios read 0 rather than "no data".
            for reason in FLUSH_FAILURE_REASONS {
                flush_failures.add(0, &[KeyValue::new("reason", reason)]);
            }
        }
        Telemetry {
            inner: Arc::new(Inner {
                provider,
                meter,
                exporting,
                otlp,
                traces,
                flush_budget,
                flushing: Arc::new(AtomicBool::new(false)),
                shut_down: AtomicBool::new(false),
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

    /// The spans of this process (disabled when traces are off).
    pub fn traces(&self) -> Traces {
        self.inner.traces.clone()
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
    /// Collects every series (cheap, in memory) and sends them on this runtime, waiting at most
    /// the flush budget. It never fails: a timeout or export error is logged as a warning and
    /// counted in `telemetry_flush_failures_total{reason}`; the time spent goes to
    /// `telemetry_flush_duration_seconds` (exported with the next flush). A request cut off by
    /// the budget goes on in the background up to the export timeout; the next flush sends the
    /// cumulative values again, so nothing is lost but that push. Needs a Tokio runtime with
    /// timers (the Lambda runtime's).
    ///
    /// A provider wrapped by [`Telemetry::from_provider`] is force-flushed instead: the SDK's
    /// force-flush blocks, so it runs on a blocking thread, and if the previous one is still
    /// running this one is skipped (`reason="busy"`) rather than queueing behind it.
    ///
    /// With traces on, the spans ended since the last flush go in one request of their own, at
    /// the same time as the metrics and within the same budget; a span export error counts as
    /// `export_error`. Unlike the cumulative metrics, spans are sent once: those of a failed or
    /// cut-off span export are dropped (counted, and logged as the flush failure). After
    /// [`Telemetry::shutdown`] this does nothing.
    pub async fn flush(&self) {
        let inner = &self.inner;
        if !inner.exporting && !inner.traces.is_enabled() || inner.shut_down.load(Ordering::Acquire)
        {
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
        let flag = FlushingFlag(Arc::clone(&inner.flushing));
        let result = match &inner.otlp {
            Some(otlp) => {
                let _flag = flag;
                let both = async {
                    // Two requests at once: a slow span export does not hold the metrics back.
                    let (spans, metrics) = tokio::join!(inner.traces.export(), otlp.export());
                    match (spans, metrics) {
                        (Ok(()), metrics) => metrics,
                        (Err(e), Ok(())) => Err(("export_error", e)),
                        (Err(e), Err((reason, detail))) => Err((reason, format!("{e}; {detail}"))),
                    }
                };
                match tokio::time::timeout(inner.flush_budget, both).await {
                    Ok(result) => result,
                    Err(_) => Err(budget_exceeded(inner.flush_budget)),
                }
            }
            None if !inner.exporting => {
                // Spans only (metrics export nowhere).
                let _flag = flag;
                match tokio::time::timeout(inner.flush_budget, inner.traces.export()).await {
                    Ok(result) => result.map_err(|e| ("export_error", e)),
                    Err(_) => Err(budget_exceeded(inner.flush_budget)),
                }
            }
            None => {
                let spans = tokio::time::timeout(inner.flush_budget, inner.traces.export()).await;
                let metrics = self.force_flush_provider(flag).await;
                match spans {
                    Ok(Ok(())) => metrics,
                    Ok(Err(e)) => Err(("export_error", e)),
                    Err(_) => Err(budget_exceeded(inner.flush_budget)),
                }
            }
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

    /// The SDK's blocking force-flush of a wrapped provider, within the flush budget.
    async fn force_flush_provider(&self, flag: FlushingFlag) -> Result<(), (&'static str, String)> {
        let inner = &self.inner;
        let provider = inner.provider.clone();
        if tokio::runtime::Handle::try_current().is_err() {
            let _flag = flag;
            return provider
                .force_flush()
                .map_err(|e| ("export_error", e.to_string()));
        }
        let task = tokio::task::spawn_blocking(move || {
            let _flag = flag;
            provider.force_flush()
        });
        match tokio::time::timeout(inner.flush_budget, task).await {
            Ok(Ok(result)) => result.map_err(|e| ("export_error", e.to_string())),
            Ok(Err(join)) => Err(("panic", join.to_string())),
            Err(_) => Err(budget_exceeded(inner.flush_budget)),
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
            "telemetry flush failed; the invocation goes on"
        );
    }

    /// Flushes what is left and stops the exporters (process exit). Takes at most about the
    /// flush budget (spans and metrics are sent at the same time; a wrapped provider: its export
    /// timeout); errors are logged. Calling it twice is harmless, and flushes after it do
    /// nothing.
    pub async fn shutdown(&self) {
        let inner = &self.inner;
        if inner.shut_down.swap(true, Ordering::AcqRel) {
            return;
        }
        let metrics = async {
            match &inner.otlp {
                Some(otlp) => otlp.export().await,
                None => Ok(()),
            }
        };
        let last = async { tokio::join!(inner.traces.shutdown(), metrics) };
        match tokio::time::timeout(inner.flush_budget, last).await {
            Err(_) => tracing::debug!("last export at shutdown ran out of the flush budget"),
            Ok((_, Err((reason, detail)))) => {
                tracing::debug!(reason, error = %detail, "last metrics flush at shutdown");
            }
            Ok(_) => {}
        }
        if inner.otlp.is_some() {
            // A manual reader exports nothing itself: this returns at once.
            if let Err(e) = inner.provider.shutdown() {
                tracing::debug!(error = %e, "meter provider shutdown");
            }
            return;
        }
        let provider = inner.provider.clone();
        let result = if tokio::runtime::Handle::try_current().is_ok() {
            match tokio::task::spawn_blocking(move || provider.shutdown()).await {
                Ok(result) => result.map_err(|e| e.to_string()),
                Err(join) => Err(join.to_string()),
            }
        } else {
            provider.shutdown().map_err(|e| e.to_string())
        };
        if let Err(e) = result {
            tracing::debug!(error = %e, "meter provider shutdown");
        }
    }
}

fn budget_exceeded(budget: Duration) -> (&'static str, String) {
    (
        "timeout",
        format!(
            "no answer within the flush budget of {} ms",
            budget.as_millis()
        ),
    )
}

/// The OTLP half of a provider: a manual reader registered with it, and the exporter that
/// `flush` sends the reader's collection through.
#[derive(Clone)]
struct OtlpExport {
    reader: SharedReader,
    exporter: Arc<opentelemetry_otlp::MetricExporter>,
}

impl OtlpExport {
    /// Collects every series and sends them (one OTLP request). `Err` is (reason, detail).
    async fn export(&self) -> Result<(), (&'static str, String)> {
        let mut metrics = ResourceMetrics::default();
        self.reader
            .collect(&mut metrics)
            .map_err(|e| ("export_error", format!("collecting: {e}")))?;
        self.exporter
            .export(&metrics)
            .await
            .map_err(|e| ("export_error", e.to_string()))
    }
}

/// A [`ManualReader`] the provider registers and `flush` collects from (the provider takes its
/// readers by value).
#[derive(Debug, Clone)]
struct SharedReader(Arc<ManualReader>);

impl MetricReader for SharedReader {
    fn register_pipeline(&self, pipeline: Weak<Pipeline>) {
        self.0.register_pipeline(pipeline);
    }

    fn collect(&self, rm: &mut ResourceMetrics) -> OTelSdkResult {
        self.0.collect(rm)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.0.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.0.shutdown_with_timeout(timeout)
    }

    fn temporality(&self, kind: InstrumentKind) -> Temporality {
        self.0.temporality(kind)
    }
}

/// Clears the "flush running" flag when the blocking flush ends, even by panic.
struct FlushingFlag(Arc<AtomicBool>);

impl Drop for FlushingFlag {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

/// `service.name`, `service.instance.id`, `faas.name`, `cloud.provider`, `cloud.region`,
/// `deployment.environment.name` (the stage), the SDK
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
    ours.push(KeyValue::new(
        "deployment.environment.name",
        config.stage.clone(),
    ));
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
    let client = OtlpHttpClient::new(endpoint, export_timeout)?;
    opentelemetry_otlp::MetricExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(endpoint)
        .with_http_client(client)
        .with_timeout(export_timeout)
        .with_retry_policy(retry_policy())
        .with_temporality(Temporality::Cumulative)
        .build()
        .map_err(|source| TelemetryError::Exporter {
            endpoint: endpoint.to_owned(),
            source,
        })
}

/// One quick retry (a refused connection or a 503 from a restarting collector).
fn retry_policy() -> opentelemetry_otlp::RetryPolicy {
    opentelemetry_otlp::RetryPolicy::recommended()
        .with_max_retries(1)
        .with_initial_delay(Duration::from_millis(5))
        .with_max_delay(Duration::from_millis(10))
        .with_max_jitter(Duration::from_millis(2))
}

/// Spans over OTLP HTTP/protobuf to `endpoint`, through the same client on the function's
/// runtime as the metrics, with their timeout and retries.
fn build_span_exporter(
    endpoint: &str,
    export_timeout: Duration,
) -> Result<opentelemetry_otlp::SpanExporter, TelemetryError> {
    let client = OtlpHttpClient::new(endpoint, export_timeout)?;
    opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(endpoint)
        .with_http_client(client)
        .with_timeout(export_timeout)
        .with_retry_policy(retry_policy())
        .build()
        .map_err(|source| TelemetryError::SpanExporter {
            endpoint: endpoint.to_owned(),
            source,
        })
}

/// The SDK sampler of `sampling`.
fn sampler(sampling: TraceSampling) -> Sampler {
    let root = if sampling.root_ratio >= 1.0 {
        Sampler::AlwaysOn
    } else if sampling.root_ratio <= 0.0 {
        Sampler::AlwaysOff
    } else {
        Sampler::TraceIdRatioBased(sampling.root_ratio)
    };
    if sampling.parent_based {
        Sampler::ParentBased(Box::new(root))
    } else {
        root
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::testing::TestMeter;
    use opentelemetry_sdk::metrics::PeriodicReader;
    use opentelemetry_sdk::metrics::exporter::PushMetricExporter;

    /// An exporter that takes `delay` per export (a slow or hanging collector).
    struct SlowExporter {
        delay: Duration,
    }

    impl PushMetricExporter for SlowExporter {
        async fn export(&self, _metrics: &ResourceMetrics) -> OTelSdkResult {
            std::thread::sleep(self.delay);
            Ok(())
        }
        fn force_flush(&self) -> OTelSdkResult {
            Ok(())
        }
        fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
            Ok(())
        }
        fn temporality(&self) -> Temporality {
            Temporality::Cumulative
        }
    }

    fn config(endpoint: Option<&str>, budget_ms: u64) -> TelemetryConfig {
        TelemetryConfig {
            service_name: "test".into(),
            instance_id: "i".into(),
            faas_name: "test".into(),
            region: None,
            stage: "test".into(),
            metrics_endpoint: endpoint.map(str::to_owned),
            traces_endpoint: None,
            sampling: Default::default(),
            export_timeout: Duration::from_millis(budget_ms),
            flush_budget: Duration::from_millis(budget_ms),
            warnings: Vec::new(),
        }
    }

    /// A collector on 127.0.0.1 that hands each request body to the test and answers 200 after
    /// `delay` (kept-alive connections, one thread each).
    fn collector(delay: Duration) -> (String, std::sync::mpsc::Receiver<(String, Vec<u8>)>) {
        use std::io::{BufRead, BufReader, Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/v1/metrics", listener.local_addr().unwrap());
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let tx = tx.clone();
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(stream.try_clone().unwrap());
                    let mut writer = stream;
                    loop {
                        let mut request_line = String::new();
                        if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
                            return;
                        }
                        let mut length = 0;
                        loop {
                            let mut header = String::new();
                            reader.read_line(&mut header).unwrap();
                            if header.trim().is_empty() {
                                break;
                            }
                            if let Some((name, value)) = header.split_once(':')
                                && name.eq_ignore_ascii_case("content-length")
                            {
                                length = value.trim().parse().unwrap();
                            }
                        }
                        let mut body = vec![0; length];
                        reader.read_exact(&mut body).unwrap();
                        std::thread::sleep(delay);
                        let _ = tx.send((request_line, body));
                        if writer
                            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                            .is_err()
                        {
                            return;
                        }
                    }
                });
            }
        });
        (url, rx)
    }

    fn contains(haystack: &[u8], needle: &str) -> bool {
        haystack
            .windows(needle.len())
            .any(|w| w == needle.as_bytes())
    }

    /// Each flush is one OTLP request carrying every series, sent by `flush` itself on this
    /// runtime (a current-thread one, as a worst case: no other thread could send it).
    #[tokio::test(flavor = "current_thread")]
    async fn each_flush_sends_the_series_in_one_request_on_the_functions_runtime() {
        let (url, requests) = collector(Duration::ZERO);
        let telemetry = Telemetry::from_config(config(Some(&url), 2_000));
        assert!(telemetry.is_exporting());
        for n in 1..=3 {
            telemetry.start_invocation("pubsub").finish(true);
            telemetry.flush().await;
            let (line, body) = requests.recv_timeout(Duration::from_secs(5)).unwrap();
            assert!(line.starts_with("POST /v1/metrics "), "{line}");
            assert!(contains(&body, "faas_invocations_total"), "flush {n}");
            assert!(
                contains(&body, "telemetry_flush_failures_total"),
                "flush {n}"
            );
            assert!(requests.try_recv().is_err(), "one request per flush");
        }
        telemetry.shutdown().await;
        // Shutdown pushes what is left once, and the provider stops.
        let (_, body) = requests.recv_timeout(Duration::from_secs(5)).unwrap();
        assert!(contains(&body, "faas_invocations_total"));
        telemetry.flush().await;
        assert!(
            requests.recv_timeout(Duration::from_millis(200)).is_err(),
            "nothing is sent after shutdown"
        );
    }

    /// With traces on, a flush sends the spans ended since the last one in a request of their
    /// own to `/v1/traces`, beside the metrics' request; nothing when no span ended.
    #[tokio::test(flavor = "current_thread")]
    async fn a_flush_sends_the_spans_in_their_own_request_beside_the_metrics() {
        let (url, requests) = collector(Duration::ZERO);
        let traces_url = url.replace("/v1/metrics", "/v1/traces");
        let mut c = config(Some(&url), 2_000);
        c.traces_endpoint = Some(traces_url);
        let telemetry = Telemetry::from_config(c);
        assert!(telemetry.traces().is_enabled());
        telemetry
            .traces()
            .start(
                "dispatch",
                opentelemetry::trace::SpanKind::Consumer,
                None,
                Vec::new(),
            )
            .finish("dispatched", None);
        telemetry.flush().await;
        let mut got: Vec<(String, Vec<u8>)> = (0..2)
            .map(|_| requests.recv_timeout(Duration::from_secs(5)).unwrap())
            .collect();
        got.sort();
        assert!(got[0].0.starts_with("POST /v1/metrics "), "{}", got[0].0);
        assert!(got[1].0.starts_with("POST /v1/traces "), "{}", got[1].0);
        assert!(contains(&got[1].1, "dispatch") && contains(&got[1].1, "test"));
        telemetry.flush().await;
        let (line, _) = requests.recv_timeout(Duration::from_secs(5)).unwrap();
        assert!(line.starts_with("POST /v1/metrics "), "{line}");
        assert!(
            requests.recv_timeout(Duration::from_millis(200)).is_err(),
            "no span ended: no span request"
        );
        telemetry.shutdown().await;
    }

    /// A collector slower than the budget costs one budget; the cut-off push is not retried, and
    /// the next flush is not skipped as busy (the export future was dropped, not left running).
    #[tokio::test(flavor = "current_thread")]
    async fn a_slow_collector_costs_one_budget_and_the_next_flush_still_runs() {
        let (url, requests) = collector(Duration::from_millis(300));
        let telemetry = Telemetry::from_config(config(Some(&url), 40));
        telemetry.start_invocation("pubsub").finish(true);
        let started = Instant::now();
        telemetry.flush().await;
        let took = started.elapsed();
        assert!(took < Duration::from_millis(250), "flush took {took:?}");
        let started = Instant::now();
        telemetry.flush().await;
        assert!(started.elapsed() < Duration::from_millis(250));
        // Both requests reached the collector (the first went on in the background): the second
        // flush was not skipped as busy.
        for _ in 0..2 {
            requests.recv_timeout(Duration::from_secs(5)).unwrap();
        }
    }

    #[test]
    fn the_log_filter_reads_rust_log_and_quiets_opentelemetry_by_default() {
        for unset in [None, Some(""), Some("  "), Some("=bad=")] {
            let f = log_filter(unset);
            assert!(
                f.would_enable("trigger_dispatcher", &Level::INFO),
                "{unset:?}"
            );
            assert!(
                !f.would_enable("trigger_dispatcher", &Level::DEBUG),
                "{unset:?}"
            );
            assert!(!f.would_enable("opentelemetry_sdk::metrics", &Level::INFO));
            assert!(f.would_enable("opentelemetry_otlp", &Level::WARN));
        }
        let f = log_filter(Some("debug,aws_smithy_runtime=warn"));
        assert!(f.would_enable("tradeflow_core", &Level::DEBUG));
        assert!(!f.would_enable("aws_smithy_runtime::client", &Level::INFO));
        assert!(f.would_enable("aws_smithy_runtime::client", &Level::WARN));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn without_an_endpoint_instruments_work_and_flush_returns_at_once() {
        let telemetry = Telemetry::from_config(config(None, 50));
        assert!(!telemetry.is_exporting());
        telemetry
            .meter()
            .u64_counter("anything")
            .build()
            .add(1, &[]);
        let started = Instant::now();
        telemetry.flush().await;
        assert!(started.elapsed() < Duration::from_millis(5));
        telemetry.shutdown().await;
    }

    #[tokio::test(flavor = "current_thread")]
    async fn flush_delivers_the_invocation_metrics_inside_a_runtime() {
        let t = TestMeter::new();
        let telemetry = Telemetry::from_provider(t.provider.clone(), Duration::from_millis(500));
        telemetry.start_invocation("timer").finish(true);
        telemetry.flush().await;
        telemetry.flush().await;
        let s = t.snapshot();
        assert_eq!(
            s.counter("faas_invocations_total", &[("trigger", "timer")]),
            1.0
        );
        let (flushes, _) = s.histogram("telemetry_flush_duration_seconds", &[]);
        assert!(flushes >= 1, "the flush duration is recorded");
        assert_eq!(
            s.counter("telemetry_flush_failures_total", &[("reason", "timeout")]),
            0.0
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_hanging_exporter_costs_one_budget_and_the_next_flush_is_skipped() {
        let t = TestMeter::new();
        let slow = PeriodicReader::builder(SlowExporter {
            delay: Duration::from_millis(300),
        })
        .build();
        // The slow reader is the only one flush waits on; the in-memory reader of `t` observes.
        let exporter = opentelemetry_sdk::metrics::InMemoryMetricExporter::default();
        let provider = SdkMeterProvider::builder()
            .with_reader(slow)
            .with_reader(PeriodicReader::builder(exporter.clone()).build())
            .build();
        let telemetry = Telemetry::from_provider(provider.clone(), Duration::from_millis(30));
        telemetry.start_invocation("pubsub").finish(true); // something to export

        let started = Instant::now();
        telemetry.flush().await;
        let first = started.elapsed();
        assert!(first >= Duration::from_millis(30), "{first:?}");
        assert!(
            first < Duration::from_millis(150),
            "waited past the budget: {first:?}"
        );

        let started = Instant::now();
        telemetry.flush().await; // the first is still exporting
        assert!(started.elapsed() < Duration::from_millis(10));

        tokio::time::sleep(Duration::from_millis(400)).await;
        provider.force_flush().unwrap();
        let metrics = exporter.get_finished_metrics().unwrap();
        let mut reasons = Vec::new();
        for scope in metrics.last().unwrap().scope_metrics() {
            for metric in scope.metrics() {
                if metric.name() == "telemetry_flush_failures_total" {
                    if let AggregatedMetrics::U64(MetricData::Sum(sum)) = metric.data() {
                        for p in sum.data_points() {
                            reasons.push((
                                p.attributes().next().unwrap().value.to_string(),
                                p.value(),
                            ));
                        }
                    }
                }
            }
        }
        reasons.sort();
        assert_eq!(
            reasons,
            vec![
                ("busy".into(), 1),
                ("export_error".into(), 0),
                ("panic".into(), 0),
                ("timeout".into(), 1)
            ]
        );
        drop(t);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_dead_collector_costs_at_most_about_the_budget() {
        // A port nothing listens on: bind, read the port, close.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let endpoint = format!("http://127.0.0.1:{port}/opentelemetry/v1/metrics");
        let telemetry = Telemetry::from_config(config(Some(&endpoint), 50));
        assert!(telemetry.is_exporting());
        for _ in 0..3 {
            telemetry.start_invocation("pubsub").finish(true);
            let started = Instant::now();
            telemetry.flush().await;
            let took = started.elapsed();
            assert!(took < Duration::from_millis(120), "flush took {took:?}");
            // Let a timed-out flush finish so the next one is not skipped as busy.
            tokio::time::sleep(Duration::from_millis(60)).await;
        }
        let started = Instant::now();
        telemetry.shutdown().await;
        assert!(started.elapsed() < Duration::from_millis(500));
    }
}
