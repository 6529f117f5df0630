use crate::cli::{Global, RenderArgs};

pub async fn render(_global: &Global, _args: RenderArgs) -> anyhow::Result<()> {
    anyhow::bail!("dashboard render: not implemented yet")
}
