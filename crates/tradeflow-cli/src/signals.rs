//! `tradeflow signals send|tail`.

use anyhow::{Context, bail};
use tradeflow_core::ports::{Clock, OutgoingMessage, QueueSender, SystemClock};
use tradeflow_core::signal::Signal;

use crate::cli::{Global, SendArgs, SignalsCmd};
use crate::context::Ctx;
use crate::files::read_signal_bodies;
use crate::output::{Output, short_error};

pub async fn run(global: &Global, cmd: SignalsCmd) -> anyhow::Result<()> {
    match cmd {
        SignalsCmd::Send(args) => send(global, &args).await,
        SignalsCmd::Tail(args) => {
            let ctx = Ctx::connect(global).await?;
            if args.cleanup {
                crate::tail::cleanup(&ctx).await
            } else {
                crate::tail::tail(&ctx, &args).await
            }
        }
    }
}

/// The bodies to send: the file's signals, or one built from the flags.
fn bodies(args: &SendArgs, now: i64) -> anyhow::Result<Vec<String>> {
    if let Some(file) = &args.file {
        return read_signal_bodies(file);
    }
    let Some(signal_type) = &args.signal_type else {
        bail!("--type is required (or --file)");
    };
    let id = args
        .id
        .clone()
        .unwrap_or_else(|| format!("cli-{}-{:x}", SystemClock.now_ms(), std::process::id()));
    let tickers: Vec<serde_json::Value> = args
        .ticker
        .iter()
        .map(|t| {
            serde_json::json!({
                "ticker": t, "signal": args.direction.to_ascii_uppercase(),
                "confidence": args.confidence,
            })
        })
        .collect();
    let mut signal = serde_json::json!({
        "signal_id": id,
        "signal_type": signal_type,
        "source": args.source,
        "timestamp": args.timestamp.unwrap_or(now),
        "tickers": tickers,
    });
    if let Some(tf) = &args.timeframe {
        signal["metadata"] = serde_json::json!({ "timeframe": tf });
    }
    Ok(vec![signal.to_string()])
}

async fn send(global: &Global, args: &SendArgs) -> anyhow::Result<()> {
    let now = SystemClock.now();
    let bodies = bodies(args, now)?;
    // The dispatcher's own decoder, with its clock check: what it would refuse is not sent.
    let mut signals = Vec::with_capacity(bodies.len());
    for (i, body) in bodies.iter().enumerate() {
        let signal = Signal::parse_at(body, now).map_err(|e| {
            let which = if bodies.len() > 1 {
                format!("signal [{i}]: ")
            } else {
                String::new()
            };
            anyhow::anyhow!(
                "{which}{e} (the dispatcher would reject it as {})",
                e.reason_label()
            )
        })?;
        signals.push(signal);
    }
    let out = Output::new(global.json);
    if args.dry_run {
        if out.json {
            out.json(&serde_json::json!({ "valid": signals.iter().map(|s| &s.signal_id).collect::<Vec<_>>() }));
        } else {
            println!("{} valid signal(s); dry run: nothing sent", signals.len());
        }
        return Ok(());
    }
    let ctx = Ctx::connect(global).await?;
    // As the generator: to the signals topic (which delivers to the signals queue and to any
    // `signals tail`), or straight to the queue on a stack deployed before the topic.
    let (sender, target): (Box<dyn QueueSender>, &str) = match ctx.signals_topic() {
        Some(arn) => (
            Box::new(tradeflow_aws::SnsTopic::new(ctx.sns.clone(), arn)),
            "the signals topic",
        ),
        None => {
            let url = ctx.queue_url("SignalsQueueName").await?;
            (
                Box::new(tradeflow_aws::SqsQueue::new(ctx.sqs.clone(), url)),
                "the signals queue",
            )
        }
    };
    let messages: Vec<OutgoingMessage> = bodies
        .into_iter()
        .enumerate()
        .map(|(i, body)| OutgoingMessage::new(format!("s{i}"), body))
        .collect();
    for chunk in messages.chunks(tradeflow_core::ports::MAX_BATCH) {
        let failed = sender
            .send_batch(chunk)
            .await
            .map_err(|e| anyhow::anyhow!("{}", short_error(&e)))
            .with_context(|| format!("sending to {target}"))?;
        if let Some(f) = failed.first() {
            bail!(
                "{target} refused {} of the signals ({}, first: entry {})",
                failed.len(),
                f.code,
                f.id
            );
        }
    }
    if out.json {
        out.json(&serde_json::json!({ "sent": signals.iter().map(|s| &s.signal_id).collect::<Vec<_>>() }));
    } else {
        for s in &signals {
            let tickers: Vec<&str> = s.tickers.iter().map(|t| t.ticker.as_str()).collect();
            println!(
                "sent signal {} ({} {})",
                s.signal_id,
                s.signal_type.as_str(),
                tickers.join(",")
            );
        }
    }
    Ok(())
}
