//! Wiring only: telemetry, configuration, AWS clients, the Lambda runtime serving the handler
//! through the shared invocation layer (`tradeflow_lambda::service`).

use trigger_dispatcher::{Config, FUNCTION_NAME, Handler};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let telemetry = tradeflow_telemetry::Telemetry::init(FUNCTION_NAME);
    let config = Config::from_env()?;
    let sdk = tradeflow_aws::lambda_aws_config()?;
    let handler = Handler::from_aws(&sdk, &config, &telemetry).await?;
    let result = lambda_runtime::run(tradeflow_lambda::service(handler, telemetry.clone())).await;
    telemetry.shutdown().await;
    result
}
