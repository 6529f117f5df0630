//! HTTP GET over the functions' one TLS stack: the SDK's own connector (hyper 1, rustls 0.23 on
//! ring, [`crate::tls`]), used directly, so the market-data client adds no second HTTP or TLS
//! implementation.

use std::time::Duration;

use async_trait::async_trait;
use aws_smithy_http_client::Connector;
use aws_smithy_http_client::tls::rustls_provider::CryptoMode;
use aws_smithy_http_client::tls::{self, TlsContext};
use aws_smithy_runtime_api::client::http::HttpConnector;
use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::byte_stream::ByteStream;

use crate::tls::TrustRoots;

/// An answer: status, headers (names as sent), body.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpReply {
    /// Status code.
    pub status: u16,
    /// Headers, names as sent.
    pub headers: Vec<(String, String)>,
    /// The whole body.
    pub body: Vec<u8>,
}

/// Why no answer came.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransportError {
    #[error("no answer within {0:?}")]
    /// No complete answer in time.
    Timeout(Duration),
    #[error("request failed: {0}")]
    /// Connection, TLS or protocol failure.
    Failed(String),
}

/// An HTTP GET (the market-data client's only call).
#[async_trait]
pub trait HttpGet: Send + Sync {
    /// GETs `url` with `headers`; any status is an answer.
    async fn get(
        &self,
        url: &str,
        headers: &[(&'static str, String)],
    ) -> Result<HttpReply, TransportError>;
}

/// [`HttpGet`] on the SDK's hyper/rustls connector, with a timeout per request (connect, send
/// and the whole body).
pub struct SdkHttp {
    connector: Connector,
    timeout: Duration,
}

impl SdkHttp {
    /// A client trusting `roots` (the market-data API is not an AWS endpoint: Mozilla's roots,
    /// [`TrustRoots::mozilla`]).
    pub fn new(roots: &TrustRoots, timeout: Duration) -> Self {
        let builder = Connector::builder().tls_provider(tls::Provider::Rustls(CryptoMode::Ring));
        let builder = match TlsContext::builder()
            .with_trust_store(roots.trust_store())
            .build()
        {
            Ok(context) => builder.tls_context(context),
            Err(e) => {
                tracing::warn!(error = %e, "TLS context rejected; using the connector's default trust store");
                builder
            }
        };
        SdkHttp {
            connector: builder.build(),
            timeout,
        }
    }
}

#[async_trait]
impl HttpGet for SdkHttp {
    async fn get(
        &self,
        url: &str,
        headers: &[(&'static str, String)],
    ) -> Result<HttpReply, TransportError> {
        let mut request = HttpRequest::new(SdkBody::empty());
        request
            .set_uri(url)
            .map_err(|e| TransportError::Failed(format!("invalid URL {url:?}: {e}")))?;
        for (name, value) in headers {
            request.headers_mut().insert(*name, value.clone());
        }
        let exchange = async {
            let response = self
                .connector
                .call(request)
                .await
                .map_err(|e| TransportError::Failed(error_text(&e)))?;
            let status = response.status().as_u16();
            let headers: Vec<(String, String)> = response
                .headers()
                .iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect();
            let body = ByteStream::new(response.into_body())
                .collect()
                .await
                .map_err(|e| {
                    TransportError::Failed(format!("reading the body: {}", error_text(&e)))
                })?
                .into_bytes()
                .to_vec();
            Ok(HttpReply {
                status,
                headers,
                body,
            })
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| TransportError::Timeout(self.timeout))?
    }
}

/// An error and its sources, on one line.
fn error_text(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
