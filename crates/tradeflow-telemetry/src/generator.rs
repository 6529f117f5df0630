//! The signal-generator's metrics, derived from its [`ScanReport`].

use std::collections::BTreeMap;
use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry::metrics::{Counter, Gauge, Histogram, Meter};
use tradeflow_core::generate::ScanReport;

use crate::buckets;
use crate::labels::{code_name, one_of};

/// `dlq_depth{queue="signals"}`: the signal queue's dead-letter queue.
pub const DLQ_SIGNALS: &str = "signals";
/// `dlq_depth{queue="executions"}`: the execution queue's dead-letter queue.
pub const DLQ_EXECUTIONS: &str = "executions";
const DLQ_QUEUES: &[&str] = &[DLQ_SIGNALS, DLQ_EXECUTIONS];

/// `generator` label of scan-level metrics and of errors not tied to one detector family.
const SCANNER: &str = "scanner";

/// Instruments of the signal-generator. Create once per process from [`crate::Telemetry::meter`].
///
/// | Prometheus name | labels | from |
/// |---|---|---|
/// | `signals_generated_total` | `signal_type`, `source`, `generator` | one per signal the queue accepted |
/// | `signal_generation_duration_seconds` | `generator` | time in each detector family per scan |
/// | `generator_scans_total` | `generator="scanner"` | one per scan |
/// | `generator_scan_duration_seconds` | — | the whole scan |
/// | `generator_scan_errors_total` | `generator="scanner"`, `error_type` | one per stream error |
/// | `generator_candles_evaluated_total` | — | closed candles run through the detectors |
/// | `generator_cursor_conflicts_total` | — | streams another scan moved first |
/// | `queue_publish_duration_seconds` | — | time sending the scan's signals (when any) |
/// | `queue_publish_success_total` | `signal_type` | accepted signals |
/// | `queue_publish_failure_total` | `signal_type`, `error_type` | signals not accepted after retries |
/// | `dlq_depth` | `queue` (`signals`, `executions`) | [`GeneratorMetrics::record_dlq_depth`] |
#[derive(Clone, Debug)]
pub struct GeneratorMetrics {
    signals_generated: Counter<u64>,
    generation_duration: Histogram<f64>,
    scans: Counter<u64>,
    scan_duration: Histogram<f64>,
    scan_errors: Counter<u64>,
    candles_evaluated: Counter<u64>,
    cursor_conflicts: Counter<u64>,
    publish_duration: Histogram<f64>,
    publish_success: Counter<u64>,
    publish_failure: Counter<u64>,
    dlq_depth: Gauge<u64>,
}

impl GeneratorMetrics {
    pub fn new(meter: &Meter) -> Self {
        let counter = |name: &'static str, description: &'static str| {
            meter
                .u64_counter(name)
                .with_unit("1")
                .with_description(description)
                .build()
        };
        let seconds = |name: &'static str, description: &'static str| {
            meter
                .f64_histogram(name)
                .with_unit("s")
                .with_description(description)
                .with_boundaries(buckets::DURATION_SECONDS.to_vec())
                .build()
        };
        GeneratorMetrics {
            signals_generated: counter(
                "signals_generated",
                "Signals generated and accepted by the signal queue.",
            ),
            generation_duration: seconds(
                "signal_generation_duration",
                "Time spent in one detector family during one scan.",
            ),
            scans: counter("generator_scans", "Scans run."),
            scan_duration: seconds("generator_scan_duration", "Duration of a whole scan."),
            scan_errors: counter(
                "generator_scan_errors",
                "Streams that could not be scanned, by error type.",
            ),
            candles_evaluated: counter(
                "generator_candles_evaluated",
                "Closed candles run through the detectors.",
            ),
            cursor_conflicts: counter(
                "generator_cursor_conflicts",
                "Streams whose cursor another scan moved first.",
            ),
            publish_duration: seconds(
                "queue_publish_duration",
                "Time spent sending one scan's signals to the queue (all batches and retries).",
            ),
            publish_success: counter("queue_publish_success", "Signals the queue accepted."),
            publish_failure: counter(
                "queue_publish_failure",
                "Signals the queue did not accept after retries.",
            ),
            dlq_depth: meter
                .u64_gauge("dlq_depth")
                .with_description("Messages waiting in a dead-letter queue.")
                .build(),
        }
    }

    /// Records one scan from its report.
    pub fn record_scan(&self, report: &ScanReport, scan_duration: Duration) {
        let scanner = [KeyValue::new("generator", SCANNER)];
        self.scans.add(1, &scanner);
        self.scan_duration.record(scan_duration.as_secs_f64(), &[]);
        self.candles_evaluated
            .add(report.candles_evaluated as u64, &[]);
        if report.cursor_conflicts > 0 {
            self.cursor_conflicts
                .add(report.cursor_conflicts as u64, &[]);
        }

        for (detector, time) in &report.detector_time {
            self.generation_duration.record(
                time.as_secs_f64(),
                &[KeyValue::new("generator", code_name(detector))],
            );
        }

        for error in &report.errors {
            self.scan_errors.add(
                1,
                &[
                    KeyValue::new("generator", SCANNER),
                    KeyValue::new("error_type", code_name(error.error_type)),
                ],
            );
        }

        // Signals per (type, source), then one add per series.
        let mut generated: BTreeMap<(String, String), u64> = BTreeMap::new();
        for signal in &report.sent {
            *generated
                .entry((
                    code_name(signal.signal_type.as_str()),
                    code_name(&signal.source),
                ))
                .or_default() += 1;
        }
        let mut accepted: BTreeMap<String, u64> = BTreeMap::new();
        for ((signal_type, source), n) in generated {
            self.signals_generated.add(
                n,
                &[
                    KeyValue::new("signal_type", signal_type.clone()),
                    KeyValue::new("generator", source.clone()),
                    KeyValue::new("source", source),
                ],
            );
            *accepted.entry(signal_type).or_default() += n;
        }
        for (signal_type, n) in accepted {
            self.publish_success
                .add(n, &[KeyValue::new("signal_type", signal_type)]);
        }

        for (signal, reason) in &report.undelivered {
            self.publish_failure.add(
                1,
                &[
                    KeyValue::new("signal_type", code_name(signal.signal_type.as_str())),
                    KeyValue::new("error_type", publish_error_type(reason)),
                ],
            );
        }

        if report.publish_calls > 0 {
            self.publish_duration
                .record(report.publish_time.as_secs_f64(), &[]);
        }
    }

    /// Records a dead-letter queue's depth. `queue` is `"signals"` or `"executions"`; anything
    /// else is recorded as `"other"`.
    pub fn record_dlq_depth(&self, queue: &'static str, depth: u64) {
        self.dlq_depth
            .record(depth, &[KeyValue::new("queue", one_of(queue, DLQ_QUEUES))]);
    }
}

/// `error_type` of an undelivered signal. The report carries only the reason text:
/// `publish::send_all` writes "rejected by the queue: CODE" when the queue blamed the entry.
fn publish_error_type(reason: &str) -> &'static str {
    if reason.starts_with("rejected by the queue") {
        "rejected"
    } else {
        "send_failed"
    }
}
