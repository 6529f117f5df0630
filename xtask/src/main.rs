//! Project checks in Rust, run as `cargo xtask <command>` (alias in .cargo/config.toml).
//!
//! - `check-observability [--live PROMETHEUS_URL] [--allowlist FILE] [--verbose]`: the dashboards
//!   and rules of infra/observability against the metric catalogue of `tradeflow-telemetry`,
//!   promtool and, with `--live`, a running Prometheus (see `observability.rs`).
//! - `bench-init [--runs N] [--cold-runs N] [--tls-runs N] [--no-build] [--drop-caches]
//!   [--write]`: cold start and peak RSS of the functions' release builds beside a minimal
//!   `lambda_runtime` binary, on a local Runtime API (see `bench_init.rs`); `--write` updates
//!   BENCHMARKS.md; `--compare DIR` also measures the functions built in DIR (another commit's
//!   `target/release`), interleaved in the same run.

mod bench_init;
mod observability;
mod promql;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

const USAGE: &str = "usage: cargo xtask check-observability [--live PROMETHEUS_URL] [--allowlist FILE] [--verbose]
       cargo xtask bench-init [--runs N] [--cold-runs N] [--tls-runs N] [--no-build] [--drop-caches] [--write] [--compare DIR]";

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let code = match args.first().map(String::as_str) {
        Some("check-observability") => match observability::main(&repo_root(), &args[1..]) {
            Ok(code) => code,
            Err(e) => {
                eprintln!("check-observability: {e:#}");
                2
            }
        },
        Some("bench-init") => match bench_init::main(&repo_root(), &args[1..]) {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("bench-init: {e:#}");
                2
            }
        },
        Some("-h" | "--help") => {
            println!("{USAGE}");
            0
        }
        _ => {
            eprintln!("{USAGE}");
            2
        }
    };
    ExitCode::from(u8::try_from(code).unwrap_or(2))
}
