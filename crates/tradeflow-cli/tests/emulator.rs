//! Every command against a stack of its own on the AWS emulator, run as a user runs it (the
//! binary, stdin not a terminal). `#[ignore]`d: local/test.sh runs them with
//! `cargo test --workspace -- --include-ignored` and `AWS_ENDPOINT_URL` set.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::{Stack, eventually, now, temp_file};
use tradeflow_core::ids::execution_id;
use tradeflow_core::ports::{Lease, LeaseStore};
use tradeflow_core::vocab::Ticker;
use tradeflow_local::chain::{Chain, ChainConfig, Functions};
use tradeflow_local::esm::MappingConfig;

const PIPELINE: &str = "pipeline_id: p-cli\nuser_id: user-cli\nname: CLI test\nis_active: true\ntrigger_mode: signal\ntickers: [AAPL, MSFT]\nsignal_subscriptions:\n  - signal_type: rsi_oversold\n    timeframe: \"5\"\n    min_confidence: 60\nmax_runtime_secs: 300\n";

async fn start_chain(stack: &Stack) -> Chain {
    let functions = Functions::in_process(&stack.sdk, &stack.outputs, &HashMap::new())
        .await
        .unwrap();
    let fast = |batch_size, window_ms| MappingConfig {
        batch_size,
        batching_window: Duration::from_millis(window_ms),
        wait_time_secs: 1,
        retry_delay: Some(Duration::from_secs(1)),
        ..MappingConfig::default()
    };
    let config = ChainConfig {
        signals: fast(20, 200),
        executions: fast(10, 0),
    };
    Chain::start(&stack.sdk, stack.outputs.clone(), functions, config)
        .await
        .unwrap()
}

#[tokio::test]
#[ignore = "needs the AWS emulator (AWS_ENDPOINT_URL); local/test.sh runs it"]
async fn a_missing_stack_is_one_clear_error() {
    common::emulator().await;
    let err = common::tradeflow(&["--stack", "tradeflow-no-such-stack", "pipelines", "list"])
        .fails()
        .to_owned();
    assert!(
        err.contains("stack tradeflow-no-such-stack does not exist on http"),
        "{err}"
    );
    for args in [
        &["executions", "list"][..],
        &["dlq", "list"],
        &["leases", "list"],
        &["orders", "list"],
    ] {
        let mut all = vec!["--stack", "tradeflow-no-such-stack"];
        all.extend_from_slice(args);
        assert!(common::tradeflow(&all).fails().contains("does not exist"));
    }
}

#[tokio::test]
#[ignore = "needs the AWS emulator (AWS_ENDPOINT_URL); local/test.sh runs it"]
async fn a_pipeline_goes_through_create_list_show_disable_update_enable_and_delete() {
    let stack = Stack::deploy().await;
    assert!(
        stack
            .run(&["pipelines", "list"])
            .ok()
            .contains("no pipelines")
    );
    let file = temp_file("p.yaml", PIPELINE);
    let file = file.to_str().unwrap();

    assert!(
        stack
            .run(&["pipelines", "update", file])
            .fails()
            .contains("no pipeline p-cli to update")
    );
    assert_eq!(
        stack.run(&["pipelines", "create", file]).ok(),
        "created pipeline p-cli\n"
    );
    assert!(
        stack
            .run(&["pipelines", "create", file])
            .fails()
            .contains("p-cli already exists")
    );

    let list = stack.run(&["pipelines", "list"]);
    let row = list
        .ok()
        .lines()
        .find(|l| l.starts_with("p-cli"))
        .unwrap()
        .to_owned();
    assert!(
        row.contains("user-cli") && row.contains("active") && row.contains("AAPL,MSFT"),
        "{row}"
    );

    // `show --json` is the stored pipeline, as the functions decode it (defaults filled in).
    let shown = stack.run(&["--json", "pipelines", "show", "p-cli"]).json();
    assert_eq!(shown["tickers"], serde_json::json!(["AAPL", "MSFT"]));
    assert_eq!(shown["max_runtime_secs"], 300);
    assert_eq!(shown["steps"].as_array().unwrap().len(), 5);
    // Its YAML form can be edited and written back with `update`.
    let yaml = stack.run(&["pipelines", "show", "p-cli"]).ok().to_owned();
    let edited = temp_file(
        "edited.yaml",
        &yaml.replace("max_runtime_secs: 300", "max_runtime_secs: 120"),
    );
    stack
        .run(&["pipelines", "update", edited.to_str().unwrap()])
        .ok();
    assert_eq!(
        stack.run(&["--json", "pipelines", "show", "p-cli"]).json()["max_runtime_secs"],
        120
    );

    stack.run(&["pipelines", "disable", "p-cli"]).ok();
    let listed = stack.run(&["--json", "pipelines", "list"]).json();
    assert_eq!(listed[0]["is_active"], false);
    assert!(stack.run(&["pipelines", "list"]).ok().contains("inactive"));
    stack.run(&["pipelines", "enable", "p-cli"]).ok();
    assert_eq!(
        stack.run(&["--json", "pipelines", "show", "p-cli"]).json()["is_active"],
        true
    );

    // A bad file writes nothing.
    let bad = temp_file(
        "bad.yaml",
        &PIPELINE.replace("min_confidence: 60", "min_confidence: 160"),
    );
    let err = stack
        .run(&["pipelines", "update", bad.to_str().unwrap()])
        .fails()
        .to_owned();
    assert!(
        err.contains("line 10") && err.contains("min_confidence 160"),
        "{err}"
    );
    assert_eq!(
        stack.run(&["--json", "pipelines", "show", "p-cli"]).json()["signal_subscriptions"][0]["min_confidence"],
        60.0
    );

    // Unknown ids.
    for args in [
        &["pipelines", "show", "nope"][..],
        &["pipelines", "enable", "nope"],
        &["pipelines", "disable", "nope"],
        &["pipelines", "delete", "nope", "--yes"],
    ] {
        assert!(
            stack.run(args).fails().contains("no pipeline nope"),
            "{args:?}"
        );
    }

    // On a terminal (util-linux `script` gives the command one): colours, and delete asks;
    // anything but "yes" cancels.
    let on_terminal = |command: &str, input: &str| {
        let line = format!(
            "{} --stack {} {command}",
            env!("CARGO_BIN_EXE_tradeflow"),
            stack.name
        );
        let mut child = std::process::Command::new("script")
            .args(["-qec", &line, "/dev/null"])
            .env_remove("NO_COLOR")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("util-linux script runs");
        use std::io::Write as _;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (code, text) = on_terminal("pipelines list", "");
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains("\x1b[32mactive\x1b[0m"),
        "no colour on a terminal: {text:?}"
    );
    let (code, text) = on_terminal("pipelines delete p-cli", "no\n");
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("delete pipeline p-cli? Type 'yes' to continue")
            && text.contains("cancelled"),
        "{text}"
    );
    assert!(
        stack
            .run(&["pipelines", "show", "p-cli"])
            .ok()
            .contains("p-cli")
    );

    // Delete asks, and without a terminal needs --yes.
    let refused = stack
        .run(&["pipelines", "delete", "p-cli"])
        .fails()
        .to_owned();
    assert!(refused.contains("--yes"), "{refused}");
    assert!(stack.run(&["pipelines", "list"]).ok().contains("p-cli"));
    assert_eq!(
        stack.run(&["pipelines", "delete", "p-cli", "--yes"]).ok(),
        "deleted pipeline p-cli\n"
    );
    assert!(
        stack
            .run(&["pipelines", "show", "p-cli"])
            .fails()
            .contains("no pipeline p-cli")
    );

    // An item another writer stored that the functions cannot decode is listed as invalid with
    // their reason, `show` names it, and `update` from a good file replaces it.
    use aws_sdk_dynamodb::types::AttributeValue as A;
    stack
        .dynamo
        .put_item()
        .table_name(stack.output("PipelinesTableName"))
        .item("pipeline_id", A::S("p-cli".into()))
        .item("user_id", A::S("user-cli".into()))
        .item("tickers", A::S("AAPL".into()))
        .send()
        .await
        .unwrap();
    let listed = stack.run(&["pipelines", "list"]);
    let row = listed
        .ok()
        .lines()
        .find(|l| l.starts_with("p-cli"))
        .unwrap()
        .to_owned();
    assert!(
        row.contains("invalid") && row.contains("does not decode"),
        "{row}"
    );
    let err = stack
        .run(&["pipelines", "show", "p-cli"])
        .fails()
        .to_owned();
    assert!(err.contains("corrupt pipeline item p-cli"), "{err}");
    stack.run(&["pipelines", "update", file]).ok();
    assert_eq!(
        stack.run(&["--json", "pipelines", "show", "p-cli"]).json()["name"],
        "CLI test"
    );
    stack.delete().await;
}

#[tokio::test]
#[ignore = "needs the AWS emulator (AWS_ENDPOINT_URL); local/test.sh runs it"]
async fn a_signal_sent_with_the_cli_shows_up_as_executions_orders_and_in_the_tails() {
    let stack = Stack::deploy().await;
    let file = temp_file("p.yaml", PIPELINE);
    stack
        .run(&["pipelines", "create", file.to_str().unwrap()])
        .ok();
    assert!(
        stack
            .run(&["executions", "list"])
            .ok()
            .contains("no executions match")
    );
    assert!(
        stack
            .run(&["orders", "list"])
            .ok()
            .contains("no orders match")
    );

    // Both tails follow from now: what they print comes from the signal sent below.
    let exec_tail = stack.spawn(&[
        "--json",
        "executions",
        "tail",
        "--ticker",
        "AAPL",
        "--interval",
        "0.5",
        "--for",
        "25",
    ]);
    let signal_tail = stack.spawn(&["--json", "signals", "tail", "--for", "25s"]);
    tokio::time::sleep(Duration::from_secs(3)).await;

    let chain = start_chain(&stack).await;
    let t = now() - 60;
    let sent = stack.run(&[
        "signals",
        "send",
        "--id",
        "sig-cli-1",
        "--type",
        "rsi_oversold",
        "--ticker",
        "AAPL",
        "--ticker",
        "MSFT",
        "--confidence",
        "80",
        "--timeframe",
        "5",
        "--timestamp",
        &t.to_string(),
    ]);
    assert_eq!(
        sent.ok(),
        "sent signal sig-cli-1 (rsi_oversold AAPL,MSFT)\n"
    );
    assert!(chain.wait_idle(Duration::from_secs(60)).await.unwrap());
    chain.stop().await;

    let executions = stack.run(&["--json", "executions", "list"]).json();
    let executions = executions.as_array().unwrap();
    assert_eq!(executions.len(), 2, "{executions:?}");
    for e in executions {
        assert_eq!(e["status"], "COMPLETED");
        assert_eq!(e["signal_context"]["signal_id"], "sig-cli-1");
    }
    let aapl = execution_id("p-cli", "AAPL", "sig-cli-1");
    // Filters.
    let only = stack
        .run(&[
            "--json",
            "executions",
            "list",
            "--ticker",
            "aapl",
            "--status",
            "completed",
            "--pipeline",
            "p-cli",
            "--user",
            "user-cli",
        ])
        .json();
    assert_eq!(only.as_array().unwrap().len(), 1);
    assert_eq!(only[0]["execution_id"], aapl);
    assert!(
        stack
            .run(&["executions", "list", "--status", "FAILED"])
            .ok()
            .contains("no executions match")
    );
    assert!(
        stack
            .run(&["executions", "list", "--pipeline", "other"])
            .ok()
            .contains("no executions match")
    );
    let table = stack.run(&["executions", "list", "--limit", "1"]);
    assert!(table.ok().contains("(1 of 2 shown"), "{}", table.stdout);

    let shown = stack.run(&["executions", "show", &aapl]);
    let text = shown.ok();
    assert!(
        text.contains("COMPLETED") && text.contains("rsi_oversold BULLISH AAPL"),
        "{text}"
    );
    for step in ["market_snapshot", "bias", "strategy", "risk", "paper_order"] {
        assert!(text.contains(step), "{step} missing: {text}");
    }
    assert!(
        stack
            .run(&["executions", "show", "exe-nope"])
            .fails()
            .contains("no execution exe-nope")
    );

    let orders = stack
        .run(&["--json", "orders", "list", "--ticker", "AAPL"])
        .json();
    assert_eq!(orders.as_array().unwrap().len(), 1);
    assert_eq!(orders[0]["execution_id"], aapl);
    assert!(stack.run(&["orders", "list"]).ok().contains("p-cli"));

    // The runs released their leases: none is held; a claim made now is listed.
    assert!(
        stack
            .run(&["leases", "list", "--held"])
            .ok()
            .contains("no leases held")
    );
    let leases =
        tradeflow_aws::DynamoLeaseStore::new(stack.dynamo.clone(), stack.output("LeasesTableName"));
    leases
        .claim(
            &Lease {
                pipeline_id: "p-cli".into(),
                ticker: Ticker::parse("NVDA").unwrap(),
                execution_id: "exe-held".into(),
                expires_at: now() + 120,
            },
            now(),
        )
        .await
        .unwrap();
    let listed = stack.run(&["--json", "leases", "list", "--held"]).json();
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert_eq!(listed[0]["execution_id"], "exe-held");
    assert_eq!(listed[0]["held"], true);
    assert_eq!(listed[0]["started"], false);
    assert!(stack.run(&["leases", "list"]).ok().contains("exe-held"));

    let exec_lines = exec_tail.join().unwrap();
    let lines: Vec<serde_json::Value> = exec_lines
        .ok()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(
        !lines.is_empty(),
        "the tail printed nothing: {}",
        exec_lines.stderr
    );
    assert!(lines.iter().all(|l| l["ticker"] == "AAPL"), "{lines:?}");
    assert_eq!(lines.last().unwrap()["status"], "COMPLETED");
    let signal_lines = signal_tail.join().unwrap();
    let signals: Vec<serde_json::Value> = signal_lines
        .ok()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(signals.len(), 1, "{signals:?}");
    assert_eq!(signals[0]["signal_id"], "sig-cli-1");
    let tickers: Vec<&str> = signals[0]["tickers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["ticker"].as_str().unwrap())
        .collect();
    assert_eq!(tickers, ["AAPL", "MSFT"]);
    stack.delete().await;
}

/// The gap of issue 12: `signals tail` shows what the generator produces, live, whether a
/// pipeline matches it or not: through a queue of its own subscribed to the signals topic,
/// which it removes on Ctrl-C and on reaching `--count`.
#[tokio::test]
#[ignore = "needs the AWS emulator (AWS_ENDPOINT_URL); local/test.sh runs it"]
async fn signals_tail_shows_every_published_signal_matched_or_not_and_leaves_nothing_behind() {
    let stack = Stack::deploy().await;
    let file = temp_file("p.yaml", PIPELINE);
    stack
        .run(&["pipelines", "create", file.to_str().unwrap()])
        .ok();
    let signals_queue = stack.output("SignalsQueueName");
    assert_eq!(
        stack.topic_subscribers().await,
        std::slice::from_ref(&signals_queue)
    );

    // Two tails: everything until Ctrl-C, and one NVDA golden_cross then exit.
    let all = stack.start(&["--json", "signals", "tail", "--for", "120s"]);
    let nvda = stack.start(&[
        "signals",
        "tail",
        "--ticker",
        "nvda",
        "--type",
        "golden_cross",
        "--count",
        "1",
        "--for",
        "120s",
    ]);
    assert!(
        eventually(Duration::from_secs(20), async || stack
            .topic_subscribers()
            .await
            .len()
            == 3)
        .await,
        "both tails subscribed: {:?}",
        stack.topic_subscribers().await
    );
    assert_eq!(stack.tail_queues().await.len(), 2);

    let chain = start_chain(&stack).await;
    let t = (now() - 60).to_string();
    let send = |id: &'static str, kind: &'static str, ticker: &'static str| {
        let t = t.clone();
        let stack = &stack;
        async move {
            stack
                .run(&[
                    "signals",
                    "send",
                    "--id",
                    id,
                    "--type",
                    kind,
                    "--ticker",
                    ticker,
                    "--confidence",
                    "80",
                    "--timeframe",
                    "5",
                    "--timestamp",
                    &t,
                ])
                .ok()
                .to_owned()
        }
    };
    send("sig-match", "rsi_oversold", "AAPL").await;
    send("sig-nomatch", "golden_cross", "NVDA").await;
    // The generator's handler, once per tick until it has produced something (synthetic data).
    let mut generated = 0;
    let mut tick = now();
    for _ in 0..30 {
        let summary = chain.fire_generator(tick).await.unwrap();
        generated += summary["signals_sent"].as_u64().unwrap();
        if generated > 0 {
            break;
        }
        tick += 300;
    }
    assert!(
        generated > 0,
        "the generator produced no signal in 30 scans"
    );
    assert!(chain.wait_idle(Duration::from_secs(60)).await.unwrap());
    chain.stop().await;

    // The dispatcher got them all through the topic: the matching one ran, the other did not.
    let executions = stack
        .run(&["--json", "executions", "list", "--limit", "0"])
        .json();
    let by_signal = |id: &str| {
        executions
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["signal_context"]["signal_id"] == id)
            .count()
    };
    assert_eq!(by_signal("sig-match"), 1, "{executions:?}");
    assert_eq!(by_signal("sig-nomatch"), 0, "{executions:?}");

    // The tail printed all of them: the two sent and every one the generator published.
    let expected = 2 + generated as usize;
    assert!(
        eventually(Duration::from_secs(30), async || all.lines().len()
            >= expected)
        .await,
        "expected {expected} signals, got {:?}",
        all.lines()
    );
    all.signal("INT");
    let (code, lines, stderr) = all.wait(Duration::from_secs(30));
    assert_eq!(code, Some(0), "{stderr}");
    let printed: Vec<serde_json::Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(printed.len(), expected, "{printed:?}");
    let ids: Vec<&str> = printed
        .iter()
        .map(|s| s["signal_id"].as_str().unwrap())
        .collect();
    assert!(
        ids.contains(&"sig-match") && ids.contains(&"sig-nomatch"),
        "{ids:?}"
    );
    let from_generator = printed
        .iter()
        .filter(|s| s["source"] != "tradeflow-cli")
        .count();
    assert_eq!(from_generator as u64, generated, "{printed:?}");

    // The filtered tail printed the NVDA golden_cross only, then stopped by itself.
    let (code, lines, stderr) = nvda.wait(Duration::from_secs(30));
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(lines.len(), 2, "header and one row: {lines:?}");
    assert!(lines[0].starts_with("SIGNAL") && lines[0].ends_with("DISPATCH"));
    assert!(
        lines[1].starts_with("sig-nomatch  golden_cross  NVDA  BULLISH  80.0  5  tradeflow-cli")
            && lines[1].ends_with("valid"),
        "{}",
        lines[1]
    );
    assert!(stderr.contains("tradeflow-tail-"), "{stderr}");

    // Both tails removed their queue and subscription.
    assert_eq!(stack.topic_subscribers().await, [signals_queue]);
    assert!(stack.tail_queues().await.is_empty());
    stack.delete().await;
}

/// A killed tail leaves its queue and subscription; `--cleanup` removes those not marked for
/// 5 minutes (and subscriptions whose queue is gone) and leaves live tails alone.
#[tokio::test]
#[ignore = "needs the AWS emulator (AWS_ENDPOINT_URL); local/test.sh runs it"]
async fn a_killed_tails_leftovers_are_removed_by_cleanup_and_live_tails_are_not() {
    use aws_sdk_sqs::types::QueueAttributeName;
    let stack = Stack::deploy().await;
    let signals_queue = stack.output("SignalsQueueName");
    let live = stack.start(&["signals", "tail"]); // no --for: until SIGTERM below
    let killed = stack.start(&["signals", "tail", "--for", "120s"]);
    let killed_pid = killed.pid();
    assert!(
        eventually(Duration::from_secs(20), async || stack
            .topic_subscribers()
            .await
            .len()
            == 3)
        .await
    );
    killed.signal("KILL");
    let _ = killed.wait(Duration::from_secs(10));
    let mut queues = stack.tail_queues().await;
    queues.sort();
    assert_eq!(queues.len(), 2, "kill -9 leaves the queue: {queues:?}");
    let url_of = async |name: &str| {
        tradeflow_aws::resolve_queue_url(&stack.sqs, name)
            .await
            .unwrap()
    };
    for name in &queues {
        let url = url_of(name).await;
        let tags = stack
            .sqs
            .list_queue_tags()
            .queue_url(&url)
            .send()
            .await
            .unwrap()
            .tags
            .unwrap();
        assert_eq!(tags["tradeflow:stack"], stack.name);
        assert_eq!(tags["tradeflow:purpose"], "signals-tail");
        let attrs = stack
            .sqs
            .get_queue_attributes()
            .queue_url(&url)
            .attribute_names(QueueAttributeName::MessageRetentionPeriod)
            .send()
            .await
            .unwrap();
        assert_eq!(
            attrs.attributes().unwrap()[&QueueAttributeName::MessageRetentionPeriod],
            "300"
        );
    }

    // Both were marked just now: nothing is stale yet.
    let kept = stack
        .run(&["--json", "signals", "tail", "--cleanup"])
        .json();
    assert_eq!(kept["removed_queues"], serde_json::json!([]));
    assert_eq!(kept["live_tails"], 2);

    // Age the killed tail's mark by 10 minutes, as if it had been killed then.
    let killed_queue = queues
        .iter()
        .find(|q| q.ends_with(&format!("-{killed_pid}")))
        .unwrap()
        .clone();
    stack
        .sqs
        .tag_queue()
        .queue_url(url_of(&killed_queue).await)
        .tags("tradeflow:seen", (now() - 600).to_string())
        .send()
        .await
        .unwrap();
    // And a subscription to a tail queue that is already gone (deleted by hand, not
    // unsubscribed).
    let sns = aws_sdk_sns::Client::new(&stack.sdk);
    let orphan = format!(
        "arn:aws:sqs:us-east-1:123456789012:tradeflow-tail-{}-gone-1",
        stack.stage
    );
    sns.subscribe()
        .topic_arn(stack.output("SignalsTopicArn"))
        .protocol("sqs")
        .endpoint(&orphan)
        .send()
        .await
        .unwrap();
    assert_eq!(stack.topic_subscribers().await.len(), 4);

    let cleaned = stack
        .run(&["--json", "signals", "tail", "--cleanup"])
        .json();
    assert_eq!(cleaned["removed_queues"], serde_json::json!([killed_queue]));
    assert_eq!(cleaned["removed_subscriptions"], 2, "{cleaned}");
    assert_eq!(cleaned["live_tails"], 1);
    let live_queue: Vec<String> = queues.into_iter().filter(|q| *q != killed_queue).collect();
    assert_eq!(stack.tail_queues().await, live_queue);
    let mut expected = vec![signals_queue.clone(), live_queue[0].clone()];
    expected.sort();
    assert_eq!(stack.topic_subscribers().await, expected);

    // The live tail still ends cleanly (SIGTERM as from a process manager).
    live.signal("TERM");
    let (code, _, stderr) = live.wait(Duration::from_secs(30));
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stack.tail_queues().await.is_empty());
    assert_eq!(stack.topic_subscribers().await, [signals_queue]);
    stack.delete().await;
}

/// A stack deployed before the signals topic: one clear line, exit 1, nothing created.
#[tokio::test]
#[ignore = "needs the AWS emulator (AWS_ENDPOINT_URL); local/test.sh runs it"]
async fn tailing_a_stack_without_a_signals_topic_is_one_clear_error() {
    let sdk = common::emulator().await;
    let cfn = aws_sdk_cloudformation::Client::new(&sdk);
    let name = format!("tradeflow-notopic{}x{:x}", std::process::id(), now());
    let template = format!(
        "Resources:\n  SignalsQueue:\n    Type: AWS::SQS::Queue\n    Properties:\n      QueueName: {name}-signals\nOutputs:\n  SignalsQueueName:\n    Value: !GetAtt SignalsQueue.QueueName\n"
    );
    cfn.create_stack()
        .stack_name(&name)
        .template_body(template)
        .send()
        .await
        .unwrap();
    let err = common::tradeflow(&["--stack", &name, "signals", "tail", "--for", "5s"])
        .fails()
        .to_owned();
    assert!(
        err.contains(&format!(
            "stack {name} has no signals topic (output SignalsTopicArn)"
        )),
        "{err}"
    );
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let left = sqs
        .list_queues()
        .queue_name_prefix(format!("tradeflow-tail-{}", &name["tradeflow-".len()..]))
        .send()
        .await
        .unwrap();
    assert!(left.queue_urls().is_empty(), "{left:?}");
    // `signals send` still works there: straight to the queue, as before the topic.
    let sent = common::tradeflow(&[
        "--stack",
        &name,
        "signals",
        "send",
        "--id",
        "sig-old",
        "--type",
        "rsi_oversold",
        "--ticker",
        "AAPL",
    ]);
    assert_eq!(sent.ok(), "sent signal sig-old (rsi_oversold AAPL)\n");
    let url = tradeflow_aws::resolve_queue_url(&sqs, &format!("{name}-signals"))
        .await
        .unwrap();
    let got = sqs.receive_message().queue_url(&url).send().await.unwrap();
    assert!(got.messages()[0].body().unwrap().contains("sig-old"));
    let _ = cfn.delete_stack().stack_name(&name).send().await;
}

#[tokio::test]
#[ignore = "needs the AWS emulator (AWS_ENDPOINT_URL); local/test.sh runs it"]
async fn dead_letters_are_listed_with_their_reason_and_redriven() {
    let stack = Stack::deploy().await;
    // Empty DLQs.
    let empty = stack.run(&["dlq", "list"]);
    assert!(
        empty.ok().contains("signals DLQ") && empty.stdout.contains("empty"),
        "{}",
        empty.stdout
    );
    assert_eq!(
        stack.run(&["--json", "dlq", "list"]).json(),
        serde_json::json!([])
    );
    assert!(
        stack
            .run(&["dlq", "redrive", "--queue", "signals", "--all"])
            .ok()
            .contains("empty: nothing to redrive")
    );
    assert!(
        stack
            .run(&["dlq", "redrive", "--queue", "signals", "--id", "m-1"])
            .fails()
            .contains("no message m-1")
    );

    stack
        .dead_letter("SignalsQueueName", r#"{"signal_id": "bad-1"}"#)
        .await;
    stack.dead_letter("SignalsQueueName", "not json").await;
    let request = r#"{"execution_id": "exe-forged", "pipeline_id": "p", "user_id": "u", "ticker": "AAPL",
        "signal_context": {"signal_id": "s", "signal_type": "rsi_oversold", "source": "x", "timestamp": 1700000000,
        "tickers": ["AAPL"], "confidence": 80, "signal": "BULLISH"}, "lease_expires_at": 1, "enqueued_at_ms": 1}"#;
    stack.dead_letter("ExecutionsQueueName", request).await;
    assert_eq!(stack.depth("SignalsDlqName").await, 2);

    let listed = stack.run(&["--json", "dlq", "list"]).json();
    let letters = listed.as_array().unwrap();
    assert_eq!(letters.len(), 3, "{letters:?}");
    let by_body = |b: &str| {
        letters
            .iter()
            .find(|l| l["body"].as_str().unwrap().contains(b))
            .unwrap()
            .clone()
    };
    let missing = by_body("bad-1");
    assert_eq!(missing["queue"], "signals");
    assert_eq!(missing["verdict"], "rejected");
    assert!(
        missing["reason"]
            .as_str()
            .unwrap()
            .contains("missing field `signal_type`"),
        "{missing}"
    );
    assert!(missing["receive_count"].as_u64().unwrap() >= 5, "{missing}");
    assert!(
        by_body("not json")["reason"]
            .as_str()
            .unwrap()
            .contains("malformed_json")
    );
    let forged = by_body("exe-forged");
    assert_eq!(forged["queue"], "executions");
    assert!(
        forged["reason"]
            .as_str()
            .unwrap()
            .contains("does not derive"),
        "{forged}"
    );
    // Listing leaves them where they were, visible.
    assert_eq!(stack.depth("SignalsDlqName").await, 2);
    let table = stack.run(&["dlq", "list", "--queue", "signals"]);
    assert!(
        table.ok().contains("2 message(s)") && !table.stdout.contains("executions DLQ"),
        "{}",
        table.stdout
    );

    // Dry run and refusals move nothing.
    let dry = stack.run(&["dlq", "redrive", "--queue", "signals", "--all", "--dry-run"]);
    assert!(
        dry.ok().contains("2 message(s) would move"),
        "{}",
        dry.stdout
    );
    assert!(
        stack
            .run(&["dlq", "redrive", "--queue", "signals", "--all"])
            .fails()
            .contains("--yes")
    );
    assert!(
        stack
            .run(&["dlq", "redrive", "--queue", "signals", "--id", "nope"])
            .fails()
            .contains("no message nope")
    );
    assert_eq!(stack.depth("SignalsDlqName").await, 2);
    assert_eq!(stack.depth("SignalsQueueName").await, 0);

    // One selected message moves; then all of the rest.
    let id = missing["message_id"].as_str().unwrap();
    assert!(
        stack
            .run(&["dlq", "redrive", "--queue", "signals", "--id", id])
            .ok()
            .contains(&format!("moved {id}"))
    );
    assert!(
        eventually(Duration::from_secs(5), async || stack
            .depth("SignalsDlqName")
            .await
            == 1)
        .await
    );
    assert_eq!(stack.depth("SignalsQueueName").await, 1);
    let all = stack
        .run(&[
            "--json", "dlq", "redrive", "--queue", "signals", "--all", "--yes",
        ])
        .json();
    assert_eq!(all["moved"].as_array().unwrap().len(), 1);
    assert_eq!(stack.depth("SignalsDlqName").await, 0);
    assert_eq!(stack.depth("SignalsQueueName").await, 2);
    let bodies: Vec<serde_json::Value> = stack
        .run(&["--json", "dlq", "list", "--queue", "executions"])
        .json()
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(bodies.len(), 1);
    stack.delete().await;
}

#[tokio::test]
#[ignore = "needs the AWS emulator (AWS_ENDPOINT_URL); local/test.sh runs it"]
async fn a_backtest_on_a_throwaway_emulator_stack_sees_what_the_in_process_one_sees() {
    let sdk = common::emulator().await;
    let args = [
        "--json",
        "backtest",
        "--synthetic",
        "--from",
        "2026-01-05T00:00:00Z",
        "--to",
        "2026-01-05T03:00:00Z",
        "--tickers",
        "AAPL,SPY",
    ];
    let in_process = common::tradeflow(&args).json();
    let mut on_emulator_args = args.to_vec();
    on_emulator_args.push("--emulator");
    let on_emulator = common::tradeflow(&on_emulator_args).json();
    assert_eq!(on_emulator["mode"], "emulator");
    assert_eq!(in_process["mode"], "in-process");
    // The same generator on the same bars: the same candles and signals.
    for key in ["scans", "candles_evaluated", "signals"] {
        assert_eq!(in_process[key], on_emulator[key], "{key}");
    }
    assert!(on_emulator["signals"].as_u64().unwrap() > 0);
    // Every run completes on both paths (the emulator's batches may split one scan's signals,
    // so a (pipeline, ticker) can run once more there than in-process).
    for r in [&in_process, &on_emulator] {
        let by_status = r["executions_by_status"].as_object().unwrap();
        assert_eq!(by_status.keys().collect::<Vec<_>>(), ["COMPLETED"], "{r}");
        assert!(r["orders"].as_u64().unwrap() > 0, "{r}");
        assert_eq!(r["dead_lettered"], 0);
    }
    let runs = |r: &serde_json::Value| r["executions_by_status"]["COMPLETED"].as_u64().unwrap();
    assert!(
        runs(&on_emulator) >= runs(&in_process),
        "{on_emulator}\n{in_process}"
    );
    // The throwaway stack is gone.
    let cfn = aws_sdk_cloudformation::Client::new(&sdk);
    let stacks = cfn.describe_stacks().send().await.unwrap();
    let left: Vec<&str> = stacks
        .stacks()
        .iter()
        .filter(|s| {
            s.stack_name()
                .is_some_and(|n| n.starts_with("tradeflow-bt"))
                && s.stack_status()
                    != Some(&aws_sdk_cloudformation::types::StackStatus::DeleteComplete)
        })
        .filter_map(|s| s.stack_name())
        .collect();
    assert!(left.is_empty(), "throwaway stacks left: {left:?}");
}
