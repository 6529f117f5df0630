//! `tradeflow pipelines ...`: writes through the pipelines adapter (`put_pipeline` validates and
//! stamps `updated_at`, so the dispatchers' incremental refresh sees the change).

use anyhow::{Context, bail};
use tradeflow_core::pipeline::Pipeline;
use tradeflow_core::ports::PipelineStore;

use crate::cli::{Global, PipelineFileArgs, PipelinesCmd};
use crate::context::Ctx;
use crate::files::read_pipelines;
use crate::output::{Output, cut, short_error};

pub async fn run(global: &Global, cmd: PipelinesCmd) -> anyhow::Result<()> {
    // A file is checked before anything is connected: a bad file fails the same with no stack.
    let file_args = match &cmd {
        PipelinesCmd::Create(a) | PipelinesCmd::Update(a) => Some(a),
        _ => None,
    };
    let from_file = file_args.map(|a| read_pipelines(&a.file)).transpose()?;
    if let (Some(args), Some(pipelines)) = (file_args, &from_file)
        && args.dry_run
    {
        let out = Output::new(global.json);
        if out.json {
            out.json(&serde_json::json!({ "valid": pipelines }));
        } else {
            let ids: Vec<&str> = pipelines.iter().map(|p| p.pipeline_id.as_str()).collect();
            println!(
                "{}: {} valid pipeline(s): {} (dry run: nothing written)",
                args.file.display(),
                ids.len(),
                ids.join(", ")
            );
        }
        return Ok(());
    }
    let ctx = Ctx::connect(global).await?;
    let store = ctx.pipelines()?;
    match cmd {
        PipelinesCmd::Create(args) => {
            let pipelines = from_file.unwrap_or_default();
            write_all(&ctx, &store, &args, &pipelines, Mode::Create).await
        }
        PipelinesCmd::Update(args) => {
            let pipelines = from_file.unwrap_or_default();
            write_all(&ctx, &store, &args, &pipelines, Mode::Update).await
        }
        PipelinesCmd::List { user } => list(&ctx, &store, user.as_deref()).await,
        PipelinesCmd::Show { pipeline_id } => {
            let p = get(&store, &pipeline_id).await?;
            if ctx.out.json {
                ctx.out.json(&serde_json::to_value(&p)?);
            } else {
                print!("{}", serde_norway::to_string(&p)?);
            }
            Ok(())
        }
        PipelinesCmd::Enable { pipeline_id } => set_active(&ctx, &store, &pipeline_id, true).await,
        PipelinesCmd::Disable { pipeline_id } => {
            set_active(&ctx, &store, &pipeline_id, false).await
        }
        PipelinesCmd::Delete { pipeline_id } => {
            // Unknown ids fail before the question.
            if store
                .get_pipeline(&pipeline_id)
                .await
                .map_err(|e| anyhow::anyhow!("{}", short_error(&e)))?
                .is_none()
            {
                bail!("no pipeline {pipeline_id} in {}", store.table());
            }
            crate::output::confirm(global.yes, &format!("delete pipeline {pipeline_id}"))?;
            let deleted = store
                .delete_pipeline(&pipeline_id)
                .await
                .map_err(|e| anyhow::anyhow!("{}", short_error(&e)))?;
            if !deleted {
                bail!("no pipeline {pipeline_id} in {}", store.table());
            }
            report(&ctx, "deleted", &[pipeline_id]);
            Ok(())
        }
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Create,
    Update,
}

async fn write_all(
    ctx: &Ctx,
    store: &tradeflow_aws::DynamoPipelineStore,
    args: &PipelineFileArgs,
    pipelines: &[Pipeline],
    mode: Mode,
) -> anyhow::Result<()> {
    // Every existence check first: nothing is written when one pipeline is in the wrong state.
    for p in pipelines {
        let exists = store
            .get_pipeline(&p.pipeline_id)
            .await
            .map(|p| p.is_some())
            .or_else(|e| match e {
                // A stored item that no longer decodes exists and may be replaced.
                tradeflow_core::error::StoreError::Corrupt { .. } => Ok(true),
                e => Err(anyhow::anyhow!("{}", short_error(&e))),
            })?;
        match (mode, exists) {
            (Mode::Create, true) => bail!(
                "pipeline {} already exists (use `tradeflow pipelines update {}`)",
                p.pipeline_id,
                args.file.display()
            ),
            (Mode::Update, false) => bail!(
                "no pipeline {} to update (use `tradeflow pipelines create {}`)",
                p.pipeline_id,
                args.file.display()
            ),
            _ => {}
        }
    }
    for p in pipelines {
        store
            .put_pipeline(p)
            .await
            .map_err(|e| anyhow::anyhow!("{}", short_error(&e)))
            .with_context(|| format!("writing pipeline {}", p.pipeline_id))?;
    }
    let ids: Vec<String> = pipelines.iter().map(|p| p.pipeline_id.clone()).collect();
    report(
        ctx,
        if mode == Mode::Create {
            "created"
        } else {
            "updated"
        },
        &ids,
    );
    Ok(())
}

fn report(ctx: &Ctx, verb: &str, ids: &[String]) {
    if ctx.out.json {
        ctx.out.json(&serde_json::json!({ verb: ids }));
    } else {
        for id in ids {
            println!("{verb} pipeline {id}");
        }
    }
}

async fn get(store: &tradeflow_aws::DynamoPipelineStore, id: &str) -> anyhow::Result<Pipeline> {
    store
        .get_pipeline(id)
        .await
        .map_err(|e| anyhow::anyhow!("{}", short_error(&e)))?
        .with_context(|| format!("no pipeline {id} in {}", store.table()))
}

async fn set_active(
    ctx: &Ctx,
    store: &tradeflow_aws::DynamoPipelineStore,
    id: &str,
    active: bool,
) -> anyhow::Result<()> {
    let mut p = get(store, id).await?;
    let verb = if active { "enabled" } else { "disabled" };
    if p.is_active != active {
        p.is_active = active;
        store
            .put_pipeline(&p)
            .await
            .map_err(|e| anyhow::anyhow!("{}", short_error(&e)))?;
    }
    report(ctx, verb, &[id.to_owned()]);
    Ok(())
}

async fn list(
    ctx: &Ctx,
    store: &tradeflow_aws::DynamoPipelineStore,
    user: Option<&str>,
) -> anyhow::Result<()> {
    let mut listed = store
        .list_all()
        .await
        .map_err(|e| anyhow::anyhow!("{}", short_error(&e)))?;
    listed.retain(|p| match (p, user) {
        (Ok(p), Some(u)) => p.user_id == u,
        (Err(_), Some(_)) => false,
        (_, None) => true,
    });
    listed.sort_by(|a, b| key(a).cmp(key(b)));
    if ctx.out.json {
        let items: Vec<serde_json::Value> = listed
            .iter()
            .map(|p| match p {
                Ok(p) => serde_json::to_value(p).unwrap_or_default(),
                Err(bad) => serde_json::json!({
                    "pipeline_id": bad.key, "invalid": bad.reason
                }),
            })
            .collect();
        ctx.out.json(&serde_json::Value::Array(items));
        return Ok(());
    }
    if listed.is_empty() {
        println!("no pipelines in {}", store.table());
        return Ok(());
    }
    let rows: Vec<Vec<String>> = listed
        .iter()
        .map(|p| match p {
            Ok(p) => vec![
                p.pipeline_id.clone(),
                p.user_id.clone(),
                ctx.out
                    .status(if p.is_active { "active" } else { "inactive" }),
                serde_json::to_value(p.trigger_mode)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default(),
                cut(
                    &p.tickers
                        .iter()
                        .map(|t| t.as_str())
                        .collect::<Vec<_>>()
                        .join(","),
                    30,
                ),
                if p.signal_subscriptions.is_empty() {
                    "(all)".to_owned()
                } else {
                    cut(
                        &p.signal_subscriptions
                            .iter()
                            .map(|s| s.signal_type.as_str())
                            .collect::<Vec<_>>()
                            .join(","),
                        40,
                    )
                },
                cut(&p.name, 40),
            ],
            Err(bad) => vec![
                bad.key.clone(),
                String::new(),
                ctx.out.status("invalid"),
                String::new(),
                String::new(),
                String::new(),
                cut(&bad.reason, 80),
            ],
        })
        .collect();
    ctx.out.table(
        &[
            "PIPELINE", "USER", "STATE", "TRIGGER", "TICKERS", "SIGNALS", "NAME",
        ],
        &rows,
    );
    Ok(())
}

fn key(p: &tradeflow_aws::Listed<Pipeline>) -> &str {
    match p {
        Ok(p) => &p.pipeline_id,
        Err(bad) => &bad.key,
    }
}
