//! Ways to invoke a function: its handler in this process, behind the same service the Lambda
//! runtime serves, or the real binary behind `cargo lambda watch`'s Invoke API (same JSON a
//! Lambda invocation carries).

use std::time::Duration;

use async_trait::async_trait;
use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use tradeflow_lambda::{Deadline, Function, FunctionService, InvocationService};
use tradeflow_telemetry::Telemetry;

use crate::stack::{TEMPLATE_BODY, function_timeout};

/// A function triggered by an SQS event source mapping.
#[async_trait]
pub trait SqsFunction: Send + Sync {
    fn name(&self) -> &str;
    /// `Err` is a function error: the whole batch stays on the queue.
    async fn invoke(&self, event: SqsEvent) -> Result<SqsBatchResponse, String>;
}

/// A function triggered by a schedule.
#[async_trait]
pub trait ScheduledFunction: Send + Sync {
    fn name(&self) -> &str;
    async fn invoke(
        &self,
        event: EventBridgeEvent<serde_json::Value>,
    ) -> Result<serde_json::Value, String>;
}

/// A function's handler in this process, served exactly as `main.rs` serves it
/// ([`tradeflow_lambda::service`]: invocation metrics, outcome log line, flush). Each invocation
/// gets the deadline Lambda would give it: now plus the function's `Timeout` in
/// infra/template.yaml.
pub struct InProcess<F: Function> {
    service: InvocationService<FunctionService<F>>,
    timeout: Duration,
}

impl<F: Function> InProcess<F> {
    pub fn new(function: F, telemetry: Telemetry) -> anyhow::Result<Self> {
        Ok(InProcess {
            service: tradeflow_lambda::service(function, telemetry),
            timeout: function_timeout(TEMPLATE_BODY, F::NAME)?,
        })
    }

    /// With another timeout than the template's (the soak's short invocations): the deadline
    /// each invocation gets. Enforcing it is the caller's part ([`crate::faults::Faulty`]).
    pub fn with_timeout(function: F, telemetry: Telemetry, timeout: Duration) -> Self {
        InProcess {
            service: tradeflow_lambda::service(function, telemetry),
            timeout,
        }
    }

    /// The function's timeout, as infra/template.yaml declares it.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    async fn call(&self, event: F::Event) -> Result<F::Response, String> {
        let deadline = Deadline::after(chrono::Utc::now().timestamp_millis(), self.timeout);
        tradeflow_lambda::invoke(&self.service, event, deadline)
            .await
            .map_err(|e| e.to_string())
    }
}

#[async_trait]
impl<F> SqsFunction for InProcess<F>
where
    F: Function<Event = SqsEvent, Response = SqsBatchResponse>,
{
    fn name(&self) -> &str {
        F::NAME
    }
    async fn invoke(&self, event: SqsEvent) -> Result<SqsBatchResponse, String> {
        self.call(event).await
    }
}

#[async_trait]
impl<F> ScheduledFunction for InProcess<F>
where
    F: Function<Event = EventBridgeEvent<serde_json::Value>>,
{
    fn name(&self) -> &str {
        F::NAME
    }
    async fn invoke(
        &self,
        event: EventBridgeEvent<serde_json::Value>,
    ) -> Result<serde_json::Value, String> {
        let response = self.call(event).await?;
        serde_json::to_value(response).map_err(|e| e.to_string())
    }
}

/// A function binary served by `cargo lambda watch` (`POST /2015-03-31/functions/<name>/invocations`).
pub struct WatchFunction {
    pub name: String,
    pub base_url: String,
    pub client: reqwest::Client,
}

impl WatchFunction {
    pub fn new(base_url: &str, name: &str) -> Self {
        WatchFunction {
            name: name.to_owned(),
            base_url: base_url.trim_end_matches('/').to_owned(),
            // cargo lambda watch never answers for a function whose process died (it does not
            // restart it under --ignore-changes): a bounded wait turns that into an error.
            client: reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(120))
                .build()
                .unwrap_or_default(),
        }
    }

    async fn post<T: serde::Serialize + Sync, R: serde::de::DeserializeOwned>(
        &self,
        event: &T,
    ) -> Result<R, String> {
        let url = format!(
            "{}/2015-03-31/functions/{}/invocations",
            self.base_url, self.name
        );
        let resp = self
            .client
            .post(&url)
            .json(event)
            .send()
            .await
            .map_err(|e| format!("invoking {}: {e}", self.name))?;
        let status = resp.status();
        let text = resp
            .text()
            .await
            .map_err(|e| format!("reading {} response: {e}", self.name))?;
        // A function error comes back as 500 (cargo lambda watch sets no X-Amz-Function-Error).
        if !status.is_success() {
            return Err(format!("{} returned {status}: {text}", self.name));
        }
        serde_json::from_str(&text).map_err(|e| format!("{} response {text:?}: {e}", self.name))
    }
}

#[async_trait]
impl SqsFunction for WatchFunction {
    fn name(&self) -> &str {
        &self.name
    }
    async fn invoke(&self, event: SqsEvent) -> Result<SqsBatchResponse, String> {
        self.post(&event).await
    }
}

#[async_trait]
impl ScheduledFunction for WatchFunction {
    fn name(&self) -> &str {
        &self.name
    }
    async fn invoke(
        &self,
        event: EventBridgeEvent<serde_json::Value>,
    ) -> Result<serde_json::Value, String> {
        self.post(&event).await
    }
}

/// The scheduled event EventBridge sends, for `time` (Unix seconds).
pub fn scheduled_event(time: i64) -> EventBridgeEvent<serde_json::Value> {
    let mut e = EventBridgeEvent::default();
    e.version = Some("0".into());
    e.id = Some(format!("local-{time}"));
    e.detail_type = "Scheduled Event".into();
    e.source = "aws.events".into();
    e.account = Some("000000000000".into());
    e.time = chrono::DateTime::from_timestamp(time, 0);
    e.region = std::env::var("AWS_REGION").ok();
    e.resources = Some(vec![
        "arn:aws:events:local:000000000000:rule/tradeflow-generator-schedule".into(),
    ]);
    e.detail = serde_json::json!({});
    e
}
