//! A function's own part ([`Function`]) and the service the runtime serves around it.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context as TaskContext, Poll};

use lambda_runtime::{Context, LambdaEvent};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tower::{Service, ServiceBuilder, ServiceExt as _};
use tradeflow_core::deadline::Deadline;
use tradeflow_telemetry::Telemetry;

use crate::invocation::{InvocationLayer, InvocationService, deadline_of};

/// What one function does with its event: the mapping to its domain call, and its own logs and
/// metrics. Everything around it (invocation metrics, the outcome log line, the flush) is
/// [`InvocationLayer`]'s.
pub trait Function: Send + Sync + 'static {
    /// The function's name: its package, binary and Lambda.
    const NAME: &'static str;
    /// The `trigger` label of its invocation metrics ([`tradeflow_telemetry::TRIGGER_PUBSUB`],
    /// [`tradeflow_telemetry::TRIGGER_TIMER`]).
    const TRIGGER: &'static str;

    type Event: DeserializeOwned + Send + 'static;
    type Response: Serialize + Send + 'static;
    /// An error fails the invocation (for an SQS function: the whole batch is redelivered).
    type Error: std::error::Error + Send + Sync + 'static;

    /// Handles one event; the invocation has to be done by `deadline`.
    fn handle(
        &self,
        event: Self::Event,
        deadline: Deadline,
    ) -> impl Future<Output = Result<Self::Response, Self::Error>> + Send;
}

/// A [`Function`] as a `tower` service of Lambda events: the payload and the deadline of the
/// invocation context go to [`Function::handle`].
pub struct FunctionService<F> {
    function: Arc<F>,
}

impl<F> FunctionService<F> {
    pub fn new(function: F) -> Self {
        FunctionService {
            function: Arc::new(function),
        }
    }
}

impl<F> Clone for FunctionService<F> {
    fn clone(&self) -> Self {
        FunctionService {
            function: Arc::clone(&self.function),
        }
    }
}

impl<F: Function> Service<LambdaEvent<F::Event>> for FunctionService<F> {
    type Response = F::Response;
    type Error = lambda_runtime::Error;
    type Future = Pin<Box<dyn Future<Output = Result<F::Response, lambda_runtime::Error>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut TaskContext<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, event: LambdaEvent<F::Event>) -> Self::Future {
        let function = Arc::clone(&self.function);
        let deadline = deadline_of(&event.context);
        Box::pin(async move {
            function
                .handle(event.payload, deadline)
                .await
                .map_err(lambda_runtime::Error::from)
        })
    }
}

/// The service `lambda_runtime::run` serves for `function`: [`InvocationLayer`] (named and
/// labelled by the function) over [`FunctionService`]. The local runner invokes the same one.
pub fn service<F: Function>(
    function: F,
    telemetry: Telemetry,
) -> InvocationService<FunctionService<F>> {
    ServiceBuilder::new()
        .layer(InvocationLayer::new(F::NAME, F::TRIGGER, telemetry))
        .service(FunctionService::new(function))
}

/// Invokes `service` in this process as the Lambda runtime would: `payload` with a context
/// carrying a fresh request id (`local-<n>`) and `deadline` (a real one: from 2001 on, see
/// [`crate::deadline_of`]).
pub async fn invoke<S, A>(
    service: &S,
    payload: A,
    deadline: Deadline,
) -> Result<S::Response, S::Error>
where
    S: Service<LambdaEvent<A>> + Clone,
{
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let mut context = Context::default();
    context.request_id = format!("local-{}", NEXT.fetch_add(1, Ordering::Relaxed));
    context.deadline = if deadline.is_none() {
        0
    } else {
        u64::try_from(deadline.epoch_ms()).unwrap_or(0)
    };
    service
        .clone()
        .oneshot(LambdaEvent::new(payload, context))
        .await
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use std::time::Duration;
    use tradeflow_telemetry::TRIGGER_TIMER;
    use tradeflow_telemetry::testing::TestMeter;

    /// Remembers the deadline of each call; fails when asked to.
    #[derive(Default)]
    struct Probe {
        deadlines: Arc<Mutex<Vec<Deadline>>>,
    }

    #[derive(Debug, thiserror::Error)]
    #[error("asked to fail")]
    struct Failed;

    impl Function for Probe {
        const NAME: &'static str = "probe";
        const TRIGGER: &'static str = TRIGGER_TIMER;
        type Event = bool;
        type Response = &'static str;
        type Error = Failed;

        async fn handle(&self, fail: bool, deadline: Deadline) -> Result<&'static str, Failed> {
            self.deadlines.lock().unwrap().push(deadline);
            if fail { Err(Failed) } else { Ok("done") }
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn the_invocation_deadline_reaches_the_function() {
        let t = TestMeter::new();
        let probe = Probe::default();
        let deadlines = Arc::clone(&probe.deadlines);
        let service = service(
            probe,
            Telemetry::from_provider(t.provider.clone(), Duration::from_secs(1)),
        );
        let at = Deadline::at_ms(1_750_000_030_000);
        assert_eq!(invoke(&service, false, at).await.unwrap(), "done");
        invoke(&service, false, Deadline::none()).await.unwrap();
        let err = invoke(&service, true, at).await.unwrap_err();
        assert_eq!(err.to_string(), "asked to fail");
        assert_eq!(*deadlines.lock().unwrap(), vec![at, Deadline::none(), at]);
        // Named and labelled by the function.
        let s = t.snapshot();
        let timer = [("trigger", "timer")];
        assert_eq!(s.counter("faas_invocations_total", &timer), 3.0);
        assert_eq!(s.counter("faas_errors_total", &timer), 1.0);
    }
}
