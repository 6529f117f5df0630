//! One stack per test, deployed from infra/template.yaml to the emulator at `AWS_ENDPOINT_URL`,
//! and the chain running on it in-process.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_sdk_sqs::types::MessageSystemAttributeName;
use tradeflow_core::pipeline::Pipeline;
use tradeflow_core::ports::PipelineStore;
use tradeflow_local::chain::{Chain, ChainConfig, Functions};
use tradeflow_local::esm::MappingConfig;
use tradeflow_local::stack::{StackOutputs, create_stack, delete_stack_and_history};

pub const TEMPLATE: &str = include_str!("../../infra/template.yaml");

/// Why a test that was run cannot run: its service is not there. Every test here is `#[ignore]`d
/// (plain `cargo test` lists it as ignored); one that is asked for (`--include-ignored`, `--ignored`,
/// or by name) requires its service and fails without it, it never passes silently.
pub fn require_env(test_needs: &str, vars: &[&str]) -> Vec<String> {
    let value = |v: &str| std::env::var(v).ok().filter(|s| !s.is_empty());
    let missing: Vec<&str> = vars
        .iter()
        .copied()
        .filter(|v| value(v).is_none())
        .collect();
    assert!(
        missing.is_empty(),
        "this test needs {test_needs}; not set: {}. Run it through local/test.sh, or start the \
         service yourself (README, Testing layers)",
        missing.join(", ")
    );
    vars.iter().map(|v| value(v).unwrap()).collect()
}

/// The config of the emulator at `AWS_ENDPOINT_URL` (see [`require_env`]).
pub async fn emulator() -> aws_config::SdkConfig {
    require_env(
        "the AWS emulator (`source local/env.sh && local/emulator.sh start`)",
        &["AWS_ENDPOINT_URL"],
    );
    tradeflow_aws::load_aws_config()
        .await
        .expect("AWS_ENDPOINT_URL is a URL")
}

pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn unique_stage() -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "it{}x{nanos:x}x{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A freshly deployed stack of its own.
pub struct TestStack {
    pub sdk: aws_config::SdkConfig,
    pub stage: String,
    pub outputs: StackOutputs,
    pub sqs: aws_sdk_sqs::Client,
    pub dynamo: aws_sdk_dynamodb::Client,
}

impl TestStack {
    pub async fn deploy(sdk: aws_config::SdkConfig) -> Self {
        let stage = unique_stage();
        let cfn = aws_sdk_cloudformation::Client::new(&sdk);
        let outputs = create_stack(&cfn, TEMPLATE, &stage)
            .await
            .expect("stack deploys");
        TestStack {
            sqs: aws_sdk_sqs::Client::new(&sdk),
            dynamo: aws_sdk_dynamodb::Client::new(&sdk),
            sdk,
            stage,
            outputs,
        }
    }

    /// Deletes the stack, then the tables the template retains (executions, orders).
    pub async fn delete(self) {
        delete_stack_and_history(&self.sdk, &self.stage, &self.outputs).await;
    }

    pub fn output(&self, key: &str) -> String {
        self.outputs.get(key).unwrap().to_owned()
    }

    pub async fn queue_url(&self, output: &str) -> String {
        tradeflow_aws::resolve_queue_url(&self.sqs, &self.output(output))
            .await
            .unwrap()
    }

    pub fn pipelines(&self) -> tradeflow_aws::DynamoPipelineStore {
        tradeflow_aws::DynamoPipelineStore::new(
            self.dynamo.clone(),
            self.output("PipelinesTableName"),
        )
    }

    pub fn executions(&self) -> tradeflow_aws::DynamoExecutionStore {
        tradeflow_aws::DynamoExecutionStore::new(
            self.dynamo.clone(),
            self.output("ExecutionsTableName"),
        )
    }

    pub fn leases(&self) -> tradeflow_aws::DynamoLeaseStore {
        tradeflow_aws::DynamoLeaseStore::new(self.dynamo.clone(), self.output("LeasesTableName"))
    }

    pub async fn seed(&self, pipelines: &[Pipeline]) {
        let store = self.pipelines();
        for p in pipelines {
            store.put_pipeline(p).await.unwrap();
        }
    }

    /// The deployed queue's `maxReceiveCount` (its redrive policy): how many failed deliveries a
    /// poison message gets before the queue moves it to the DLQ.
    pub async fn max_receive_count(&self, output: &str) -> u64 {
        let url = self.queue_url(output).await;
        let max = tradeflow_local::stack::max_receive_count(&self.sqs, &url)
            .await
            .unwrap()
            .expect("the queue has a redrive policy");
        u64::from(max)
    }

    pub async fn send(&self, output: &str, bodies: &[String]) {
        let url = self.queue_url(output).await;
        for body in bodies {
            self.sqs
                .send_message()
                .queue_url(&url)
                .message_body(body)
                .send()
                .await
                .unwrap();
        }
    }

    /// Everything currently on a queue (received and deleted), bodies only.
    pub async fn drain(&self, output: &str) -> Vec<String> {
        let url = self.queue_url(output).await;
        let mut bodies = Vec::new();
        loop {
            let resp = self
                .sqs
                .receive_message()
                .queue_url(&url)
                .max_number_of_messages(10)
                .wait_time_seconds(0)
                .message_system_attribute_names(MessageSystemAttributeName::All)
                .send()
                .await
                .unwrap();
            if resp.messages().is_empty() {
                return bodies;
            }
            for m in resp.messages() {
                bodies.push(m.body().unwrap_or_default().to_owned());
                self.sqs
                    .delete_message()
                    .queue_url(&url)
                    .receipt_handle(m.receipt_handle().unwrap())
                    .send()
                    .await
                    .unwrap();
            }
        }
    }

    /// The three functions in-process, configured from this stack plus `extra` settings.
    pub async fn functions(&self, extra: &[(&str, &str)]) -> Functions {
        let extra: HashMap<String, String> = extra
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Functions::in_process(&self.sdk, &self.outputs, &extra)
            .await
            .unwrap()
    }

    /// Starts the event source mappings with fast local retries (failed records visible again
    /// after 1 s instead of the queue's visibility timeout).
    pub async fn start_chain(&self, functions: Functions) -> Chain {
        let fast = |batch_size, window_ms| MappingConfig {
            batch_size,
            batching_window: Duration::from_millis(window_ms),
            wait_time_secs: 1,
            retry_delay: Some(Duration::from_secs(1)),
            ..MappingConfig::default()
        };
        let config = ChainConfig {
            signals: fast(20, 200),
            executions: fast(10, 0),
        };
        Chain::start(&self.sdk, self.outputs.clone(), functions, config)
            .await
            .unwrap()
    }
}

/// Polls `check` every 200 ms until it returns `Some`, for at most `timeout`.
pub async fn eventually<T, F, Fut>(timeout: Duration, mut check: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if let Some(v) = check().await {
            return Some(v);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    None
}

pub fn pipeline(id: &str, tickers: &[&str], subs: serde_json::Value) -> Pipeline {
    tradeflow_core::fakes::fixtures::pipeline(id, "user-it", tickers, subs)
}

/// A signal body in the wire format; `tickers` are (ticker, direction, confidence).
pub fn signal_body(
    id: &str,
    signal_type: &str,
    timeframe: &str,
    timestamp: i64,
    tickers: &[(&str, &str, f64)],
) -> String {
    serde_json::json!({
        "signal_id": id, "signal_type": signal_type, "source": "integration_test", "timestamp": timestamp,
        "tickers": tickers.iter().map(|(t, d, c)| serde_json::json!({"ticker": t, "signal": d, "confidence": c, "reasoning": "test"})).collect::<Vec<_>>(),
        "metadata": {"timeframe": timeframe}
    })
    .to_string()
}

/// A new temporary directory of this test process.
pub fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "tradeflow-{name}-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
