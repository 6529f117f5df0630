//! Each function's IAM role in infra/template.yaml grants exactly what is called with it: the SDK
//! calls its code makes (recorded while the chain runs on the emulator), the calls its event
//! source mapping makes on its behalf, and its log stream.
//!
//! How the calls are recorded: every function is built by its own `Handler::from_aws` (the code
//! the Lambda runs) from an `SdkConfig` of its own whose HTTP client records each request
//! (`tradeflow_local::calls`: the operation from the `X-Amz-Target` header, the tables or queue
//! from the JSON body, one action per item of a transaction) before sending it on. So the
//! function code carries no test hook, and a call added to an adapter shows up here by itself. The role's grants are read from the template (a YAML parser that keeps the
//! CloudFormation tags), as (action, logical id of the resource) pairs; the recorded calls are
//! mapped to the same pairs through the stack's outputs.
//!
//! [`ON_PATHS_NOT_RUN`] lists grants for calls this run does not reach (failure paths), each with
//! its reason: extend it when code adds such a call, and nowhere else.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use serde_norway::Value;
use tradeflow_local::calls::{CallLog, recording};
use tradeflow_local::chain::Functions;
use tradeflow_local::invoke::InProcess;
use tradeflow_telemetry::Telemetry;

use crate::helpers::*;

/// (role, action, resource logical id, why the chain run below does not make the call).
const ON_PATHS_NOT_RUN: &[(&str, &str, &str, &str)] = &[
    (
        "DispatcherRole",
        "dynamodb:DeleteItem",
        "LeasesTable",
        "releases the lease of a fan-out whose request could not be sent (issue 8)",
    ),
    (
        "ExecutorRole",
        "dynamodb:GetItem",
        "OrdersTable",
        "OrderStore::get: reads back an order an earlier attempt placed (issue 8)",
    ),
    (
        "DispatcherRole",
        "dynamodb:Query",
        "PipelinesTable/index/by-update",
        "the incremental pipeline refresh: the first refresh comes 30 s after the first full load \
         (issue 9); the dispatcher tests cover it",
    ),
    (
        "ExecutorRole",
        "dynamodb:UpdateItem",
        "LeasesTable",
        "LeaseStore::hold: only an attempt that may outlast the dispatcher's claim holds the \
         lease again (issue 9); the first attempt runs under the claim",
    ),
];

/// The actions Lambda's SQS event source mapping needs on its queue, with the function's role.
const EVENT_SOURCE_ACTIONS: &[&str] = &[
    "sqs:ReceiveMessage",
    "sqs:DeleteMessage",
    "sqs:GetQueueAttributes",
];

/// The actions the Lambda runtime needs on the function's log group.
const LOG_ACTIONS: &[&str] = &["logs:CreateLogStream", "logs:PutLogEvents"];

type Grants = BTreeSet<(String, String)>;

// ------------------------------------------------------------------ template

fn tagged<'a>(value: &'a Value, tag: &str) -> Option<&'a str> {
    match value {
        Value::Tagged(t) if t.tag == tag => t.value.as_str(),
        _ => None,
    }
}

/// `!GetAtt X.Arn` -> X; `!Sub "${X.Arn}/index/I"` (an index of table X) -> `X/index/I`;
/// `!Ref P` (an ARN given as parameter P) -> `param:P`; `!Ref T` (a resource whose `Ref` is its
/// ARN, the signals topic) -> `param:T` here, T once [`resolve_refs`] has seen the template.
fn arn_of(value: &Value) -> String {
    if let Some(parameter) = tagged(value, "Ref") {
        return format!("param:{parameter}");
    }
    if let Some(index) = tagged(value, "Sub")
        .and_then(|s| s.strip_prefix("${"))
        .and_then(|s| s.split_once(".Arn}/index/"))
    {
        return format!("{}/index/{}", index.0, index.1);
    }
    tagged(value, "GetAtt")
        .and_then(|s| s.strip_suffix(".Arn"))
        .unwrap_or_else(|| {
            panic!(
                "a role's Resource must be `!GetAtt <Resource>.Arn` or \
                 `!Sub \"${{<Table>.Arn}}/index/<name>\"`: {value:?}"
            )
        })
        .to_owned()
}

fn one_or_many(value: &Value) -> Vec<&Value> {
    match value {
        Value::Sequence(items) => items.iter().collect(),
        other => vec![other],
    }
}

fn statement_grants(statement: &Value, grants: &mut Grants) {
    assert_eq!(statement["Effect"].as_str(), Some("Allow"));
    for action in one_or_many(&statement["Action"]) {
        for target in one_or_many(&statement["Resource"]) {
            grants.insert((action.as_str().unwrap().to_owned(), arn_of(target)));
        }
    }
}

/// A statement `!If [Condition, <statement>, !Ref AWS::NoValue]`: (condition, statement).
fn conditional(statement: &Value) -> Option<(&str, &Value)> {
    let Value::Tagged(t) = statement else {
        return None;
    };
    assert_eq!(
        t.tag, "If",
        "a statement is a mapping or `!If`: {statement:?}"
    );
    let parts = t.value.as_sequence().unwrap();
    assert_eq!(parts.len(), 3, "{statement:?}");
    assert_eq!(
        tagged(&parts[2], "Ref"),
        Some("AWS::NoValue"),
        "a conditional statement is absent otherwise: {statement:?}"
    );
    Some((parts[0].as_str().unwrap(), &parts[1]))
}

/// A role a Lambda function assumes (the metrics gateway's ECS task roles are not: their
/// permissions are the gateway's, checked in template.rs).
fn is_function_role(resource: &Value) -> bool {
    resource["Type"].as_str() == Some("AWS::IAM::Role")
        && resource["Properties"]["AssumeRolePolicyDocument"]["Statement"]
            .as_sequence()
            .is_some_and(|statements| {
                statements
                    .iter()
                    .any(|s| s["Principal"]["Service"].as_str() == Some("lambda.amazonaws.com"))
            })
}

/// `param:X` -> X where X is a resource of the template (not a parameter).
fn resolve_refs(template: &Value, grants: Grants) -> Grants {
    grants
        .into_iter()
        .map(|(action, resource)| match resource.strip_prefix("param:") {
            Some(id) if !template["Resources"][id].is_null() => (action, id.to_owned()),
            _ => (action, resource),
        })
        .collect()
}

/// Role logical id -> its (action, resource logical id) grants, the statements under a
/// condition left out (the test stack deploys with every parameter at its default, where
/// those conditions are false: [`conditional_grants`] checks them).
fn role_grants(template: &Value) -> BTreeMap<String, Grants> {
    let mut roles = BTreeMap::new();
    for (id, resource) in template["Resources"].as_mapping().unwrap() {
        if !is_function_role(resource) {
            continue;
        }
        let mut grants = Grants::new();
        for policy in resource["Properties"]["Policies"].as_sequence().unwrap() {
            for statement in policy["PolicyDocument"]["Statement"].as_sequence().unwrap() {
                if conditional(statement).is_none() {
                    statement_grants(statement, &mut grants);
                }
            }
        }
        roles.insert(
            id.as_str().unwrap().to_owned(),
            resolve_refs(template, grants),
        );
    }
    roles
}

/// Role logical id -> (condition, grants) of its statements under a condition.
fn conditional_grants(template: &Value) -> BTreeMap<String, BTreeMap<String, Grants>> {
    let mut roles = BTreeMap::new();
    for (id, resource) in template["Resources"].as_mapping().unwrap() {
        if !is_function_role(resource) {
            continue;
        }
        let mut by_condition: BTreeMap<String, Grants> = BTreeMap::new();
        for policy in resource["Properties"]["Policies"].as_sequence().unwrap() {
            for statement in policy["PolicyDocument"]["Statement"].as_sequence().unwrap() {
                if let Some((condition, inner)) = conditional(statement) {
                    statement_grants(inner, by_condition.entry(condition.to_owned()).or_default());
                }
            }
        }
        roles.insert(id.as_str().unwrap().to_owned(), by_condition);
    }
    roles
}

/// Per function (cargo package name): its role, log group and event source queues.
struct FunctionSpec {
    role: String,
    log_group: String,
    sources: Vec<String>,
}

fn function_specs(template: &Value) -> BTreeMap<String, FunctionSpec> {
    let resources = template["Resources"].as_mapping().unwrap();
    let mut by_logical_id = BTreeMap::new();
    for (id, resource) in resources {
        if resource["Type"].as_str() != Some("AWS::Lambda::Function") {
            continue;
        }
        let p = &resource["Properties"];
        let name = tagged(&p["FunctionName"], "Sub")
            .and_then(|n| n.strip_prefix("tradeflow-${Stage}-"))
            .unwrap()
            .to_owned();
        let role = tagged(&p["Role"], "GetAtt")
            .and_then(|r| r.strip_suffix(".Arn"))
            .unwrap()
            .to_owned();
        let log_group = tagged(&p["LoggingConfig"]["LogGroup"], "Ref")
            .unwrap()
            .to_owned();
        by_logical_id.insert(
            id.as_str().unwrap().to_owned(),
            (
                name,
                FunctionSpec {
                    role,
                    log_group,
                    sources: Vec::new(),
                },
            ),
        );
    }
    for resource in resources.values() {
        if resource["Type"].as_str() != Some("AWS::Lambda::EventSourceMapping") {
            continue;
        }
        let p = &resource["Properties"];
        let function = tagged(&p["FunctionName"], "Ref").unwrap();
        by_logical_id.get_mut(function).unwrap().1.sources.push(
            tagged(&p["EventSourceArn"], "GetAtt")
                .and_then(|a| a.strip_suffix(".Arn"))
                .unwrap()
                .to_owned(),
        );
    }
    by_logical_id.into_values().collect()
}

/// `table:<name>` / `queue:<name>` -> logical id, for the tables and queues the template exports.
fn logical_ids(template: &Value, stack: &TestStack) -> HashMap<String, String> {
    let mut ids = HashMap::new();
    for (key, output) in template["Outputs"].as_mapping().unwrap() {
        let value = &output["Value"];
        // `!Ref <Table>` is a table's name, `!Ref <Topic>` a topic's ARN (named by its last
        // part, as the recorded calls are), `!GetAtt <Queue>.QueueName` a queue's name.
        if let (Some(topic), Ok(arn)) = (
            tagged(value, "Ref")
                .filter(|r| template["Resources"][*r]["Type"].as_str() == Some("AWS::SNS::Topic")),
            stack.outputs.get(key.as_str().unwrap()),
        ) {
            let name = arn.rsplit(':').next().unwrap_or(arn);
            ids.insert(format!("topic:{name}"), topic.to_owned());
            continue;
        }
        let logical = tagged(value, "Ref").map(|t| ("table", t)).or_else(|| {
            tagged(value, "GetAtt")
                .and_then(|a| a.strip_suffix(".QueueName"))
                .map(|q| ("queue", q))
        });
        if let (Some((kind, logical)), Ok(physical)) =
            (logical, stack.outputs.get(key.as_str().unwrap()))
        {
            ids.insert(format!("{kind}:{physical}"), logical.to_owned());
        }
    }
    ids
}

#[test]
fn the_template_parses_into_roles_and_functions() {
    // The parsing half, without the emulator: every function has a role with grants, and the
    // forms the test understands are the only ones used (it panics on any other).
    let template: Value = serde_norway::from_str(TEMPLATE).unwrap();
    let roles = role_grants(&template);
    let specs = function_specs(&template);
    assert_eq!(
        specs.keys().map(String::as_str).collect::<Vec<_>>(),
        [
            "pipeline-executor",
            "signal-generator",
            "trigger-dispatcher"
        ]
    );
    for spec in specs.values() {
        assert!(!roles[&spec.role].is_empty());
    }
    for (role, action, resource, _) in ON_PATHS_NOT_RUN {
        assert!(
            roles[*role].contains(&((*action).to_owned(), (*resource).to_owned())),
            "{role} should grant {action} on {resource} (ON_PATHS_NOT_RUN)"
        );
    }
}

/// The market-data key (Secrets Manager, `MARKET_DATA=alpaca`): the one call the key's reader
/// makes (`GetSecretValue`, `tradeflow_aws::market`) on exactly the secret the stack is given,
/// granted to the two functions that read market data and only when a secret is given (the
/// emulator run below has none; `the_market_data_key_is_read_with_the_granted_call` records the
/// call itself).
#[test]
fn the_market_data_key_is_granted_only_with_a_secret() {
    let template: Value = serde_norway::from_str(TEMPLATE).unwrap();
    let expected: Grants = BTreeSet::from([(
        "secretsmanager:GetSecretValue".to_owned(),
        "param:MarketDataSecretArn".to_owned(),
    )]);
    let conditional = conditional_grants(&template);
    for (role, by_condition) in &conditional {
        let wanted: BTreeMap<String, Grants> = match role.as_str() {
            "GeneratorRole" | "ExecutorRole" => {
                BTreeMap::from([("WithMarketDataSecret".to_owned(), expected.clone())])
            }
            _ => BTreeMap::new(),
        };
        assert_eq!(by_condition, &wanted, "{role}");
    }
    // The condition: a secret ARN was given.
    let condition = &template["Conditions"]["WithMarketDataSecret"];
    let Value::Tagged(not) = condition else {
        panic!("{condition:?}")
    };
    assert_eq!(not.tag, "Not");
    let Value::Tagged(equals) = &not.value.as_sequence().unwrap()[0] else {
        panic!("{condition:?}")
    };
    let operands = equals.value.as_sequence().unwrap();
    assert_eq!(tagged(&operands[0], "Ref"), Some("MarketDataSecretArn"));
    assert_eq!(operands[1].as_str(), Some(""));
    // The functions that read market data are told the secret.
    for function in ["GeneratorFunction", "ExecutorFunction"] {
        let env = &template["Resources"][function]["Properties"]["Environment"]["Variables"];
        assert_eq!(
            tagged(&env["ALPACA_CREDENTIALS_SECRET_ARN"], "Ref"),
            Some("MarketDataSecretArn"),
            "{function}"
        );
    }
}

/// The call the market-data key's reader makes, recorded as the IAM test records the
/// functions' calls: [`AlpacaMarketData::from_settings`] (what both functions build for
/// `MARKET_DATA=alpaca`) on a recording `SdkConfig`, with a secret created in the emulator and
/// a local fake of Alpaca. It reads the secret once (first request), with exactly the call the
/// template grants under `WithMarketDataSecret`, on the secret the stack is given.
#[tokio::test]
#[ignore = "needs the AWS emulator (AWS_ENDPOINT_URL); local/test.sh runs it"]
async fn the_market_data_key_is_read_with_the_granted_call() {
    use crate::fake_alpaca::{Answer, FakeAlpaca};
    use tradeflow_core::market::{AlpacaSettings, ApiKeySource, MarketData};

    let sdk = emulator().await;
    let secrets = tradeflow_aws::aws_sdk_secretsmanager::Client::new(&sdk);
    let arn = secrets
        .create_secret()
        .name(format!("tradeflow-iam-alpaca-{}", now()))
        .secret_string(r#"{"key_id": "PKIAMTEST", "secret_key": "iam-secret"}"#)
        .send()
        .await
        .unwrap()
        .arn
        .unwrap();
    let server = FakeAlpaca::start(|_| Answer::ok("stocks_5min_msft.json")).await;
    let (recording_sdk, calls) = recording(&sdk);
    let market = tradeflow_aws::market::AlpacaMarketData::from_settings(
        &AlpacaSettings {
            data_url: server.url.clone(),
            stock_feed: "iex".into(),
            requests_per_minute: 200,
            key: ApiKeySource::SecretArn(arn.clone()),
        },
        &recording_sdk,
    );
    assert!(
        calls.grants().is_empty(),
        "nothing is read before the first request"
    );
    let now = 1_704_210_420;
    for _ in 0..3 {
        let bars = market
            .closed_bars("MSFT", tradeflow_core::vocab::Timeframe::M5, now, 2)
            .await
            .unwrap();
        assert_eq!(bars.len(), 2);
    }
    let seen = server.seen();
    assert_eq!(seen.len(), 3);
    assert!(
        seen.iter()
            .all(|s| s.headers["apca-api-key-id"] == "PKIAMTEST")
    );
    let template: Value = serde_norway::from_str(TEMPLATE).unwrap();
    let granted: Grants = conditional_grants(&template)["GeneratorRole"]["WithMarketDataSecret"]
        .iter()
        .map(|(action, resource)| {
            assert_eq!(resource, "param:MarketDataSecretArn");
            (action.clone(), format!("secret:{arn}"))
        })
        .collect();
    assert_eq!(calls.grants(), granted);
    assert_eq!(
        calls.calls().len(),
        1,
        "the key is read once: {:?}",
        calls.calls()
    );
    let _ = secrets
        .delete_secret()
        .secret_id(&arn)
        .force_delete_without_recovery(true)
        .send()
        .await;
}

// ------------------------------------------------------------------ the run

#[tokio::test]
#[ignore = "needs the AWS emulator (AWS_ENDPOINT_URL); local/test.sh runs it"]
async fn each_role_grants_exactly_the_calls_its_function_makes() {
    let sdk = emulator().await;
    let stack = TestStack::deploy(sdk.clone()).await;
    let template: Value = serde_norway::from_str(TEMPLATE).unwrap();
    stack
        .seed(&[
            pipeline("p-all", &["AAPL", "MSFT", "NVDA", "TSLA", "SPY"], json!([])),
            pipeline("p-two", &["AAPL", "NVDA"], json!([])),
        ])
        .await;

    // The functions' environment as on AWS: queue URLs (a template `!Ref`), so no GetQueueUrl.
    let mut env: HashMap<String, String> = stack
        .outputs
        .function_env(&sdk)
        .await
        .unwrap()
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
    for (var, output) in [
        ("SIGNALS_QUEUE_URL", "SignalsQueueName"),
        ("SIGNALS_DLQ_URL", "SignalsDlqName"),
        ("EXECUTIONS_QUEUE_URL", "ExecutionsQueueName"),
        ("EXECUTIONS_DLQ_URL", "ExecutionsDlqName"),
    ] {
        env.insert(var.to_owned(), stack.queue_url(output).await);
    }
    env.insert("GENERATOR_BACKFILL_BARS".into(), "24".into());
    let lookup = |k: &str| env.get(k).cloned();

    let (generator_sdk, generator_calls) = recording(&sdk);
    let (dispatcher_sdk, dispatcher_calls) = recording(&sdk);
    let (executor_sdk, executor_calls) = recording(&sdk);
    let telemetry = |name: &str| Telemetry::init(name);
    let gt = telemetry(signal_generator::FUNCTION_NAME);
    let generator = signal_generator::Handler::from_aws(
        &generator_sdk,
        &signal_generator::Config::from_lookup(lookup).unwrap(),
        &gt,
    )
    .await
    .unwrap();
    let dt = telemetry(trigger_dispatcher::FUNCTION_NAME);
    let dispatcher = trigger_dispatcher::Handler::from_aws(
        &dispatcher_sdk,
        &trigger_dispatcher::Config::from_lookup(lookup).unwrap(),
        &dt,
    )
    .await
    .unwrap();
    let et = telemetry(pipeline_executor::FUNCTION_NAME);
    let executor = pipeline_executor::Handler::from_aws(
        &executor_sdk,
        &pipeline_executor::Config::from_lookup(lookup).unwrap(),
        &et,
    )
    .unwrap();
    // The executor's scheduled sweep, on the same recorded client (abandoning any run past its
    // window: there is no queue redelivery to wait for here).
    let sweeper = executor.sweeper(0, &et);
    let functions = Functions {
        generator: Arc::new(InProcess::new(generator, gt).unwrap()),
        dispatcher: Arc::new(InProcess::new(dispatcher, dt).unwrap()),
        executor: Arc::new(InProcess::new(executor, et).unwrap()),
    };
    let chain = stack.start_chain(functions).await;

    // The generator until it has published (synthetic data: some minute fires a signal), and
    // signals of our own so every pipeline runs.
    let mut t = now();
    for _ in 0..30 {
        chain.fire_generator(t).await.unwrap();
        let published = generator_calls
            .grants()
            .iter()
            .any(|(action, _)| action == "sns:Publish");
        if published {
            break;
        }
        t += 300;
    }
    stack
        .send(
            "SignalsQueueName",
            &[signal_body(
                "iam-1",
                "rsi_oversold",
                "5",
                1_750_000_200,
                &[("AAPL", "BULLISH", 80.0), ("NVDA", "BEARISH", 70.0)],
            )],
        )
        .await;
    assert!(
        chain.wait_idle(Duration::from_secs(60)).await.unwrap(),
        "queues drain"
    );
    chain.stop().await;

    // A run whose last attempt died (started, never ended, its window over), written with an
    // unrecorded client; then the sweep ends it.
    {
        use tradeflow_core::ports::ExecutionStore;
        let dead = tradeflow_core::fakes::fixtures::request("p-all", "iam-dead", now() - 600);
        let store = tradeflow_aws::DynamoExecutionStore::new(
            aws_sdk_dynamodb::Client::new(&sdk),
            stack.outputs.get("ExecutionsTableName").unwrap(),
        );
        store.begin(&dead, now() - 600, now() - 480).await.unwrap();
        let swept = sweeper.sweep().await.unwrap();
        assert!(
            swept
                .abandoned
                .iter()
                .any(|r| r.execution_id == dead.execution_id),
            "{swept:?}"
        );
    }

    let ids = logical_ids(&template, &stack);
    let to_grants = |calls: &CallLog| -> Grants {
        calls
            .grants()
            .into_iter()
            .map(|(action, name)| {
                // `table:<name>/index/<index>`: the table's logical id with the same suffix.
                let (resource, index) = match name.split_once("/index/") {
                    Some((table, index)) => (table.to_owned(), format!("/index/{index}")),
                    None => (name.clone(), String::new()),
                };
                let id = ids
                    .get(&resource)
                    .map(|id| format!("{id}{index}"))
                    .unwrap_or_else(|| format!("<not a resource of the stack: {name:?}>"));
                (action, id)
            })
            .collect()
    };
    let called: BTreeMap<&str, Grants> = BTreeMap::from([
        ("signal-generator", to_grants(&generator_calls)),
        ("trigger-dispatcher", to_grants(&dispatcher_calls)),
        ("pipeline-executor", to_grants(&executor_calls)),
    ]);
    let roles = role_grants(&template);
    let specs = function_specs(&template);
    let mut problems = Vec::new();
    for (function, spec) in &specs {
        let granted = &roles[&spec.role];
        let mut needed: Grants = called[function.as_str()].clone();
        for queue in &spec.sources {
            needed.extend(
                EVENT_SOURCE_ACTIONS
                    .iter()
                    .map(|a| ((*a).to_owned(), queue.clone())),
            );
        }
        needed.extend(
            LOG_ACTIONS
                .iter()
                .map(|a| ((*a).to_owned(), spec.log_group.clone())),
        );
        let allowed_unused: Grants = ON_PATHS_NOT_RUN
            .iter()
            .filter(|(role, ..)| *role == spec.role)
            .map(|(_, action, resource, _)| ((*action).to_owned(), (*resource).to_owned()))
            .collect();
        for missing in needed.difference(granted) {
            problems.push(format!(
                "{function} calls {missing:?} but {} does not grant it",
                spec.role
            ));
        }
        for extra in granted.difference(&needed) {
            if !allowed_unused.contains(extra) {
                problems.push(format!(
                    "{} grants {extra:?} but {function} never called it (remove it, or list the path in ON_PATHS_NOT_RUN)",
                    spec.role
                ));
            }
        }
    }
    stack.delete().await;
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
