#![allow(clippy::unwrap_used, clippy::expect_used)]

//! Metrics against the real collector (vmagent) and Prometheus started by local/test.sh, which
//! sets PROMETHEUS_URL and TRADEFLOW_OTLP_ENDPOINT. Each test tags its functions with its own
//! `service.instance.id` (the `instance` label), so its series are its own.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde_json::json;
use tradeflow_local::progress::{count_items, executions_by_status};
use tradeflow_telemetry::{Telemetry, TelemetryConfig};

use crate::helpers::*;

/// (Prometheus URL, OTLP endpoint) of the metrics stack (see [`require_env`]).
fn metrics_stack() -> (String, String) {
    let [prometheus, otlp] = <[String; 2]>::try_from(require_env(
        "the metrics stack (`local/metrics.sh start`; TRADEFLOW_OTLP_ENDPOINT is the \
         OTEL_EXPORTER_OTLP_ENDPOINT that `local/metrics.sh env` prints)",
        &["PROMETHEUS_URL", "TRADEFLOW_OTLP_ENDPOINT"],
    ))
    .unwrap();
    (prometheus, otlp)
}

/// A telemetry exporting to `endpoint` whose `instance` label is `instance`.
fn telemetry(service: &str, endpoint: &str, instance: &str) -> Telemetry {
    let env: HashMap<&str, String> = HashMap::from([
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.to_owned()),
        ("AWS_LAMBDA_LOG_STREAM_NAME", instance.to_owned()),
        ("AWS_REGION", "us-east-1".to_owned()),
        // Generous: this test is about the numbers, not the flush budget.
        ("TELEMETRY_FLUSH_TIMEOUT_MS", "2000".to_owned()),
    ]);
    Telemetry::from_config(TelemetryConfig::from_lookup(service, |k| {
        env.get(k).cloned()
    }))
}

/// Sum of an instant query's values (0 when it returns nothing).
async fn sum(prometheus: &str, promql: &str) -> f64 {
    let resp: serde_json::Value = reqwest::Client::new()
        .get(format!("{prometheus}/api/v1/query"))
        .query(&[("query", promql)])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(resp["status"], "success", "{promql}: {resp}");
    resp["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["value"][1].as_str().unwrap().parse::<f64>().unwrap())
        .sum()
}

/// Waits until every (query, expected) pair holds; on timeout, fails with what Prometheus said.
async fn expect_all(prometheus: &str, expected: &BTreeMap<String, f64>) {
    let mut last = BTreeMap::new();
    for _ in 0..60 {
        last.clear();
        for q in expected.keys() {
            last.insert(q.clone(), sum(prometheus, q).await);
        }
        if &last == expected {
            return;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let diff: Vec<String> = expected
        .iter()
        .filter(|(q, v)| last.get(*q) != Some(v))
        .map(|(q, v)| format!("{q}: expected {v}, Prometheus says {:?}", last.get(q)))
        .collect();
    panic!(
        "metrics disagree with the ground truth:\n{}",
        diff.join("\n")
    );
}

#[tokio::test]
#[ignore = "needs the AWS emulator and the metrics stack (PROMETHEUS_URL, TRADEFLOW_OTLP_ENDPOINT); local/test.sh runs it"]
async fn counters_in_prometheus_equal_the_ground_truth_of_a_run() {
    let (prometheus, endpoint) = metrics_stack();
    let sdk = emulator().await;
    let stack = TestStack::deploy(sdk).await;
    stack
        .seed(&[
            pipeline("p-all", &["AAPL", "MSFT", "NVDA"], json!([])),
            pipeline(
                "p-rsi",
                &["AAPL"],
                json!([{"signal_type": "rsi_oversold"}, {"signal_type": "rsi_overbought"}]),
            ),
        ])
        .await;
    let instance = |f: &str| format!("{}-{f}", stack.stage);
    let make = |name: &str| telemetry(name, &endpoint, &instance(name));
    let extra: HashMap<String, String> = [
        ("GENERATOR_TICKERS", "AAPL,MSFT,NVDA"),
        ("GENERATOR_TIMEFRAMES", "5"),
        ("GENERATOR_BACKFILL_BARS", "40"),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect();
    let functions = tradeflow_local::chain::Functions::in_process_with(
        &stack.sdk,
        &stack.outputs,
        &extra,
        &make,
    )
    .await
    .unwrap();
    let chain = stack.start_chain(functions).await;
    let mut signals = 0;
    for n in 0..3 {
        let summary = chain.fire_generator(1_767_623_400 + n * 300).await.unwrap();
        signals += summary["signals_sent"].as_u64().unwrap();
    }
    stack
        .send("SignalsQueueName", &["{poison".to_owned()])
        .await;
    eventually(Duration::from_secs(60), || async {
        (!stack.drain("SignalsDlqName").await.is_empty()).then_some(())
    })
    .await
    .expect("the poison message reaches the DLQ");
    assert!(chain.wait_idle(Duration::from_secs(60)).await.unwrap());
    // Each delivery of the poison message is one rejection, until the queue moves it.
    let poison_deliveries = stack.max_receive_count("SignalsQueueName").await;
    let requests = chain.executions.stats.records.load(Ordering::Relaxed);
    let executor_invocations = chain.executions.stats.invocations.load(Ordering::Relaxed);
    let dispatcher_invocations = chain.signals.stats.invocations.load(Ordering::Relaxed);
    chain.stop().await;

    let by_status = executions_by_status(&stack.dynamo, &stack.output("ExecutionsTableName"))
        .await
        .unwrap();
    let orders = count_items(&stack.dynamo, &stack.output("OrdersTableName"))
        .await
        .unwrap();
    assert!(
        signals > 0 && requests > 0 && orders > 0,
        "a run with something to count"
    );

    let g = instance("signal-generator");
    let d = instance("trigger-dispatcher");
    let e = instance("pipeline-executor");
    let mut expected = BTreeMap::from([
        (
            format!(r#"signals_generated_total{{instance="{g}"}}"#),
            signals as f64,
        ),
        (format!(r#"generator_scans_total{{instance="{g}"}}"#), 3.0),
        (
            format!(r#"faas_invocations_total{{instance="{g}",job="signal-generator"}}"#),
            3.0,
        ),
        (
            format!(r#"signals_consumed_total{{instance="{d}"}}"#),
            signals as f64,
        ),
        (
            format!(r#"messages_rejected_total{{instance="{d}",reason="malformed_json"}}"#),
            poison_deliveries as f64,
        ),
        (
            format!(r#"pipelines_enqueued_total{{instance="{d}"}}"#),
            requests as f64,
        ),
        (
            format!(r#"faas_invocations_total{{instance="{d}",job="trigger-dispatcher"}}"#),
            dispatcher_invocations as f64,
        ),
        (
            format!(r#"orders_created_total{{instance="{e}"}}"#),
            orders as f64,
        ),
        (
            format!(r#"faas_invocations_total{{instance="{e}",job="pipeline-executor"}}"#),
            executor_invocations as f64,
        ),
        (
            format!(r#"pipeline_execution_duration_seconds_count{{instance="{e}"}}"#),
            by_status.values().sum::<u64>() as f64,
        ),
    ]);
    for status in ["COMPLETED", "FAILED", "SKIPPED"] {
        let n = by_status.get(status).copied().unwrap_or(0);
        expected.insert(
            format!(
                r#"pipeline_executions_total{{instance="{e}",status="{}"}}"#,
                status.to_lowercase()
            ),
            n as f64,
        );
    }
    expect_all(&prometheus, &expected).await;
    stack.delete().await;
}

#[tokio::test]
#[ignore = "needs the metrics stack (PROMETHEUS_URL, TRADEFLOW_OTLP_ENDPOINT); local/test.sh runs it"]
async fn two_instances_of_the_same_function_land_side_by_side() {
    let (prometheus, endpoint) = metrics_stack();
    use tradeflow_core::dispatch::{Dispatcher, DispatcherConfig};
    use tradeflow_core::fakes::{ManualClock, MemoryLeaseStore, MemoryPipelineStore, MemoryQueue};
    let tag = format!("twins-{}-{}", std::process::id(), now());
    let mut expected = BTreeMap::new();
    let mut runs = Vec::new();
    for (n, signals) in [("a", 2usize), ("b", 3usize)] {
        let instance = format!("{tag}-{n}");
        let dispatcher = Dispatcher::new(
            Arc::new(MemoryPipelineStore::default()),
            Arc::new(MemoryLeaseStore::default()),
            Arc::new(MemoryQueue::default()),
            Arc::new(ManualClock::at(1_750_000_100)),
            DispatcherConfig::default(),
        );
        let telemetry = telemetry("trigger-dispatcher", &endpoint, &instance);
        let handler = tradeflow_lambda::service(
            trigger_dispatcher::Handler::new(dispatcher, &telemetry),
            telemetry,
        );
        let mut event = aws_lambda_events::event::sqs::SqsEvent::default();
        event.records = (0..signals)
            .map(|i| {
                let mut m = aws_lambda_events::event::sqs::SqsMessage::default();
                m.message_id = Some(format!("{n}{i}"));
                m.body = Some(signal_body(
                    &format!("{n}{i}"),
                    "rsi_oversold",
                    "5",
                    1_750_000_000,
                    &[("AAPL", "BULLISH", 80.0)],
                ));
                m
            })
            .collect();
        runs.push((handler, event));
        expected.insert(
            format!(r#"signals_consumed_total{{job="trigger-dispatcher",instance="{instance}"}}"#),
            signals as f64,
        );
    }
    // Both instances at once, as two concurrent Lambda execution environments would be.
    let (a, b) = runs.split_at(1);
    let none = tradeflow_lambda::Deadline::none();
    let (ra, rb) = tokio::join!(
        tradeflow_lambda::invoke(&a[0].0, a[0].1.clone(), none),
        tradeflow_lambda::invoke(&b[0].0, b[0].1.clone(), none)
    );
    ra.unwrap();
    rb.unwrap();
    expected.insert(
        format!(
            r#"count(signals_consumed_total{{job="trigger-dispatcher",instance=~"{tag}-.*"}})"#
        ),
        2.0,
    );
    expected.insert(
        format!(r#"sum(signals_consumed_total{{job="trigger-dispatcher",instance=~"{tag}-.*"}})"#),
        5.0,
    );
    expect_all(&prometheus, &expected).await;
}
