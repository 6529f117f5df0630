//! Settings the template states twice must agree (no emulator needed).
#![allow(clippy::unwrap_used)]

use crate::helpers::TEMPLATE as TEMPLATE_BODY;
use serde_norway::Value;

fn resource<'a>(template: &'a Value, id: &str) -> &'a Value {
    &template["Resources"][id]["Properties"]
}

/// The executor gives up on a failing run on the delivery the executions queue would dead-letter
/// it after: its `MAX_RECEIVE_COUNT` is that queue's `maxReceiveCount`.
#[test]
fn the_executor_knows_the_executions_queues_max_receive_count() {
    let template: Value = serde_norway::from_str(TEMPLATE_BODY).unwrap();
    let queue = resource(&template, "ExecutionsQueue")["RedrivePolicy"]["maxReceiveCount"]
        .as_u64()
        .unwrap();
    let env =
        resource(&template, "ExecutorFunction")["Environment"]["Variables"]["MAX_RECEIVE_COUNT"]
            .as_str()
            .unwrap();
    assert_eq!(env.parse::<u64>().unwrap(), queue);
    // AWS guidance for Lambda event sources: at least 5.
    assert!(queue >= 5);
}
