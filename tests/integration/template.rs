//! Settings the template states twice must agree (no emulator needed).
#![allow(clippy::unwrap_used)]

use crate::helpers::{TEMPLATE as TEMPLATE_BODY, temp_dir};
use serde_norway::Value;

fn resource<'a>(template: &'a Value, id: &str) -> &'a Value {
    &template["Resources"][id]["Properties"]
}

/// The executor gives up on a failing run on the delivery the executions queue would dead-letter
/// it after: its `MAX_RECEIVE_COUNT` is that queue's `maxReceiveCount`.
#[test]
fn the_executor_knows_the_executions_queues_max_receive_count() {
    let template: Value = serde_norway::from_str(TEMPLATE_BODY).unwrap();
    let queue = resource(&template, "ExecutionsQueue")["RedrivePolicy"]["maxReceiveCount"]
        .as_u64()
        .unwrap();
    let env =
        resource(&template, "ExecutorFunction")["Environment"]["Variables"]["MAX_RECEIVE_COUNT"]
            .as_str()
            .unwrap();
    assert_eq!(env.parse::<u64>().unwrap(), queue);
    // AWS guidance for Lambda event sources: at least 5.
    assert!(queue >= 5);
}

// ------------------------------------------------------------ the collector on AWS

use std::collections::{BTreeMap, BTreeSet};
use tradeflow_telemetry::TelemetryConfig;

const COLLECTOR_DIR: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../infra/observability/lambda-collector"
);

/// The template's conditions and intrinsic functions evaluated for one set of parameters (the
/// defaults, overridden by `params`), as CloudFormation would: enough of `!Ref`, `!If`,
/// `!Equals`, `!Not`, `!And`, `!Or`, `!Sub` for the function properties. `None` is
/// `AWS::NoValue`; a reference to a resource or an attribute stays as `<Ref X>` / `<GetAtt X>`.
struct Evaluated<'a> {
    template: &'a Value,
    params: BTreeMap<String, String>,
    conditions: BTreeMap<String, bool>,
}

impl<'a> Evaluated<'a> {
    fn new(template: &'a Value, given: &[(&str, &str)]) -> Self {
        let mut params = BTreeMap::new();
        for (name, p) in template["Parameters"].as_mapping().unwrap() {
            let default = match &p["Default"] {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                Value::Null => String::new(),
                other => panic!("default {other:?}"),
            };
            params.insert(name.as_str().unwrap().to_owned(), default);
        }
        for (k, v) in given {
            assert!(params.contains_key(*k), "no parameter {k}");
            params.insert((*k).to_owned(), (*v).to_owned());
        }
        let mut e = Evaluated {
            template,
            params,
            conditions: BTreeMap::new(),
        };
        for (name, c) in template["Conditions"].as_mapping().unwrap() {
            let value = e.condition(c);
            e.conditions
                .insert(name.as_str().unwrap().to_owned(), value);
        }
        e
    }

    fn condition(&self, v: &Value) -> bool {
        let Value::Tagged(t) = v else {
            panic!("not a condition: {v:?}")
        };
        let args = t.value.as_sequence();
        match t.tag.to_string().trim_start_matches('!') {
            "Equals" => {
                let a = args.unwrap();
                self.value(&a[0]) == self.value(&a[1])
            }
            "Not" => !self.condition(&args.unwrap()[0]),
            "And" => args.unwrap().iter().all(|c| self.condition(c)),
            "Or" => args.unwrap().iter().any(|c| self.condition(c)),
            "Condition" => self.conditions[t.value.as_str().unwrap()],
            other => panic!("condition function {other}"),
        }
    }

    /// The value of a property (`None`: `AWS::NoValue`).
    fn value(&self, v: &Value) -> Option<Value> {
        let Value::Tagged(t) = v else {
            return match v {
                Value::Sequence(items) => Some(Value::Sequence(
                    items.iter().filter_map(|i| self.value(i)).collect(),
                )),
                Value::Mapping(m) => Some(Value::Mapping(
                    m.iter()
                        .filter_map(|(k, v)| self.value(v).map(|v| (k.clone(), v)))
                        .collect(),
                )),
                other => Some(other.clone()),
            };
        };
        match t.tag.to_string().trim_start_matches('!') {
            "Ref" => {
                let name = t.value.as_str().unwrap();
                if name == "AWS::NoValue" {
                    None
                } else if let Some(p) = self.params.get(name) {
                    Some(Value::String(p.clone()))
                } else {
                    Some(Value::String(format!("<Ref {name}>")))
                }
            }
            "GetAtt" => Some(Value::String(format!(
                "<GetAtt {}>",
                t.value.as_str().unwrap()
            ))),
            "If" => {
                let a = t.value.as_sequence().unwrap();
                if self.conditions[a[0].as_str().unwrap()] {
                    self.value(&a[1])
                } else {
                    self.value(&a[2])
                }
            }
            "Sub" => {
                let mut s = t.value.as_str().unwrap().to_owned();
                for (k, v) in &self.params {
                    s = s.replace(&format!("${{{k}}}"), v);
                }
                Some(Value::String(s))
            }
            "Equals" | "Not" | "And" | "Or" => Some(Value::Bool(self.condition(v))),
            other => panic!("intrinsic function {other} in a function property"),
        }
    }

    /// Each Lambda function that the conditions create: logical id -> its evaluated properties.
    fn functions(&self) -> BTreeMap<String, Value> {
        self.resources("AWS::Lambda::Function")
    }

    /// Each resource of `kind` that the conditions create: logical id -> evaluated properties.
    fn resources(&self, kind: &str) -> BTreeMap<String, Value> {
        let mut out = BTreeMap::new();
        for (id, r) in self.template["Resources"].as_mapping().unwrap() {
            if r["Type"].as_str() != Some(kind) {
                continue;
            }
            if let Some(c) = r["Condition"].as_str() {
                if !self.conditions[c] {
                    continue;
                }
            }
            out.insert(
                id.as_str().unwrap().to_owned(),
                self.value(&r["Properties"]).unwrap(),
            );
        }
        out
    }
}

fn env_of(function: &Value) -> BTreeMap<String, String> {
    function["Environment"]["Variables"]
        .as_mapping()
        .unwrap()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().unwrap().to_owned(),
                v.as_str()
                    .map(str::to_owned)
                    .unwrap_or_else(|| panic!("{k:?} is not a string: {v:?}")),
            )
        })
        .collect()
}

const WITH_CODE: &[(&str, &str)] = &[
    ("CodeBucket", "b"),
    ("GeneratorCodeKey", "g.zip"),
    ("DispatcherCodeKey", "d.zip"),
    ("ExecutorCodeKey", "e.zip"),
];
const LAYER: &str =
    "arn:aws:lambda:eu-west-1:184161586896:layer:opentelemetry-collector-arm64-0_15_0:1";

fn with_code<'a>(more: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    WITH_CODE.iter().chain(more).copied().collect()
}

/// What the telemetry crate makes of a function's environment: where its metrics go.
fn metrics_endpoint(env: &BTreeMap<String, String>) -> Option<String> {
    TelemetryConfig::from_lookup("f", |k| env.get(k).cloned()).metrics_endpoint
}

/// Where a function with this environment sends its spans (`None`: it records none).
fn traces_endpoint(env: &BTreeMap<String, String>) -> Option<String> {
    TelemetryConfig::from_lookup("f", |k| env.get(k).cloned()).traces_endpoint
}

#[test]
fn without_a_metrics_backend_no_function_has_a_layer_or_exports() {
    let template: Value = serde_norway::from_str(TEMPLATE_BODY).unwrap();
    // A layer alone, or an endpoint alone, is not a backend either.
    for extra in [
        vec![],
        vec![("CollectorLayerArn", LAYER)],
        vec![("MetricsEndpoint", "https://example.com/api/v1/write")],
    ] {
        let e = Evaluated::new(&template, &with_code(&extra));
        let functions = e.functions();
        assert_eq!(functions.len(), 3);
        for (id, f) in &functions {
            assert!(f.get("Layers").is_none(), "{id} has a layer: {extra:?}");
            let env = env_of(f);
            assert_eq!(metrics_endpoint(&env), None, "{id} exports: {extra:?}");
            assert_eq!(traces_endpoint(&env), None, "{id} traces: {extra:?}");
            assert_eq!(env["TRADEFLOW_STAGE"], "dev", "{id}");
        }
    }
}

#[test]
fn with_a_metrics_backend_every_function_carries_the_layer_and_exports_to_localhost() {
    let template: Value = serde_norway::from_str(TEMPLATE_BODY).unwrap();
    for backend in ["amp", "remote-write", "otlp"] {
        let endpoint = "https://backend.example.com/push";
        let e = Evaluated::new(
            &template,
            &with_code(&[
                ("Stage", "prod"),
                ("MetricsBackend", backend),
                ("CollectorLayerArn", LAYER),
                ("MetricsEndpoint", endpoint),
                (
                    "AmpWorkspaceArn",
                    "arn:aws:aps:eu-west-1:123456789012:workspace/ws-1",
                ),
            ]),
        );
        for (id, f) in e.functions() {
            assert_eq!(
                f["Layers"],
                Value::Sequence(vec![Value::String(LAYER.into())]),
                "{id} ({backend})"
            );
            let env = env_of(&f);
            assert_eq!(env["TRADEFLOW_STAGE"], "prod");
            assert_eq!(env["TRADEFLOW_METRICS_ENDPOINT"], endpoint);
            // The function's flush goes to the collector on localhost ...
            let url = metrics_endpoint(&env).unwrap_or_else(|| panic!("{id} does not export"));
            assert_eq!(url, "http://127.0.0.1:4318/v1/metrics", "{id}");
            // Spans too, where the backend takes them (the otlp backend only).
            assert_eq!(
                traces_endpoint(&env).as_deref(),
                (backend == "otlp").then_some("http://127.0.0.1:4318/v1/traces"),
                "{id} ({backend})"
            );
            // ... which reads the configuration shipped in the zip, listening there.
            let uri = &env["OPENTELEMETRY_COLLECTOR_CONFIG_URI"];
            let file = uri
                .strip_prefix("/var/task/collector/")
                .unwrap_or_else(|| panic!("{id}: {uri}"));
            assert_eq!(file, format!("{backend}.yaml"));
            let config = collector_config(file);
            assert_eq!(
                config["receivers"]["otlp"]["protocols"]["http"]["endpoint"].as_str(),
                Some("127.0.0.1:4318"),
                "{file}"
            );
            // Every variable the configuration reads is set (the Lambda runtime sets AWS_REGION);
            // only the Authorization header may be empty (no secret given).
            for var in env_references(&config) {
                if var == "AWS_REGION" {
                    continue;
                }
                let value = env
                    .get(&var)
                    .unwrap_or_else(|| panic!("{file} reads ${{env:{var}}}, {id} does not set it"));
                assert!(
                    !value.is_empty() || var == "TRADEFLOW_METRICS_AUTHORIZATION",
                    "{id}: {var} is empty"
                );
            }
        }
        // AMP: the roles may remote-write to the workspace (and only with amp).
        let policy = &template["Resources"]["AmpRemoteWritePolicy"];
        assert_eq!(policy["Condition"].as_str(), Some("WithAmpMetrics"));
        assert_eq!(e.conditions["WithAmpMetrics"], backend == "amp");
        assert_eq!(
            policy["Properties"]["Roles"].as_sequence().unwrap().len(),
            3
        );
    }
}

#[test]
fn the_authorization_secret_is_resolved_only_for_header_backends() {
    let template: Value = serde_norway::from_str(TEMPLATE_BODY).unwrap();
    let secret = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:metrics-abc";
    for (backend, resolved) in [("remote-write", true), ("otlp", true), ("amp", false)] {
        let e = Evaluated::new(
            &template,
            &with_code(&[
                ("MetricsBackend", backend),
                ("CollectorLayerArn", LAYER),
                ("MetricsEndpoint", "https://x"),
                ("AmpWorkspaceArn", "arn:aws:aps:eu-west-1:1:workspace/ws-1"),
                ("MetricsAuthSecretArn", secret),
            ]),
        );
        for (id, f) in e.functions() {
            let header = &env_of(&f)["TRADEFLOW_METRICS_AUTHORIZATION"];
            if resolved {
                assert_eq!(
                    header,
                    &format!("{{{{resolve:secretsmanager:{secret}:SecretString}}}}"),
                    "{id}"
                );
            } else {
                assert_eq!(header, "", "{id} ({backend})");
            }
        }
    }
}

// ------------------------------------------------------------ collector configurations

fn collector_config(file: &str) -> Value {
    let path = format!("{COLLECTOR_DIR}/{file}");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_norway::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// `X` of every `${env:X}` in the configuration's strings.
fn env_references(config: &Value) -> BTreeSet<String> {
    fn walk(v: &Value, out: &mut BTreeSet<String>) {
        match v {
            Value::String(s) => {
                let mut rest = s.as_str();
                while let Some(start) = rest.find("${") {
                    let after = &rest[start + 2..];
                    let end = after.find('}').unwrap_or_else(|| panic!("unclosed: {s}"));
                    let reference = &after[..end];
                    let var = reference
                        .strip_prefix("env:")
                        .unwrap_or_else(|| panic!("only ${{env:...}} is used: {s}"));
                    out.insert(var.to_owned());
                    rest = &after[end..];
                }
            }
            Value::Sequence(items) => items.iter().for_each(|i| walk(i, out)),
            Value::Mapping(m) => m.values().for_each(|i| walk(i, out)),
            _ => {}
        }
    }
    let mut out = BTreeSet::new();
    walk(config, &mut out);
    out
}

/// The components the community's Lambda collector layer is built with
/// (opentelemetry-lambda `collector/lambdacomponents`, default build), and for each one this
/// project configures, the options it may set (the components' documented configuration keys).
/// A key outside these fails the collector's start, and with it the function's init.
fn layer_components(kind: &str) -> BTreeMap<&'static str, &'static [&'static str]> {
    let list: &[(&str, &[&str])] = match kind {
        "receivers" => &[("otlp", &["protocols"]), ("telemetryapi", &[])],
        "processors" => &[
            (
                "batch",
                &["timeout", "send_batch_size", "send_batch_max_size"],
            ),
            ("decouple", &["max_queue_size"]),
            (
                "transform",
                &[
                    "error_mode",
                    "metric_statements",
                    "trace_statements",
                    "log_statements",
                ],
            ),
            ("memory_limiter", &[]),
            ("attributes", &[]),
            ("filter", &[]),
            ("resource", &[]),
            ("resourcedetection", &[]),
            ("span", &[]),
            ("probabilistic_sampler", &[]),
            ("coldstart", &[]),
        ],
        "exporters" => &[
            (
                "prometheusremotewrite",
                &[
                    "endpoint",
                    "auth",
                    "headers",
                    "target_info",
                    "resource_to_telemetry_conversion",
                    "timeout",
                    "tls",
                    "namespace",
                    "external_labels",
                ],
            ),
            (
                "otlphttp",
                &[
                    "endpoint",
                    "metrics_endpoint",
                    "headers",
                    "auth",
                    "timeout",
                    "compression",
                    "tls",
                ],
            ),
            ("otlp", &[]),
            ("debug", &["verbosity"]),
            ("awss3", &[]),
        ],
        "extensions" => &[
            ("sigv4auth", &["region", "service", "assume_role"]),
            ("basicauth", &[]),
        ],
        other => panic!("{other}"),
    };
    list.iter().copied().collect()
}

#[test]
fn the_lambda_collector_configurations_use_only_what_the_layer_has_and_are_complete() {
    let files: Vec<String> = std::fs::read_dir(COLLECTOR_DIR)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".yaml"))
        .collect();
    // One per backend of the template's MetricsBackend parameter (but none).
    let template: Value = serde_norway::from_str(TEMPLATE_BODY).unwrap();
    let mut backends: Vec<String> = template["Parameters"]["MetricsBackend"]["AllowedValues"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .filter(|b| b != "none")
        .map(|b| format!("{b}.yaml"))
        .collect();
    // And the one of MetricsAggregation=gateway.
    backends.push("gateway.yaml".to_owned());
    backends.sort();
    let mut sorted = files.clone();
    sorted.sort();
    assert_eq!(sorted, backends);

    for file in &files {
        let config = collector_config(file);
        let top: BTreeSet<&str> = config
            .as_mapping()
            .unwrap()
            .keys()
            .map(|k| k.as_str().unwrap())
            .collect();
        for key in &top {
            assert!(
                [
                    "receivers",
                    "processors",
                    "exporters",
                    "extensions",
                    "connectors",
                    "service"
                ]
                .contains(key),
                "{file}: unknown top-level key {key}"
            );
        }
        // Every component: a type the layer has, with options it knows.
        let mut defined: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
        for kind in ["receivers", "processors", "exporters", "extensions"] {
            let known = layer_components(kind);
            let Some(section) = config[kind].as_mapping() else {
                continue;
            };
            for (id, body) in section {
                let id = id.as_str().unwrap();
                let ty = id.split('/').next().unwrap();
                let options = known
                    .get(ty)
                    .unwrap_or_else(|| panic!("{file}: the layer has no {kind} {ty}"));
                if let Some(body) = body.as_mapping() {
                    for key in body.keys() {
                        let key = key.as_str().unwrap();
                        assert!(
                            options.contains(&key),
                            "{file}: {kind}.{id}.{key} is not an option of {ty} here"
                        );
                    }
                }
                defined.entry(kind).or_default().insert(id.to_owned());
            }
        }
        // The pipelines: metrics, and traces where the backend takes them (otlp; AMP and
        // remote write take metrics only, and there the template turns spans off); every
        // reference defined, decouple last so the function's export returns before the backend
        // answers.
        let pipelines: BTreeSet<&str> = config["service"]["pipelines"]
            .as_mapping()
            .unwrap()
            .keys()
            .map(|k| k.as_str().unwrap())
            .collect();
        let expected: BTreeSet<&str> = if file == "otlp.yaml" {
            BTreeSet::from(["metrics", "traces"])
        } else {
            BTreeSet::from(["metrics"])
        };
        assert_eq!(pipelines, expected, "{file}");
        for pipeline in &pipelines {
            let p = &config["service"]["pipelines"][*pipeline];
            for kind in ["receivers", "processors", "exporters"] {
                let ids: Vec<&str> = p[kind]
                    .as_sequence()
                    .unwrap_or_else(|| panic!("{file}: {pipeline} pipeline has no {kind}"))
                    .iter()
                    .map(|v| v.as_str().unwrap())
                    .collect();
                assert!(!ids.is_empty(), "{file}: {pipeline} {kind}");
                for id in &ids {
                    assert!(
                        defined.get(kind).is_some_and(|d| d.contains(*id)),
                        "{file}: the {pipeline} pipeline uses {kind} {id}, which is not defined"
                    );
                }
                if kind == "processors" {
                    assert_eq!(ids.last(), Some(&"decouple"), "{file} {pipeline}");
                }
            }
        }
        // Authenticators are extensions the service starts.
        let started: BTreeSet<String> = config["service"]["extensions"]
            .as_sequence()
            .map(|s| s.iter().map(|v| v.as_str().unwrap().to_owned()).collect())
            .unwrap_or_default();
        for (_, exporter) in config["exporters"].as_mapping().unwrap() {
            if let Some(auth) = exporter["auth"]["authenticator"].as_str() {
                assert!(started.contains(auth), "{file}: {auth} is not started");
            }
        }
        assert_eq!(
            started,
            defined.get("extensions").cloned().unwrap_or_default(),
            "{file}: extensions defined = started"
        );
        // The backend comes from the template, never from the file.
        let refs = env_references(&config);
        assert!(refs.contains("TRADEFLOW_METRICS_ENDPOINT"), "{file}");
    }
}

// ------------------------------------------------------------ CloudWatch alarms

/// The alarms of a stack with functions and an alarm topic, evaluated.
fn alarms(template: &Value) -> BTreeMap<String, Value> {
    let e = Evaluated::new(
        template,
        &with_code(&[("AlarmTopicArn", "arn:aws:sns:eu-west-1:1:pager")]),
    );
    e.resources("AWS::CloudWatch::Alarm")
}

/// The alarms on `metric` whose dimension `dimension` is `value`.
fn alarms_on<'a>(
    alarms: &'a BTreeMap<String, Value>,
    namespace: &str,
    metric: &str,
    dimension: &str,
    value: &str,
) -> Vec<&'a Value> {
    alarms
        .values()
        .filter(|a| a["Namespace"].as_str() == Some(namespace))
        .filter(|a| a["MetricName"].as_str() == Some(metric))
        .filter(|a| {
            a["Dimensions"].as_sequence().unwrap().iter().any(|d| {
                d["Name"].as_str() == Some(dimension) && d["Value"].as_str() == Some(value)
            })
        })
        .collect()
}

fn number(v: &Value) -> f64 {
    v.as_f64()
        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
        .unwrap_or_else(|| panic!("not a number: {v:?}"))
}

#[test]
fn every_alarm_notifies_the_alarm_topic() {
    let template: Value = serde_norway::from_str(TEMPLATE_BODY).unwrap();
    let alarms = alarms(&template);
    assert!(alarms.len() >= 15, "{} alarms", alarms.len());
    let topic = Value::Sequence(vec![Value::String("arn:aws:sns:eu-west-1:1:pager".into())]);
    for (id, a) in &alarms {
        assert_eq!(a["AlarmActions"], topic, "{id}");
        assert_eq!(a["OKActions"], topic, "{id}");
    }
    // Without a topic the alarms still exist and notify nobody.
    let e = Evaluated::new(&template, &with_code(&[]));
    for (id, a) in e.resources("AWS::CloudWatch::Alarm") {
        assert!(a.get("AlarmActions").is_none(), "{id}");
    }
}

#[test]
fn each_function_has_error_throttle_and_timeout_alarms() {
    let template: Value = serde_norway::from_str(TEMPLATE_BODY).unwrap();
    let alarms = alarms(&template);
    for (id, function) in template["Resources"].as_mapping().unwrap() {
        if function["Type"].as_str() != Some("AWS::Lambda::Function") {
            continue;
        }
        let id = id.as_str().unwrap();
        let name = format!("<Ref {id}>");
        for metric in ["Errors", "Throttles"] {
            let found = alarms_on(&alarms, "AWS/Lambda", metric, "FunctionName", &name);
            assert_eq!(found.len(), 1, "{id} {metric}");
            assert_eq!(found[0]["Statistic"].as_str(), Some("Sum"));
            assert_eq!(number(&found[0]["Threshold"]), 0.0);
            assert_eq!(
                found[0]["ComparisonOperator"].as_str(),
                Some("GreaterThanThreshold")
            );
        }
        // Killed at the timeout: the longest invocation reaches 90 % of it.
        let timeout_ms = number(&function["Properties"]["Timeout"]) * 1000.0;
        let found = alarms_on(&alarms, "AWS/Lambda", "Duration", "FunctionName", &name);
        assert_eq!(found.len(), 1, "{id} Duration");
        assert_eq!(found[0]["Statistic"].as_str(), Some("Maximum"));
        assert_eq!(number(&found[0]["Threshold"]), 0.9 * timeout_ms, "{id}");
    }
    // The schedule: the generator not invoked for 10 minutes (missing data = not invoked), and
    // EventBridge failing to invoke it.
    let idle = alarms_on(
        &alarms,
        "AWS/Lambda",
        "Invocations",
        "FunctionName",
        "<Ref GeneratorFunction>",
    );
    assert_eq!(idle.len(), 1);
    let a = idle[0];
    assert_eq!(a["ComparisonOperator"].as_str(), Some("LessThanThreshold"));
    assert_eq!(number(&a["Threshold"]), 1.0);
    assert_eq!(a["TreatMissingData"].as_str(), Some("breaching"));
    assert_eq!(
        number(&a["Period"]) * number(&a["EvaluationPeriods"]),
        600.0
    );
    let failed = alarms_on(
        &alarms,
        "AWS/Events",
        "FailedInvocations",
        "RuleName",
        "<Ref GeneratorSchedule>",
    );
    assert_eq!(failed.len(), 1);
    // The executor's sweep schedule too: without it runs whose last attempt died stay RUNNING.
    let sweep = alarms_on(
        &alarms,
        "AWS/Events",
        "FailedInvocations",
        "RuleName",
        "<Ref SweepSchedule>",
    );
    assert_eq!(sweep.len(), 1);
}

#[test]
fn both_source_queues_alarm_on_age_beyond_one_failed_delivery() {
    let template: Value = serde_norway::from_str(TEMPLATE_BODY).unwrap();
    let alarms = alarms(&template);
    for queue in ["SignalsQueue", "ExecutionsQueue"] {
        let found = alarms_on(
            &alarms,
            "AWS/SQS",
            "ApproximateAgeOfOldestMessage",
            "QueueName",
            &format!("<GetAtt {queue}.QueueName>"),
        );
        assert_eq!(found.len(), 1, "{queue}");
        // A message waiting out one failed delivery (the visibility timeout) is normal.
        let visibility = number(&resource(&template, queue)["VisibilityTimeout"]);
        assert!(number(&found[0]["Threshold"]) > visibility, "{queue}");
    }
    // And both DLQs, as before.
    for dlq in ["SignalsDlq", "ExecutionsDlq"] {
        let found = alarms_on(
            &alarms,
            "AWS/SQS",
            "ApproximateNumberOfMessagesVisible",
            "QueueName",
            &format!("<GetAtt {dlq}.QueueName>"),
        );
        assert_eq!(found.len(), 1, "{dlq}");
    }
}

#[test]
fn dynamodb_throttles_of_every_table_alarm() {
    let template: Value = serde_norway::from_str(TEMPLATE_BODY).unwrap();
    let alarms = alarms(&template);
    let tables: BTreeSet<String> = template["Resources"]
        .as_mapping()
        .unwrap()
        .iter()
        .filter(|(_, r)| r["Type"].as_str() == Some("AWS::DynamoDB::Table"))
        .map(|(id, _)| format!("<Ref {}>", id.as_str().unwrap()))
        .collect();
    assert_eq!(tables.len(), 5);
    for metric in ["ReadThrottleEvents", "WriteThrottleEvents"] {
        let covering: Vec<&Value> = alarms
            .values()
            .filter(|a| {
                a["Metrics"].as_sequence().is_some_and(|m| {
                    m.iter()
                        .any(|q| q["MetricStat"]["Metric"]["MetricName"].as_str() == Some(metric))
                })
            })
            .collect();
        assert_eq!(covering.len(), 1, "{metric}");
        let queries = covering[0]["Metrics"].as_sequence().unwrap();
        let covered: BTreeSet<String> = queries
            .iter()
            .filter_map(|q| q["MetricStat"]["Metric"]["Dimensions"][0]["Value"].as_str())
            .map(str::to_owned)
            .collect();
        assert_eq!(covered, tables, "{metric}");
        // One returned series: the sum.
        let returned: Vec<&Value> = queries
            .iter()
            .filter(|q| q["ReturnData"].as_bool() != Some(false))
            .collect();
        assert_eq!(returned.len(), 1);
        assert_eq!(returned[0]["Expression"].as_str(), Some("SUM(METRICS())"));
    }
}

#[test]
fn generator_scans_neither_overlap_nor_replay_stale_schedule_events() {
    let template: Value = serde_norway::from_str(TEMPLATE_BODY).unwrap();
    let e = Evaluated::new(&template, &with_code(&[]));
    let generator = &e.functions()["GeneratorFunction"];
    assert_eq!(number(&generator["ReservedConcurrentExecutions"]), 1.0);
    // The deploy script can set it (a parameter), within 0 (paused) ..= 1.
    let p = &template["Parameters"]["GeneratorReservedConcurrency"];
    assert_eq!(number(&p["MaxValue"]), 1.0);
    let e = Evaluated::new(
        &template,
        &with_code(&[("GeneratorReservedConcurrency", "0")]),
    );
    assert_eq!(
        number(&e.functions()["GeneratorFunction"]["ReservedConcurrentExecutions"]),
        0.0
    );
    // Asynchronous schedule events: no older than one schedule period, no retries.
    let configs = e.resources("AWS::Lambda::EventInvokeConfig");
    assert_eq!(configs.len(), 1);
    let c = configs.values().next().unwrap();
    assert_eq!(c["FunctionName"].as_str(), Some("<Ref GeneratorFunction>"));
    let rate = resource(&template, "GeneratorSchedule")["ScheduleExpression"]
        .as_str()
        .unwrap();
    assert_eq!(rate, "rate(1 minute)");
    assert!(number(&c["MaximumEventAgeInSeconds"]) <= 60.0);
    assert_eq!(number(&c["MaximumRetryAttempts"]), 0.0);
}

/// The signals topic fans out to the signals queue with raw delivery (the dispatcher receives
/// the generator's body and attributes unchanged), the queue lets only that topic send through
/// SNS, the generator publishes there and may call nothing else on it, the CLI finds the topic
/// in the outputs, and a failed delivery pages.
/// A stack update from the queue-only template must not hand the generator its topic before
/// the queue is subscribed and allowed to receive: SNS takes a publish with no subscriber.
#[test]
fn the_generator_is_updated_only_after_the_queue_is_subscribed() {
    let template: Value = serde_norway::from_str(TEMPLATE_BODY).unwrap();
    let depends: Vec<&str> = template["Resources"]["GeneratorFunction"]["DependsOn"]
        .as_sequence()
        .map(|s| s.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    for needed in ["SignalsTopicToQueue", "SignalsQueuePolicy"] {
        assert!(
            depends.contains(&needed),
            "GeneratorFunction DependsOn {depends:?}"
        );
    }
}

#[test]
fn the_signals_topic_delivers_raw_to_the_signals_queue_and_only_it_may_send() {
    let template: Value = serde_norway::from_str(TEMPLATE_BODY).unwrap();
    let e = Evaluated::new(&template, &with_code(&[]));
    let topics = e.resources("AWS::SNS::Topic");
    assert_eq!(topics.keys().collect::<Vec<_>>(), ["SignalsTopic"]);
    // A standard topic: the dispatcher's queue is a standard queue.
    assert!(topics["SignalsTopic"].get("FifoTopic").is_none());

    let subscriptions = e.resources("AWS::SNS::Subscription");
    assert_eq!(subscriptions.len(), 1, "{subscriptions:?}");
    let s = subscriptions.values().next().unwrap();
    assert_eq!(s["TopicArn"].as_str(), Some("<Ref SignalsTopic>"));
    assert_eq!(s["Protocol"].as_str(), Some("sqs"));
    assert_eq!(s["Endpoint"].as_str(), Some("<GetAtt SignalsQueue.Arn>"));
    assert_eq!(s["RawMessageDelivery"].as_bool(), Some(true));

    let policies = e.resources("AWS::SQS::QueuePolicy");
    assert_eq!(policies.len(), 1, "{policies:?}");
    let p = policies.values().next().unwrap();
    assert_eq!(
        p["Queues"],
        Value::Sequence(vec![Value::String("<Ref SignalsQueue>".into())])
    );
    let statements = p["PolicyDocument"]["Statement"].as_sequence().unwrap();
    assert_eq!(statements.len(), 1);
    let st = &statements[0];
    assert_eq!(st["Effect"].as_str(), Some("Allow"));
    assert_eq!(
        st["Principal"]["Service"].as_str(),
        Some("sns.amazonaws.com")
    );
    assert_eq!(st["Action"].as_str(), Some("sqs:SendMessage"));
    assert_eq!(st["Resource"].as_str(), Some("<GetAtt SignalsQueue.Arn>"));
    assert_eq!(
        st["Condition"]["ArnEquals"]["aws:SourceArn"].as_str(),
        Some("<Ref SignalsTopic>"),
        "only the signals topic may send through SNS"
    );

    let generator = env_of(&e.functions()["GeneratorFunction"]);
    assert_eq!(generator["SIGNALS_TOPIC_ARN"], "<Ref SignalsTopic>");
    assert_eq!(generator["SIGNALS_QUEUE_URL"], "<Ref SignalsQueue>");
    // The dispatcher reads the queue as before and knows nothing of the topic.
    let dispatcher = env_of(&e.functions()["DispatcherFunction"]);
    assert!(!dispatcher.contains_key("SIGNALS_TOPIC_ARN"));

    let outputs = e.value(&template["Outputs"]).unwrap();
    assert_eq!(
        outputs["SignalsTopicArn"]["Value"].as_str(),
        Some("<Ref SignalsTopic>")
    );
    assert!(outputs["SignalsTopicArn"].get("Condition").is_none());

    let alarms = alarms(&template);
    let failed = alarms_on(
        &alarms,
        "AWS/SNS",
        "NumberOfNotificationsFailed",
        "TopicName",
        "<GetAtt SignalsTopic.TopicName>",
    );
    assert_eq!(failed.len(), 1);
    assert_eq!(number(&failed[0]["Threshold"]), 0.0);
}

// ------------------------------------------------------------ the aggregation gateway

const GATEWAY_ROUTE: &str = "/opentelemetry/v1/metrics";

/// The parameters of a stack with functions, a backend and the aggregation gateway (`more`
/// added or overriding).
pub(crate) fn with_gateway<'a>(
    backend: &'a str,
    more: &[(&'a str, &'a str)],
) -> Vec<(&'a str, &'a str)> {
    with_code(
        &[
            ("MetricsBackend", backend),
            ("CollectorLayerArn", LAYER),
            (
                "MetricsEndpoint",
                "https://backend.example.com/api/v1/write",
            ),
            (
                "AmpWorkspaceArn",
                "arn:aws:aps:eu-west-1:123456789012:workspace/ws-1",
            ),
            ("MetricsAggregation", "gateway"),
        ]
        .into_iter()
        .chain(more.iter().copied())
        .collect::<Vec<_>>(),
    )
}

/// The gateway task for one set of parameters (`None` when the stack has no gateway): the
/// `config` container's script, environment and secrets (variable -> secret ARN), and the
/// `vmagent` container's command line.
#[derive(Clone)]
pub(crate) struct GatewayTask {
    pub script: String,
    pub env: BTreeMap<String, String>,
    pub secrets: BTreeMap<String, String>,
    pub command: Vec<String>,
}

impl GatewayTask {
    /// Runs the config container's script with `sh` as ECS would (its `/config` volume moved to
    /// `dir/config`, `authorization` as the secret ECS hands it), and returns what it wrote
    /// (path in the container -> content), or its error output when it fails.
    pub fn run_config(
        &self,
        dir: &std::path::Path,
        authorization: Option<&str>,
    ) -> Result<BTreeMap<String, String>, String> {
        let volume = dir.join("config");
        std::fs::create_dir_all(&volume).unwrap();
        let script = self
            .script
            .replace("/config/", &format!("{}/", volume.display()));
        let mut sh = std::process::Command::new("sh");
        sh.arg("-c")
            .arg(script)
            .env_clear()
            .env("PATH", "/usr/bin:/bin");
        sh.envs(&self.env);
        match (authorization, self.secrets.get("AUTHORIZATION")) {
            (Some(value), Some(_)) => {
                sh.env("AUTHORIZATION", value);
            }
            (None, None) => {}
            (given, secret) => panic!("secret {secret:?}, value given {given:?}"),
        }
        let out = sh.output().unwrap();
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).into_owned());
        }
        Ok(std::fs::read_dir(&volume)
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (
                    format!("/config/{}", e.file_name().to_str().unwrap()),
                    std::fs::read_to_string(e.path()).unwrap(),
                )
            })
            .collect())
    }
}

pub(crate) fn gateway_task(params: &[(&str, &str)]) -> Option<GatewayTask> {
    let template: Value = serde_norway::from_str(TEMPLATE_BODY).unwrap();
    let e = Evaluated::new(&template, params);
    let task = e
        .resources("AWS::ECS::TaskDefinition")
        .remove("MetricsGatewayTaskDefinition")?;
    let containers = task["ContainerDefinitions"].as_sequence().unwrap();
    let container = |name: &str| {
        containers
            .iter()
            .find(|c| c["Name"].as_str() == Some(name))
            .unwrap_or_else(|| panic!("no container {name}"))
    };
    let strings = |v: &Value| -> Vec<String> {
        v.as_sequence()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap().to_owned())
            .collect()
    };
    let pairs = |v: &Value, value: &str| -> BTreeMap<String, String> {
        v.as_sequence()
            .map(|items| {
                items
                    .iter()
                    .map(|kv| {
                        (
                            kv["Name"].as_str().unwrap().to_owned(),
                            kv[value].as_str().unwrap().to_owned(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    let config = container("config");
    assert_eq!(strings(&config["EntryPoint"]), ["sh", "-c"]);
    let vmagent = container("vmagent");
    assert_eq!(
        vmagent["DependsOn"][0]["ContainerName"].as_str(),
        Some("config")
    );
    assert_eq!(
        vmagent["DependsOn"][0]["Condition"].as_str(),
        Some("SUCCESS")
    );
    Some(GatewayTask {
        script: strings(&config["Command"]).concat(),
        env: pairs(&config["Environment"], "Value"),
        secrets: pairs(&config["Secrets"], "ValueFrom"),
        command: strings(&vmagent["Command"]),
    })
}

#[test]
fn with_the_gateway_the_collectors_push_signed_to_it_and_only_it_writes_to_the_backend() {
    let template: Value = serde_norway::from_str(TEMPLATE_BODY).unwrap();
    let secret = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:metrics-abc";
    for backend in ["amp", "remote-write"] {
        let e = Evaluated::new(
            &template,
            &with_gateway(backend, &[("MetricsAuthSecretArn", secret)]),
        );
        assert!(e.conditions["WithGateway"], "{backend}");
        for (id, f) in e.functions() {
            let env = env_of(&f);
            assert_eq!(
                f["Layers"],
                Value::Sequence(vec![Value::String(LAYER.into())]),
                "{id}"
            );
            // The flush still goes to the collector on localhost ...
            assert_eq!(
                metrics_endpoint(&env).as_deref(),
                Some("http://127.0.0.1:4318/v1/metrics"),
                "{id}"
            );
            assert_eq!(traces_endpoint(&env), None, "{id}");
            // ... which forwards to the gateway's one route (the API's own https domain) with
            // the gateway configuration, and holds no backend credential.
            assert_eq!(
                env["OPENTELEMETRY_COLLECTOR_CONFIG_URI"],
                "/var/task/collector/gateway.yaml"
            );
            assert_eq!(
                env["TRADEFLOW_METRICS_ENDPOINT"],
                format!(
                    "https://${{MetricsGatewayApi}}.execute-api.${{AWS::Region}}.${{AWS::URLSuffix}}{GATEWAY_ROUTE}"
                ),
                "{id}"
            );
            assert_eq!(env["TRADEFLOW_METRICS_AUTHORIZATION"], "", "{id}");
            for var in env_references(&collector_config("gateway.yaml")) {
                assert!(
                    var == "AWS_REGION" || !env[&var].is_empty(),
                    "{id}: gateway.yaml reads {var}"
                );
            }
        }
        // The collector signs for execute-api; the route takes IAM auth only; the roles may
        // invoke that route and (with AMP) no longer write to the workspace themselves.
        let config = collector_config("gateway.yaml");
        assert_eq!(
            config["extensions"]["sigv4auth"]["service"].as_str(),
            Some("execute-api")
        );
        assert_eq!(
            config["exporters"]["otlphttp"]["auth"]["authenticator"].as_str(),
            Some("sigv4auth")
        );
        let route = &e.resources("AWS::ApiGatewayV2::Route")["MetricsGatewayRoute"];
        assert_eq!(route["AuthorizationType"].as_str(), Some("AWS_IAM"));
        assert_eq!(
            route["RouteKey"].as_str(),
            Some(format!("POST {GATEWAY_ROUTE}").as_str())
        );
        let policies = e.resources("AWS::IAM::Policy");
        assert!(!policies.contains_key("AmpRemoteWritePolicy"), "{backend}");
        let invoke = &policies["MetricsGatewayInvokePolicy"];
        assert_eq!(invoke["Roles"].as_sequence().unwrap().len(), 3);
        let statement = &invoke["PolicyDocument"]["Statement"][0];
        assert_eq!(statement["Action"].as_str(), Some("execute-api:Invoke"));
        assert!(
            statement["Resource"].as_str().unwrap().ends_with(&format!(
                ":${{MetricsGatewayApi}}/$default/POST{GATEWAY_ROUTE}"
            )),
            "{statement:?}"
        );
        // The task writes to the backend: AMP with SigV4 as its own role, remote write with the
        // secret's Authorization header.
        let task =
            gateway_task(&with_gateway(backend, &[("MetricsAuthSecretArn", secret)])).unwrap();
        assert!(
            task.command
                .contains(&"-remoteWrite.url=https://backend.example.com/api/v1/write".to_owned()),
            "{:?}",
            task.command
        );
        let sigv4 = task
            .command
            .contains(&"-remoteWrite.aws.useSigv4=true".to_owned())
            && task
                .command
                .contains(&"-remoteWrite.aws.service=aps".to_owned());
        assert_eq!(sigv4, backend == "amp", "{:?}", task.command);
        // The credential reaches the config container through ECS (its ARN only in the task
        // definition), and vmagent reads it from a file: its value is in no flag.
        assert_eq!(
            task.secrets.get("AUTHORIZATION").map(String::as_str),
            (backend == "remote-write").then_some(secret),
            "{backend}"
        );
        let task_text = format!("{:?} {:?} {:?}", task.command, task.env, task.script);
        assert!(!task_text.contains("resolve:secretsmanager"), "{task_text}");
        assert_eq!(
            task.command
                .contains(&"-remoteWrite.bearerTokenFile=/config/bearer-token".to_owned()),
            backend == "remote-write",
            "{:?}",
            task.command
        );
        let execution = &e.resources("AWS::IAM::Role")["MetricsGatewayExecutionRole"];
        assert_eq!(
            execution["Policies"][0]["PolicyDocument"]["Statement"][0]["Resource"].as_str(),
            (backend == "remote-write")
                .then(|| format!("{secret}*"))
                .as_deref(),
            "{backend}: the execution role reads exactly the secret"
        );
        let role = &e.resources("AWS::IAM::Role")["MetricsGatewayTaskRole"];
        assert_eq!(
            role.get("Policies").is_some(),
            backend == "amp",
            "{backend}"
        );
        // One task, never two at once: each would write the same aggregated series.
        let service = &e.resources("AWS::ECS::Service")["MetricsGatewayService"];
        assert_eq!(service["DesiredCount"].as_u64(), Some(1));
        assert_eq!(
            service["DeploymentConfiguration"]["MaximumPercent"].as_u64(),
            Some(100)
        );
    }
    // A gateway without a healthy task pages (its silence would silence every metric).
    let e = Evaluated::new(
        &template,
        &with_gateway("amp", &[("AlarmTopicArn", "arn:aws:sns:eu-west-1:1:pager")]),
    );
    let alarm = &e.resources("AWS::CloudWatch::Alarm")["MetricsGatewayDownAlarm"];
    assert_eq!(alarm["MetricName"].as_str(), Some("HealthyHostCount"));
    assert_eq!(
        alarm["ComparisonOperator"].as_str(),
        Some("LessThanThreshold")
    );
    assert_eq!(alarm["TreatMissingData"].as_str(), Some("breaching"));
    for actions in ["AlarmActions", "OKActions"] {
        assert_eq!(
            alarm[actions][0].as_str(),
            Some("arn:aws:sns:eu-west-1:1:pager")
        );
    }
    // Without the secret, no credential at all.
    let task = gateway_task(&with_gateway("remote-write", &[])).unwrap();
    assert!(task.secrets.is_empty());
    assert!(
        !task
            .command
            .iter()
            .any(|a| a.contains("bearerToken") || a.contains("basicAuth") || a.contains("headers")),
        "{:?}",
        task.command
    );
}

/// The config container turns the secret's Authorization value into the file vmagent's flags
/// name: a bearer token, or (with MetricsGatewayBasicAuthUser) the basic-auth password after
/// checking the user; anything else stops the task with a message saying what is wrong.
#[test]
fn the_gateway_takes_a_bearer_or_basic_credential_from_the_secret() {
    let secret = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:metrics-abc";
    let bearer = gateway_task(&with_gateway(
        "remote-write",
        &[("MetricsAuthSecretArn", secret)],
    ))
    .unwrap();
    let basic = gateway_task(&with_gateway(
        "remote-write",
        &[
            ("MetricsAuthSecretArn", secret),
            ("MetricsGatewayBasicAuthUser", "team-7"),
        ],
    ))
    .unwrap();
    assert!(
        basic
            .command
            .contains(&"-remoteWrite.basicAuth.username=team-7".to_owned())
    );
    assert!(
        basic
            .command
            .contains(&"-remoteWrite.basicAuth.passwordFile=/config/basic-password".to_owned())
    );
    assert!(!basic.command.iter().any(|a| a.contains("bearerToken")));

    let written = |task: &GatewayTask, value: &str| {
        let dir = temp_dir("gateway-config");
        let out = task.run_config(&dir, Some(value));
        let _ = std::fs::remove_dir_all(&dir);
        out
    };
    let files = written(&bearer, "Bearer s3cr3t.t0ken").unwrap();
    assert_eq!(files["/config/bearer-token"], "s3cr3t.t0ken");
    assert!(!files.contains_key("/config/basic-password"));
    // ECS may drop an environment entry whose value is empty (BASIC_USER for a bearer token).
    let mut unset = bearer.clone();
    unset.env.remove("BASIC_USER");
    let files = written(&unset, "Bearer s3cr3t.t0ken").unwrap();
    assert_eq!(files["/config/bearer-token"], "s3cr3t.t0ken");
    // "team-7:pa:ss" (a password may hold colons)
    let files = written(&basic, "Basic dGVhbS03OnBhOnNz").unwrap();
    assert_eq!(files["/config/basic-password"], "pa:ss");
    assert!(!files.contains_key("/config/bearer-token"));
    for (task, value, says) in [
        (
            &basic,
            "Basic b3RoZXI6cGFzcw==",
            "Basic user is not MetricsGatewayBasicAuthUser",
        ),
        (
            &bearer,
            "Basic dGVhbS03OnBhOnNz",
            "Basic user is not MetricsGatewayBasicAuthUser",
        ),
        (
            &basic,
            "Bearer s3cr3t",
            "MetricsGatewayBasicAuthUser is set",
        ),
        (&bearer, "Token abc", "takes a 'Bearer ...' or 'Basic ...'"),
    ] {
        let Err(err) = written(task, value) else {
            panic!("{value} was accepted")
        };
        assert!(err.contains(says), "{value}: {err}");
    }
}

/// No gateway resource exists without MetricsAggregation=gateway, nor with a backend the gateway
/// cannot write (otlp), nor without functions.
#[test]
fn the_gateway_exists_only_when_asked_for_with_a_remote_write_backend() {
    let template: Value = serde_norway::from_str(TEMPLATE_BODY).unwrap();
    let gateway_conditions = ["WithGateway", "WithGatewayAmp", "WithGatewayAuthSecret"];
    for (r, body) in template["Resources"].as_mapping().unwrap() {
        let id = r.as_str().unwrap();
        if id.starts_with("MetricsGateway") {
            assert!(
                gateway_conditions.contains(&body["Condition"].as_str().unwrap_or("")),
                "{id} is created without the gateway"
            );
        }
    }
    for (params, expected) in [
        (
            with_code(&[
                ("MetricsBackend", "amp"),
                ("CollectorLayerArn", LAYER),
                ("MetricsEndpoint", "https://x"),
            ]),
            false,
        ),
        (with_gateway("amp", &[]), true),
        (with_gateway("remote-write", &[]), true),
        (with_gateway("otlp", &[]), false),
        (with_gateway("none", &[]), false),
        (with_gateway("amp", &[("DeployFunctions", "false")]), false),
    ] {
        let e = Evaluated::new(&template, &params);
        assert_eq!(e.conditions["WithGateway"], expected, "{params:?}");
        assert_eq!(gateway_task(&params).is_some(), expected, "{params:?}");
    }
}

/// The gateway runs the aggregation and relabelling tested locally (local/metrics/): the
/// template's copies, without comments, are the same YAML.
#[test]
fn the_gateways_configuration_is_the_local_stacks() {
    let task = gateway_task(&with_gateway("remote-write", &[])).unwrap();
    let dir = temp_dir("gateway-config");
    let files = task.run_config(&dir, None).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let parse = |text: &str| -> Value { serde_norway::from_str(text).unwrap() };
    let local = |file: &str| {
        let path = format!("{}/../local/metrics/{file}", env!("CARGO_MANIFEST_DIR"));
        parse(&std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}")))
    };
    assert_eq!(
        files.keys().map(String::as_str).collect::<Vec<_>>(),
        ["/config/aggregation.yml", "/config/relabel.yml"]
    );
    assert_eq!(
        parse(&files["/config/aggregation.yml"]),
        local("vmagent-aggregation.yml"),
        "infra/template.yaml's AGGREGATION differs from local/metrics/vmagent-aggregation.yml"
    );
    assert_eq!(
        parse(&files["/config/relabel.yml"]),
        local("vmagent-relabel.yml"),
        "infra/template.yaml's RELABEL differs from local/metrics/vmagent-relabel.yml"
    );
    for (flag, file) in [
        ("-remoteWrite.streamAggr.config=", "/config/aggregation.yml"),
        ("-remoteWrite.relabelConfig=", "/config/relabel.yml"),
    ] {
        assert!(
            task.command.contains(&format!("{flag}{file}")),
            "{:?}",
            task.command
        );
    }
}
