//! The trigger-dispatcher's metrics, derived from its [`DispatchReport`].

use std::collections::HashSet;
use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry::metrics::{Counter, Gauge, Histogram, Meter};
use tradeflow_core::dispatch::DispatchReport;

use crate::buckets;
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
        let counter = |name: &'static str, description: &'static str| {
            meter
                .u64_counter(name)
                .with_unit("1")
                .with_description(description)
                .build()
        };
        DispatcherMetrics {
            consumed: counter("signals_consumed", "Valid signals received."),
            matched: counter(
                "pipelines_matched",
                "(pipeline, ticker) fan-outs matched, after de-duplication within the batch.",
            ),
            enqueued: counter("pipelines_enqueued", "Execution requests sent."),
            skipped_running: counter(
                "pipelines_skipped_running",
                "Fan-outs skipped because the (pipeline, ticker) was already running.",
            ),
            deduplicated: counter(
                "pipelines_deduplicated",
                "Fan-outs dropped because an earlier signal of the batch had the same (pipeline, ticker).",
            ),
            already_enqueued: counter(
                "pipelines_already_enqueued",
                "Fan-outs an earlier delivery of the same message had already enqueued.",
            ),
            batch_size: meter
                .u64_histogram("batch_size")
                .with_description("Messages received per batch.")
                .with_boundaries(buckets::BATCH_SIZE.to_vec())
                .build(),
            batch_duration: meter
                .f64_histogram("batch_processing_duration")
                .with_unit("s")
                .with_description("Time to dispatch one batch.")
                .with_boundaries(buckets::DURATION_SECONDS.to_vec())
                .build(),
            cache_size: meter
                .u64_gauge("pipeline_cache_size")
                .with_description("Signal-triggered pipelines in the cached index.")
                .build(),
            cache_refreshes: counter("pipeline_cache_refreshes", "Reloads of the pipeline index."),
            lag: meter
                .f64_histogram("queue_consumer_lag")
                .with_unit("s")
                .with_description("Age of a signal when the dispatcher consumed it.")
                .with_boundaries(buckets::LAG_SECONDS.to_vec())
                .build(),
            lag_max: meter
                .f64_gauge("queue_consumer_lag_max")
                .with_unit("s")
                .with_description("Age of the oldest signal of the last batch.")
                .build(),
            rejected: counter(
                "messages_rejected",
                "Poison messages (bad bodies), by reason.",
            ),
            failures: counter(
                "dispatch_failures",
                "Messages failed for redelivery because of an infrastructure error, by reason.",
            ),
        }
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
