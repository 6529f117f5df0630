//! FaaS invocation metrics, after the OpenTelemetry FaaS semantic conventions
//! (`faas.invocations`, `faas.errors`, `faas.coldstarts`, `faas.invoke_duration`), named as they
//! appear in Prometheus: `faas_invocations_total`, `faas_errors_total`, `faas_coldstarts_total`,
//! `faas_invoke_duration_seconds`, each with a `trigger` label.

use std::time::{Duration, Instant};

use opentelemetry::KeyValue;
use opentelemetry::metrics::{Counter, Histogram, Meter};

use crate::catalogue as c;
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
            invocations: c::FAAS_INVOCATIONS.u64_counter(meter),
            errors: c::FAAS_ERRORS.u64_counter(meter),
            coldstarts: c::FAAS_COLDSTARTS.u64_counter(meter),
            duration: c::FAAS_INVOKE_DURATION.f64_histogram(meter),
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
        // Adding 0 keeps the series present, so error ratios read 0 rather than "no data".
        self.metrics.errors.add(u64::from(!ok), &labels);
        self.metrics.coldstarts.add(u64::from(self.cold), &labels);
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

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use crate::Telemetry;
    use crate::testing::TestMeter;
    use std::time::Duration;

    #[test]
    fn the_first_invocation_is_the_cold_start_and_errors_are_counted() {
        let t = TestMeter::new();
        let telemetry = Telemetry::from_provider(t.provider.clone(), Duration::from_millis(50));
        let first = telemetry.start_invocation("pubsub");
        assert!(first.is_cold_start());
        first.finish(true);
        let second = telemetry.start_invocation("pubsub");
        assert!(!second.is_cold_start());
        second.finish(false);
        drop(telemetry.start_invocation("timer")); // dropped unfinished: an error
        telemetry.start_invocation("cron").finish(true);

        let s = t.snapshot();
        let pubsub = [("trigger", "pubsub")];
        assert_eq!(s.counter("faas_invocations_total", &pubsub), 2.0);
        assert_eq!(s.counter("faas_errors_total", &pubsub), 1.0);
        assert_eq!(s.counter("faas_coldstarts_total", &pubsub), 1.0);
        assert_eq!(s.histogram("faas_invoke_duration_seconds", &pubsub).0, 2);
        assert_eq!(s.counter("faas_errors_total", &[("trigger", "timer")]), 1.0);
        assert_eq!(
            s.counter("faas_coldstarts_total", &[("trigger", "timer")]),
            0.0
        );
        assert_eq!(
            s.counter("faas_invocations_total", &[("trigger", "other")]),
            1.0
        );
    }
}
