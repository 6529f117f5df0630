//! Wiring only: telemetry, configuration, AWS clients, the Lambda runtime.

use std::sync::Arc;

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use lambda_runtime::{LambdaEvent, service_fn};
use signal_generator::{Config, FUNCTION_NAME, Handler};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let telemetry = tradeflow_telemetry::Telemetry::init(FUNCTION_NAME);
    let config = Config::from_env()?;
    let sdk = tradeflow_aws::load_aws_config().await;
    let handler = Arc::new(Handler::from_aws(&sdk, &config, telemetry.clone()).await?);
    let result = lambda_runtime::run(service_fn(
        move |event: LambdaEvent<EventBridgeEvent<serde_json::Value>>| {
            let handler = Arc::clone(&handler);
            async move { handler.handle(event.payload).await }
        },
    ))
    .await;
    telemetry.shutdown();
    result
}
