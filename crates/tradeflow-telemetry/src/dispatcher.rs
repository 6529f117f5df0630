//! The trigger-dispatcher's metrics, derived from its [`DispatchReport`].

use std::collections::HashSet;
use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry::metrics::{Counter, Gauge, Histogram, Meter};
use tradeflow_core::dispatch::DispatchReport;

use crate::catalogue as c;
use crate::labels::code_name;

/// Instruments of the trigger-dispatcher. Create once per process from [`crate::Telemetry::meter`].
///
/// | Prometheus name | labels | from |
/// |---|---|---|
/// | `signals_consumed_total` | — | valid signals received |
/// | `pipelines_matched_total` | — | (pipeline, ticker) fan-outs after in-batch dedup |
/// | `pipelines_enqueued_total` | — | execution requests sent |
/// | `pipelines_skipped_running_total` | — | fan-outs whose (pipeline, ticker) was already running |
/// | `pipelines_deduplicated_total` | — | fan-outs dropped as repeats within the batch |
/// | `pipelines_already_enqueued_total` | — | fan-outs an earlier delivery had already sent |
/// | `batch_size` (histogram) | — | messages received per batch |
/// | `batch_processing_duration_seconds` | — | the whole batch |
/// | `pipeline_cache_size` (gauge) | — | pipelines in the cached index |
/// | `pipeline_cache_refreshes_total` | — | index reloads |
/// | `queue_consumer_lag_seconds` | — | age of each valid signal when consumed |
/// | `queue_consumer_lag_max_seconds` (gauge) | — | the oldest signal of the last batch |
/// | `messages_rejected_total` | `reason` | poison messages (bad bodies), by parse failure |
/// | `dispatch_failures_total` | `reason` | messages failed for redelivery (store/queue errors) |
#[derive(Clone, Debug)]
pub struct DispatcherMetrics {
    consumed: Counter<u64>,
    matched: Counter<u64>,
    enqueued: Counter<u64>,
    skipped_running: Counter<u64>,
    deduplicated: Counter<u64>,
    already_enqueued: Counter<u64>,
    batch_size: Histogram<u64>,
    batch_duration: Histogram<f64>,
    cache_size: Gauge<u64>,
    cache_refreshes: Counter<u64>,
    lag: Histogram<f64>,
    lag_max: Gauge<f64>,
    rejected: Counter<u64>,
    failures: Counter<u64>,
}

impl DispatcherMetrics {
    pub fn new(meter: &Meter) -> Self {
        let metrics = DispatcherMetrics {
            consumed: c::SIGNALS_CONSUMED.u64_counter(meter),
            matched: c::PIPELINES_MATCHED.u64_counter(meter),
            enqueued: c::PIPELINES_ENQUEUED.u64_counter(meter),
            skipped_running: c::PIPELINES_SKIPPED_RUNNING.u64_counter(meter),
            deduplicated: c::PIPELINES_DEDUPLICATED.u64_counter(meter),
            already_enqueued: c::PIPELINES_ALREADY_ENQUEUED.u64_counter(meter),
            batch_size: c::BATCH_SIZE.u64_histogram(meter),
            batch_duration: c::BATCH_PROCESSING_DURATION.f64_histogram(meter),
            cache_size: c::PIPELINE_CACHE_SIZE.u64_gauge(meter),
            cache_refreshes: c::PIPELINE_CACHE_REFRESHES.u64_counter(meter),
            lag: c::QUEUE_CONSUMER_LAG.f64_histogram(meter),
            lag_max: c::QUEUE_CONSUMER_LAG_MAX.f64_gauge(meter),
            rejected: c::MESSAGES_REJECTED.u64_counter(meter),
            failures: c::DISPATCH_FAILURES.u64_counter(meter),
        };
        // Zero series for every reason, so rejection and failure panels read 0, not "no data".
        for reason in tradeflow_core::signal::SignalError::REASON_LABELS {
            metrics.rejected.add(0, &[KeyValue::new("reason", reason)]);
        }
        for reason in tradeflow_core::dispatch::INFRA_FAILURE_LABELS {
            metrics.failures.add(0, &[KeyValue::new("reason", reason)]);
        }
        metrics
    }

    /// Records one batch from its report.
    pub fn record_batch(&self, report: &DispatchReport, duration: Duration) {
        self.batch_size.record(report.received as u64, &[]);
        self.batch_duration.record(duration.as_secs_f64(), &[]);
        for (counter, n) in [
            (&self.consumed, report.consumed),
            (&self.matched, report.matched),
            (&self.enqueued, report.enqueued),
            (&self.skipped_running, report.skipped_running),
            (&self.deduplicated, report.deduplicated),
            (&self.already_enqueued, report.already_enqueued),
        ] {
            // Adding 0 still creates the series: the rate is 0, not absent.
            counter.add(n as u64, &[]);
        }
        if report.consumed > 0 {
            self.cache_size.record(report.cache_size as u64, &[]);
        }
        if report.cache_refreshed {
            self.cache_refreshes.add(1, &[]);
        }

        let mut max_lag: Option<f64> = None;
        for &lag_ms in &report.lags_ms {
            let lag = lag_ms.max(0) as f64 / 1000.0;
            self.lag.record(lag, &[]);
            max_lag = Some(max_lag.map_or(lag, |m| m.max(lag)));
        }
        if let Some(lag) = max_lag {
            self.lag_max.record(lag, &[]);
        }

        // One count per failed message (a message can fail several fan-outs), first reason.
        let mut seen = HashSet::new();
        for failure in &report.failures {
            if !seen.insert(failure.message_id.as_str()) {
                continue;
            }
            let labels = [KeyValue::new("reason", code_name(failure.label))];
            if failure.poison {
                self.rejected.add(1, &labels);
            } else {
                self.failures.add(1, &labels);
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::testing::TestMeter;
    use tradeflow_core::dispatch::MessageFailure;

    fn failure(id: &str, label: &'static str, poison: bool) -> MessageFailure {
        MessageFailure {
            message_id: id.into(),
            label,
            reason: format!("{label} happened"),
            poison,
        }
    }

    fn report() -> DispatchReport {
        DispatchReport {
            received: 6,
            consumed: 4,
            failures: vec![
                failure("m5", "malformed_json", true),
                failure("m6", "invalid_signal", true),
                // One message failing two fan-outs counts once.
                failure("m2", "execution_queue", false),
                failure("m2", "execution_queue", false),
                failure("m3", "lease_store", false),
            ],
            matched: 9,
            enqueued: 5,
            skipped_running: 2,
            already_enqueued: 1,
            deduplicated: 3,
            lags_ms: vec![120, 2500, 40, 900],
            signal_types: vec!["rsi_oversold".into(); 4],
            cache_size: 42,
            cache_refreshed: true,
            ..DispatchReport::default()
        }
    }

    #[test]
    fn a_batch_counts_each_stage_of_the_fan_out() {
        let t = TestMeter::new();
        let m = DispatcherMetrics::new(&t.meter());
        m.record_batch(&report(), Duration::from_millis(30));
        let s = t.snapshot();
        assert_eq!(s.counter("signals_consumed_total", &[]), 4.0);
        assert_eq!(s.counter("pipelines_matched_total", &[]), 9.0);
        assert_eq!(s.counter("pipelines_enqueued_total", &[]), 5.0);
        assert_eq!(s.counter("pipelines_skipped_running_total", &[]), 2.0);
        assert_eq!(s.counter("pipelines_deduplicated_total", &[]), 3.0);
        assert_eq!(s.counter("pipelines_already_enqueued_total", &[]), 1.0);
        assert_eq!(s.counter("pipeline_cache_refreshes_total", &[]), 1.0);
        assert_eq!(s.gauge("pipeline_cache_size", &[]), Some(42.0));
        assert_eq!(s.histogram("batch_size", &[]), (1, 6.0));
        assert_eq!(s.find("batch_size", &[]).unwrap().unit, "");
        let (n, sum) = s.histogram("batch_processing_duration_seconds", &[]);
        assert_eq!(n, 1);
        assert!((sum - 0.03).abs() < 1e-9);
    }

    #[test]
    fn lag_is_recorded_per_signal_with_the_batch_maximum() {
        let t = TestMeter::new();
        let m = DispatcherMetrics::new(&t.meter());
        m.record_batch(&report(), Duration::from_millis(30));
        let s = t.snapshot();
        let (n, sum) = s.histogram("queue_consumer_lag_seconds", &[]);
        assert_eq!(n, 4);
        assert!((sum - 3.56).abs() < 1e-9);
        assert_eq!(s.gauge("queue_consumer_lag_max_seconds", &[]), Some(2.5));
    }

    #[test]
    fn poison_messages_and_infrastructure_failures_are_told_apart() {
        let t = TestMeter::new();
        let m = DispatcherMetrics::new(&t.meter());
        m.record_batch(&report(), Duration::from_millis(30));
        let s = t.snapshot();
        assert_eq!(
            s.counter("messages_rejected_total", &[("reason", "malformed_json")]),
            1.0
        );
        assert_eq!(
            s.counter("messages_rejected_total", &[("reason", "invalid_signal")]),
            1.0
        );
        assert_eq!(
            s.counter("dispatch_failures_total", &[("reason", "execution_queue")]),
            1.0
        );
        assert_eq!(
            s.counter("dispatch_failures_total", &[("reason", "lease_store")]),
            1.0
        );
    }

    #[test]
    fn an_all_poison_batch_leaves_cache_and_lag_untouched() {
        let t = TestMeter::new();
        let m = DispatcherMetrics::new(&t.meter());
        let r = DispatchReport {
            received: 1,
            failures: vec![failure("m1", "malformed_json", true)],
            ..DispatchReport::default()
        };
        m.record_batch(&r, Duration::from_millis(1));
        let s = t.snapshot();
        assert_eq!(s.gauge("pipeline_cache_size", &[]), None);
        assert_eq!(s.gauge("queue_consumer_lag_max_seconds", &[]), None);
        assert_eq!(s.counter("signals_consumed_total", &[]), 0.0);
        assert!(
            s.find("signals_consumed_total", &[]).is_some(),
            "zero is exported, not absent"
        );
    }
}
