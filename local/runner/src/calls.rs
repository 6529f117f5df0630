//! Every AWS request a set of clients makes, recorded at the HTTP layer: an `SdkConfig` whose
//! HTTP client notes each request (the operation from the `X-Amz-Target` header, the tables or
//! queue from the JSON body) before sending it on. Functions built from such a config by their own
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
    /// What IAM authorises it by: (action, `table:<name>` or `queue:<name>`). A transaction is
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

/// The [`Call`] of a DynamoDB, SQS or Secrets Manager (JSON protocol) request.
fn call_of(request: &HttpRequest) -> Call {
    let target = request
        .headers()
        .get("x-amz-target")
        .and_then(|t| t.split_once('.'));
    let Some((prefix, operation)) = target else {
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
