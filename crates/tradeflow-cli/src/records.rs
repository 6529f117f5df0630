//! `tradeflow executions|orders|leases ...`: reads through the DynamoDB adapters' listings.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::Context;
use tradeflow_core::execution::{ExecutionRecord, ExecutionStatus};
use tradeflow_core::ports::{Clock, ExecutionStore, SystemClock};
use tradeflow_core::vocab::Ticker;

use crate::cli::{ExecutionFilter, ExecutionsCmd, FollowArgs, Global, LeasesCmd, OrdersCmd};
use crate::context::Ctx;
use crate::output::{Output, cut, short_error, time};

/// A filter checked against the values it is given.
struct Filter {
    pipeline: Option<String>,
    user: Option<String>,
    ticker: Option<Ticker>,
    status: Option<ExecutionStatus>,
}

impl Filter {
    fn new(f: &ExecutionFilter) -> anyhow::Result<Self> {
        let ticker = f
            .ticker
            .as_deref()
            .map(Ticker::parse)
            .transpose()
            .map_err(|e| anyhow::anyhow!("--ticker: {e}"))?;
        let status = f
            .status
            .as_deref()
            .map(|s| {
                ExecutionStatus::parse(&s.to_ascii_uppercase()).with_context(|| {
                    format!(
                        "--status {s:?} is not one of PENDING, RUNNING, COMPLETED, FAILED, SKIPPED"
                    )
                })
            })
            .transpose()?;
        Ok(Filter {
            pipeline: f.pipeline.clone(),
            user: f.user.clone(),
            ticker,
            status,
        })
    }

    fn keeps(&self, r: &ExecutionRecord) -> bool {
        self.pipeline.as_ref().is_none_or(|p| *p == r.pipeline_id)
            && self.user.as_ref().is_none_or(|u| *u == r.user_id)
            && self.ticker.as_ref().is_none_or(|t| *t == r.ticker)
            && self.status.is_none_or(|s| s == r.status)
    }
}

/// The matching execution records, newest first; undecodable items are reported on stderr.
async fn executions_matching(ctx: &Ctx, filter: &Filter) -> anyhow::Result<Vec<ExecutionRecord>> {
    let store = ctx.executions()?;
    let listed = store
        .list(filter.pipeline.as_deref())
        .await
        .map_err(|e| anyhow::anyhow!("{}", short_error(&e)))?;
    let mut records = Vec::new();
    for item in listed {
        match item {
            Ok(r) if filter.keeps(&r) => records.push(r),
            Ok(_) => {}
            Err(bad) => eprintln!(
                "warning: execution item {} does not decode: {}",
                bad.key, bad.reason
            ),
        }
    }
    records.sort_by(|a, b| {
        b.created_at
            .cmp(&a.created_at)
            .then_with(|| a.execution_id.cmp(&b.execution_id))
    });
    Ok(records)
}

fn execution_row(out: &Output, r: &ExecutionRecord) -> Vec<String> {
    vec![
        r.execution_id.clone(),
        r.pipeline_id.clone(),
        r.user_id.clone(),
        r.ticker.to_string(),
        out.status(r.status.as_str()),
        r.signal_context.signal_type.clone(),
        time(r.created_at),
        r.duration_secs()
            .map(|d| format!("{d} s"))
            .unwrap_or_default(),
        r.attempts.to_string(),
        cut(
            r.decision
                .as_deref()
                .or(r.error.as_deref())
                .unwrap_or_default(),
            40,
        ),
    ]
}

const EXECUTION_HEADERS: [&str; 10] = [
    "EXECUTION",
    "PIPELINE",
    "USER",
    "TICKER",
    "STATUS",
    "SIGNAL",
    "CREATED (UTC)",
    "TOOK",
    "TRIES",
    "DECISION / ERROR",
];

pub async fn executions(global: &Global, cmd: ExecutionsCmd) -> anyhow::Result<()> {
    if let ExecutionsCmd::List { filter, .. } | ExecutionsCmd::Tail { filter, .. } = &cmd {
        Filter::new(filter)?;
    }
    let ctx = Ctx::connect(global).await?;
    match cmd {
        ExecutionsCmd::List { filter, limit } => {
            let filter = Filter::new(&filter)?;
            let mut records = executions_matching(&ctx, &filter).await?;
            let total = records.len();
            if limit > 0 {
                records.truncate(limit);
            }
            if ctx.out.json {
                ctx.out.json(&serde_json::to_value(&records)?);
                return Ok(());
            }
            if records.is_empty() {
                println!("no executions match");
                return Ok(());
            }
            let rows: Vec<Vec<String>> =
                records.iter().map(|r| execution_row(&ctx.out, r)).collect();
            ctx.out.table(&EXECUTION_HEADERS, &rows);
            if total > records.len() {
                println!(
                    "({} of {total} shown, newest first; --limit 0 shows all)",
                    records.len()
                );
            }
            Ok(())
        }
        ExecutionsCmd::Show { execution_id } => {
            let store = ctx.executions()?;
            let record = store
                .get_execution(&execution_id)
                .await
                .map_err(|e| anyhow::anyhow!("{}", short_error(&e)))?
                .with_context(|| format!("no execution {execution_id} in {}", store.table()))?;
            show_execution(&ctx.out, &record)?;
            Ok(())
        }
        ExecutionsCmd::Tail { filter, follow } => {
            let filter = Filter::new(&filter)?;
            tail_executions(&ctx, &filter, &follow).await
        }
    }
}

fn show_execution(out: &Output, r: &ExecutionRecord) -> anyhow::Result<()> {
    if out.json {
        out.json(&serde_json::to_value(r)?);
        return Ok(());
    }
    let s = &r.signal_context;
    let opt = |v: Option<i64>| v.map(time).unwrap_or_else(|| "-".into());
    let fields = [
        ("execution", r.execution_id.clone()),
        ("pipeline", r.pipeline_id.clone()),
        ("user", r.user_id.clone()),
        ("ticker", r.ticker.to_string()),
        ("status", out.status(r.status.as_str())),
        ("decision", r.decision.clone().unwrap_or_else(|| "-".into())),
        ("error", r.error.clone().unwrap_or_else(|| "-".into())),
        ("order", r.order_id.clone().unwrap_or_else(|| "-".into())),
        ("attempts", r.attempts.to_string()),
        ("created", time(r.created_at)),
        ("started", opt(r.started_at)),
        ("completed", opt(r.completed_at)),
        (
            "signal",
            format!(
                "{} {} {} confidence {} from {} at {} ({})",
                s.signal_type,
                s.signal,
                r.ticker,
                s.confidence,
                s.source,
                time(s.timestamp),
                s.signal_id
            ),
        ),
    ];
    for (name, value) in fields {
        println!("{:<10} {value}", out.bold(name));
    }
    if !r.steps.is_empty() {
        println!();
        let rows: Vec<Vec<String>> = r
            .steps
            .iter()
            .map(|st| {
                let status = serde_json::to_value(st.status)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default();
                vec![
                    st.step.clone(),
                    out.status(&status),
                    format!("{:.1} ms", st.duration_ms),
                    cut(&st.summary, 90),
                ]
            })
            .collect();
        out.table(&["STEP", "STATUS", "TOOK", "SUMMARY"], &rows);
    }
    Ok(())
}

/// Sleeps between polls until the `--for` budget (if any) is spent; `false` when it is.
async fn next_poll(follow: &FollowArgs, started: Instant) -> bool {
    let interval = Duration::from_secs_f64(follow.interval.clamp(0.1, 3600.0));
    if let Some(limit) = follow.for_secs {
        let limit = Duration::from_secs_f64(limit.max(0.0));
        if started.elapsed() + interval > limit {
            let rest = limit.saturating_sub(started.elapsed());
            tokio::time::sleep(rest).await;
            return false;
        }
    }
    tokio::select! {
        _ = tokio::time::sleep(interval) => true,
        _ = tokio::signal::ctrl_c() => false,
    }
}

async fn tail_executions(ctx: &Ctx, filter: &Filter, follow: &FollowArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    // Executions that exist now are the baseline: only creations and status changes after it
    // are printed.
    let mut seen: HashMap<String, ExecutionStatus> = executions_matching(ctx, filter)
        .await?
        .into_iter()
        .map(|r| (r.execution_id, r.status))
        .collect();
    if !ctx.out.json {
        eprintln!(
            "following executions ({} existing); Ctrl-C to stop",
            seen.len()
        );
        ctx.out.table(&EXECUTION_HEADERS, &[]);
    }
    while next_poll(follow, started).await {
        let mut records = executions_matching(ctx, filter).await?;
        records.reverse(); // oldest first
        for r in records {
            if seen.get(&r.execution_id) == Some(&r.status) {
                continue;
            }
            seen.insert(r.execution_id.clone(), r.status);
            if ctx.out.json {
                ctx.out.json_line(&serde_json::to_value(&r)?);
            } else {
                println!("{}", execution_row(&ctx.out, &r).join("  "));
            }
        }
    }
    Ok(())
}

pub async fn orders(global: &Global, cmd: OrdersCmd) -> anyhow::Result<()> {
    let OrdersCmd::List {
        pipeline,
        user,
        ticker,
        limit,
    } = cmd;
    let ticker = ticker
        .as_deref()
        .map(Ticker::parse)
        .transpose()
        .map_err(|e| anyhow::anyhow!("--ticker: {e}"))?;
    let ctx = Ctx::connect(global).await?;
    let store = ctx.orders()?;
    let mut orders = Vec::new();
    for item in store
        .list_all()
        .await
        .map_err(|e| anyhow::anyhow!("{}", short_error(&e)))?
    {
        match item {
            Ok(o) => {
                if pipeline.as_ref().is_none_or(|p| *p == o.pipeline_id)
                    && user.as_ref().is_none_or(|u| *u == o.user_id)
                    && ticker.as_ref().is_none_or(|t| *t == o.ticker)
                {
                    orders.push(o);
                }
            }
            Err(bad) => eprintln!(
                "warning: order item {} does not decode: {}",
                bad.key, bad.reason
            ),
        }
    }
    orders.sort_by(|a, b| {
        b.created_at
            .cmp(&a.created_at)
            .then_with(|| a.order_id.cmp(&b.order_id))
    });
    let total = orders.len();
    if limit > 0 {
        orders.truncate(limit);
    }
    if ctx.out.json {
        ctx.out.json(&serde_json::to_value(&orders)?);
        return Ok(());
    }
    if orders.is_empty() {
        println!("no orders match");
        return Ok(());
    }
    let rows: Vec<Vec<String>> = orders
        .iter()
        .map(|o| {
            vec![
                o.order_id.clone(),
                o.pipeline_id.clone(),
                o.user_id.clone(),
                o.ticker.to_string(),
                serde_json::to_value(o.side)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default(),
                o.quantity.to_string(),
                format!("{:.2}", o.entry_price),
                format!("{:.2}", o.stop_price),
                format!("{:.2}", o.target_price),
                time(o.created_at),
                o.execution_id.clone(),
            ]
        })
        .collect();
    ctx.out.table(
        &[
            "ORDER",
            "PIPELINE",
            "USER",
            "TICKER",
            "SIDE",
            "QTY",
            "ENTRY",
            "STOP",
            "TARGET",
            "CREATED (UTC)",
            "EXECUTION",
        ],
        &rows,
    );
    if total > orders.len() {
        println!(
            "({} of {total} shown, newest first; --limit 0 shows all)",
            orders.len()
        );
    }
    Ok(())
}

pub async fn leases(global: &Global, cmd: LeasesCmd) -> anyhow::Result<()> {
    let LeasesCmd::List { held } = cmd;
    let ctx = Ctx::connect(global).await?;
    let store = ctx.leases()?;
    let now = SystemClock.now();
    let mut leases = Vec::new();
    for item in store
        .list_all()
        .await
        .map_err(|e| anyhow::anyhow!("{}", short_error(&e)))?
    {
        match item {
            Ok(l) if !held || l.lease.expires_at >= now => leases.push(l),
            Ok(_) => {}
            Err(bad) => eprintln!(
                "warning: lease item {} does not decode: {}",
                bad.key, bad.reason
            ),
        }
    }
    leases.sort_by(|a, b| {
        (&a.lease.pipeline_id, &a.lease.ticker).cmp(&(&b.lease.pipeline_id, &b.lease.ticker))
    });
    if ctx.out.json {
        let items: Vec<serde_json::Value> = leases
            .iter()
            .map(|l| {
                serde_json::json!({
                    "pipeline_id": l.lease.pipeline_id,
                    "ticker": l.lease.ticker,
                    "execution_id": l.lease.execution_id,
                    "expires_at": l.lease.expires_at,
                    "held": l.lease.expires_at >= now,
                    "started": l.started,
                })
            })
            .collect();
        ctx.out.json(&serde_json::Value::Array(items));
        return Ok(());
    }
    if leases.is_empty() {
        println!("no leases{}", if held { " held" } else { "" });
        return Ok(());
    }
    let rows: Vec<Vec<String>> = leases
        .iter()
        .map(|l| {
            let live = l.lease.expires_at >= now;
            vec![
                l.lease.pipeline_id.clone(),
                l.lease.ticker.to_string(),
                ctx.out.status(if live { "held" } else { "expired" }),
                if l.started { "started" } else { "claimed" }.to_owned(),
                l.lease.execution_id.clone(),
                time(l.lease.expires_at),
                if live {
                    format!("{} s", l.lease.expires_at - now)
                } else {
                    "-".into()
                },
            ]
        })
        .collect();
    ctx.out.table(
        &[
            "PIPELINE",
            "TICKER",
            "STATE",
            "RUN",
            "EXECUTION",
            "EXPIRES (UTC)",
            "LEFT",
        ],
        &rows,
    );
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_filter_is_refused_before_connecting() {
        let f = ExecutionFilter {
            status: Some("DONE".into()),
            ..ExecutionFilter::default()
        };
        assert!(Filter::new(&f).is_err());
        let f = ExecutionFilter {
            status: Some("completed".into()),
            ticker: Some("aapl".into()),
            ..ExecutionFilter::default()
        };
        let f = Filter::new(&f).unwrap();
        assert_eq!(f.status, Some(ExecutionStatus::Completed));
        assert_eq!(f.ticker.unwrap().as_str(), "AAPL");
    }
}
