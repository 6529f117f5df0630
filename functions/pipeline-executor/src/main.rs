//! Wiring only: telemetry, configuration, AWS clients, the Lambda runtime serving the handler
//! through the shared invocation layer (`tradeflow_lambda::routed`: SQS batches to the handler,
//! the scheduled event to the sweep of abandoned runs).

use pipeline_executor::{Config, FUNCTION_NAME, Handler};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let telemetry = tradeflow_telemetry::Telemetry::init(FUNCTION_NAME);
    let config = Config::from_env()?;
    let sdk = tradeflow_aws::lambda_aws_config()?;
    let handler = Handler::from_aws(&sdk, &config, &telemetry)?;
    // The SQS batches, and the scheduled sweep of abandoned runs (template: SweepSchedule).
    let sweeper = handler.sweeper(config.abandon_after_secs, &telemetry);
    let result = lambda_runtime::run(tradeflow_lambda::routed(
        handler,
        sweeper,
        telemetry.clone(),
    ))
    .await;
    telemetry.shutdown().await;
    result
}
