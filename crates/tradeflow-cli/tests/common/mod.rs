//! Driving the `tradeflow` binary as a user would, against a stack of its own on the emulator.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tradeflow_local::stack::{StackOutputs, create_stack, delete_stack_and_history};

pub const TEMPLATE: &str = include_str!("../../../../infra/template.yaml");

/// The result of one run of the binary.
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    fn from(out: Output) -> Self {
        Run {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Asserts success and returns stdout.
    #[track_caller]
    pub fn ok(&self) -> &str {
        assert_eq!(
            self.code,
            Some(0),
            "expected success\nstdout:\n{}\nstderr:\n{}",
            self.stdout,
            self.stderr
        );
        &self.stdout
    }

    /// Asserts a failure with exactly one line on stderr, `error: ...`, and no panic.
    #[track_caller]
    pub fn fails(&self) -> &str {
        assert_eq!(
            self.code,
            Some(1),
            "expected exit code 1\nstdout:\n{}\nstderr:\n{}",
            self.stdout,
            self.stderr
        );
        let lines: Vec<&str> = self
            .stderr
            .lines()
            .filter(|l| !l.starts_with("warning:"))
            .collect();
        assert_eq!(
            lines.len(),
            1,
            "one error line expected, got:\n{}",
            self.stderr
        );
        assert!(lines[0].starts_with("error: "), "{}", self.stderr);
        assert!(!self.stderr.contains("panicked"), "{}", self.stderr);
        assert!(!self.stderr.contains("internal error"), "{}", self.stderr);
        lines[0]
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(self.ok()).unwrap_or_else(|e| panic!("{e}: {}", self.stdout))
    }
}

/// The binary with stdin closed (not a terminal) and no stack from the environment.
pub fn tradeflow(args: &[&str]) -> Run {
    tradeflow_env(args, &[], &[])
}

/// [`tradeflow`] with variables set and removed.
pub fn tradeflow_env(args: &[&str], set: &[(&str, &str)], remove: &[&str]) -> Run {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tradeflow"));
    command
        .args(args)
        .env_remove("TRADEFLOW_STACK")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null());
    for (k, v) in set {
        command.env(k, v);
    }
    for k in remove {
        command.env_remove(k);
    }
    Run::from(command.output().expect("the binary runs"))
}

/// A file in a fresh temporary directory.
pub fn temp_file(name: &str, text: &str) -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "tradeflow-cli-test-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// The emulator at `AWS_ENDPOINT_URL`. A test that needs it is `#[ignore]`d; asked for, it
/// fails without it (never passes silently).
pub async fn emulator() -> aws_config::SdkConfig {
    let set = std::env::var("AWS_ENDPOINT_URL").is_ok_and(|v| !v.is_empty());
    assert!(
        set,
        "this test needs the AWS emulator: `source local/env.sh && local/emulator.sh start` \
         (AWS_ENDPOINT_URL is not set)"
    );
    tradeflow_aws::load_aws_config().await.unwrap()
}

pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A stack of its own for one test.
pub struct Stack {
    pub sdk: aws_config::SdkConfig,
    pub stage: String,
    pub name: String,
    pub outputs: StackOutputs,
    pub sqs: aws_sdk_sqs::Client,
    pub dynamo: aws_sdk_dynamodb::Client,
}

impl Stack {
    pub async fn deploy() -> Self {
        static N: AtomicU32 = AtomicU32::new(0);
        let sdk = emulator().await;
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let stage = format!(
            "cli{}x{nanos:x}x{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        let cfn = aws_sdk_cloudformation::Client::new(&sdk);
        let outputs = create_stack(&cfn, TEMPLATE, &stage).await.unwrap();
        Stack {
            sqs: aws_sdk_sqs::Client::new(&sdk),
            dynamo: aws_sdk_dynamodb::Client::new(&sdk),
            name: format!("tradeflow-{stage}"),
            sdk,
            stage,
            outputs,
        }
    }

    /// `tradeflow --stack <this stack> args...`
    pub fn run(&self, args: &[&str]) -> Run {
        let mut all = vec!["--stack", self.name.as_str()];
        all.extend_from_slice(args);
        tradeflow(&all)
    }

    /// The same, in a thread (a command that runs while the test does something else).
    pub fn spawn(&self, args: &[&str]) -> std::thread::JoinHandle<Run> {
        let mut all: Vec<String> = vec!["--stack".into(), self.name.clone()];
        all.extend(args.iter().map(|a| (*a).to_owned()));
        std::thread::spawn(move || {
            let refs: Vec<&str> = all.iter().map(String::as_str).collect();
            tradeflow(&refs)
        })
    }

    pub fn output(&self, key: &str) -> String {
        self.outputs.get(key).unwrap().to_owned()
    }

    pub async fn queue_url(&self, output: &str) -> String {
        tradeflow_aws::resolve_queue_url(&self.sqs, &self.output(output))
            .await
            .unwrap()
    }

    /// Dead-letters `body` the way SQS does: sent to the source queue and received without being
    /// deleted until the redrive policy moves it.
    pub async fn dead_letter(&self, source_output: &str, body: &str) {
        let url = self.queue_url(source_output).await;
        self.sqs
            .send_message()
            .queue_url(&url)
            .message_body(body)
            .send()
            .await
            .unwrap();
        let max = tradeflow_local::stack::max_receive_count(&self.sqs, &url)
            .await
            .unwrap()
            .unwrap();
        for _ in 0..=max {
            self.sqs
                .receive_message()
                .queue_url(&url)
                .visibility_timeout(0)
                .wait_time_seconds(0)
                .send()
                .await
                .unwrap();
        }
    }

    /// Messages on a queue (visible and in flight).
    pub async fn depth(&self, output: &str) -> u64 {
        let url = self.queue_url(output).await;
        let (visible, in_flight) = tradeflow_local::esm::outstanding(&self.sqs, &url)
            .await
            .unwrap();
        visible + in_flight
    }

    pub async fn delete(self) {
        delete_stack_and_history(&self.sdk, &self.stage, &self.outputs).await;
    }
}

/// Polls `check` every 200 ms until it is true, for at most `timeout`.
pub async fn eventually(timeout: Duration, mut check: impl AsyncFnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    false
}

/// A `tradeflow` process running beside the test: its stdout lines as they come.
pub struct Child {
    child: std::process::Child,
    lines: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    reader: Option<std::thread::JoinHandle<()>>,
    stderr: Option<std::thread::JoinHandle<String>>,
}

impl Child {
    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends `signal` (e.g. `INT`, `TERM`) to the process.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([format!("-{signal}"), self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits for the process to end (at most `timeout`): its exit code, stdout lines, stderr.
    pub fn wait(mut self, timeout: Duration) -> (Option<i32>, Vec<String>, String) {
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("the process did not end within {timeout:?}");
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        if let Some(r) = self.reader.take() {
            r.join().unwrap();
        }
        let stderr = self
            .stderr
            .take()
            .map(|h| h.join().unwrap())
            .unwrap_or_default();
        (status.code(), self.lines(), stderr)
    }
}

impl Stack {
    /// `tradeflow --stack <this stack> args...` as a process of its own, stdout read line by line.
    pub fn start(&self, args: &[&str]) -> Child {
        use std::io::{BufRead, Read};
        let mut child = Command::new(env!("CARGO_BIN_EXE_tradeflow"))
            .arg("--stack")
            .arg(&self.name)
            .args(args)
            .env_remove("TRADEFLOW_STACK")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let stdout = child.stdout.take().unwrap();
        let sink = lines.clone();
        let reader = std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines() {
                match line {
                    Ok(l) => sink.lock().unwrap().push(l),
                    Err(_) => break,
                }
            }
        });
        let mut stderr = child.stderr.take().unwrap();
        let stderr = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text);
            text
        });
        Child {
            child,
            lines,
            reader: Some(reader),
            stderr: Some(stderr),
        }
    }

    /// The endpoints (queue names) of the subscriptions of the stack's signals topic.
    pub async fn topic_subscribers(&self) -> Vec<String> {
        let sns = aws_sdk_sns::Client::new(&self.sdk);
        let out = sns
            .list_subscriptions_by_topic()
            .topic_arn(self.output("SignalsTopicArn"))
            .send()
            .await
            .unwrap();
        let mut names: Vec<String> = out
            .subscriptions()
            .iter()
            .map(|s| s.endpoint().unwrap().rsplit(':').next().unwrap().to_owned())
            .collect();
        names.sort();
        names
    }

    /// The tail queues of this stack (`tradeflow-tail-<stage>-...`).
    pub async fn tail_queues(&self) -> Vec<String> {
        let out = self
            .sqs
            .list_queues()
            .queue_name_prefix(format!("tradeflow-tail-{}-", self.stage))
            .send()
            .await
            .unwrap();
        out.queue_urls()
            .iter()
            .map(|u| u.rsplit('/').next().unwrap().to_owned())
            .collect()
    }
}
