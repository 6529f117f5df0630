//! The signal-generator's metrics, derived from its [`ScanReport`].

use std::collections::BTreeMap;
use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry::metrics::{Counter, Gauge, Histogram, Meter};
use tradeflow_core::generate::ScanReport;

use crate::catalogue as c;
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
/// | `queue_depth` | `queue` (`signals`, `executions`) | [`GeneratorMetrics::record_queue_depth`] |
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
    queue_depth: Gauge<u64>,
}

impl GeneratorMetrics {
    pub fn new(meter: &Meter) -> Self {
        let metrics = GeneratorMetrics {
            signals_generated: c::SIGNALS_GENERATED.u64_counter(meter),
            generation_duration: c::SIGNAL_GENERATION_DURATION.f64_histogram(meter),
            scans: c::GENERATOR_SCANS.u64_counter(meter),
            scan_duration: c::GENERATOR_SCAN_DURATION.f64_histogram(meter),
            scan_errors: c::GENERATOR_SCAN_ERRORS.u64_counter(meter),
            candles_evaluated: c::GENERATOR_CANDLES_EVALUATED.u64_counter(meter),
            cursor_conflicts: c::GENERATOR_CURSOR_CONFLICTS.u64_counter(meter),
            publish_duration: c::QUEUE_PUBLISH_DURATION.f64_histogram(meter),
            publish_success: c::QUEUE_PUBLISH_SUCCESS.u64_counter(meter),
            publish_failure: c::QUEUE_PUBLISH_FAILURE.u64_counter(meter),
            dlq_depth: c::DLQ_DEPTH.u64_gauge(meter),
            queue_depth: c::QUEUE_DEPTH.u64_gauge(meter),
        };
        // Zero series for every error type, so error panels and ratios read 0, not "no data".
        for error_type in tradeflow_core::generate::STREAM_ERROR_TYPES {
            metrics.scan_errors.add(
                0,
                &[
                    KeyValue::new("generator", SCANNER),
                    KeyValue::new("error_type", error_type),
                ],
            );
        }
        metrics
    }

    /// Records one scan from its report.
    pub fn record_scan(&self, report: &ScanReport, scan_duration: Duration) {
        let scanner = [KeyValue::new("generator", SCANNER)];
        self.scans.add(1, &scanner);
        self.scan_duration.record(scan_duration.as_secs_f64(), &[]);
        self.candles_evaluated
            .add(report.candles_evaluated as u64, &[]);
        self.cursor_conflicts
            .add(report.cursor_conflicts as u64, &[]);

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

    /// Visible messages in a source queue (`signals`, `executions`: the same names as the DLQs').
    pub fn record_queue_depth(&self, queue: &'static str, depth: u64) {
        self.queue_depth
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

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::testing::{TestMeter, signal};
    use tradeflow_core::generate::StreamError;

    fn report() -> ScanReport {
        let mut r = ScanReport {
            streams: 4,
            candles_evaluated: 7,
            cursor_conflicts: 1,
            publish_calls: 2,
            publish_time: Duration::from_millis(12),
            ..ScanReport::default()
        };
        r.sent = vec![
            signal("a", "rsi_oversold", "rsi_generator", "AAPL"),
            signal("b", "rsi_oversold", "rsi_generator", "MSFT"),
            signal("c", "golden_cross", "ma_cross_generator", "AAPL"),
        ];
        r.undelivered = vec![
            (
                signal("d", "golden_cross", "ma_cross_generator", "TSLA"),
                "rejected by the queue: InvalidMessageContents".into(),
            ),
            (
                signal("e", "rsi_oversold", "rsi_generator", "TSLA"),
                "queue unavailable: timeout".into(),
            ),
        ];
        r.errors = vec![StreamError {
            stream: "NVDA#5".into(),
            error_type: "market_data",
            reason: "no data".into(),
            retryable: true,
        }];
        r.detector_time
            .insert("rsi_generator", Duration::from_micros(1500));
        r.detector_time
            .insert("ma_cross_generator", Duration::from_micros(700));
        r
    }

    #[test]
    fn a_scan_counts_sent_signals_by_type_and_generator() {
        let t = TestMeter::new();
        let m = GeneratorMetrics::new(&t.meter());
        m.record_scan(&report(), Duration::from_millis(40));
        let s = t.snapshot();

        let rsi = [
            ("signal_type", "rsi_oversold"),
            ("source", "rsi_generator"),
            ("generator", "rsi_generator"),
        ];
        assert_eq!(s.counter("signals_generated_total", &rsi), 2.0);
        let cross = [
            ("signal_type", "golden_cross"),
            ("source", "ma_cross_generator"),
            ("generator", "ma_cross_generator"),
        ];
        assert_eq!(s.counter("signals_generated_total", &cross), 1.0);
        assert_eq!(
            s.series("signals_generated_total").len(),
            2,
            "undelivered signals are not generated"
        );

        assert_eq!(
            s.counter(
                "queue_publish_success_total",
                &[("signal_type", "rsi_oversold")]
            ),
            2.0
        );
        assert_eq!(
            s.counter(
                "queue_publish_failure_total",
                &[("signal_type", "golden_cross"), ("error_type", "rejected")]
            ),
            1.0
        );
        assert_eq!(
            s.counter(
                "queue_publish_failure_total",
                &[
                    ("signal_type", "rsi_oversold"),
                    ("error_type", "send_failed")
                ]
            ),
            1.0
        );
        let (n, sum) = s.histogram("queue_publish_duration_seconds", &[]);
        assert_eq!(n, 1);
        assert!((sum - 0.012).abs() < 1e-9);
    }

    #[test]
    fn a_scan_records_scans_errors_and_detector_time() {
        let t = TestMeter::new();
        let m = GeneratorMetrics::new(&t.meter());
        m.record_scan(&report(), Duration::from_millis(40));
        m.record_scan(&ScanReport::default(), Duration::from_millis(3));
        let s = t.snapshot();

        assert_eq!(
            s.counter("generator_scans_total", &[("generator", "scanner")]),
            2.0
        );
        assert_eq!(
            s.counter(
                "generator_scan_errors_total",
                &[("generator", "scanner"), ("error_type", "market_data")]
            ),
            1.0
        );
        let (n, sum) = s.histogram(
            "signal_generation_duration_seconds",
            &[("generator", "rsi_generator")],
        );
        assert_eq!(n, 1);
        assert!((sum - 0.0015).abs() < 1e-9);
        assert_eq!(s.histogram("generator_scan_duration_seconds", &[]).0, 2);
        assert_eq!(s.counter("generator_candles_evaluated_total", &[]), 7.0);
        assert_eq!(s.counter("generator_cursor_conflicts_total", &[]), 1.0);
        assert_eq!(
            s.histogram("queue_publish_duration_seconds", &[]).0,
            1,
            "a scan that sent nothing records no publish time"
        );
    }

    #[test]
    fn units_and_buckets_resolve_milliseconds() {
        let t = TestMeter::new();
        let m = GeneratorMetrics::new(&t.meter());
        m.record_scan(&report(), Duration::from_millis(40));
        let s = t.snapshot();
        let p = s.find("generator_scan_duration_seconds", &[]).unwrap();
        assert_eq!(p.unit, "s");
        match &p.value {
            crate::testing::Value::Histogram { bounds, .. } => {
                assert_eq!(bounds.as_slice(), crate::buckets::DURATION_SECONDS);
                assert!(bounds[0] <= 0.001);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            s.find("generator_scans_total", &[("generator", "scanner")])
                .unwrap()
                .unit,
            "1"
        );
    }

    #[test]
    fn dlq_depth_keeps_the_last_value_per_queue() {
        let t = TestMeter::new();
        let m = GeneratorMetrics::new(&t.meter());
        m.record_dlq_depth(DLQ_SIGNALS, 3);
        m.record_dlq_depth(DLQ_SIGNALS, 1);
        m.record_dlq_depth(DLQ_EXECUTIONS, 0);
        m.record_dlq_depth("https://sqs/some-queue-url", 9);
        let s = t.snapshot();
        assert_eq!(s.gauge("dlq_depth", &[("queue", "signals")]), Some(1.0));
        assert_eq!(s.gauge("dlq_depth", &[("queue", "executions")]), Some(0.0));
        assert_eq!(s.gauge("dlq_depth", &[("queue", "other")]), Some(9.0));
    }

    #[test]
    fn queue_depth_is_its_own_gauge_per_source_queue() {
        let t = TestMeter::new();
        let m = GeneratorMetrics::new(&t.meter());
        m.record_queue_depth(DLQ_SIGNALS, 12);
        m.record_queue_depth(DLQ_EXECUTIONS, 4);
        m.record_dlq_depth(DLQ_SIGNALS, 1);
        let s = t.snapshot();
        assert_eq!(s.gauge("queue_depth", &[("queue", "signals")]), Some(12.0));
        assert_eq!(
            s.gauge("queue_depth", &[("queue", "executions")]),
            Some(4.0)
        );
        assert_eq!(s.gauge("dlq_depth", &[("queue", "signals")]), Some(1.0));
    }
}
