//! Every AWS request a set of clients makes, recorded at the HTTP layer: an `SdkConfig` whose
//! HTTP client notes each request (the operation from the `X-Amz-Target` header, the tables or
//! queue from the JSON body; for SNS, whose query protocol has neither, the `Action` and
//! `TopicArn` of the form body) before sending it on. Functions built from such a config by their own
//! `Handler::from_aws` carry no test hook, and a call added to an adapter shows up by itself.
//! The load harness counts AWS requests per executed pipeline with it; the IAM test maps the
//! recorded actions to each role's grants.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient,
    SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;

/// One request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    /// `dynamodb:TransactWriteItems`, `sqs:SendMessageBatch`, ...
    pub operation: String,
    /// What IAM authorises it by: (action, `table:<name>`, `queue:<name>` or `topic:<name>`). A transaction is
    /// one request but one action per item (`dynamodb:PutItem` on the orders table, ...); SQS's
    /// batch operations are authorised by their single-message action.
    pub grants: Vec<(String, String)>,
}

/// The requests recorded so far, shared by every clone.
#[derive(Debug, Clone, Default)]
pub struct CallLog(Arc<Mutex<Vec<Call>>>);

impl CallLog {
    pub fn calls(&self) -> Vec<Call> {
        self.0.lock().map(|c| c.clone()).unwrap_or_default()
    }

    pub fn len(&self) -> usize {
        self.0.lock().map(|c| c.len()).unwrap_or_default()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Requests per operation.
    pub fn by_operation(&self) -> BTreeMap<String, usize> {
        let mut out = BTreeMap::new();
        for call in self.calls() {
            *out.entry(call.operation).or_default() += 1;
        }
        out
    }

    /// The distinct (IAM action, resource) pairs of every request.
    pub fn grants(&self) -> BTreeSet<(String, String)> {
        self.calls().into_iter().flat_map(|c| c.grants).collect()
    }

    fn push(&self, call: Call) {
        if let Ok(mut calls) = self.0.lock() {
            calls.push(call);
        }
    }
}

/// A copy of `sdk` whose HTTP client records the requests made through it. The emulator speaks
/// plain HTTP, so the recorded requests go out through a plain-HTTP client.
pub fn recording(sdk: &aws_config::SdkConfig) -> (aws_config::SdkConfig, CallLog) {
    let log = CallLog::default();
    let inner = aws_smithy_http_client::Builder::new().build_http();
    let sdk = sdk
        .to_builder()
        .http_client(SharedHttpClient::new(RecordingClient {
            inner,
            log: log.clone(),
        }))
        .build();
    (sdk, log)
}

#[derive(Debug)]
struct RecordingClient {
    inner: SharedHttpClient,
    log: CallLog,
}

impl HttpClient for RecordingClient {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        SharedHttpConnector::new(RecordingConnector {
            inner: self.inner.http_connector(settings, components),
            log: self.log.clone(),
        })
    }
}

#[derive(Debug)]
struct RecordingConnector {
    inner: SharedHttpConnector,
    log: CallLog,
}

impl HttpConnector for RecordingConnector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        self.log.push(call_of(&request));
        self.inner.call(request)
    }
}

/// SNS's API version, sent with every request of its query protocol.
const SNS_VERSION: &str = "2010-03-31";

/// The `name=value` pairs of a form body (`application/x-www-form-urlencoded`), decoded.
fn form_fields(body: &[u8]) -> Vec<(String, String)> {
    fn decode(s: &str) -> String {
        let bytes = s.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'+' => out.push(b' '),
                b'%' if i + 2 < bytes.len() => {
                    let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                    match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                        Some(b) => {
                            out.push(b);
                            i += 2;
                        }
                        None => out.push(b'%'),
                    }
                }
                b => out.push(b),
            }
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    }
    String::from_utf8_lossy(body)
        .split('&')
        .filter_map(|pair| {
            let (k, v) = pair.split_once('=')?;
            Some((decode(k), decode(v)))
        })
        .collect()
}

/// The [`Call`] of an SNS (query protocol) request, if `body` is one: IAM authorises
/// `PublishBatch` by `sns:Publish`, on the topic.
fn sns_call(body: &[u8]) -> Option<Call> {
    let fields = form_fields(body);
    let field = |name: &str| {
        fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    if field("Version") != Some(SNS_VERSION) {
        return None;
    }
    let operation = field("Action").unwrap_or("<no Action>");
    let action = operation.strip_suffix("Batch").unwrap_or(operation);
    let resource = match field("TopicArn").and_then(|arn| arn.rsplit(':').next()) {
        Some(topic) => format!("topic:{topic}"),
        None => "<no TopicArn>".to_owned(),
    };
    Some(Call {
        operation: format!("sns:{operation}"),
        grants: vec![(format!("sns:{action}"), resource)],
    })
}

/// The [`Call`] of a DynamoDB, SQS or Secrets Manager (JSON protocol) or SNS (query protocol)
/// request.
fn call_of(request: &HttpRequest) -> Call {
    let target = request
        .headers()
        .get("x-amz-target")
        .and_then(|t| t.split_once('.'));
    let Some((prefix, operation)) = target else {
        if let Some(call) = request.body().bytes().and_then(sns_call) {
            return call;
        }
        return Call {
            operation: format!("<unrecognised request to {}>", request.uri()),
            grants: Vec::new(),
        };
    };
    let body: serde_json::Value = request
        .body()
        .bytes()
        .and_then(|b| serde_json::from_slice(b).ok())
        .unwrap_or_default();
    // A queue and a table may share a name (tradeflow-<stage>-executions): keep the kind.
    let resource = |body: &serde_json::Value| {
        if let Some(table) = body["TableName"].as_str() {
            match body["IndexName"].as_str() {
                // IAM authorises a Query of an index on the index's ARN.
                Some(index) => format!("table:{table}/index/{index}"),
                None => format!("table:{table}"),
            }
        } else if let Some(queue) = body["QueueUrl"].as_str().and_then(|u| u.rsplit('/').next()) {
            format!("queue:{queue}")
        } else {
            format!("<no table or queue in {body}>")
        }
    };
    if prefix.starts_with("DynamoDB_") {
        let grants = match operation {
            "TransactWriteItems" => body["TransactItems"]
                .as_array()
                .map(|items| {
                    items
                        .iter()
                        .filter_map(|item| {
                            let (kind, inner) = item.as_object()?.iter().next()?;
                            let action = match kind.as_str() {
                                "Put" => "PutItem",
                                "Update" => "UpdateItem",
                                "Delete" => "DeleteItem",
                                "ConditionCheck" => "ConditionCheckItem",
                                other => other,
                            };
                            Some((format!("dynamodb:{action}"), resource(inner)))
                        })
                        .collect()
                })
                .unwrap_or_default(),
            _ => vec![(format!("dynamodb:{operation}"), resource(&body))],
        };
        return Call {
            operation: format!("dynamodb:{operation}"),
            grants,
        };
    }
    if prefix == "AmazonSQS" {
        let action = format!(
            "sqs:{}",
            operation.strip_suffix("Batch").unwrap_or(operation)
        );
        return Call {
            operation: format!("sqs:{operation}"),
            grants: vec![(action, resource(&body))],
        };
    }
    if prefix == "secretsmanager" {
        // IAM authorises a secret's actions on the secret's ARN, which the callers pass.
        let secret = body["SecretId"].as_str().unwrap_or("<no SecretId>");
        return Call {
            operation: format!("secretsmanager:{operation}"),
            grants: vec![(
                format!("secretsmanager:{operation}"),
                format!("secret:{secret}"),
            )],
        };
    }
    Call {
        operation: format!("<unrecognised {prefix}.{operation}>"),
        grants: Vec::new(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn an_sns_publish_batch_is_sns_publish_on_its_topic() {
        let body = b"Action=PublishBatch&Version=2010-03-31&TopicArn=arn%3Aaws%3Asns%3Aus-east-1%3A1%3Atradeflow-x-signals&PublishBatchRequestEntries.member.1.Message=%7B%22a%22%3A+1%7D";
        let call = sns_call(body).unwrap();
        assert_eq!(call.operation, "sns:PublishBatch");
        assert_eq!(
            call.grants,
            vec![(
                "sns:Publish".to_owned(),
                "topic:tradeflow-x-signals".to_owned()
            )]
        );
        assert_eq!(
            form_fields(b"a=%7B%22x%22+1%7D&b=%zz&c=%E2%82%AC")[..],
            [
                ("a".to_owned(), "{\"x\" 1}".to_owned()),
                ("b".to_owned(), "%zz".to_owned()),
                ("c".to_owned(), "\u{20ac}".to_owned()),
            ]
        );
        // Another query-protocol service (another Version) is not taken for SNS.
        assert!(sns_call(b"Action=GetCallerIdentity&Version=2011-06-15").is_none());
    }
}
