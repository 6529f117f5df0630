//! `tradeflow signals tail`: every signal published to the stack's signals topic, live, through
//! a temporary queue of the tail's own (the standard SNS fan-out tap). Reading the signals queue
//! itself would take signals away from the dispatcher.
//!
//! Lifecycle: create the queue (tagged, short retention), let the topic send to it, subscribe it
//! with raw delivery; long-poll, print, delete what was read; on exit, Ctrl-C or SIGTERM,
//! unsubscribe and delete the queue. A running tail re-tags its queue every minute
//! ([`TAG_SEEN`]), so `--cleanup` can tell a killed tail's leftovers from a live tail.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use aws_sdk_sqs::error::ProvideErrorMetadata;
use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, QueueAttributeName};
use tradeflow_core::ports::{Clock, SystemClock};
use tradeflow_core::signal::Signal;

use crate::cli::TailArgs;
use crate::context::{Ctx, SIGNALS_TOPIC_OUTPUT};
use crate::output::{cut, time};

/// Every tail queue's name starts with this.
pub const QUEUE_PREFIX: &str = "tradeflow-tail-";
/// Tag: the stack whose topic the queue is subscribed to.
const TAG_STACK: &str = "tradeflow:stack";
/// Tag: what the queue is for.
const TAG_PURPOSE: &str = "tradeflow:purpose";
/// Tag: Unix seconds when its tail last marked it alive.
const TAG_SEEN: &str = "tradeflow:seen";
/// How long the queue keeps a message nobody read: a killed tail's queue holds at most this
/// much of the topic's traffic.
const RETENTION_SECS: u32 = 300;
/// How often a running tail re-tags its queue.
const HEARTBEAT: Duration = Duration::from_secs(60);
/// A tail queue not marked for this long is a killed tail's (`--cleanup` removes it).
const STALE_AFTER_SECS: i64 = 300;
/// SQS's longest long poll.
const MAX_WAIT_SECS: u64 = 20;

/// The message for a stack without a signals topic.
fn no_topic(stack: &str) -> String {
    format!(
        "stack {stack} has no signals topic (output {SIGNALS_TOPIC_OUTPUT}): it was deployed \
         before signals went through a topic; update it (local/deploy-stack.sh or \
         infra/deploy.sh deploy) to tail signals, or follow executions with `tradeflow \
         executions tail`"
    )
}

/// A name of at most 80 characters (SQS's limit): the prefix, the stack (without its own
/// `tradeflow-` prefix, cut), the time in ms and the process id.
fn queue_name(stack: &str, now_ms: i64, pid: u32) -> String {
    let stack: String = stack
        .strip_prefix("tradeflow-")
        .unwrap_or(stack)
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .take(40)
        .collect();
    format!("{QUEUE_PREFIX}{stack}-{now_ms:x}-{pid}")
}

/// The queue policy letting `topic_arn`, and only it, send to the queue `queue_arn`.
fn queue_policy(queue_arn: &str, topic_arn: &str) -> String {
    serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "SignalsTopic",
            "Effect": "Allow",
            "Principal": { "Service": "sns.amazonaws.com" },
            "Action": "sqs:SendMessage",
            "Resource": queue_arn,
            "Condition": { "ArnEquals": { "aws:SourceArn": topic_arn } },
        }],
    })
    .to_string()
}

/// The temporary queue and its subscription.
struct Tap {
    name: String,
    url: String,
    subscription_arn: Option<String>,
}

impl Tap {
    /// Creates the queue and subscribes it; on a failure after the queue exists, removes what
    /// was created before returning the error.
    async fn open(ctx: &Ctx, topic_arn: &str) -> anyhow::Result<Tap> {
        let name = queue_name(
            &ctx.stack.stack_name,
            SystemClock.now_ms(),
            std::process::id(),
        );
        let url = ctx
            .sqs
            .create_queue()
            .queue_name(&name)
            .attributes(
                QueueAttributeName::MessageRetentionPeriod,
                RETENTION_SECS.to_string(),
            )
            .attributes(QueueAttributeName::SqsManagedSseEnabled, "true")
            .tags(TAG_STACK, &ctx.stack.stack_name)
            .tags(TAG_PURPOSE, "signals-tail")
            .tags(TAG_SEEN, SystemClock.now().to_string())
            .send()
            .await
            .map_err(|e| sdk_error("CreateQueue", e))
            .with_context(|| format!("creating the tail queue {name}"))?
            .queue_url
            .with_context(|| format!("CreateQueue returned no URL for {name}"))?;
        let mut tap = Tap {
            name,
            url,
            subscription_arn: None,
        };
        if let Err(e) = tap.subscribe(ctx, topic_arn).await {
            let closed = tap.close(ctx).await;
            return Err(match closed {
                Ok(()) => e,
                Err(c) => e.context(format!("{c:#}")),
            });
        }
        Ok(tap)
    }

    async fn subscribe(&mut self, ctx: &Ctx, topic_arn: &str) -> anyhow::Result<()> {
        let queue_arn = ctx
            .sqs
            .get_queue_attributes()
            .queue_url(&self.url)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await
            .map_err(|e| sdk_error("GetQueueAttributes", e))?
            .attributes
            .and_then(|mut a| a.remove(&QueueAttributeName::QueueArn))
            .with_context(|| format!("no ARN returned for queue {}", self.name))?;
        ctx.sqs
            .set_queue_attributes()
            .queue_url(&self.url)
            .attributes(
                QueueAttributeName::Policy,
                queue_policy(&queue_arn, topic_arn),
            )
            .send()
            .await
            .map_err(|e| sdk_error("SetQueueAttributes", e))
            .context("letting the signals topic send to the tail queue")?;
        let arn = ctx
            .sns
            .subscribe()
            .topic_arn(topic_arn)
            .protocol("sqs")
            .endpoint(&queue_arn)
            .attributes("RawMessageDelivery", "true")
            .return_subscription_arn(true)
            .send()
            .await
            .map_err(|e| sdk_error("Subscribe", e))
            .with_context(|| format!("subscribing the tail queue to {topic_arn}"))?
            .subscription_arn
            .context("Subscribe returned no subscription ARN")?;
        self.subscription_arn = Some(arn);
        Ok(())
    }

    /// Unsubscribes and deletes the queue; an error names what is left and how to remove it.
    async fn close(self, ctx: &Ctx) -> anyhow::Result<()> {
        let mut left = Vec::new();
        if let Some(arn) = &self.subscription_arn
            && let Err(e) = ctx.sns.unsubscribe().subscription_arn(arn).send().await
        {
            // Keep the queue: a subscription whose queue is gone fails every delivery (and
            // pages through the delivery-failure alarm); a queue left behind only costs its
            // deliveries until `--cleanup`, and its 5-minute retention bounds what it holds.
            bail!(
                "could not remove the tail's subscription {arn} ({}); its queue {} is kept so \
                 deliveries keep succeeding: `tradeflow signals tail --cleanup` removes both \
                 once it is 5 minutes stale",
                sdk_error("Unsubscribe", e),
                self.name
            );
        }
        if let Err(e) = ctx.sqs.delete_queue().queue_url(&self.url).send().await {
            left.push(format!(
                "queue {} ({})",
                self.name,
                sdk_error("DeleteQueue", e)
            ));
        }
        if left.is_empty() {
            return Ok(());
        }
        bail!(
            "could not remove the tail's {}; `tradeflow signals tail --cleanup` removes it \
             once it is 5 minutes stale",
            left.join(" and ")
        )
    }

    async fn mark_seen(&self, ctx: &Ctx) {
        // Best effort: a missed mark only makes the queue look stale sooner.
        let _ = ctx
            .sqs
            .tag_queue()
            .queue_url(&self.url)
            .tags(TAG_SEEN, SystemClock.now().to_string())
            .send()
            .await;
    }
}

/// An SDK error on one line, with the service's code and message when there is one.
fn sdk_error<E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static>(
    operation: &str,
    e: aws_sdk_sqs::error::SdkError<E, aws_sdk_sqs::config::http::HttpResponse>,
) -> anyhow::Error {
    match (e.code(), e.message()) {
        (Some(code), Some(message)) => anyhow::anyhow!("{operation}: {code}: {message}"),
        (Some(code), None) => anyhow::anyhow!("{operation}: {code}"),
        _ => anyhow::anyhow!(
            "{operation}: {}",
            crate::output::short_error(&e as &(dyn std::error::Error + 'static))
        ),
    }
}

/// Which signals to print.
struct Filter {
    signal_type: Option<String>,
    ticker: Option<String>,
}

impl Filter {
    fn keeps(&self, signal: &serde_json::Value) -> bool {
        let type_ok = self
            .signal_type
            .as_deref()
            .is_none_or(|t| signal["signal_type"].as_str() == Some(t));
        let ticker_ok = self.ticker.as_deref().is_none_or(|want| {
            signal["tickers"].as_array().is_some_and(|ts| {
                ts.iter().any(|t| {
                    t["ticker"]
                        .as_str()
                        .is_some_and(|s| s.eq_ignore_ascii_case(want))
                })
            })
        });
        type_ok && ticker_ok
    }
}

const HEADERS: [&str; 9] = [
    "SIGNAL",
    "TYPE",
    "TICKERS",
    "DIRECTION",
    "CONF",
    "TF",
    "SOURCE",
    "AT (UTC)",
    "DISPATCH",
];

/// The distinct values of `field` over the signal's tickers, joined by `/`.
fn per_ticker(signal: &serde_json::Value, field: &str) -> String {
    let mut values: Vec<String> = Vec::new();
    for t in signal["tickers"].as_array().into_iter().flatten() {
        let v = match &t[field] {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Null => continue,
            other => other.to_string(),
        };
        if !values.contains(&v) {
            values.push(v);
        }
    }
    values.join("/")
}

/// One table row: the signal's fields and whether the dispatcher accepts it now (its own
/// decoder), so a signal that reaches no pipeline because it is invalid says so.
fn row(ctx: &Ctx, body: &str, signal: &serde_json::Value, now: i64) -> Vec<String> {
    let text = |v: &serde_json::Value| v.as_str().unwrap_or("").to_owned();
    let dispatch = match Signal::parse_at(body, now) {
        Ok(_) => ctx.out.status("valid"),
        Err(e) => format!("{} ({})", ctx.out.status("invalid"), e.reason_label()),
    };
    vec![
        cut(&text(&signal["signal_id"]), 40),
        text(&signal["signal_type"]),
        cut(&per_ticker(signal, "ticker").replace('/', ","), 30),
        per_ticker(signal, "signal"),
        per_ticker(signal, "confidence"),
        text(&signal["metadata"]["timeframe"]),
        cut(&text(&signal["source"]), 24),
        signal["timestamp"].as_i64().map(time).unwrap_or_default(),
        dispatch,
    ]
}

/// Resolves on Ctrl-C (SIGINT) or SIGTERM. The handlers are installed when this is called, so
/// a signal that arrives while the queue is being set up is not lost (nor kills the process).
fn stop_requested() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut interrupt =
            signal(SignalKind::interrupt()).context("installing the Ctrl-C handler")?;
        let mut terminate =
            signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
        Ok(async move {
            tokio::select! {
                _ = interrupt.recv() => {}
                _ = terminate.recv() => {}
            }
        })
    }
    #[cfg(not(unix))]
    {
        Ok(async {
            let _ = tokio::signal::ctrl_c().await;
        })
    }
}

pub async fn tail(ctx: &Ctx, args: &TailArgs) -> anyhow::Result<()> {
    let Some(topic_arn) = ctx.signals_topic().map(str::to_owned) else {
        bail!("{}", no_topic(&ctx.stack.stack_name));
    };
    let filter = Filter {
        signal_type: args.signal_type.clone(),
        ticker: args.ticker.clone(),
    };
    let stop = stop_requested()?;
    let tap = Tap::open(ctx, &topic_arn).await?;
    if !ctx.out.json {
        eprintln!(
            "following the signals published to {topic_arn} (through queue {}); Ctrl-C to stop",
            tap.name
        );
        ctx.out.table(&HEADERS, &[]);
    }
    let followed = follow(ctx, &tap, &filter, args, stop).await;
    let closed = tap.close(ctx).await;
    followed?;
    closed
}

async fn follow(
    ctx: &Ctx,
    tap: &Tap,
    filter: &Filter,
    args: &TailArgs,
    stop: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    tokio::pin!(stop);
    let started = Instant::now();
    let deadline = args.for_duration.map(|d| started + d);
    let mut printed = 0usize;
    let mut last_mark = Instant::now();
    loop {
        if args.count.is_some_and(|n| printed >= n) {
            return Ok(());
        }
        let remaining = match deadline {
            Some(d) => match d.checked_duration_since(Instant::now()) {
                Some(r) if !r.is_zero() => r,
                _ => return Ok(()),
            },
            None => Duration::from_secs(MAX_WAIT_SECS),
        };
        let wait = remaining.as_secs().clamp(1, MAX_WAIT_SECS);
        let receive = ctx
            .sqs
            .receive_message()
            .queue_url(&tap.url)
            .max_number_of_messages(10)
            .wait_time_seconds(wait as i32)
            .send();
        // `--for` ends a long poll early; without it only a stop signal does.
        let until_deadline = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(tokio::time::Instant::from_std(d)).await,
                None => std::future::pending().await,
            }
        };
        let received = tokio::select! {
            r = receive => r.map_err(|e| sdk_error("ReceiveMessage", e))?,
            _ = &mut stop => return Ok(()),
            _ = until_deadline => return Ok(()),
        };
        let now = SystemClock.now();
        let mut done = Vec::new();
        for (i, m) in received.messages().iter().enumerate() {
            if let Some(handle) = m.receipt_handle() {
                done.push(
                    DeleteMessageBatchRequestEntry::builder()
                        .id(format!("m{i}"))
                        .receipt_handle(handle)
                        .build()
                        .context("building a delete entry")?,
                );
            }
            if args.count.is_some_and(|n| printed >= n) {
                continue;
            }
            let body = m.body().unwrap_or_default();
            let signal: serde_json::Value = serde_json::from_str(body)
                .unwrap_or_else(|_| serde_json::json!({ "unreadable_body": body }));
            if !filter.keeps(&signal) {
                continue;
            }
            printed += 1;
            if ctx.out.json {
                ctx.out.json_line(&signal);
            } else {
                println!("{}", row(ctx, body, &signal, now).join("  "));
            }
        }
        if !done.is_empty() {
            // What was read is gone from the tail's own queue only; a failed delete means it
            // may be printed again after the visibility timeout, nothing worse.
            let _ = ctx
                .sqs
                .delete_message_batch()
                .queue_url(&tap.url)
                .set_entries(Some(done))
                .send()
                .await;
        }
        if last_mark.elapsed() >= HEARTBEAT {
            tap.mark_seen(ctx).await;
            last_mark = Instant::now();
        }
    }
}

/// `signals tail --cleanup`: removes the queues (and their subscriptions) of this stack's tails
/// that were not marked for [`STALE_AFTER_SECS`], and subscriptions of the stack's topic to tail
/// queues that no longer exist.
pub async fn cleanup(ctx: &Ctx) -> anyhow::Result<()> {
    let stack = &ctx.stack.stack_name;
    let now = SystemClock.now();
    let mut urls = Vec::new();
    let mut token = None;
    loop {
        let page = ctx
            .sqs
            .list_queues()
            .queue_name_prefix(QUEUE_PREFIX)
            .max_results(1000)
            .set_next_token(token)
            .send()
            .await
            .map_err(|e| sdk_error("ListQueues", e))?;
        urls.extend(page.queue_urls().iter().cloned());
        token = page.next_token;
        if token.is_none() {
            break;
        }
    }
    // The topic's subscriptions to tail queues, first: a stale queue's subscription is removed
    // before the queue, so no delivery ever goes to a queue that is gone (SQS may still answer
    // for a deleted queue for up to 60 s, so "queue gone" cannot be checked right after).
    let mut tail_subscriptions: Vec<(String, String)> = Vec::new(); // (queue name, arn)
    if let Some(topic_arn) = ctx.signals_topic() {
        let mut token = None;
        loop {
            let page = ctx
                .sns
                .list_subscriptions_by_topic()
                .topic_arn(topic_arn)
                .set_next_token(token)
                .send()
                .await
                .map_err(|e| sdk_error("ListSubscriptionsByTopic", e))?;
            for s in page.subscriptions() {
                let queue = s
                    .endpoint()
                    .and_then(|e| e.rsplit(':').next())
                    .unwrap_or("");
                if s.protocol() == Some("sqs")
                    && queue.starts_with(QUEUE_PREFIX)
                    && let Some(arn) = s.subscription_arn()
                {
                    tail_subscriptions.push((queue.to_owned(), arn.to_owned()));
                }
            }
            token = page.next_token;
            if token.is_none() {
                break;
            }
        }
    }
    let mut failures = Vec::new();
    let mut removed_queues = Vec::new();
    let mut removed_subscriptions = 0usize;
    let mut live = 0usize;
    for url in urls {
        let tags: HashMap<String, String> =
            match ctx.sqs.list_queue_tags().queue_url(&url).send().await {
                Ok(t) => t.tags.unwrap_or_default(),
                Err(_) => continue, // gone meanwhile
            };
        if tags.get(TAG_STACK) != Some(stack) {
            continue;
        }
        let seen = tags.get(TAG_SEEN).and_then(|s| s.parse::<i64>().ok());
        if seen.is_some_and(|s| now - s < STALE_AFTER_SECS) {
            live += 1;
            continue;
        }
        let name = url.rsplit('/').next().unwrap_or(&url).to_owned();
        let mut unsubscribed = true;
        for (_, arn) in tail_subscriptions.iter().filter(|(q, _)| *q == name) {
            match ctx.sns.unsubscribe().subscription_arn(arn).send().await {
                Ok(_) => removed_subscriptions += 1,
                Err(e) => {
                    unsubscribed = false;
                    failures.push(format!(
                        "subscription {arn}: {}",
                        sdk_error("Unsubscribe", e)
                    ));
                }
            }
        }
        if !unsubscribed {
            // Its queue stays while it is subscribed (see above); the next run tries again.
            continue;
        }
        match ctx.sqs.delete_queue().queue_url(&url).send().await {
            Ok(_) => removed_queues.push(name),
            Err(e) => failures.push(format!("queue {url}: {}", sdk_error("DeleteQueue", e))),
        }
    }
    // Subscriptions whose queue is already gone (a tail killed before it could clean up, and a
    // queue deleted by hand): every delivery to them fails.
    for (queue, arn) in &tail_subscriptions {
        if removed_queues.contains(queue) {
            continue;
        }
        let exists = match ctx.sqs.get_queue_url().queue_name(queue).send().await {
            Ok(_) => true,
            Err(e) => !e
                .code()
                .is_some_and(|c| c.contains("NonExistentQueue") || c.contains("QueueDoesNotExist")),
        };
        if exists {
            continue;
        }
        match ctx.sns.unsubscribe().subscription_arn(arn).send().await {
            Ok(_) => removed_subscriptions += 1,
            Err(e) => failures.push(format!(
                "subscription {arn}: {}",
                sdk_error("Unsubscribe", e)
            )),
        }
    }
    if ctx.out.json {
        ctx.out.json(&serde_json::json!({
            "removed_queues": removed_queues,
            "removed_subscriptions": removed_subscriptions,
            "live_tails": live,
        }));
    } else {
        println!(
            "removed {} stale tail queue(s) and {removed_subscriptions} subscription(s) of stack \
             {stack}; {live} live tail(s) left alone",
            removed_queues.len()
        );
        for q in &removed_queues {
            println!("  {q}");
        }
    }
    if !failures.is_empty() {
        bail!(
            "{} removal(s) failed (run `tradeflow signals tail --cleanup` again): {}",
            failures.len(),
            failures.join("; ")
        );
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn queue_names_fit_sqs_and_start_with_the_prefix() {
        let long = format!("tradeflow-{}", "x".repeat(200));
        for stack in ["tradeflow-local", "my.stack/with:odd chars", long.as_str()] {
            let name = queue_name(stack, 1_796_000_000_000, 4_194_304);
            assert!(name.starts_with(QUEUE_PREFIX), "{name}");
            assert!(name.len() <= 80, "{name}: {}", name.len());
            assert!(
                name.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
                "{name}"
            );
        }
        assert!(queue_name("tradeflow-local", 1, 2).starts_with("tradeflow-tail-local-"));
    }

    #[test]
    fn the_queue_policy_lets_only_the_topic_send() {
        let p: serde_json::Value = serde_json::from_str(&queue_policy("arn:q", "arn:t")).unwrap();
        let s = &p["Statement"][0];
        assert_eq!(s["Principal"]["Service"], "sns.amazonaws.com");
        assert_eq!(s["Action"], "sqs:SendMessage");
        assert_eq!(s["Resource"], "arn:q");
        assert_eq!(s["Condition"]["ArnEquals"]["aws:SourceArn"], "arn:t");
    }

    #[test]
    fn filters_match_type_and_any_ticker_case_insensitively() {
        let signal = serde_json::json!({
            "signal_type": "rsi_oversold",
            "tickers": [{"ticker": "AAPL"}, {"ticker": "MSFT"}],
        });
        let f = |t: Option<&str>, k: Option<&str>| Filter {
            signal_type: t.map(str::to_owned),
            ticker: k.map(str::to_owned),
        };
        assert!(f(None, None).keeps(&signal));
        assert!(f(Some("rsi_oversold"), Some("msft")).keeps(&signal));
        assert!(!f(Some("macd_cross"), None).keeps(&signal));
        assert!(!f(None, Some("NVDA")).keeps(&signal));
        assert!(!f(None, Some("AAPL")).keeps(&serde_json::json!({"unreadable_body": "x"})));
    }

    #[test]
    fn durations_are_seconds_or_a_number_with_a_unit() {
        use crate::cli::parse_duration;
        for (text, secs) in [("90", 90.0), ("30s", 30.0), ("1.5m", 90.0), ("2h", 7200.0)] {
            assert_eq!(parse_duration(text).unwrap().as_secs_f64(), secs, "{text}");
        }
        for bad in ["", "0", "-5s", "10d", "m", "1e400", "tomorrow"] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn per_ticker_values_are_distinct_and_in_order() {
        let signal = serde_json::json!({"tickers": [
            {"ticker": "AAPL", "signal": "BULLISH", "confidence": 80},
            {"ticker": "MSFT", "signal": "BULLISH", "confidence": 70},
        ]});
        assert_eq!(per_ticker(&signal, "ticker"), "AAPL/MSFT");
        assert_eq!(per_ticker(&signal, "signal"), "BULLISH");
        assert_eq!(per_ticker(&signal, "confidence"), "80/70");
    }
}
