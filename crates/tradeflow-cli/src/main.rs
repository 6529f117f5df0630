//! `tradeflow`: the operator's tool. See `tradeflow --help` and the README's "Operating" section.

mod backtest;
mod backtest_emulator;
mod cli;
mod context;
mod dashboard;
mod dlq;
mod files;
mod output;
mod pipelines;
mod records;
mod signals;
mod tail;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command};

fn main() -> ExitCode {
    // A bug must still end in one line, not a backtrace dump.
    std::panic::set_hook(Box::new(|info| {
        let location = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".to_owned());
        // `tradeflow ... | head`: the reader left; that is not an error.
        if message.contains("Broken pipe") {
            std::process::exit(0);
        }
        eprintln!(
            "error: internal error{location}: {}",
            output::one_line(&message)
        );
    }));
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", output::one_line(&format!("{e:#}")));
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let global = cli.global;
    match cli.command {
        Command::Pipelines(cmd) => pipelines::run(&global, cmd).await,
        Command::Signals(cmd) => signals::run(&global, cmd).await,
        Command::Executions(cmd) => records::executions(&global, cmd).await,
        Command::Orders(cmd) => records::orders(&global, cmd).await,
        Command::Leases(cmd) => records::leases(&global, cmd).await,
        Command::Dlq(cmd) => dlq::run(&global, cmd).await,
        Command::Backtest(args) => backtest::run(&global, args).await,
        Command::Dashboard(cli::DashboardCmd::Render(args)) => {
            dashboard::render(&global, args).await
        }
    }
}
