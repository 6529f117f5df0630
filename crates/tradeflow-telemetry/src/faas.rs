//! FaaS invocation metrics, after the OpenTelemetry FaaS semantic conventions
//! (`faas.invocations`, `faas.errors`, `faas.coldstarts`, `faas.invoke_duration`), named as they
//! appear in Prometheus: `faas_invocations_total`, `faas_errors_total`, `faas_coldstarts_total`,
//! `faas_invoke_duration_seconds`, each with a `trigger` label.

use std::time::{Duration, Instant};

use opentelemetry::KeyValue;
use opentelemetry::metrics::{Counter, Histogram, Meter};

use crate::buckets;
use crate::labels::one_of;

/// An SQS-triggered invocation.
pub const TRIGGER_PUBSUB: &str = "pubsub";
/// A scheduled invocation.
pub const TRIGGER_TIMER: &str = "timer";

const TRIGGERS: &[&str] = &[TRIGGER_PUBSUB, TRIGGER_TIMER, "http", "datasource"];

#[derive(Clone, Debug)]
pub(crate) struct FaasMetrics {
    invocations: Counter<u64>,
    errors: Counter<u64>,
    coldstarts: Counter<u64>,
    duration: Histogram<f64>,
}

impl FaasMetrics {
    pub(crate) fn new(meter: &Meter) -> Self {
        FaasMetrics {
            invocations: meter
                .u64_counter("faas_invocations")
                .with_unit("1")
                .with_description("Invocations of the function.")
                .build(),
            errors: meter
                .u64_counter("faas_errors")
                .with_unit("1")
                .with_description("Invocations that ended in an error.")
                .build(),
            coldstarts: meter
                .u64_counter("faas_coldstarts")
                .with_unit("1")
                .with_description("Invocations that were the first of their process.")
                .build(),
            duration: meter
                .f64_histogram("faas_invoke_duration")
                .with_unit("s")
                .with_description("Handler time per invocation (before the metrics flush).")
                .with_boundaries(buckets::DURATION_SECONDS.to_vec())
                .build(),
        }
    }
}

/// One invocation being timed. [`Invocation::finish`] records it; dropped unfinished (a panic or
/// an early return), it is recorded as an error.
#[must_use = "call finish(ok) when the handler is done"]
#[derive(Debug)]
pub struct Invocation {
    metrics: FaasMetrics,
    trigger: &'static str,
    started: Instant,
    cold: bool,
    finished: bool,
}

/// The name the wiring code may prefer; the same type.
pub type InvocationGuard = Invocation;

impl Invocation {
    pub(crate) fn start(metrics: FaasMetrics, trigger: &'static str, cold: bool) -> Self {
        Invocation {
            metrics,
            trigger: one_of(trigger, TRIGGERS),
            started: Instant::now(),
            cold,
            finished: false,
        }
    }

    /// Whether this is the first invocation of the process.
    pub fn is_cold_start(&self) -> bool {
        self.cold
    }

    /// Time since the invocation started.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Records the invocation (`ok = false` counts an error) and returns its duration.
    pub fn finish(mut self, ok: bool) -> Duration {
        self.record(ok)
    }

    fn record(&mut self, ok: bool) -> Duration {
        self.finished = true;
        let elapsed = self.started.elapsed();
        let labels = [KeyValue::new("trigger", self.trigger)];
        self.metrics.invocations.add(1, &labels);
        if !ok {
            self.metrics.errors.add(1, &labels);
        }
        if self.cold {
            self.metrics.coldstarts.add(1, &labels);
        }
        self.metrics.duration.record(elapsed.as_secs_f64(), &labels);
        elapsed
    }
}

impl Drop for Invocation {
    fn drop(&mut self) {
        if !self.finished {
            self.record(false);
        }
    }
}
