//! A local stand-in for Alpaca's market-data API: an HTTP/1.1 server on 127.0.0.1:0 that
//! answers each request with what a responder returns (the recorded answers under
//! `tests/fixtures/alpaca/`) and records every request. Never the internet.
//!
//! Shared by the provider's tests (`crates/tradeflow-aws/tests/alpaca.rs`) and the generator's
//! (`functions/signal-generator/tests/http_provider.rs`) and the IAM test
//! (`tests/integration/iam.rs`), through `#[path]`.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, VecDeque};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// A request as the server saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub path: String,
    /// Query parameters, percent-decoded.
    pub query: BTreeMap<String, String>,
    /// Header names lowercased.
    pub headers: BTreeMap<String, String>,
}

/// An answer to send.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Wait this long before answering (a slow server).
    pub delay: Duration,
}

impl Answer {
    /// `status` with a fixture file's bytes as the body.
    pub fn fixture(status: u16, name: &str) -> Self {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .ancestors()
            .map(|d| d.join("crates/tradeflow-aws/tests/fixtures/alpaca"))
            .find(|d| d.is_dir())
            .expect("the fixtures of crates/tradeflow-aws");
        let path = dir.join(name);
        let body = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        Answer {
            status,
            headers: vec![(
                "content-type".into(),
                "application/json; charset=UTF-8".into(),
            )],
            body,
            delay: Duration::ZERO,
        }
    }
    pub fn ok(name: &str) -> Self {
        Self::fixture(200, name)
    }
    pub fn header(mut self, name: &str, value: impl ToString) -> Self {
        self.headers.push((name.to_owned(), value.to_string()));
        self
    }
    pub fn delayed(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }
    /// Alpaca's rate-limit headers as on every answer.
    pub fn rate_limit(self, remaining: u32, reset: i64) -> Self {
        self.header("X-RateLimit-Limit", 200)
            .header("X-RateLimit-Remaining", remaining)
            .header("X-RateLimit-Reset", reset)
    }
}

type Responder = dyn Fn(&Seen) -> Answer + Send + Sync;

/// The running server.
pub struct FakeAlpaca {
    pub url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl FakeAlpaca {
    /// Answers with `responder`.
    pub async fn start(responder: impl Fn(&Seen) -> Answer + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let responder: Arc<Responder> = Arc::new(responder);
        let log = seen.clone();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let responder = responder.clone();
                let log = log.clone();
                tokio::spawn(async move {
                    let Some(request) = read_request(&mut socket).await else {
                        return;
                    };
                    log.lock().unwrap().push(request.clone());
                    let answer = responder(&request);
                    tokio::time::sleep(answer.delay).await;
                    let mut head = format!(
                        "HTTP/1.1 {} {}\r\ncontent-length: {}\r\nconnection: close\r\n",
                        answer.status,
                        reason(answer.status),
                        answer.body.len()
                    );
                    for (k, v) in &answer.headers {
                        head.push_str(&format!("{k}: {v}\r\n"));
                    }
                    head.push_str("\r\n");
                    let _ = socket.write_all(head.as_bytes()).await;
                    let _ = socket.write_all(&answer.body).await;
                    let _ = socket.shutdown().await;
                });
            }
        });
        FakeAlpaca { url, seen }
    }

    /// Answers with `answers` in order (a 599 once they run out).
    pub async fn scripted(answers: Vec<Answer>) -> Self {
        let queue = Mutex::new(VecDeque::from(answers));
        Self::start(move |_| {
            queue.lock().unwrap().pop_front().unwrap_or(Answer {
                status: 599,
                headers: Vec::new(),
                body: b"no scripted answer left".to_vec(),
                delay: Duration::ZERO,
            })
        })
        .await
    }

    /// Every request so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

async fn read_request(socket: &mut tokio::net::TcpStream) -> Option<Seen> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = socket.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let text = String::from_utf8_lossy(&buf);
    let mut lines = text.split("\r\n");
    let target = lines.next()?.split(' ').nth(1)?.to_owned();
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    let query = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect();
    let headers = lines
        .take_while(|l| !l.is_empty())
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    Some(Seen {
        path: path.to_owned(),
        query,
        headers,
    })
}

fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        403 => "Forbidden",
        422 => "Unprocessable Entity",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Status",
    }
}
