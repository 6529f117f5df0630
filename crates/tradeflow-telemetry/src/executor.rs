//! The pipeline-executor's metrics, derived from each message's [`MessageReport`].

use opentelemetry::KeyValue;
use opentelemetry::metrics::{Counter, Histogram, Meter};
use tradeflow_core::execute::{MessageReport, Outcome};
use tradeflow_core::execution::{ExecutionStatus, StepStatus};
use tradeflow_core::pipeline::StepKind;

use crate::buckets;
use crate::labels::{OTHER, code_name};

/// Instruments of the pipeline-executor. Create once per process from [`crate::Telemetry::meter`].
///
/// | Prometheus name | labels | from |
/// |---|---|---|
/// | `pipeline_executions_total` | `status` (`completed`, `failed`, `skipped`) | runs that ended |
/// | `pipeline_execution_duration_seconds` | `status` | handling time of those runs |
/// | `pipeline_step_duration_seconds` | `step`, `status` (`completed`, `failed`) | steps that ran |
/// | `orders_created_total` | — | completed runs whose decision is `order_placed` |
/// | `execution_duplicates_total` | `status` | redeliveries of a finished run (its status), or of one running elsewhere (`running`) |
/// | `execution_retries_total` | `reason` | messages failed for redelivery (transient errors) |
/// | `messages_rejected_total` | `reason="invalid_request"` | poison messages |
/// | `execution_queue_lag_seconds` | — | age of each request when picked up |
#[derive(Clone, Debug)]
pub struct ExecutorMetrics {
    executions: Counter<u64>,
    execution_duration: Histogram<f64>,
    step_duration: Histogram<f64>,
    orders: Counter<u64>,
    duplicates: Counter<u64>,
    retries: Counter<u64>,
    rejected: Counter<u64>,
    lag: Histogram<f64>,
}

impl ExecutorMetrics {
    pub fn new(meter: &Meter) -> Self {
        let counter = |name: &'static str, description: &'static str| {
            meter
                .u64_counter(name)
                .with_unit("1")
                .with_description(description)
                .build()
        };
        ExecutorMetrics {
            executions: counter(
                "pipeline_executions",
                "Pipeline runs that ended, by final status.",
            ),
            execution_duration: meter
                .f64_histogram("pipeline_execution_duration")
                .with_unit("s")
                .with_description("Time to handle a run that ended, by final status.")
                .with_boundaries(buckets::EXECUTION_SECONDS.to_vec())
                .build(),
            step_duration: meter
                .f64_histogram("pipeline_step_duration")
                .with_unit("s")
                .with_description("Time of one pipeline step that ran, by step and status.")
                .with_boundaries(buckets::DURATION_SECONDS.to_vec())
                .build(),
            orders: counter("orders_created", "Paper orders placed by pipeline runs."),
            duplicates: counter(
                "execution_duplicates",
                "Redelivered requests acknowledged without running anything.",
            ),
            retries: counter(
                "execution_retries",
                "Requests failed for redelivery after a transient error, by reason.",
            ),
            rejected: counter(
                "messages_rejected",
                "Poison messages (bad bodies), by reason.",
            ),
            lag: meter
                .f64_histogram("execution_queue_lag")
                .with_unit("s")
                .with_description("Age of an execution request when the executor picked it up.")
                .with_boundaries(buckets::LAG_SECONDS.to_vec())
                .build(),
        }
    }

    /// Records every message of a batch.
    pub fn record_batch(&self, reports: &[MessageReport]) {
        for report in reports {
            self.record(report);
        }
    }

    /// Records one message from its report.
    pub fn record(&self, report: &MessageReport) {
        if let Some(lag_ms) = report.lag_ms {
            self.lag.record(lag_ms.max(0) as f64 / 1000.0, &[]);
        }
        match &report.outcome {
            Outcome::Finished(record) => {
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
