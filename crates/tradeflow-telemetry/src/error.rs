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
}
