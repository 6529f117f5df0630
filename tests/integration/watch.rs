#![allow(clippy::unwrap_used, clippy::expect_used)]

//! End to end through the real function binaries: `main.rs`, the Lambda runtime and the event
//! and response serialization, served by `cargo lambda watch` (started by local/test.sh, which
//! sets TRADEFLOW_WATCH_URL and TRADEFLOW_WATCH_STACK).

use std::time::Duration;

use tradeflow_local::chain::{Chain, ChainConfig, Functions};
use tradeflow_local::progress::{count_items, executions_by_status};
use tradeflow_local::stack::StackOutputs;

use crate::helpers::*;

#[tokio::test]
#[ignore = "needs the AWS emulator and cargo lambda watch (TRADEFLOW_WATCH_URL); local/test.sh runs it"]
async fn the_real_binaries_run_the_chain_through_cargo_lambda_watch() {
    let sdk = emulator().await;
    let [url, stack_name] = <[String; 2]>::try_from(require_env(
        "`cargo lambda watch` serving a deployed stack (`local/watch.sh start STAGE`)",
        &["TRADEFLOW_WATCH_URL", "TRADEFLOW_WATCH_STACK"],
    ))
    .unwrap();
    let cfn = aws_sdk_cloudformation::Client::new(&sdk);
    let outputs = StackOutputs::load(&cfn, &stack_name).await.unwrap();
    let dynamo = aws_sdk_dynamodb::Client::new(&sdk);
    let store = tradeflow_aws::DynamoPipelineStore::new(
        dynamo.clone(),
        outputs.get("PipelinesTableName").unwrap().to_owned(),
    );
    use tradeflow_core::ports::PipelineStore;
    store
        .put_pipeline(&pipeline(
            "p-watch",
            &["AAPL", "MSFT", "NVDA", "TSLA", "SPY"],
            serde_json::json!([]),
        ))
        .await
        .unwrap();
    let chain = Chain::start(
        &sdk,
        outputs.clone(),
        Functions::watch(&url),
        ChainConfig::default(),
    )
    .await
    .unwrap();
    let start = 1_767_623_400;
    let mut sent = 0;
    for n in 0..3 {
        let summary = chain
            .fire_generator(start + n * 300)
            .await
            .expect("the generator binary answers");
        sent += summary["signals_sent"].as_u64().unwrap();
    }
    assert!(sent > 0, "the generator binary sent signals");
    assert!(
        chain.wait_idle(Duration::from_secs(120)).await.unwrap(),
        "queues drain"
    );
    let stats = (
        chain
            .signals
            .stats
            .deleted
            .load(std::sync::atomic::Ordering::Relaxed),
        chain
            .signals
            .stats
            .function_errors
            .load(std::sync::atomic::Ordering::Relaxed),
        chain
            .executions
            .stats
            .function_errors
            .load(std::sync::atomic::Ordering::Relaxed),
    );
    chain.stop().await;
    assert_eq!(
        stats,
        (sent, 0, 0),
        "every signal consumed by the dispatcher binary, no function errors"
    );
    let counts = executions_by_status(&dynamo, outputs.get("ExecutionsTableName").unwrap())
        .await
        .unwrap();
    let completed = counts.get("COMPLETED").copied().unwrap_or(0);
    assert!(
        completed > 0,
        "the executor binary completed executions: {counts:?}"
    );
    assert_eq!(counts.values().sum::<u64>(), completed, "{counts:?}");
    assert!(
        count_items(&dynamo, outputs.get("OrdersTableName").unwrap())
            .await
            .unwrap()
            > 0
    );
}
