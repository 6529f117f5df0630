//! One short-lived Lambda execution environment of the trigger-dispatcher, as a process: the
//! real handler and telemetry (configured from the environment, like the function's `main`:
//! `OTEL_EXPORTER_OTLP_ENDPOINT`, `TRADEFLOW_STAGE`, a random `service.instance.id`), with
//! in-memory stores. Each argument is one invocation, the number of signals in its batch;
//! every invocation flushes its metrics, then the process exits.
//!
//! Used by the aggregation test in tests/integration/metrics.rs:
//! `short-lived-dispatcher 2 1 3` = three invocations, six signals.

use std::process::ExitCode;
use std::sync::Arc;

use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use tradeflow_core::dispatch::{Dispatcher, DispatcherConfig};
use tradeflow_core::fakes::{ManualClock, MemoryLeaseStore, MemoryPipelineStore, MemoryQueue};
use tradeflow_telemetry::Telemetry;

fn batch(invocation: usize, signals: usize) -> SqsEvent {
    let mut event = SqsEvent::default();
    event.records = (0..signals)
        .map(|i| {
            let id = format!("{}-{invocation}-{i}", std::process::id());
            let mut m = SqsMessage::default();
            m.message_id = Some(id.clone());
            m.body = Some(
                serde_json::json!({
                    "signal_id": id, "signal_type": "rsi_oversold", "source": "aggregation_test",
                    "timestamp": 1_750_000_000,
                    "tickers": [{"ticker": "AAPL", "signal": "BULLISH", "confidence": 80.0, "reasoning": "test"}],
                    "metadata": {"timeframe": "5"}
                })
                .to_string(),
            );
            m
        })
        .collect();
    event
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let mut sizes = Vec::new();
    for arg in std::env::args().skip(1) {
        match arg.parse::<usize>() {
            Ok(n) => sizes.push(n),
            Err(_) => {
                eprintln!("usage: short-lived-dispatcher SIGNALS_PER_INVOCATION...; got {arg:?}");
                return ExitCode::from(2);
            }
        }
    }
    let telemetry = Telemetry::init(trigger_dispatcher::FUNCTION_NAME);
    let dispatcher = Dispatcher::new(
        Arc::new(MemoryPipelineStore::default()),
        Arc::new(MemoryLeaseStore::default()),
        Arc::new(MemoryQueue::default()),
        Arc::new(ManualClock::at(1_750_000_100)),
        DispatcherConfig::default(),
    );
    let handler = tradeflow_lambda::service(
        trigger_dispatcher::Handler::new(dispatcher, &telemetry),
        telemetry.clone(),
    );
    let mut failed = false;
    for (n, signals) in sizes.iter().enumerate() {
        let result = tradeflow_lambda::invoke(
            &handler,
            batch(n, *signals),
            tradeflow_lambda::Deadline::none(),
        )
        .await;
        if let Err(e) = result {
            eprintln!("invocation {n} failed: {e}");
            failed = true;
        }
    }
    // As Lambda ends an environment: no flush beyond the per-invocation ones.
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
