//! `tradeflow dlq list|redrive`.
//!
//! Why a message was dead-lettered is not stored with it: the functions report a failed record
//! to Lambda (a partial batch response) and log the reason; the queue's redrive policy moves the
//! message after `maxReceiveCount` deliveries, keeping only its body and attributes. So the
//! reason shown here is re-computed from the body with the decoder the function uses
//! ([`Signal::parse_at`] for the signals DLQ, [`ExecutionRequest::parse`] for the executions
//! DLQ). A body that decodes failed for another reason (a store or queue error on every
//! delivery, a run that could not be recorded): for an execution request, its execution record
//! (if any) says how far it got; the function's logs say the rest.
//!
//! SQS has no non-destructive read: listing receives the messages with a short visibility
//! timeout and makes them visible again at once afterwards (a DLQ has no redrive policy of its
//! own, so receiving does not move them anywhere).

use std::collections::HashSet;

use anyhow::{Context, bail};
use aws_sdk_sqs::types::{
    ChangeMessageVisibilityBatchRequestEntry, Message, MessageSystemAttributeName,
};
use tradeflow_core::execution::ExecutionRequest;
use tradeflow_core::ports::{Clock, ExecutionStore, SystemClock};
use tradeflow_core::signal::Signal;

use crate::cli::{DlqCmd, DlqName, Global};
use crate::context::Ctx;
use crate::output::{cut, one_line, short_error, time};

/// How long a listed message stays invisible if this process dies before releasing it.
const PEEK_VISIBILITY_SECS: i32 = 30;

impl DlqName {
    fn label(self) -> &'static str {
        match self {
            DlqName::Signals => "signals",
            DlqName::Executions => "executions",
        }
    }

    fn dlq_output(self) -> &'static str {
        match self {
            DlqName::Signals => "SignalsDlqName",
            DlqName::Executions => "ExecutionsDlqName",
        }
    }

    fn source_output(self) -> &'static str {
        match self {
            DlqName::Signals => "SignalsQueueName",
            DlqName::Executions => "ExecutionsQueueName",
        }
    }
}

/// One dead letter as shown.
#[derive(Debug, serde::Serialize)]
struct DeadLetter {
    queue: &'static str,
    message_id: String,
    /// Deliveries before this listing (SQS's ApproximateReceiveCount less this listing's own).
    receive_count: u64,
    /// When it was first sent to its source queue, Unix seconds.
    sent_at: Option<i64>,
    /// `rejected` (the body does not decode), or `valid` (it failed for another reason).
    verdict: &'static str,
    reason: String,
    body: String,
    #[serde(skip)]
    receipt_handle: String,
}

/// Every message of the queue at `url`, received with a short visibility timeout.
async fn receive_all(ctx: &Ctx, url: &str) -> anyhow::Result<Vec<Message>> {
    let mut messages: Vec<Message> = Vec::new();
    let mut ids = HashSet::new();
    loop {
        let resp = ctx
            .sqs
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .visibility_timeout(PEEK_VISIBILITY_SECS)
            // A second of long polling: an empty answer then means an empty queue (short polls
            // sample a subset of SQS's servers).
            .wait_time_seconds(1)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("{}", short_error(&e)))
            .with_context(|| format!("receiving from {url}"))?;
        let page = resp.messages.unwrap_or_default();
        if page.is_empty() {
            return Ok(messages);
        }
        for m in page {
            if ids.insert(m.message_id().unwrap_or_default().to_owned()) {
                messages.push(m);
            }
        }
    }
}

/// Makes received messages visible again at once.
async fn release(ctx: &Ctx, url: &str, letters: &[&DeadLetter]) -> anyhow::Result<()> {
    for chunk in letters.chunks(10) {
        let entries = chunk
            .iter()
            .enumerate()
            .map(|(i, l)| {
                ChangeMessageVisibilityBatchRequestEntry::builder()
                    .id(format!("m{i}"))
                    .receipt_handle(&l.receipt_handle)
                    .visibility_timeout(0)
                    .build()
            })
            .collect::<Result<Vec<_>, _>>()?;
        ctx.sqs
            .change_message_visibility_batch()
            .queue_url(url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("{}", short_error(&e)))
            .context("making the listed messages visible again")?;
    }
    Ok(())
}

async fn dead_letters(ctx: &Ctx, queue: DlqName, url: &str) -> anyhow::Result<Vec<DeadLetter>> {
    let now = SystemClock.now();
    let executions = ctx.executions()?;
    let mut out = Vec::new();
    for m in receive_all(ctx, url).await? {
        let attr = |name: MessageSystemAttributeName| {
            m.attributes()
                .and_then(|a| a.get(&name))
                .and_then(|v| v.parse::<i64>().ok())
        };
        let body = m.body().unwrap_or_default().to_owned();
        let (verdict, reason) = match queue {
            DlqName::Signals => match Signal::parse_at(&body, now) {
                Err(e) => ("rejected", format!("{e} [{}]", e.reason_label())),
                Ok(_) => (
                    "valid",
                    "the body is a valid signal: it failed on the dispatcher's pipeline store, \
                     lease store or executions queue on every delivery (see the dispatcher's logs)"
                        .to_owned(),
                ),
            },
            DlqName::Executions => match ExecutionRequest::parse(&body) {
                Err(e) => ("rejected", e.to_string()),
                Ok(req) => {
                    let record = executions
                        .get_execution(&req.execution_id)
                        .await
                        .map_err(|e| anyhow::anyhow!("{}", short_error(&e)))?;
                    let state = match record {
                        Some(r) => format!(
                            "execution {} is {} after {} attempt(s){}",
                            r.execution_id,
                            r.status.as_str(),
                            r.attempts,
                            r.error.map(|e| format!(": {e}")).unwrap_or_default()
                        ),
                        None => format!(
                            "no record of execution {} (no delivery got to begin its run)",
                            req.execution_id
                        ),
                    };
                    (
                        "valid",
                        format!("valid request; {state} (see the executor's logs)"),
                    )
                }
            },
        };
        out.push(DeadLetter {
            queue: queue.label(),
            message_id: m.message_id().unwrap_or_default().to_owned(),
            receive_count: attr(MessageSystemAttributeName::ApproximateReceiveCount)
                .and_then(|n| u64::try_from(n).ok())
                .unwrap_or(1)
                .saturating_sub(1),
            sent_at: attr(MessageSystemAttributeName::SentTimestamp).map(|ms| ms / 1000),
            verdict,
            reason: one_line(&reason),
            body,
            receipt_handle: m.receipt_handle().unwrap_or_default().to_owned(),
        });
    }
    out.sort_by_key(|l| (l.sent_at, l.message_id.clone()));
    Ok(out)
}

pub async fn run(global: &Global, cmd: DlqCmd) -> anyhow::Result<()> {
    let ctx = Ctx::connect(global).await?;
    match cmd {
        DlqCmd::List { queue } => {
            let queues = match queue {
                Some(q) => vec![q],
                None => vec![DlqName::Signals, DlqName::Executions],
            };
            let mut all = Vec::new();
            for q in queues {
                let url = ctx.queue_url(q.dlq_output()).await?;
                let letters = dead_letters(&ctx, q, &url).await?;
                release(&ctx, &url, &letters.iter().collect::<Vec<_>>()).await?;
                if !ctx.out.json {
                    print_letters(&ctx, q, &letters)?;
                }
                all.extend(letters);
            }
            if ctx.out.json {
                ctx.out.json(&serde_json::to_value(&all)?);
            }
            Ok(())
        }
        DlqCmd::Redrive {
            queue,
            ids,
            all,
            dry_run,
        } => redrive(&ctx, global, queue, &ids, all, dry_run).await,
    }
}

fn print_letters(ctx: &Ctx, queue: DlqName, letters: &[DeadLetter]) -> anyhow::Result<()> {
    let name = ctx.output(queue.dlq_output())?;
    if letters.is_empty() {
        println!("{} DLQ ({name}): empty", queue.label());
        return Ok(());
    }
    println!(
        "{} DLQ ({name}): {} message(s)",
        queue.label(),
        letters.len()
    );
    let rows: Vec<Vec<String>> = letters
        .iter()
        .map(|l| {
            vec![
                l.message_id.clone(),
                l.receive_count.to_string(),
                l.sent_at.map(time).unwrap_or_default(),
                ctx.out.status(l.verdict),
                cut(&l.reason, 110),
            ]
        })
        .collect();
    ctx.out.table(
        &["MESSAGE", "RECEIVES", "SENT (UTC)", "BODY", "REASON"],
        &rows,
    );
    Ok(())
}

async fn redrive(
    ctx: &Ctx,
    global: &Global,
    queue: DlqName,
    ids: &[String],
    all: bool,
    dry_run: bool,
) -> anyhow::Result<()> {
    let dlq_url = ctx.queue_url(queue.dlq_output()).await?;
    let source_url = ctx.queue_url(queue.source_output()).await?;
    let letters = dead_letters(ctx, queue, &dlq_url).await?;
    let wanted: HashSet<&str> = ids.iter().map(String::as_str).collect();
    let (chosen, rest): (Vec<&DeadLetter>, Vec<&DeadLetter>) = letters
        .iter()
        .partition(|l| all || wanted.contains(l.message_id.as_str()));
    // Everything not moved (all of it on a dry run or a refusal) becomes visible again.
    let outcome = move_letters(
        ctx,
        global,
        queue,
        &source_url,
        &dlq_url,
        &chosen,
        &wanted,
        all,
        dry_run,
    )
    .await;
    let keep: Vec<&DeadLetter> = match &outcome {
        Ok(_) if dry_run => letters.iter().collect(),
        Ok(moved) => rest
            .into_iter()
            .chain(
                chosen
                    .iter()
                    .copied()
                    .filter(|l| !moved.contains(&l.message_id)),
            )
            .collect(),
        Err(_) => letters.iter().collect(),
    };
    release(ctx, &dlq_url, &keep).await?;
    let moved = outcome?;
    if ctx.out.json {
        ctx.out.json(&serde_json::json!({
            "queue": queue.label(),
            "dry_run": dry_run,
            "moved": if dry_run { Vec::new() } else { moved.clone() },
            "would_move": if dry_run { moved.clone() } else { Vec::new() },
        }));
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn move_letters(
    ctx: &Ctx,
    global: &Global,
    queue: DlqName,
    source_url: &str,
    dlq_url: &str,
    chosen: &[&DeadLetter],
    wanted: &HashSet<&str>,
    all: bool,
    dry_run: bool,
) -> anyhow::Result<Vec<String>> {
    let found: HashSet<&str> = chosen.iter().map(|l| l.message_id.as_str()).collect();
    let missing: Vec<&str> = wanted
        .iter()
        .copied()
        .filter(|id| !found.contains(id))
        .collect();
    if !missing.is_empty() {
        bail!(
            "no message {} in the {} DLQ (see `tradeflow dlq list --queue {}`)",
            missing.join(", "),
            queue.label(),
            queue.label()
        );
    }
    let source = ctx.output(queue.source_output())?;
    if chosen.is_empty() {
        if !ctx.out.json {
            println!("the {} DLQ is empty: nothing to redrive", queue.label());
        }
        return Ok(Vec::new());
    }
    if dry_run {
        if !ctx.out.json {
            for l in chosen {
                println!("would move {} ({}) to {source}", l.message_id, l.verdict);
            }
            println!(
                "dry run: {} message(s) would move; nothing moved",
                chosen.len()
            );
        }
        return Ok(chosen.iter().map(|l| l.message_id.clone()).collect());
    }
    if all {
        crate::output::confirm(
            global.yes,
            &format!(
                "move all {} message(s) of the {} DLQ back to {source}",
                chosen.len(),
                queue.label()
            ),
        )?;
    }
    let mut moved = Vec::new();
    for l in chosen {
        ctx.sqs
            .send_message()
            .queue_url(source_url)
            .message_body(&l.body)
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("{}", short_error(&e)))
            .with_context(|| {
                format!(
                    "sending {} to {source} ({} moved before it)",
                    l.message_id,
                    moved.len()
                )
            })?;
        ctx.sqs
            .delete_message()
            .queue_url(dlq_url)
            .receipt_handle(&l.receipt_handle)
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("{}", short_error(&e)))
            .with_context(|| {
                format!(
                    "deleting {} from the DLQ after it was sent to {source}: it is in both now",
                    l.message_id
                )
            })?;
        if !ctx.out.json {
            println!("moved {} to {source}", l.message_id);
        }
        moved.push(l.message_id.clone());
    }
    Ok(moved)
}
