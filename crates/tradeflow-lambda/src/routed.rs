//! Two [`Function`]s served by one binary: the pipeline-executor takes its SQS batches and, on a
//! schedule, its sweep of abandoned runs (same role, same tables, no second package to deploy).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};

use lambda_runtime::LambdaEvent;
use tower::{Service, ServiceExt};
use tradeflow_telemetry::Telemetry;

use crate::function::{Function, FunctionService, service};
use crate::invocation::InvocationService;

/// Routes each invocation by its payload: an SQS batch (an object with `Records`) to `batch`,
/// anything else (an EventBridge scheduled event) to `scheduled`. Each keeps its own
/// [`crate::InvocationLayer`], so invocation metrics and logs carry the right trigger.
pub struct Routed<A: Function, B: Function> {
    batch: InvocationService<FunctionService<A>>,
    scheduled: InvocationService<FunctionService<B>>,
}

impl<A: Function, B: Function> Clone for Routed<A, B> {
    fn clone(&self) -> Self {
        Routed {
            batch: self.batch.clone(),
            scheduled: self.scheduled.clone(),
        }
    }
}

/// The service `lambda_runtime::run` serves for a binary that is two functions.
pub fn routed<A: Function, B: Function>(
    batch: A,
    scheduled: B,
    telemetry: Telemetry,
) -> Routed<A, B> {
    Routed {
        batch: service(batch, telemetry.clone()),
        scheduled: service(scheduled, telemetry),
    }
}

/// Whether a payload is an SQS batch.
pub fn is_sqs_batch(payload: &serde_json::Value) -> bool {
    payload
        .get("Records")
        .is_some_and(serde_json::Value::is_array)
}

async fn call_one<F: Function>(
    service: InvocationService<FunctionService<F>>,
    payload: serde_json::Value,
    context: lambda_runtime::Context,
) -> Result<serde_json::Value, lambda_runtime::Error> {
    let event: F::Event = serde_json::from_value(payload)?;
    let response = service.oneshot(LambdaEvent::new(event, context)).await?;
    Ok(serde_json::to_value(response)?)
}

impl<A: Function, B: Function> Service<LambdaEvent<serde_json::Value>> for Routed<A, B> {
    type Response = serde_json::Value;
    type Error = lambda_runtime::Error;
    type Future =
        Pin<Box<dyn Future<Output = Result<serde_json::Value, lambda_runtime::Error>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut TaskContext<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, event: LambdaEvent<serde_json::Value>) -> Self::Future {
        let LambdaEvent { payload, context } = event;
        if is_sqs_batch(&payload) {
            Box::pin(call_one(self.batch.clone(), payload, context))
        } else {
            Box::pin(call_one(self.scheduled.clone(), payload, context))
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::Deadline;
    use tradeflow_telemetry::testing::TestMeter;

    struct Echo(&'static str);

    #[derive(Debug, thiserror::Error)]
    #[error("never")]
    struct Never;

    macro_rules! echo_function {
        ($name:ident, $event:ty, $trigger:expr) => {
            struct $name(Echo);
            impl Function for $name {
                const NAME: &'static str = "routed-test";
                const TRIGGER: &'static str = $trigger;
                type Event = $event;
                type Response = String;
                type Error = Never;
                async fn handle(
                    &self,
                    _event: $event,
                    _deadline: Deadline,
                ) -> Result<String, Never> {
                    Ok(self.0.0.to_owned())
                }
            }
        };
    }
    echo_function!(
        Batch,
        aws_lambda_events::event::sqs::SqsEvent,
        tradeflow_telemetry::TRIGGER_PUBSUB
    );
    echo_function!(
        Scheduled,
        aws_lambda_events::event::eventbridge::EventBridgeEvent<serde_json::Value>,
        tradeflow_telemetry::TRIGGER_TIMER
    );

    #[tokio::test]
    async fn sqs_batches_and_scheduled_events_reach_their_own_function() {
        let t = TestMeter::new();
        let telemetry =
            Telemetry::from_provider(t.provider.clone(), std::time::Duration::from_secs(1));
        let service = routed(Batch(Echo("batch")), Scheduled(Echo("sweep")), telemetry);
        let sqs = serde_json::json!({"Records": [{"messageId": "m1", "body": "{}"}]});
        let scheduled = serde_json::json!({
            "version": "0", "id": "e1", "detail-type": "Scheduled Event", "source": "aws.events",
            "account": "000000000000", "time": "2026-12-01T10:00:00Z", "region": "eu-west-1",
            "resources": [], "detail": {"sweep": true}
        });
        let a = crate::invoke(&service, sqs, Deadline::none())
            .await
            .unwrap();
        let b = crate::invoke(&service, scheduled, Deadline::none())
            .await
            .unwrap();
        assert_eq!(
            (a, b),
            (serde_json::json!("batch"), serde_json::json!("sweep"))
        );
        // A payload neither function accepts is an invocation error, not a panic.
        let bad = crate::invoke(
            &service,
            serde_json::json!({"Records": "no"}),
            Deadline::none(),
        )
        .await;
        assert!(bad.is_err());
        // Each side is labelled by its own trigger.
        let s = t.snapshot();
        assert_eq!(
            s.counter("faas_invocations_total", &[("trigger", "timer")]),
            1.0
        );
        assert_eq!(
            s.counter("faas_invocations_total", &[("trigger", "pubsub")]),
            1.0
        );
    }
}
