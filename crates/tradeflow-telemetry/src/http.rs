//! The OTLP exporters' HTTP client: hyper on the function's own Tokio runtime.
//!
//! The SDK's readers and processors export from threads of their own, polling the export future
//! with a plain executor, so an async client cannot do its I/O there. The OpenTelemetry crates'
//! answer is `reqwest::blocking`, which starts a second Tokio runtime on a thread of its own when
//! the client is built: start-up time, a thread and a copy of reqwest in every function. This
//! client instead hands each request to the runtime the function already runs (a handle taken
//! when the client is built) and waits for the task's result, which any executor can do.
//!
//! The runtime must be able to run the task while the exporting thread waits: the per-invocation
//! flush runs the SDK's force-flush on a blocking thread and awaits it, so the runtime's threads
//! stay free (also on a current-thread runtime, whose one thread polls the task while the flush
//! future waits).
//!
//! Plain `http://` only: the functions export to a collector beside them (the Lambda collector
//! layer on 127.0.0.1, vmagent or a collector on the local network). [`OtlpHttpClient::new`]
//! refuses other schemes up front, so a mistaken `https://` endpoint is one clear warning at
//! start-up rather than a failure per flush.

use std::fmt;
use std::time::Duration;

use opentelemetry_http::hyper::HyperClient;
use opentelemetry_http::{Bytes, HttpClient, HttpError, Request, Response};
use tokio::runtime::Handle;

use crate::error::TelemetryError;

/// An [`HttpClient`] that runs each request on a Tokio runtime (see the module docs).
#[derive(Clone)]
pub struct OtlpHttpClient {
    runtime: Handle,
    inner: HyperClient,
}

impl fmt::Debug for OtlpHttpClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OtlpHttpClient").finish_non_exhaustive()
    }
}

impl OtlpHttpClient {
    /// A client for `endpoint` whose requests run on the current Tokio runtime and give up after
    /// `timeout`. Fails outside a runtime and for an endpoint that is not `http://`.
    pub fn new(endpoint: &str, timeout: Duration) -> Result<OtlpHttpClient, TelemetryError> {
        if !endpoint
            .get(..7)
            .is_some_and(|scheme| scheme.eq_ignore_ascii_case("http://"))
        {
            return Err(TelemetryError::UnsupportedEndpoint {
                endpoint: endpoint.to_owned(),
            });
        }
        let runtime = Handle::try_current().map_err(|_| TelemetryError::NoRuntime)?;
        Ok(OtlpHttpClient {
            runtime,
            inner: HyperClient::with_default_connector(timeout, None),
        })
    }
}

#[async_trait::async_trait]
impl HttpClient for OtlpHttpClient {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let inner = self.inner.clone();
        self.runtime
            .spawn(async move { inner.send_bytes(request).await })
            .await
            .map_err(|join| -> HttpError { Box::new(join) })?
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::TcpListener;

    /// Answers one request with `status` and returns what it received (request line, body).
    fn one_shot_server(
        status: &'static str,
    ) -> (String, std::thread::JoinHandle<(String, Vec<u8>)>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/v1/metrics", listener.local_addr().unwrap());
        let server = std::thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request_line = String::new();
            reader.read_line(&mut request_line).unwrap();
            let mut length = 0usize;
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                if line.trim().is_empty() {
                    break;
                }
                if let Some((name, value)) = line.split_once(':') {
                    if name.eq_ignore_ascii_case("content-length") {
                        length = value.trim().parse().unwrap();
                    }
                }
            }
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            let mut stream = stream;
            write!(stream, "HTTP/1.1 {status}\r\ncontent-length: 2\r\n\r\nok").unwrap();
            (request_line, body)
        });
        (url, server)
    }

    /// The SDK exports from a thread of its own with a plain executor: the request must still
    /// reach the server and its answer come back.
    #[test]
    fn a_request_from_a_thread_outside_the_runtime_is_sent_on_the_runtime() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let (url, server) = one_shot_server("200 OK");
        let client = runtime
            .block_on(async { OtlpHttpClient::new(&url, Duration::from_secs(5)) })
            .unwrap();
        let request = Request::post(url.as_str())
            .body(Bytes::from_static(b"payload"))
            .unwrap();
        // The exporting thread blocks on the future the way the SDK's reader does, while the
        // runtime's own thread is driven elsewhere (here: waiting for the exporting thread).
        let exporter =
            std::thread::spawn(move || futures_executor::block_on(client.send_bytes(request)));
        let response = runtime.block_on(async {
            loop {
                if exporter.is_finished() {
                    break exporter.join().unwrap();
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        });
        let response = response.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.body().as_ref(), b"ok");
        let (request_line, body) = server.join().unwrap();
        assert!(
            request_line.starts_with("POST /v1/metrics "),
            "{request_line}"
        );
        assert_eq!(body, b"payload");
    }

    #[test]
    fn an_error_status_comes_back_as_a_response_not_a_transport_error() {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let (url, server) = one_shot_server("503 Service Unavailable");
        let client = runtime
            .block_on(async { OtlpHttpClient::new(&url, Duration::from_secs(5)) })
            .unwrap();
        let request = Request::post(url.as_str()).body(Bytes::new()).unwrap();
        let response = futures_executor::block_on(client.send_bytes(request)).unwrap();
        assert_eq!(response.status(), 503);
        server.join().unwrap();
    }

    #[test]
    fn a_closed_port_is_a_transport_error() {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let url = format!("http://127.0.0.1:{port}/v1/metrics");
        let client = runtime
            .block_on(async { OtlpHttpClient::new(&url, Duration::from_secs(5)) })
            .unwrap();
        let request = Request::post(url.as_str()).body(Bytes::new()).unwrap();
        assert!(futures_executor::block_on(client.send_bytes(request)).is_err());
    }

    #[test]
    fn only_plain_http_endpoints_inside_a_runtime_are_accepted() {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(async {
            let err =
                OtlpHttpClient::new("https://collector:4318/v1/metrics", Duration::from_secs(1))
                    .unwrap_err();
            assert!(err.to_string().contains("https://collector:4318"), "{err}");
            assert!(
                OtlpHttpClient::new("HTTP://127.0.0.1:4318/v1/metrics", Duration::from_secs(1))
                    .is_ok()
            );
        });
        let err = OtlpHttpClient::new("http://127.0.0.1:4318/v1/metrics", Duration::from_secs(1))
            .unwrap_err();
        assert!(matches!(err, TelemetryError::NoRuntime), "{err}");
    }
}
