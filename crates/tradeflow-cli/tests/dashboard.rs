//! `tradeflow dashboard render` after a demo run, opened in a real headless Chromium: the page
//! loads without script errors and every panel has data (except the entries of
//! infra/observability/live-allowlist.txt, which may be empty on a healthy run).
//!
//! Needs the emulator, the metrics stack (PROMETHEUS_URL, TRADEFLOW_OTLP_ENDPOINT: local/test.sh
//! sets both) and Chromium (`chromium` on PATH or CHROMIUM=path; local/test.sh installs Debian's
//! package). When local/test.sh could not install Chromium (no apt), it sets
//! TRADEFLOW_BROWSER_SKIP to why, and this test checks the page's markers without a browser and
//! says so.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;
use std::process::Command;
use std::time::Duration;

use common::{Stack, temp_file};
use tradeflow_local::chain::{Chain, ChainConfig, Functions};
use tradeflow_telemetry::{Telemetry, TelemetryConfig};

fn env(name: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| {
            panic!("this test needs {name} (the metrics stack: local/metrics.sh start; local/test.sh sets it)")
        })
}

/// The panels of the page as (data-panel, data-status).
fn panels(html: &str) -> Vec<(String, String)> {
    html.split("<section ")
        .skip(1)
        .map(|s| {
            let attr = |name: &str| {
                let key = format!("{name}=\"");
                let start = s.find(&key).map(|i| i + key.len()).unwrap_or(0);
                s[start..].split('"').next().unwrap_or_default().to_owned()
            };
            (attr("data-panel"), attr("data-status"))
        })
        .collect()
}

/// Panel ids (`uid#id`) allowed to have no data on a healthy run.
fn allowlisted() -> Vec<String> {
    include_str!("../../../infra/observability/live-allowlist.txt")
        .lines()
        .filter(|l| !l.trim_start().starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| l.split_whitespace().next())
        .filter_map(|id| id.split('/').next())
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
#[ignore = "needs the AWS emulator, the metrics stack and Chromium; local/test.sh runs it"]
async fn the_rendered_dashboard_loads_in_chromium_with_data_in_every_panel() {
    let prometheus = env("PROMETHEUS_URL");
    let otlp = env("TRADEFLOW_OTLP_ENDPOINT");
    let stack = Stack::deploy().await;
    stack
        .run(&[
            "pipelines",
            "create",
            concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../local/seed/pipelines.json"
            ),
        ])
        .ok();

    // A demo run (what `tradeflow-local demo` does), its functions exporting metrics.
    let instance = format!("cli-dashboard-{}", stack.stage);
    let telemetry = |service: &str| {
        let vars: HashMap<&str, String> = HashMap::from([
            ("OTEL_EXPORTER_OTLP_ENDPOINT", otlp.clone()),
            ("AWS_LAMBDA_LOG_STREAM_NAME", instance.clone()),
            ("AWS_REGION", "us-east-1".to_owned()),
            ("TELEMETRY_FLUSH_TIMEOUT_MS", "2000".to_owned()),
        ]);
        Telemetry::from_config(TelemetryConfig::from_lookup(service, |k| {
            vars.get(k).cloned()
        }))
    };
    let extra: HashMap<String, String> = [
        ("GENERATOR_BACKFILL_BARS", "24"),
        ("GENERATOR_TICKERS", "AAPL,MSFT,NVDA,TSLA,SPY"),
        ("GENERATOR_TIMEFRAMES", "5,60"),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect();
    let functions = Functions::in_process_with(&stack.sdk, &stack.outputs, &extra, &telemetry)
        .await
        .unwrap();
    let chain = Chain::start(
        &stack.sdk,
        stack.outputs.clone(),
        functions,
        ChainConfig::default(),
    )
    .await
    .unwrap();
    // Two waves more than one aggregation interval apart (vmagent sums the environments into
    // one series every 15 s, local/metrics/vmagent-aggregation.yml): a series' first aggregated
    // sample has no predecessor, so only the second wave's increase is visible to rate().
    for n in 0..4 {
        if n == 2 {
            assert!(chain.wait_idle(Duration::from_secs(90)).await.unwrap());
            tokio::time::sleep(Duration::from_secs(20)).await;
        }
        chain.fire_generator(1_767_623_400 + n * 300).await.unwrap();
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(chain.wait_idle(Duration::from_secs(90)).await.unwrap());
    chain.stop().await;
    let executions = stack
        .run(&["--json", "executions", "list", "--limit", "0"])
        .json();
    assert!(
        !executions.as_array().unwrap().is_empty(),
        "the demo ran executions"
    );
    // Rate panels need two samples in their window; vmagent writes the aggregated samples every
    // 15 s, then forwards within a second or two.
    tokio::time::sleep(Duration::from_secs(20)).await;

    let out = temp_file("dashboard.html", "");
    let rendered = stack.run(&[
        "dashboard",
        "render",
        "--prometheus",
        &prometheus,
        "--since",
        "10m",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(
        rendered.ok().contains("panels with data"),
        "{}",
        rendered.stdout
    );
    let html = std::fs::read_to_string(&out).unwrap();
    assert!(
        !html.contains("<script src") && !html.contains("<link "),
        "self-contained"
    );

    let skip = std::env::var("TRADEFLOW_BROWSER_SKIP")
        .ok()
        .filter(|s| !s.is_empty());
    let (dom, console) = match &skip {
        Some(reason) => {
            eprintln!(
                "SKIPPED the browser part (TRADEFLOW_BROWSER_SKIP: {reason}); checking the page's markers only"
            );
            (html.clone(), String::new())
        }
        None => {
            let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "chromium".into());
            let profile = temp_file("fresh-profile", "");
            let output = Command::new(&chromium)
                .args([
                    "--headless",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-quic",
                    "--no-first-run",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    "--enable-logging=stderr",
                    "--v=0",
                    "--virtual-time-budget=5000",
                ])
                .arg(format!(
                    "--user-data-dir={}",
                    profile.parent().unwrap().display()
                ))
                .arg("--dump-dom")
                .arg(format!("file://{}", out.display()))
                .output()
                .unwrap_or_else(|e| {
                    panic!("running {chromium} (install Debian's chromium, or set CHROMIUM): {e}")
                });
            assert!(
                output.status.success(),
                "chromium failed: {}",
                String::from_utf8_lossy(&output.stderr)
            );
            (
                String::from_utf8_lossy(&output.stdout).into_owned(),
                String::from_utf8_lossy(&output.stderr).into_owned(),
            )
        }
    };

    let panels = panels(&dom);
    assert!(panels.len() >= 50, "{} panels", panels.len());
    if skip.is_none() {
        // The page's script ran to its end (a script error stops it before it marks the body),
        // and Chromium logged no console error.
        assert!(
            dom.contains(&format!("data-rendered=\"{}\"", panels.len())),
            "the page's script did not finish"
        );
        for line in console.lines() {
            assert!(
                !(line.contains("CONSOLE") || line.contains("Uncaught")),
                "console error: {line}"
            );
        }
    }
    let allowed = allowlisted();
    let missing: Vec<&(String, String)> = panels
        .iter()
        .filter(|(id, status)| status != "ok" && !allowed.contains(id))
        .collect();
    assert!(missing.is_empty(), "panels without data: {missing:?}");
    stack.delete().await;
}
