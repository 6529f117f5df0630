//! The pipeline-executor's metrics, derived from each message's [`MessageReport`].

use opentelemetry::KeyValue;
use opentelemetry::metrics::{Counter, Histogram, Meter};
use tradeflow_core::execute::{MessageReport, Outcome};
use tradeflow_core::execution::{ExecutionStatus, StepStatus};
use tradeflow_core::pipeline::StepKind;

use crate::catalogue as c;
use crate::labels::{OTHER, code_name, one_of};

/// Instruments of the pipeline-executor. Create once per process from [`crate::Telemetry::meter`].
///
/// | Prometheus name | labels | from |
/// |---|---|---|
/// | `pipeline_executions_total` | `status` (`completed`, `failed`, `skipped`) | runs that ended |
/// | `pipeline_execution_duration_seconds` | `status` | handling time of those runs |
/// | `pipeline_step_duration_seconds` | `step`, `status` (`completed`, `failed`) | steps that ran |
/// | `orders_created_total` | — | completed runs whose decision is `order_placed` |
/// | `execution_duplicates_total` | `status` | redeliveries of a finished run (its status), or of one running elsewhere (`running`) |
/// | `pipeline_executions_skipped_total` | `decision` ([`tradeflow_core::execute::SKIP_DECISIONS`]) | runs that ended SKIPPED |
/// | `execution_retries_total` | `reason` ([`tradeflow_core::execute::RETRY_LABELS`]) | messages failed for redelivery (transient errors, run in progress elsewhere) |
/// | `messages_rejected_total` | `reason="invalid_request"` | poison messages and runs that cannot be recorded |
/// | `execution_queue_lag_seconds` | — | age of each request when picked up |
#[derive(Clone, Debug)]
pub struct ExecutorMetrics {
    executions: Counter<u64>,
    execution_duration: Histogram<f64>,
    step_duration: Histogram<f64>,
    orders: Counter<u64>,
    duplicates: Counter<u64>,
    skipped: Counter<u64>,
    retries: Counter<u64>,
    rejected: Counter<u64>,
    lag: Histogram<f64>,
}

impl ExecutorMetrics {
    pub fn new(meter: &Meter) -> Self {
        let metrics = ExecutorMetrics {
            executions: c::PIPELINE_EXECUTIONS.u64_counter(meter),
            execution_duration: c::PIPELINE_EXECUTION_DURATION.f64_histogram(meter),
            step_duration: c::PIPELINE_STEP_DURATION.f64_histogram(meter),
            orders: c::ORDERS_CREATED.u64_counter(meter),
            duplicates: c::EXECUTION_DUPLICATES.u64_counter(meter),
            skipped: c::EXECUTIONS_SKIPPED.u64_counter(meter),
            retries: c::EXECUTION_RETRIES.u64_counter(meter),
            rejected: c::MESSAGES_REJECTED.u64_counter(meter),
            lag: c::EXECUTION_QUEUE_LAG.f64_histogram(meter),
        };
        // Zero series, so success/failure ratios and order rates read 0 rather than "no data".
        for status in ["completed", "failed", "skipped"] {
            metrics
                .executions
                .add(0, &[KeyValue::new("status", status)]);
        }
        metrics.orders.add(0, &[]);
        for status in ["completed", "failed", "skipped", "running"] {
            metrics
                .duplicates
                .add(0, &[KeyValue::new("status", status)]);
        }
        for decision in tradeflow_core::execute::SKIP_DECISIONS {
            metrics
                .skipped
                .add(0, &[KeyValue::new("decision", decision)]);
        }
        for reason in tradeflow_core::execute::RETRY_LABELS {
            metrics.retries.add(0, &[KeyValue::new("reason", reason)]);
        }
        metrics
            .rejected
            .add(0, &[KeyValue::new("reason", "invalid_request")]);
        metrics
    }

    /// Records every message of a batch.
    pub fn record_batch(&self, reports: &[MessageReport]) {
        for report in reports {
            self.record(report);
        }
    }

    /// A run the scheduled sweep ended FAILED (`abandoned`: its last attempt died): one more
    /// execution ended, by status, with no duration (its attempt's is unknown).
    pub fn record_abandoned(&self, record: &tradeflow_core::execution::ExecutionRecord) {
        self.executions
            .add(1, &[KeyValue::new("status", status_label(record.status))]);
    }

    /// Records one message from its report.
    pub fn record(&self, report: &MessageReport) {
        if let Some(lag_ms) = report.lag_ms {
            self.lag.record(lag_ms.max(0) as f64 / 1000.0, &[]);
        }
        match &report.outcome {
            Outcome::Finished(record) | Outcome::FinishedLeaseHeld { record, .. } => {
                let status = [KeyValue::new("status", status_label(record.status))];
                self.executions.add(1, &status);
                self.execution_duration
                    .record(report.duration.as_secs_f64(), &status);
                for step in &record.steps {
                    let step_status = match step.status {
                        StepStatus::Completed => "completed",
                        StepStatus::Failed => "failed",
                        // Not run: a zero duration would only drag the quantiles down.
                        StepStatus::Skipped => continue,
                    };
                    self.step_duration.record(
                        step.duration_ms.max(0.0) / 1000.0,
                        &[
                            KeyValue::new("step", step_label(&step.step)),
                            KeyValue::new("status", step_status),
                        ],
                    );
                }
                if record.status == ExecutionStatus::Skipped {
                    let decision = one_of(
                        record.decision.as_deref().unwrap_or(""),
                        &tradeflow_core::execute::SKIP_DECISIONS,
                    );
                    self.skipped.add(1, &[KeyValue::new("decision", decision)]);
                }
                if record.status == ExecutionStatus::Completed
                    && record.decision.as_deref() == Some("order_placed")
                {
                    self.orders.add(1, &[]);
                }
            }
            Outcome::Duplicate(status) => {
                self.duplicates
                    .add(1, &[KeyValue::new("status", status_label(*status))]);
            }
            Outcome::InProgressElsewhere => {
                self.duplicates
                    .add(1, &[KeyValue::new("status", "running")]);
            }
            Outcome::Retry { label, .. } => {
                self.retries
                    .add(1, &[KeyValue::new("reason", code_name(label))]);
            }
            Outcome::Rejected { .. } => {
                self.rejected
                    .add(1, &[KeyValue::new("reason", "invalid_request")]);
            }
        }
    }
}

/// Lowercase status: `pending`, `running`, `completed`, `failed`, `skipped`.
fn status_label(status: ExecutionStatus) -> &'static str {
    match status {
        ExecutionStatus::Pending => "pending",
        ExecutionStatus::Running => "running",
        ExecutionStatus::Completed => "completed",
        ExecutionStatus::Failed => "failed",
        ExecutionStatus::Skipped => "skipped",
    }
}

/// A step name from [`StepKind`], else `"other"`.
fn step_label(step: &str) -> &'static str {
    StepKind::ALL
        .iter()
        .map(|k| k.as_str())
        .find(|name| *name == step)
        .unwrap_or(OTHER)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::testing::{TestMeter, record};
    use std::time::Duration;

    fn report(outcome: Outcome, ms: u64, lag_ms: Option<i64>) -> MessageReport {
        MessageReport {
            message_id: "m".into(),
            outcome,
            duration: Duration::from_millis(ms),
            lag_ms,
        }
    }

    fn finished(
        status: ExecutionStatus,
        decision: Option<&str>,
        steps: &[(&str, &str, f64)],
    ) -> Outcome {
        Outcome::Finished(Box::new(record(status, decision, steps)))
    }

    #[test]
    fn finished_runs_count_by_lowercase_status_with_durations() {
        let t = TestMeter::new();
        let m = ExecutorMetrics::new(&t.meter());
        let steps = [
            ("market_snapshot", "COMPLETED", 4.0),
            ("bias", "COMPLETED", 1.5),
            ("strategy", "COMPLETED", 2.0),
            ("risk", "COMPLETED", 0.5),
            ("paper_order", "COMPLETED", 8.0),
        ];
        m.record_batch(&[
            report(
                finished(ExecutionStatus::Completed, Some("order_placed"), &steps),
                20,
                Some(1500),
            ),
            report(
                finished(ExecutionStatus::Completed, Some("no_trade"), &steps[..2]),
                10,
                Some(500),
            ),
            report(
                finished(
                    ExecutionStatus::Failed,
                    None,
                    &[("market_snapshot", "FAILED", 3.0), ("bias", "SKIPPED", 0.0)],
                ),
                5,
                None,
            ),
            report(
                finished(ExecutionStatus::Skipped, Some("pipeline_inactive"), &[]),
                1,
                Some(0),
            ),
        ]);
        let s = t.snapshot();
        assert_eq!(
            s.counter("pipeline_executions_total", &[("status", "completed")]),
            2.0
        );
        assert_eq!(
            s.counter("pipeline_executions_total", &[("status", "failed")]),
            1.0
        );
        assert_eq!(
            s.counter("pipeline_executions_total", &[("status", "skipped")]),
            1.0
        );
        let (n, sum) = s.histogram(
            "pipeline_execution_duration_seconds",
            &[("status", "completed")],
        );
        assert_eq!(n, 2);
        assert!((sum - 0.03).abs() < 1e-9);
        assert_eq!(s.counter("orders_created_total", &[]), 1.0);

        let (n, sum) = s.histogram(
            "pipeline_step_duration_seconds",
            &[("step", "market_snapshot"), ("status", "completed")],
        );
        assert_eq!(n, 2);
        assert!((sum - 0.008).abs() < 1e-9);
        assert_eq!(
            s.histogram(
                "pipeline_step_duration_seconds",
                &[("step", "market_snapshot"), ("status", "failed")]
            )
            .0,
            1
        );
        assert!(
            s.series("pipeline_step_duration_seconds")
                .iter()
                .all(|l| l.get("status").map(String::as_str) != Some("skipped")),
            "steps that did not run are not timed"
        );
        let (n, sum) = s.histogram("execution_queue_lag_seconds", &[]);
        assert_eq!(n, 3);
        assert!((sum - 2.0).abs() < 1e-9);
    }

    #[test]
    fn duplicates_retries_and_rejections_run_nothing_and_are_counted() {
        let t = TestMeter::new();
        let m = ExecutorMetrics::new(&t.meter());
        m.record_batch(&[
            report(Outcome::Duplicate(ExecutionStatus::Completed), 1, Some(10)),
            report(Outcome::InProgressElsewhere, 1, Some(10)),
            report(
                Outcome::Retry {
                    label: "execution_store",
                    reason: "throttled".into(),
                },
                1,
                Some(10),
            ),
            report(
                Outcome::Rejected {
                    reason: "invalid execution request: eof".into(),
                },
                1,
                None,
            ),
        ]);
        let s = t.snapshot();
        assert_eq!(
            s.counter("execution_duplicates_total", &[("status", "completed")]),
            1.0
        );
        assert_eq!(
            s.counter("execution_duplicates_total", &[("status", "running")]),
            1.0
        );
        assert_eq!(
            s.counter("execution_retries_total", &[("reason", "execution_store")]),
            1.0
        );
        assert_eq!(
            s.counter("messages_rejected_total", &[("reason", "invalid_request")]),
            1.0
        );
        for status in ["completed", "failed", "skipped"] {
            assert_eq!(
                s.counter("pipeline_executions_total", &[("status", status)]),
                0.0
            );
            assert!(
                s.find("pipeline_executions_total", &[("status", status)])
                    .is_some()
            );
        }
        assert_eq!(s.series("pipeline_executions_total").len(), 3);
    }

    #[test]
    fn skipped_runs_are_counted_by_decision_and_new_retry_reasons_start_at_zero() {
        let t = TestMeter::new();
        let m = ExecutorMetrics::new(&t.meter());
        let s = t.snapshot();
        for decision in ["pipeline_inactive", "pipeline_missing", "lease_lost"] {
            assert!(
                s.find(
                    "pipeline_executions_skipped_total",
                    &[("decision", decision)]
                )
                .is_some()
            );
        }
        for reason in ["in_progress", "lease_store", "order_store"] {
            assert!(
                s.find("execution_retries_total", &[("reason", reason)])
                    .is_some()
            );
        }
        m.record_batch(&[
            report(
                finished(ExecutionStatus::Skipped, Some("lease_lost"), &[]),
                1,
                None,
            ),
            report(
                finished(ExecutionStatus::Skipped, Some("made_up"), &[]),
                1,
                None,
            ),
            report(
                Outcome::Retry {
                    label: "in_progress",
                    reason: "running until 1".into(),
                },
                1,
                None,
            ),
        ]);
        let s = t.snapshot();
        assert_eq!(
            s.counter(
                "pipeline_executions_skipped_total",
                &[("decision", "lease_lost")]
            ),
            1.0
        );
        assert_eq!(
            s.counter(
                "pipeline_executions_skipped_total",
                &[("decision", "other")]
            ),
            1.0
        );
        assert_eq!(
            s.counter("execution_retries_total", &[("reason", "in_progress")]),
            1.0
        );
        assert_eq!(
            s.counter("pipeline_executions_total", &[("status", "skipped")]),
            2.0
        );
    }

    #[test]
    fn unknown_step_names_do_not_make_new_series() {
        let t = TestMeter::new();
        let m = ExecutorMetrics::new(&t.meter());
        m.record(&report(
            finished(
                ExecutionStatus::Completed,
                None,
                &[("Step-From-Elsewhere", "COMPLETED", 1.0)],
            ),
            2,
            None,
        ));
        let s = t.snapshot();
        assert_eq!(
            s.histogram(
                "pipeline_step_duration_seconds",
                &[("step", "other"), ("status", "completed")]
            )
            .0,
            1
        );
    }
}
