//! The whole chain running locally: the generator on a schedule, and one event source mapping per
//! queue, invoking the three functions in-process or through `cargo lambda watch`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use tradeflow_telemetry::Telemetry;

use crate::esm::{EventSourceMapping, MappingConfig, outstanding};
use crate::invoke::{InProcess, ScheduledFunction, SqsFunction, WatchFunction, scheduled_event};
use crate::stack::StackOutputs;

pub struct Functions {
    pub generator: Arc<dyn ScheduledFunction>,
    pub dispatcher: Arc<dyn SqsFunction>,
    pub executor: Arc<dyn SqsFunction>,
}

impl Functions {
    /// The handlers in this process, configured exactly like the deployed functions (the stack's
    /// environment plus `extra`), through their own `Config::from_lookup` and `from_aws`, and
    /// served as `main.rs` serves them ([`InProcess`]).
    pub async fn in_process(
        sdk: &aws_config::SdkConfig,
        outputs: &StackOutputs,
        extra: &HashMap<String, String>,
    ) -> anyhow::Result<Self> {
        Self::in_process_with(sdk, outputs, extra, &Telemetry::init).await
    }

    /// As [`Functions::in_process`], with each function's telemetry made by `telemetry`.
    pub async fn in_process_with(
        sdk: &aws_config::SdkConfig,
        outputs: &StackOutputs,
        extra: &HashMap<String, String>,
        telemetry: &(dyn Fn(&str) -> Telemetry + Sync),
    ) -> anyhow::Result<Self> {
        let mut env: HashMap<String, String> = outputs
            .function_env(sdk)
            .await?
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect();
        env.extend(extra.clone());
        let lookup = |k: &str| env.get(k).cloned();
        let generator_telemetry = telemetry(signal_generator::FUNCTION_NAME);
        let generator = signal_generator::Handler::from_aws(
            sdk,
            &signal_generator::Config::from_lookup(lookup)?,
            &generator_telemetry,
        )
        .await
        .map_err(|e| anyhow::anyhow!("building the generator: {e}"))?;
        let dispatcher_telemetry = telemetry(trigger_dispatcher::FUNCTION_NAME);
        let dispatcher = trigger_dispatcher::Handler::from_aws(
            sdk,
            &trigger_dispatcher::Config::from_lookup(lookup)?,
            &dispatcher_telemetry,
        )
        .await?;
        let executor_telemetry = telemetry(pipeline_executor::FUNCTION_NAME);
        let executor = pipeline_executor::Handler::from_aws(
            sdk,
            &pipeline_executor::Config::from_lookup(lookup)?,
            &executor_telemetry,
        )?;
        Ok(Functions {
            generator: Arc::new(InProcess::new(generator, generator_telemetry)?),
            dispatcher: Arc::new(InProcess::new(dispatcher, dispatcher_telemetry)?),
            executor: Arc::new(InProcess::new(executor, executor_telemetry)?),
        })
    }

    /// The real binaries behind `cargo lambda watch` at `base_url`.
    pub fn watch(base_url: &str) -> Self {
        Functions {
            generator: Arc::new(WatchFunction::new(
                base_url,
                signal_generator::FUNCTION_NAME,
            )),
            dispatcher: Arc::new(WatchFunction::new(
                base_url,
                trigger_dispatcher::FUNCTION_NAME,
            )),
            executor: Arc::new(WatchFunction::new(
                base_url,
                pipeline_executor::FUNCTION_NAME,
            )),
        }
    }
}

/// Event source mapping settings of the two queues, as infra/template.yaml declares them.
#[derive(Debug, Clone)]
pub struct ChainConfig {
    pub signals: MappingConfig,
    pub executions: MappingConfig,
}

impl Default for ChainConfig {
    fn default() -> Self {
        ChainConfig {
            signals: MappingConfig {
                batch_size: 20,
                batching_window: Duration::from_millis(500),
                ..MappingConfig::default()
            },
            executions: MappingConfig {
                batch_size: 10,
                pollers: 4,
                ..MappingConfig::default()
            },
        }
    }
}

pub struct Chain {
    pub sqs: aws_sdk_sqs::Client,
    pub dynamo: aws_sdk_dynamodb::Client,
    pub outputs: StackOutputs,
    pub generator: Arc<dyn ScheduledFunction>,
    pub signals: Arc<EventSourceMapping>,
    pub executions: Arc<EventSourceMapping>,
    stop: tokio::sync::watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Chain {
    /// Starts polling both queues.
    pub async fn start(
        sdk: &aws_config::SdkConfig,
        outputs: StackOutputs,
        functions: Functions,
        config: ChainConfig,
    ) -> anyhow::Result<Self> {
        let sqs = aws_sdk_sqs::Client::new(sdk);
        let dynamo = aws_sdk_dynamodb::Client::new(sdk);
        let signals = Arc::new(
            EventSourceMapping::new(
                sqs.clone(),
                outputs.get("SignalsQueueName")?,
                functions.dispatcher,
                config.signals,
            )
            .await?,
        );
        let executions = Arc::new(
            EventSourceMapping::new(
                sqs.clone(),
                outputs.get("ExecutionsQueueName")?,
                functions.executor,
                config.executions,
            )
            .await?,
        );
        let (stop, rx) = tokio::sync::watch::channel(false);
        let mut tasks = Vec::new();
        for mapping in [&signals, &executions] {
            for _ in 0..mapping.pollers() {
                tasks.push(tokio::spawn(Arc::clone(mapping).run(rx.clone())));
            }
        }
        Ok(Chain {
            sqs,
            dynamo,
            outputs,
            generator: functions.generator,
            signals,
            executions,
            stop,
            tasks,
        })
    }

    /// Fires the generator as the schedule would, with `time` as the event time.
    pub async fn fire_generator(&self, time: i64) -> anyhow::Result<serde_json::Value> {
        self.generator
            .invoke(scheduled_event(time))
            .await
            .map_err(|e| anyhow::anyhow!("generator: {e}"))
    }

    /// Messages still on (visible, in flight) the signals and executions queues.
    pub async fn backlog(&self) -> anyhow::Result<u64> {
        let (a, b) = outstanding(&self.sqs, self.signals.queue_url()).await?;
        let (c, d) = outstanding(&self.sqs, self.executions.queue_url()).await?;
        Ok(a + b + c + d)
    }

    /// Waits until both queues are empty (nothing visible, nothing in flight), up to `timeout`.
    pub async fn wait_idle(&self, timeout: Duration) -> anyhow::Result<bool> {
        let deadline = Instant::now() + timeout;
        let mut quiet = 0;
        while Instant::now() < deadline {
            if self.backlog().await? == 0 {
                quiet += 1;
                // Twice in a row: a batch between receive and delete is "not visible" anyway.
                if quiet >= 2 {
                    return Ok(true);
                }
            } else {
                quiet = 0;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Ok(false)
    }

    pub async fn dlq_depth(&self, output: &str) -> anyhow::Result<u64> {
        let url = tradeflow_aws::resolve_queue_url(&self.sqs, self.outputs.get(output)?)
            .await
            .context("resolving DLQ")?;
        let (visible, in_flight) = outstanding(&self.sqs, &url).await?;
        Ok(visible + in_flight)
    }

    pub async fn stop(self) {
        let _ = self.stop.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
    }
}
