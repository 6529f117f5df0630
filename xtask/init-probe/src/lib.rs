//! A local Lambda Runtime API that measures a function's init: from the moment this process
//! starts the function's binary to the moment the function asks for its first event
//! (`GET /2018-06-01/runtime/invocation/next`), and the function's peak RSS at that moment
//! (`VmHWM` of `/proc/<pid>/status`, read while it waits for the answer).
//!
//! The function gets the environment Lambda would give it ([`lambda_env`]) plus dummy tables,
//! queues and an OTLP endpoint ([`function_env`]), all pointing at 127.0.0.1 so nothing leaves
//! the machine; none of them is contacted during init. The process is killed once measured.
//!
//! Used by `cargo xtask bench-init` (many runs, warm and with the binary evicted from the page
//! cache) and by each function's smoke test (one run of its debug binary). Standard library
//! only.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The path of the Runtime API's "next invocation" request.
pub const NEXT_PATH: &str = "/2018-06-01/runtime/invocation/next";

/// The functions measured and their dummy configuration.
pub const FUNCTIONS: [&str; 3] = [
    "signal-generator",
    "trigger-dispatcher",
    "pipeline-executor",
];

/// The floor: a minimal `lambda_runtime` binary (this crate's `init-floor`).
pub const FLOOR: &str = "init-floor";

/// One measured start.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    /// Process start (just before `spawn`) to the first `next` request read.
    pub init: Duration,
    /// `VmHWM` at the first `next` (KiB).
    pub peak_rss_kib: u64,
}

/// Why a start could not be measured.
#[derive(Debug)]
pub enum ProbeError {
    Io(std::io::Error),
    /// The process ended before asking for an event (a configuration error, a panic...).
    Exited {
        status: String,
        output: String,
    },
    /// No `next` request within the timeout.
    Timeout {
        output: String,
    },
    /// The first request was something else (e.g. an init error report).
    Unexpected {
        request: String,
        output: String,
    },
}

impl std::fmt::Display for ProbeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProbeError::Io(e) => write!(f, "{e}"),
            ProbeError::Exited { status, output } => {
                write!(
                    f,
                    "the process exited ({status}) before its first `next`:\n{output}"
                )
            }
            ProbeError::Timeout { output } => {
                write!(f, "no `next` request in time; output so far:\n{output}")
            }
            ProbeError::Unexpected { request, output } => {
                write!(f, "first request was {request:?}, not `next`:\n{output}")
            }
        }
    }
}

impl std::error::Error for ProbeError {}

impl From<std::io::Error> for ProbeError {
    fn from(e: std::io::Error) -> Self {
        ProbeError::Io(e)
    }
}

/// The environment Lambda gives every function (with `AWS_LAMBDA_RUNTIME_API` = `api`).
pub fn lambda_env(function: &str, api: SocketAddr) -> Vec<(String, String)> {
    [
        ("AWS_LAMBDA_RUNTIME_API", api.to_string()),
        ("AWS_LAMBDA_FUNCTION_NAME", function.to_owned()),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128".to_owned()),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".to_owned()),
        (
            "AWS_LAMBDA_LOG_GROUP_NAME",
            format!("/aws/lambda/{function}"),
        ),
        (
            "AWS_LAMBDA_LOG_STREAM_NAME",
            "2026/12/01/[$LATEST]00000000000000000000000000000000".to_owned(),
        ),
        ("AWS_REGION", "us-east-1".to_owned()),
        ("AWS_DEFAULT_REGION", "us-east-1".to_owned()),
        ("AWS_ACCESS_KEY_ID", "AKIDBENCHINIT".to_owned()),
        ("AWS_SECRET_ACCESS_KEY", "bench-init".to_owned()),
        ("AWS_SESSION_TOKEN", "bench-init".to_owned()),
        ("AWS_EC2_METADATA_DISABLED", "true".to_owned()),
        ("RUST_LOG", "info".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

/// A function's own configuration, dummy and local: tables that are never read, queue URLs on
/// 127.0.0.1 (URLs, so no GetQueueUrl at init), `AWS_ENDPOINT_URL` and the OTLP endpoint on a
/// closed local port (the exporter is built, with its HTTP client, and nothing is sent).
pub fn function_env(function: &str) -> Vec<(String, String)> {
    let queue = |name: &str| format!("http://127.0.0.1:9/000000000000/{name}");
    let mut env = vec![
        (
            "AWS_ENDPOINT_URL".to_owned(),
            "http://127.0.0.1:9".to_owned(),
        ),
        (
            "OTEL_EXPORTER_OTLP_ENDPOINT".to_owned(),
            "http://127.0.0.1:9".to_owned(),
        ),
    ];
    let own: &[(&str, String)] = match function {
        "signal-generator" => &[
            ("SIGNALS_QUEUE_URL", queue("signals")),
            ("SIGNALS_DLQ_URL", queue("signals-dlq")),
            ("EXECUTIONS_DLQ_URL", queue("executions-dlq")),
            ("CURSORS_TABLE", "bench-cursors".to_owned()),
        ],
        "trigger-dispatcher" => &[
            ("PIPELINES_TABLE", "bench-pipelines".to_owned()),
            ("LEASES_TABLE", "bench-leases".to_owned()),
            ("EXECUTIONS_QUEUE_URL", queue("executions")),
        ],
        "pipeline-executor" => &[
            ("PIPELINES_TABLE", "bench-pipelines".to_owned()),
            ("EXECUTIONS_TABLE", "bench-executions".to_owned()),
            ("LEASES_TABLE", "bench-leases".to_owned()),
            ("ORDERS_TABLE", "bench-orders".to_owned()),
            ("MAX_RECEIVE_COUNT", "5".to_owned()),
        ],
        _ => &[],
    };
    env.extend(own.iter().map(|(k, v)| ((*k).to_owned(), v.clone())));
    env
}

/// The local Runtime API: one listener on 127.0.0.1, one function process at a time.
pub struct RuntimeApi {
    listener: TcpListener,
    addr: SocketAddr,
}

/// How often the API checks for the connection (and for an early exit) while it waits: the
/// resolution of the measurement.
const POLL: Duration = Duration::from_micros(50);

impl RuntimeApi {
    pub fn start() -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        Ok(RuntimeApi { listener, addr })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Starts `binary` as function `function` (its [`lambda_env`] and [`function_env`], with
    /// the environment of this process cleared but `PATH`), waits for its first request,
    /// measures it, and kills it.
    pub fn measure(
        &self,
        binary: &Path,
        function: &str,
        timeout: Duration,
    ) -> Result<Sample, ProbeError> {
        let mut started = self.launch(binary, function, &[], timeout)?;
        let sample = started.sample;
        started.kill();
        Ok(sample)
    }

    /// Like [`RuntimeApi::measure`] with `extra_env` on top, but leaves the process waiting for
    /// its event: [`Started::invoke`] answers its `next`.
    pub fn launch(
        &self,
        binary: &Path,
        function: &str,
        extra_env: &[(String, String)],
        timeout: Duration,
    ) -> Result<Started, ProbeError> {
        let mut command = Command::new(binary);
        command
            .env_clear()
            .envs(lambda_env(function, self.addr))
            .envs(function_env(function))
            .envs(extra_env.iter().cloned())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Ok(path) = std::env::var("PATH") {
            command.env("PATH", path);
        }
        let started = Instant::now();
        let mut child = command.spawn()?;
        match self.first_request(&mut child, started, timeout) {
            Ok((sample, stream)) => Ok(Started {
                sample,
                child,
                stream,
                function: function.to_owned(),
            }),
            Err(waited) => {
                let _ = child.kill();
                let output = collect_output(&mut child);
                Err(match waited {
                    Waited::Exited(status) => ProbeError::Exited { status, output },
                    Waited::Timeout => ProbeError::Timeout { output },
                    Waited::Unexpected(request) => ProbeError::Unexpected { request, output },
                    Waited::Io(e) => ProbeError::Io(e),
                })
            }
        }
    }

    fn first_request(
        &self,
        child: &mut Child,
        started: Instant,
        timeout: Duration,
    ) -> Result<(Sample, TcpStream), Waited> {
        let stream = loop {
            match self.listener.accept() {
                Ok((stream, _)) => break stream,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    if let Some(status) = child.try_wait().map_err(Waited::Io)? {
                        return Err(Waited::Exited(status.to_string()));
                    }
                    if started.elapsed() > timeout {
                        return Err(Waited::Timeout);
                    }
                    std::thread::sleep(POLL);
                }
                Err(e) => return Err(Waited::Io(e)),
            }
        };
        stream.set_nonblocking(false).map_err(Waited::Io)?;
        stream.set_read_timeout(Some(timeout)).map_err(Waited::Io)?;
        let mut reader = BufReader::new(stream.try_clone().map_err(Waited::Io)?);
        let mut request_line = String::new();
        reader.read_line(&mut request_line).map_err(Waited::Io)?;
        let init = started.elapsed();
        let peak_rss_kib = status_kib(child.id(), "VmHWM").map_err(Waited::Io)?;
        let mut words = request_line.split_whitespace();
        if words.next() != Some("GET") || words.next() != Some(NEXT_PATH) {
            return Err(Waited::Unexpected(request_line.trim().to_owned()));
        }
        // The rest of the request (headers; a GET has no body).
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).map_err(Waited::Io)? == 0 || line.trim().is_empty() {
                break;
            }
        }
        Ok((Sample { init, peak_rss_kib }, stream))
    }
}

/// A function process measured at its first `next` and still waiting for the answer. Killed
/// when dropped.
pub struct Started {
    pub sample: Sample,
    child: Child,
    stream: TcpStream,
    function: String,
}

impl Started {
    /// Answers the pending `next` with `event` (request id `bench-1`, a 30 s deadline) and
    /// returns when the answer was written.
    pub fn invoke(&mut self, event: &str) -> std::io::Result<Instant> {
        let deadline_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() + 30_000);
        let answer = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\
             lambda-runtime-aws-request-id: bench-1\r\n\
             lambda-runtime-deadline-ms: {deadline_ms}\r\n\
             lambda-runtime-invoked-function-arn: arn:aws:lambda:us-east-1:000000000000:function:{}\r\n\
             content-length: {}\r\n\r\n{event}",
            self.function,
            event.len()
        );
        self.stream.write_all(answer.as_bytes())?;
        self.stream.flush()?;
        Ok(Instant::now())
    }

    /// The process's id (for `/proc`).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills the process and returns what it wrote.
    pub fn kill(&mut self) -> String {
        let _ = self.child.kill();
        collect_output(&mut self.child)
    }
}

impl Drop for Started {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

enum Waited {
    Io(std::io::Error),
    Exited(String),
    Timeout,
    Unexpected(String),
}

/// A `kB` field of `/proc/<pid>/status`.
pub fn status_kib(pid: u32, field: &str) -> std::io::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| {
            let rest = l.strip_prefix(field)?.strip_prefix(':')?;
            rest.trim().trim_end_matches("kB").trim().parse().ok()
        })
        .ok_or_else(|| std::io::Error::other(format!("no {field} in /proc/{pid}/status")))
}

/// What the (killed) process wrote, for error messages.
fn collect_output(child: &mut Child) -> String {
    let _ = child.wait();
    let mut out = String::new();
    if let Some(mut stdout) = child.stdout.take() {
        let _ = stdout.read_to_string(&mut out);
    }
    if let Some(mut stderr) = child.stderr.take() {
        let _ = stderr.read_to_string(&mut out);
    }
    out
}

/// Median of `values` (mean of the middle two for an even count); `None` when empty.
pub fn median(values: &[f64]) -> Option<f64> {
    let mut v: Vec<f64> = values.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(v[n / 2]),
        _ => Some((v[n / 2 - 1] + v[n / 2]) / 2.0),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_even_and_empty() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(&[]), None);
    }

    #[test]
    fn reads_its_own_peak_rss() {
        let kib = status_kib(std::process::id(), "VmHWM").unwrap();
        assert!(kib > 100, "{kib}");
        assert!(status_kib(std::process::id(), "NoSuchField").is_err());
    }

    #[test]
    fn a_process_that_exits_at_once_is_reported_with_its_output() {
        let api = RuntimeApi::start().unwrap();
        let err = api
            .measure(Path::new("/bin/sh"), "probe", Duration::from_secs(5))
            .unwrap_err();
        // sh with no script and stdin closed exits 0 at once.
        assert!(matches!(err, ProbeError::Exited { .. }), "{err}");
    }
}
