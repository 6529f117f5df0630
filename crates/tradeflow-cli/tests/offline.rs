//! What the binary does before it talks to AWS: help, argument and file validation.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{temp_file, tradeflow, tradeflow_env};

/// Every command and subcommand, as typed.
const COMMANDS: &[&[&str]] = &[
    &["pipelines"],
    &["signals"],
    &["executions"],
    &["orders"],
    &["leases"],
    &["dlq"],
    &["dashboard"],
    &["pipelines", "create"],
    &["pipelines", "update"],
    &["pipelines", "list"],
    &["pipelines", "show"],
    &["pipelines", "enable"],
    &["pipelines", "disable"],
    &["pipelines", "delete"],
    &["signals", "send"],
    &["signals", "tail"],
    &["executions", "list"],
    &["executions", "show"],
    &["executions", "tail"],
    &["orders", "list"],
    &["leases", "list"],
    &["dlq", "list"],
    &["dlq", "redrive"],
    &["backtest"],
    &["dashboard", "render"],
];

#[test]
fn every_command_has_help_with_an_example() {
    let top = tradeflow(&["--help"]);
    assert!(top.ok().contains("Example"), "{}", top.stdout);
    for command in COMMANDS {
        let mut args = command.to_vec();
        args.push("--help");
        let run = tradeflow(&args);
        let text = run.ok();
        assert!(
            text.contains("Example:") || text.contains("Examples:"),
            "{command:?} --help has no example:\n{text}"
        );
        assert!(text.contains("tradeflow "), "{command:?}: {text}");
    }
}

#[test]
fn a_command_without_a_stack_says_how_to_name_one() {
    let err = tradeflow(&["pipelines", "list"]).fails().to_owned();
    assert!(
        err.contains("--stack") && err.contains("TRADEFLOW_STACK"),
        "{err}"
    );
}

const GOOD: &str = "pipeline_id: p-cli\nuser_id: u1\nname: CLI test\nis_active: true\ntrigger_mode: signal\ntickers: [AAPL, MSFT]\nsignal_subscriptions:\n  - signal_type: rsi_oversold\n    timeframe: \"5\"\n    min_confidence: 60\nmax_runtime_secs: 300\n";

#[test]
fn a_valid_pipeline_file_passes_a_dry_run_without_a_stack() {
    let path = temp_file("good.yaml", GOOD);
    let out = tradeflow(&["pipelines", "create", path.to_str().unwrap(), "--dry-run"]);
    assert!(
        out.ok().contains("1 valid pipeline(s): p-cli"),
        "{}",
        out.stdout
    );
}

#[test]
fn bad_pipeline_files_name_the_field_and_line() {
    let cases: &[(&str, String, &[&str])] = &[
        (
            "ticker.yaml",
            GOOD.replace("[AAPL, MSFT]", "[AAPL, \"MS FT\"]"),
            &["line 6", "field tickers[1]", "MS FT"],
        ),
        (
            "runtime.yaml",
            GOOD.replace("max_runtime_secs: 300", "max_runtime_secs: 0"),
            &["line 11", "field max_runtime_secs", "not within 1 to 3600"],
        ),
        (
            "confidence.yaml",
            GOOD.replace("min_confidence: 60", "min_confidence: 101"),
            &["line 10", "min_confidence 101"],
        ),
        (
            "timeframe.yaml",
            GOOD.replace("timeframe: \"5\"", "timeframe: \"7\""),
            &["line 9", "field signal_subscriptions[0].timeframe"],
        ),
        (
            "missing.yaml",
            GOOD.replace("user_id: u1\n", ""),
            &["missing field `user_id`"],
        ),
        (
            "list.json",
            r#"[
  {"pipeline_id": "a", "user_id": "u", "name": "n", "is_active": true, "trigger_mode": "signal", "tickers": ["AAPL"]},
  {"pipeline_id": "b", "user_id": "u", "name": "n", "is_active": "yes", "trigger_mode": "signal", "tickers": ["AAPL"]}
]"#
            .to_owned(),
            &["line 3", "field [1].is_active", "expected a boolean"],
        ),
        ("syntax.json", "{\"pipeline_id\": ".to_owned(), &["line 1"]),
        ("empty.json", "[]".to_owned(), &["no pipelines"]),
    ];
    for (name, text, needles) in cases {
        let path = temp_file(name, text);
        for command in ["create", "update"] {
            let run = tradeflow(&["pipelines", command, path.to_str().unwrap(), "--dry-run"]);
            let err = run.fails();
            assert!(err.contains(name), "{name}: {err}");
            for needle in *needles {
                assert!(err.contains(needle), "{name}: {needle:?} not in {err}");
            }
        }
    }
    let missing = tradeflow(&["pipelines", "create", "/nonexistent/p.yaml", "--dry-run"]);
    assert!(missing.fails().contains("reading /nonexistent/p.yaml"));
}

#[test]
fn an_unknown_field_is_warned_about() {
    let path = temp_file("typo.yaml", &format!("{GOOD}max_runtime_sec: 10\n"));
    let run = tradeflow(&["pipelines", "create", path.to_str().unwrap(), "--dry-run"]);
    run.ok();
    assert!(
        run.stderr.contains("unknown field `max_runtime_sec`"),
        "{}",
        run.stderr
    );
}

#[test]
fn signals_are_validated_by_the_dispatchers_decoder_before_sending() {
    let ok = tradeflow(&[
        "signals",
        "send",
        "--type",
        "rsi_oversold",
        "--ticker",
        "AAPL",
        "--confidence",
        "80",
        "--timeframe",
        "5",
        "--dry-run",
    ]);
    assert!(ok.ok().contains("1 valid signal(s)"), "{}", ok.stdout);
    for (args, needle) in [
        (
            vec!["--type", "rsi_oversold", "--ticker", "MS FT"],
            "invalid ticker",
        ),
        (
            vec!["--type", "RSI", "--ticker", "AAPL"],
            "invalid signal_type",
        ),
        (
            vec![
                "--type",
                "rsi_oversold",
                "--ticker",
                "AAPL",
                "--confidence",
                "120",
            ],
            "invalid confidence",
        ),
        (
            vec![
                "--type",
                "rsi_oversold",
                "--ticker",
                "AAPL",
                "--direction",
                "UP",
            ],
            "invalid signal",
        ),
        (
            vec![
                "--type",
                "rsi_oversold",
                "--ticker",
                "AAPL",
                "--timeframe",
                "7",
            ],
            "timeframe",
        ),
        (
            vec![
                "--type",
                "rsi_oversold",
                "--ticker",
                "AAPL",
                "--timestamp",
                "99999999999",
            ],
            "invalid timestamp",
        ),
    ] {
        let mut all = vec!["signals", "send", "--dry-run"];
        all.extend(args);
        let err = tradeflow(&all).fails().to_owned();
        assert!(err.contains(needle), "{all:?}: {err}");
        assert!(err.contains("the dispatcher would reject it"), "{err}");
    }
    let file = temp_file("signals.json", r#"[{"signal_id": "x"}]"#);
    let err = tradeflow(&[
        "signals",
        "send",
        "--file",
        file.to_str().unwrap(),
        "--dry-run",
    ])
    .fails()
    .to_owned();
    assert!(err.contains("missing field `signal_type`"), "{err}");
}

#[test]
fn a_bad_execution_filter_is_refused() {
    let err = tradeflow(&["--stack", "x", "executions", "list", "--status", "DONE"])
        .fails()
        .to_owned();
    assert!(err.contains("--status \"DONE\""), "{err}");
}

/// The backtest's result without its timings (which differ run to run).
fn without_timings(mut v: serde_json::Value) -> serde_json::Value {
    for key in ["phases", "steps", "wall_secs"] {
        v.as_object_mut().unwrap().remove(key);
    }
    v
}

#[test]
fn a_synthetic_backtest_runs_the_chain_and_is_deterministic() {
    let seed = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../local/seed/pipelines.json"
    );
    let args = [
        "--json",
        "backtest",
        "--synthetic",
        "--from",
        "2026-01-05",
        "--to",
        "2026-01-05T12:00:00Z",
        "--tickers",
        "AAPL,MSFT,NVDA,SPY",
        "--pipelines",
        seed,
    ];
    let first = tradeflow(&args).json();
    let signals = first["signals"].as_u64().unwrap();
    assert!(signals > 0, "{first}");
    let by_type: u64 = first["signals_by_type"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(by_type, signals);
    let by_status = first["executions_by_status"].as_object().unwrap();
    let executions: u64 = by_status.values().map(|v| v.as_u64().unwrap()).sum();
    assert_eq!(
        executions,
        first["executions_enqueued"].as_u64().unwrap(),
        "{first}"
    );
    assert!(by_status["COMPLETED"].as_u64().unwrap() > 0, "{first}");
    let orders = first["orders"].as_u64().unwrap();
    assert!(orders > 0 && orders <= executions, "{first}");
    assert_eq!(
        first["orders_list"].as_array().unwrap().len() as u64,
        orders
    );
    assert_eq!(first["scans"], 144, "12 h of 5-minute scans");
    assert_eq!(first["dead_lettered"], 0);
    for step in ["market_snapshot", "bias", "strategy", "risk", "paper_order"] {
        assert!(
            first["steps"][step]["calls"].as_u64().unwrap() > 0,
            "{step}: {first}"
        );
    }
    for phase in ["generator scan", "dispatcher batch", "executor batch"] {
        assert!(
            first["phases"][phase]["calls"].as_u64().unwrap() > 0,
            "{phase}"
        );
    }
    let second = tradeflow(&args).json();
    assert_eq!(without_timings(first), without_timings(second));

    let table = tradeflow(&args[1..]);
    let text = table.ok();
    for needle in [
        "SIGNAL TYPE",
        "(total)",
        "EXECUTION STATUS",
        "COMPLETED",
        "paper orders:",
        "generator scan",
        "market_snapshot",
    ] {
        assert!(text.contains(needle), "{needle}: {text}");
    }
}

#[test]
fn a_csv_backtest_scans_only_the_series_it_has() {
    let dir = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../crates/tradeflow-core/testdata/replay"
    );
    let everything = temp_file(
        "all.yaml",
        "pipeline_id: p-all\nuser_id: u\nname: all\nis_active: true\ntrigger_mode: signal\ntickers: [AAPL, BTCUSD]\n",
    );
    let r = tradeflow(&[
        "--json",
        "backtest",
        "--csv",
        dir,
        "--pipelines",
        everything.to_str().unwrap(),
    ])
    .json();
    assert_eq!(r["scan_errors"], serde_json::json!({}), "{r}");
    assert_eq!(r["candles_evaluated"], 18, "{r}");
    let signals = r["signals"].as_u64().unwrap();
    assert!(signals > 0);
    // The catch-all pipeline takes the signals (one run per (pipeline, ticker) and scan).
    let matched = r["fan_outs_matched"].as_u64().unwrap();
    assert!(matched > 0, "{r}");
    let runs: u64 = r["executions_by_status"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(runs, r["executions_enqueued"].as_u64().unwrap(), "{r}");
}

#[test]
fn backtest_mistakes_are_one_line_errors() {
    let cases: &[(&[&str], &str)] = &[
        (
            &[
                "backtest",
                "--synthetic",
                "--from",
                "2026-01-05",
                "--to",
                "2026-01-06",
            ],
            "needs --tickers",
        ),
        (
            &["backtest", "--synthetic", "--tickers", "AAPL"],
            "needs --from and --to",
        ),
        (
            &[
                "backtest",
                "--synthetic",
                "--tickers",
                "AAPL",
                "--from",
                "2026-01-06",
                "--to",
                "2026-01-05",
            ],
            "range is empty",
        ),
        (
            &[
                "backtest",
                "--synthetic",
                "--tickers",
                "AAPL",
                "--from",
                "yesterday",
                "--to",
                "2026-01-05",
            ],
            "--from \"yesterday\"",
        ),
        (
            &["backtest", "--csv", "/nonexistent-dir"],
            "/nonexistent-dir",
        ),
        (
            &[
                "backtest",
                "--synthetic",
                "--tickers",
                "AAPL",
                "--from",
                "2026-01-05",
                "--to",
                "2026-01-06",
                "--pipelines",
                "/nonexistent.yaml",
            ],
            "reading /nonexistent.yaml",
        ),
    ];
    for (args, needle) in cases {
        let err = tradeflow(args).fails().to_owned();
        assert!(err.contains(needle), "{args:?}: {err}");
    }
    let err = tradeflow_env(
        &[
            "backtest",
            "--synthetic",
            "--tickers",
            "AAPL",
            "--from",
            "2026-01-05",
            "--to",
            "2026-01-06",
            "--emulator",
        ],
        &[],
        &["AWS_ENDPOINT_URL"],
    )
    .fails()
    .to_owned();
    assert!(
        err.contains("needs AWS_ENDPOINT_URL") && err.contains("never deploys to AWS"),
        "{err}"
    );
}

#[test]
fn an_unreachable_prometheus_is_one_clear_error() {
    let out = temp_file("d.html", "");
    let err = tradeflow(&[
        "dashboard",
        "render",
        "--prometheus",
        "http://127.0.0.1:1",
        "--out",
        out.to_str().unwrap(),
    ])
    .fails()
    .to_owned();
    assert!(
        err.contains("cannot reach Prometheus at http://127.0.0.1:1"),
        "{err}"
    );
    let err = tradeflow(&["dashboard", "render", "--since", "soon"])
        .fails()
        .to_owned();
    assert!(err.contains("--since \"soon\""), "{err}");
}

#[test]
fn aws_configuration_mistakes_are_one_line_errors() {
    let creds = [
        ("AWS_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
    ];
    let mut down = creds.to_vec();
    down.push(("AWS_ENDPOINT_URL", "http://127.0.0.1:1"));
    let err = tradeflow_env(&["--stack", "s", "pipelines", "list"], &down, &[])
        .fails()
        .to_owned();
    assert!(
        err.contains("describing stack s on http://127.0.0.1:1 (is the endpoint up?)"),
        "{err}"
    );
    assert!(err.contains("Connection refused"), "{err}");

    let mut bad = creds.to_vec();
    bad.push(("AWS_ENDPOINT_URL", "localhost:5000"));
    let err = tradeflow_env(&["--stack", "s", "dlq", "list"], &bad, &[])
        .fails()
        .to_owned();
    assert!(
        err.contains("AWS_ENDPOINT_URL=\"localhost:5000\" is not an http:// or https:// URL"),
        "{err}"
    );

    let err = tradeflow_env(
        &["--stack", "s", "leases", "list"],
        &[
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:1"),
            ("HOME", "/nonexistent"),
            ("AWS_CONFIG_FILE", "/nonexistent"),
        ],
        &["AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE"],
    )
    .fails()
    .to_owned();
    assert!(err.contains("no AWS region"), "{err}");
}
