use crate::cli::{BacktestArgs, Global};

pub async fn run(_global: &Global, _args: BacktestArgs) -> anyhow::Result<()> {
    anyhow::bail!("backtest: not implemented yet")
}
