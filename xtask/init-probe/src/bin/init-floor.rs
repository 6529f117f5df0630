//! The floor of the cold-start benchmark: the smallest useful `lambda_runtime` function (an echo
//! of its JSON event), built with the same release profile and started with the same tokio
//! runtime as the functions. What the functions add on top of it (SDK clients, telemetry,
//! configuration, their code's size) is their own init cost.

use lambda_runtime::{Error, LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::run(service_fn(
        |event: LambdaEvent<serde_json::Value>| async move { Ok::<_, Error>(event.payload) },
    ))
    .await
}
