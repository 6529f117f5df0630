//! Errors of the telemetry set-up. None of them fails a function: [`crate::Telemetry::init`] logs
//! them and carries on without exporting.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum TelemetryError {
    /// The OTLP metric exporter could not be built (bad endpoint, HTTP client failure).
    #[error("building the OTLP metric exporter for {endpoint}")]
    Exporter {
        endpoint: String,
        #[source]
        source: opentelemetry_otlp::ExporterBuildError,
    },
    /// The OTLP span exporter could not be built.
    #[error("building the OTLP span exporter for {endpoint}")]
    SpanExporter {
        endpoint: String,
        #[source]
        source: opentelemetry_otlp::ExporterBuildError,
    },
    /// The OTLP endpoint is not plain `http://` (the in-function client speaks only that).
    #[error(
        "OTLP endpoint {endpoint} is not http://: the functions export to a collector beside them \
         (the Lambda collector layer on 127.0.0.1:4318, or a local collector), in plain HTTP"
    )]
    UnsupportedEndpoint { endpoint: String },
    /// The exporter's HTTP client needs the function's Tokio runtime, and there is none.
    #[error("no Tokio runtime to send OTLP requests on (telemetry must start inside the runtime)")]
    NoRuntime,
}
