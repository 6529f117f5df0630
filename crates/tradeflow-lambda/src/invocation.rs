//! The work around every invocation, as a `tower` layer over the function's service.

use std::fmt::Display;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};

use lambda_runtime::{Context, LambdaEvent};
use tower::{Layer, Service};
use tradeflow_core::deadline::Deadline;
use tradeflow_telemetry::Telemetry;

/// Context deadlines below this (2001-09-09 in epoch milliseconds) are not instants.
const FIRST_PLAUSIBLE_DEADLINE_MS: u64 = 1_000_000_000_000;

/// The invocation's deadline from its Lambda context (epoch milliseconds, now plus the function's
/// timeout). A context without a real one gives [`Deadline::none`]: `deadline` 0 (as in
/// `Context::default()`), or any value before 2001 — `cargo lambda watch` (1.9) sends the
/// constant 600000 with every invocation, which as an instant would be long past.
pub fn deadline_of(context: &Context) -> Deadline {
    match context.deadline {
        ms if ms < FIRST_PLAUSIBLE_DEADLINE_MS => Deadline::none(),
        ms => Deadline::at_ms(i64::try_from(ms).unwrap_or(i64::MAX)),
    }
}

/// Wraps a function's service with what every invocation needs, in this order:
///
/// 1. the FaaS invocation metrics ([`Telemetry::start_invocation`]: invocations, errors, cold
///    start on the first invocation of the process, duration), with the function's `trigger`;
/// 2. the inner service;
/// 3. one outcome log line: function, request id, `ok`/`error` (with the error), cold start,
///    handler duration, and the time left before the deadline;
/// 4. the bounded metrics flush ([`Telemetry::flush`]) before Lambda freezes the process.
///
/// Telemetry never fails the invocation: the inner service's result is returned as it is.
#[derive(Clone, Debug)]
pub struct InvocationLayer {
    function: &'static str,
    trigger: &'static str,
    telemetry: Telemetry,
}

impl InvocationLayer {
    /// `function` names the function in the outcome log line; `trigger` is the `trigger` label
    /// of the invocation metrics ([`tradeflow_telemetry::TRIGGER_PUBSUB`], `TRIGGER_TIMER`).
    pub fn new(function: &'static str, trigger: &'static str, telemetry: Telemetry) -> Self {
        InvocationLayer {
            function,
            trigger,
            telemetry,
        }
    }
}

impl<S> Layer<S> for InvocationLayer {
    type Service = InvocationService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        InvocationService {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service made by [`InvocationLayer`].
#[derive(Clone, Debug)]
pub struct InvocationService<S> {
    inner: S,
    layer: InvocationLayer,
}

impl<S, A> Service<LambdaEvent<A>> for InvocationService<S>
where
    S: Service<LambdaEvent<A>>,
    S::Future: Send + 'static,
    S::Response: Send,
    S::Error: Display + Send,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, event: LambdaEvent<A>) -> Self::Future {
        let InvocationLayer {
            function,
            trigger,
            telemetry,
        } = self.layer.clone();
        let invocation = telemetry.start_invocation(trigger);
        let request_id = event.context.request_id.clone();
        let deadline = deadline_of(&event.context);
        let future = self.inner.call(event);
        Box::pin(async move {
            let result = future.await;
            let cold_start = invocation.is_cold_start();
            let duration = invocation.finish(result.is_ok());
            let duration_ms = duration.as_secs_f64() * 1000.0;
            let remaining_ms =
                (!deadline.is_none()).then(|| deadline.remaining(now_ms()).as_millis() as u64);
            match &result {
                Ok(_) => tracing::info!(
                    function,
                    request_id,
                    outcome = "ok",
                    cold_start,
                    duration_ms,
                    remaining_ms,
                    "invocation finished"
                ),
                Err(e) => tracing::error!(
                    function,
                    request_id,
                    outcome = "error",
                    error = %e,
                    cold_start,
                    duration_ms,
                    remaining_ms,
                    "invocation failed"
                ),
            }
            telemetry.flush().await;
            result
        })
    }
}

/// Now in Unix epoch milliseconds (the unit of the Lambda deadline).
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};
    use tower::ServiceBuilder;
    use tradeflow_telemetry::testing::TestMeter;
    use tradeflow_telemetry::{TRIGGER_PUBSUB, TelemetryConfig};

    use crate::invoke;

    /// An inner service answering the payload's length, failing on "fail".
    fn echo() -> impl Service<
        LambdaEvent<String>,
        Response = usize,
        Error = lambda_runtime::Error,
        Future = impl Future<Output = Result<usize, lambda_runtime::Error>> + Send,
    > + Clone {
        lambda_runtime::service_fn(|event: LambdaEvent<String>| async move {
            if event.payload == "fail" {
                Err(lambda_runtime::Error::from("the handler failed"))
            } else {
                Ok(event.payload.len())
            }
        })
    }

    fn layered(
        telemetry: Telemetry,
    ) -> impl Service<LambdaEvent<String>, Response = usize, Error = lambda_runtime::Error> + Clone
    {
        ServiceBuilder::new()
            .layer(InvocationLayer::new("echo", TRIGGER_PUBSUB, telemetry))
            .service(echo())
    }

    #[tokio::test(flavor = "current_thread")]
    async fn counts_each_invocation_the_cold_start_once_and_the_errors_and_flushes_each_time() {
        let t = TestMeter::new();
        let telemetry = Telemetry::from_provider(t.provider.clone(), Duration::from_secs(1));
        let service = layered(telemetry);

        assert_eq!(
            invoke(&service, "abc".to_owned(), Deadline::none())
                .await
                .unwrap(),
            3
        );
        let err = invoke(&service, "fail".to_owned(), Deadline::none())
            .await
            .unwrap_err();
        assert_eq!(err.to_string(), "the handler failed", "returned as it is");
        invoke(&service, "x".to_owned(), Deadline::none())
            .await
            .unwrap();

        let s = t.snapshot();
        let pubsub = [("trigger", "pubsub")];
        assert_eq!(s.counter("faas_invocations_total", &pubsub), 3.0);
        assert_eq!(s.counter("faas_errors_total", &pubsub), 1.0);
        assert_eq!(s.counter("faas_coldstarts_total", &pubsub), 1.0);
        assert_eq!(s.histogram("faas_invoke_duration_seconds", &pubsub).0, 3);
        assert_eq!(
            s.histogram("telemetry_flush_duration_seconds", &[]).0,
            3,
            "one flush per invocation"
        );
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_dead_collector_neither_fails_nor_stalls_the_invocation() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let env = HashMap::from([
            (
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                format!("http://127.0.0.1:{port}"),
            ),
            ("TELEMETRY_FLUSH_TIMEOUT_MS", "50".to_owned()),
        ]);
        let telemetry = Telemetry::from_config(TelemetryConfig::from_lookup("echo", |k| {
            env.get(k).cloned()
        }));
        assert!(telemetry.is_exporting());
        let service = layered(telemetry.clone());
        let started = Instant::now();
        assert_eq!(
            invoke(&service, "ok".to_owned(), Deadline::none())
                .await
                .unwrap(),
            2
        );
        assert!(started.elapsed() < Duration::from_millis(500));
        telemetry.shutdown().await;
    }

    /// Collects what the fmt subscriber writes.
    #[derive(Clone, Default)]
    struct Logs(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Logs {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn writes_one_outcome_line_per_invocation() {
        let logs = Logs::default();
        let writer = logs.clone();
        let subscriber = tracing_subscriber::fmt()
            .json()
            .flatten_event(true)
            .with_writer(move || writer.clone())
            .finish();
        let _guard = tracing::subscriber::set_default(subscriber);
        let t = TestMeter::new();
        let service = layered(Telemetry::from_provider(
            t.provider.clone(),
            Duration::from_secs(1),
        ));
        let deadline = Deadline::after(crate::invocation::now_ms(), Duration::from_secs(30));
        invoke(&service, "abc".to_owned(), deadline).await.unwrap();
        invoke(&service, "fail".to_owned(), Deadline::none())
            .await
            .unwrap_err();

        let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .filter(|l: &serde_json::Value| l["function"] == "echo")
            .collect();
        assert_eq!(lines.len(), 2, "{text}");
        let (ok, failed) = (&lines[0], &lines[1]);
        assert_eq!(ok["outcome"], "ok");
        assert_eq!(ok["level"], "INFO");
        assert_eq!(ok["cold_start"], true);
        assert!(ok["request_id"].as_str().unwrap().starts_with("local-"));
        assert!(ok["duration_ms"].as_f64().unwrap() >= 0.0);
        let remaining = ok["remaining_ms"].as_u64().unwrap();
        assert!((29_000..=30_000).contains(&remaining), "{remaining}");
        assert_eq!(failed["outcome"], "error");
        assert_eq!(failed["level"], "ERROR");
        assert_eq!(failed["error"], "the handler failed");
        assert_eq!(failed["cold_start"], false);
        assert_ne!(failed["request_id"], ok["request_id"]);
        assert!(
            failed.get("remaining_ms").is_none(),
            "no deadline, no field"
        );
    }

    #[test]
    fn the_context_deadline_is_epoch_milliseconds_and_none_when_missing_or_not_an_instant() {
        let mut context = Context::default();
        assert_eq!(deadline_of(&context), Deadline::none());
        context.deadline = 1_750_000_030_000;
        assert_eq!(deadline_of(&context), Deadline::at_ms(1_750_000_030_000));
        // What cargo lambda watch sends.
        context.deadline = 600_000;
        assert_eq!(deadline_of(&context), Deadline::none());
    }
}
