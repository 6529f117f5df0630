//! What the binary does before it talks to AWS: help, argument and file validation.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{temp_file, tradeflow};

/// Every command and subcommand, as typed.
const COMMANDS: &[&[&str]] = &[
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
