#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use tradeflow_local::soak::{SoakConfig, run_soak};

use crate::helpers::*;

/// The fault-injection soak's small version (the full run is `tradeflow-local soak`, see
/// RELIABILITY.md): 500 signals with the default fault rates (10 % duplicate deliveries, 5 %
/// executor crashes, 5 % transient store/queue errors, 5 % dispatcher crashes, 2 % deadline
/// stalls), every fan-out accounted for.
#[tokio::test]
#[ignore = "needs the AWS emulator (AWS_ENDPOINT_URL); local/test.sh runs it"]
async fn a_500_signal_soak_under_faults_loses_and_duplicates_nothing() {
    let sdk = emulator().await;
    let stack = TestStack::deploy(sdk).await;
    let config = SoakConfig {
        signals: 500,
        drain_timeout: Duration::from_secs(600),
        ..SoakConfig::default()
    };
    let report = run_soak(&stack.sdk, &stack.outputs, &config).await.unwrap();
    println!("{}\n{}", report.table(), report.verdict());
    assert_eq!(report.fanouts, 1000);
    assert!(report.drained, "the queues did not drain");
    assert_eq!(
        (
            report.lost.len(),
            report.duplicates.len(),
            report.stuck_running.len(),
            report.stale_leases.len()
        ),
        (0, 0, 0, 0),
        "{}",
        report.verdict()
    );
    stack.delete().await;
}
