#![allow(clippy::unwrap_used, clippy::expect_used)]

//! Metrics against the real collector (vmagent) and Prometheus started by local/test.sh, which
//! sets PROMETHEUS_URL and TRADEFLOW_OTLP_ENDPOINT. Each test tags its functions with its own
//! stage (`TRADEFLOW_STAGE`, the `stage` label), so its series are its own. vmagent aggregates
//! the per-environment `instance` label away (local/metrics/vmagent-aggregation.yml): one series
//! per function, stage and labels.

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

/// A telemetry exporting to `endpoint` whose `stage` label is `stage` (and a random
/// `service.instance.id`, as every process has).
fn telemetry(service: &str, endpoint: &str, stage: &str) -> Telemetry {
    let env: HashMap<&str, String> = HashMap::from([
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.to_owned()),
        ("TRADEFLOW_STAGE", stage.to_owned()),
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
    wait_for_aggregation_warm_up(&prometheus).await;
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
    let make = |name: &str| telemetry(name, &endpoint, &stack.stage);
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

    let stage = &stack.stage;
    let g = format!(r#"{stage}",job="signal-generator"#);
    let d = format!(r#"{stage}",job="trigger-dispatcher"#);
    let e = format!(r#"{stage}",job="pipeline-executor"#);
    let mut expected = BTreeMap::from([
        (
            format!(r#"signals_generated_total{{stage="{g}"}}"#),
            signals as f64,
        ),
        (format!(r#"generator_scans_total{{stage="{g}"}}"#), 3.0),
        (format!(r#"faas_invocations_total{{stage="{g}"}}"#), 3.0),
        (
            format!(r#"signals_consumed_total{{stage="{d}"}}"#),
            signals as f64,
        ),
        (
            format!(r#"messages_rejected_total{{stage="{d}",reason="malformed_json"}}"#),
            poison_deliveries as f64,
        ),
        (
            format!(r#"pipelines_enqueued_total{{stage="{d}"}}"#),
            requests as f64,
        ),
        (
            format!(r#"faas_invocations_total{{stage="{d}"}}"#),
            dispatcher_invocations as f64,
        ),
        (
            format!(r#"orders_created_total{{stage="{e}"}}"#),
            orders as f64,
        ),
        (
            format!(r#"faas_invocations_total{{stage="{e}"}}"#),
            executor_invocations as f64,
        ),
        (
            format!(r#"pipeline_execution_duration_seconds_count{{stage="{e}"}}"#),
            by_status.values().sum::<u64>() as f64,
        ),
    ]);
    // The generator read both source queues' depth on every scan (the values vary with timing).
    expected.insert(format!(r#"count(queue_depth{{stage="{g}"}})"#), 2.0);
    for status in ["COMPLETED", "FAILED", "SKIPPED"] {
        let n = by_status.get(status).copied().unwrap_or(0);
        expected.insert(
            format!(
                r#"pipeline_executions_total{{stage="{e}",status="{}"}}"#,
                status.to_lowercase()
            ),
            n as f64,
        );
    }
    expect_all(&prometheus, &expected).await;
    stack.delete().await;
}

/// How long a vmagent must have been up before a new environment's first samples count:
/// `ignore_first_sample_interval` (30 s, local/metrics/vmagent-aggregation.yml) and a margin.
const AGGREGATION_WARM_UP: Duration = Duration::from_secs(35);

/// vmagent's aggregation ignores first samples for a while after it starts
/// (`ignore_first_sample_interval`, local/metrics/vmagent-aggregation.yml): wait until it has been
/// up longer than that, so a test's first pushes count.
async fn wait_for_aggregation_warm_up(prometheus: &str) {
    let warm_up = AGGREGATION_WARM_UP.as_secs_f64();
    let query = r#"time() - max(vm_app_start_timestamp{job="vmagent"})"#;
    for _ in 0..120 {
        if sum(prometheus, query).await >= warm_up {
            return;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    panic!("vmagent has not been up for {warm_up} s after a minute (is Prometheus scraping it?)");
}

/// A unique stage for one test's series.
fn test_stage(name: &str) -> String {
    format!("{name}-{}-{}", std::process::id(), now())
}

#[tokio::test]
#[ignore = "needs the metrics stack (PROMETHEUS_URL, TRADEFLOW_OTLP_ENDPOINT); local/test.sh runs it"]
async fn concurrent_instances_of_a_function_are_one_series() {
    let (prometheus, endpoint) = metrics_stack();
    wait_for_aggregation_warm_up(&prometheus).await;
    use tradeflow_core::dispatch::{Dispatcher, DispatcherConfig};
    use tradeflow_core::fakes::{ManualClock, MemoryLeaseStore, MemoryPipelineStore, MemoryQueue};
    let stage = test_stage("twins");
    let mut runs = Vec::new();
    for (n, signals) in [("a", 2usize), ("b", 3usize)] {
        let dispatcher = Dispatcher::new(
            Arc::new(MemoryPipelineStore::default()),
            Arc::new(MemoryLeaseStore::default()),
            Arc::new(MemoryQueue::default()),
            Arc::new(ManualClock::at(1_750_000_100)),
            DispatcherConfig::default(),
        );
        let telemetry = telemetry("trigger-dispatcher", &endpoint, &stage);
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
    let sel = format!(r#"signals_consumed_total{{job="trigger-dispatcher",stage="{stage}"}}"#);
    let expected = BTreeMap::from([
        (format!("count({sel})"), 1.0),
        (format!("sum({sel})"), 5.0),
        (format!(r#"count({{stage="{stage}",instance!=""}})"#), 0.0),
    ]);
    expect_all(&prometheus, &expected).await;
}

/// The issue-10 proof: short-lived Lambda environments (separate processes, 1-3 invocations
/// each, then gone, as Lambda recycles them) count exactly what they did, in one series per
/// function, although each environment's first push is its whole count so far.
#[tokio::test]
#[ignore = "needs the metrics stack (PROMETHEUS_URL, TRADEFLOW_OTLP_ENDPOINT); local/test.sh runs it"]
async fn short_lived_environments_add_up_to_the_ground_truth() {
    let (prometheus, endpoint) = metrics_stack();
    wait_for_aggregation_warm_up(&prometheus).await;
    short_lived_environments_add_up(&prometheus, &endpoint, "short-lived").await;
}

/// The same through the AWS stack's aggregation gateway (MetricsAggregation=gateway): a vmagent
/// started with the gateway container's own command line from infra/template.yaml and the
/// configuration files its `config` container's script writes (only the listen address and the paths
/// move into a temporary directory; the backend is the local Prometheus), fed OTLP by seven
/// short-lived dispatchers, writes exactly the ground truth. `vmagent -dryRun` first checks the
/// configuration as the gateway reads it.
#[tokio::test]
#[ignore = "needs the metrics stack (PROMETHEUS_URL) and vmagent (TRADEFLOW_VMAGENT_BIN); local/test.sh runs it"]
async fn the_aws_aggregation_gateway_adds_up_short_lived_environments() {
    let [prometheus, vmagent] = <[String; 2]>::try_from(require_env(
        "the metrics stack and its vmagent binary (`local/metrics.sh env` prints both)",
        &["PROMETHEUS_URL", "TRADEFLOW_VMAGENT_BIN"],
    ))
    .unwrap();
    let backend = format!("{prometheus}/api/v1/write");
    let params = crate::template::with_gateway("remote-write", &[("MetricsEndpoint", &backend)]);
    let task = crate::template::gateway_task(&params).expect("the template has a gateway");
    let dir = temp_dir("gateway");
    // What the config container writes, by running its own script.
    task.run_config(&dir, None).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir_str = dir.to_str().unwrap();
    let args: Vec<String> = task
        .command
        .iter()
        .map(|arg| {
            if arg == "-httpListenAddr=:8429" {
                format!("-httpListenAddr=127.0.0.1:{port}")
            } else if let Some((flag, path)) = arg.split_once("=/") {
                // /config/... and /tmp/vmagent-data: into the temporary directory.
                assert!(
                    path.starts_with("config/") || path.starts_with("tmp/"),
                    "unexpected path flag {arg}"
                );
                format!("{flag}={dir_str}/{path}")
            } else {
                arg.clone()
            }
        })
        .collect();
    let dry = tokio::process::Command::new(&vmagent)
        .args(&args)
        .arg("-dryRun")
        .output()
        .await
        .unwrap();
    assert!(
        dry.status.success(),
        "vmagent -dryRun rejects the gateway's configuration: {}",
        String::from_utf8_lossy(&dry.stderr)
    );
    let log = std::fs::File::create(dir.join("vmagent.log")).unwrap();
    let _gateway = tokio::process::Command::new(&vmagent)
        .args(&args)
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    let health = format!("http://127.0.0.1:{port}/health");
    let mut up = false;
    for _ in 0..100 {
        if reqwest::get(&health)
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        up,
        "the gateway's vmagent did not answer on {health} (log: {})",
        dir.join("vmagent.log").display()
    );
    // Not scraped by Prometheus (wait_for_aggregation_warm_up): waited out by the clock.
    tokio::time::sleep(AGGREGATION_WARM_UP.saturating_sub(started.elapsed())).await;
    short_lived_environments_add_up(
        &prometheus,
        &format!("http://127.0.0.1:{port}/opentelemetry"),
        "gateway",
    )
    .await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// Seven short-lived trigger-dispatcher processes (1-3 invocations each) push to `endpoint`
/// under a stage of their own; Prometheus' totals must equal the ground truth, in one series
/// with no `instance` label.
async fn short_lived_environments_add_up(prometheus: &str, endpoint: &str, name: &str) {
    let stage = test_stage(name);
    // Signals per invocation, one list per environment: 7 environments, 14 invocations.
    let environments: [&[usize]; 7] = [
        &[1],
        &[2, 3],
        &[3, 1, 2],
        &[1, 1],
        &[2],
        &[3, 3, 1],
        &[2, 2],
    ];
    let mut truth_signals = 0;
    let mut truth_invocations = 0;
    // In waves of up to three at once, as a burst of concurrent environments.
    for wave in environments.chunks(3) {
        let mut children = Vec::new();
        for sizes in wave {
            truth_signals += sizes.iter().sum::<usize>();
            truth_invocations += sizes.len();
            children.push(
                tokio::process::Command::new(env!("CARGO_BIN_EXE_short-lived-dispatcher"))
                    .args(sizes.iter().map(ToString::to_string))
                    .env("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
                    .env("TRADEFLOW_STAGE", &stage)
                    .env("AWS_REGION", "us-east-1")
                    // Generous: the count is the point here, not the flush budget.
                    .env("TELEMETRY_FLUSH_TIMEOUT_MS", "2000")
                    .env("RUST_LOG", "warn")
                    .env_remove("AWS_LAMBDA_LOG_STREAM_NAME")
                    .env_remove("OTEL_SERVICE_NAME")
                    .env_remove("OTEL_RESOURCE_ATTRIBUTES")
                    .kill_on_drop(true)
                    .status(),
            );
        }
        for child in children {
            let status = child.await.unwrap();
            assert!(
                status.success(),
                "a short-lived dispatcher failed: {status}"
            );
        }
    }
    let job = format!(r#"job="trigger-dispatcher",stage="{stage}""#);
    let expected = BTreeMap::from([
        (
            format!("sum(signals_consumed_total{{{job}}})"),
            truth_signals as f64,
        ),
        (format!("count(signals_consumed_total{{{job}}})"), 1.0),
        (
            format!(r#"sum(faas_invocations_total{{{job},trigger="pubsub"}})"#),
            truth_invocations as f64,
        ),
        (
            format!("sum(faas_coldstarts_total{{{job}}})"),
            environments.len() as f64,
        ),
        (
            format!("sum(batch_size_sum{{{job}}})"),
            truth_signals as f64,
        ),
        (
            format!("sum(batch_size_count{{{job}}})"),
            truth_invocations as f64,
        ),
        (
            format!(r#"sum(batch_size_bucket{{{job},le="+Inf"}})"#),
            truth_invocations as f64,
        ),
        (format!(r#"count({{stage="{stage}",instance!=""}})"#), 0.0),
    ]);
    expect_all(prometheus, &expected).await;
}

/// Every metric of the catalogue is aggregated across environments by
/// local/metrics/vmagent-aggregation.yml: counters and histogram parts by `total`, gauges by
/// `max`, each without `instance` and under its own name (no emulator or metrics stack needed).
#[test]
fn the_aggregation_covers_every_metric_of_the_catalogue() {
    use tradeflow_telemetry::{METRICS, MetricKind};
    let text = include_str!("../../local/metrics/vmagent-aggregation.yml");
    let rules: serde_norway::Value = serde_norway::from_str(text).unwrap();
    let rules = rules.as_sequence().unwrap();
    // `{__name__=~"a|b|c"}` -> [a, b, c]
    let alternatives = |rule: &serde_norway::Value| -> Vec<String> {
        let m = rule["match"].as_str().unwrap();
        let inner = m
            .strip_prefix(r#"{__name__=~""#)
            .and_then(|m| m.strip_suffix(r#""}"#))
            .unwrap_or_else(|| panic!("match is not a __name__ regex: {m}"));
        inner.split('|').map(str::to_owned).collect()
    };
    let matches = |pattern: &str, name: &str| match pattern.strip_prefix(".+") {
        Some(suffix) => name.len() > suffix.len() && name.ends_with(suffix),
        None => pattern == name,
    };
    let output_of = |name: &str| -> Vec<String> {
        rules
            .iter()
            .filter(|r| alternatives(r).iter().any(|p| matches(p, name)))
            .map(|r| {
                assert_eq!(r["without"][0].as_str(), Some("instance"), "{name}");
                assert_eq!(r["keep_metric_names"].as_bool(), Some(true), "{name}");
                r["outputs"][0].as_str().unwrap().to_owned()
            })
            .collect()
    };
    for metric in METRICS {
        let want = match metric.kind {
            MetricKind::Counter | MetricKind::Histogram => "total",
            MetricKind::Gauge => "max",
        };
        for name in metric.exported_names() {
            assert_eq!(output_of(&name), [want], "{name} ({:?})", metric.kind);
        }
    }
}
