//! The pipelines and execution requests the tests build, defined once. Tests change the fields
//! they care about on the returned value.

use serde_json::json;

use crate::execution::{ExecutionRequest, SignalContext};
use crate::pipeline::Pipeline;
use crate::signal::SignalMetadata;
use crate::vocab::{Direction, Ticker};

/// An active, signal-triggered pipeline of `user_id` on `tickers` with `subscriptions` (a JSON
/// array of `{signal_type, timeframe?, min_confidence?}`; empty means every signal type), and the
/// defaults for everything else (all steps, 720 s max runtime, default risk settings).
///
/// # Panics
/// When the arguments do not make a valid pipeline (a bad ticker or subscription).
#[allow(clippy::expect_used)]
pub fn pipeline(
    id: &str,
    user_id: &str,
    tickers: &[&str],
    subscriptions: serde_json::Value,
) -> Pipeline {
    serde_json::from_value(json!({
        "pipeline_id": id, "user_id": user_id, "name": id, "is_active": true,
        "trigger_mode": "signal", "tickers": tickers, "signal_subscriptions": subscriptions
    }))
    .expect("fixture pipeline")
}

/// The execution request the dispatcher would send for (`pipeline_id`, AAPL) and the signal
/// `signal_id` of `timestamp`: user `u1`, a BULLISH `rsi_oversold` of confidence 75 from
/// `rsi_generator` without metadata, the lease running out 720 s after `timestamp`, enqueued at
/// `timestamp`. Its `execution_id` derives from the pipeline, ticker and signal, as
/// [`ExecutionRequest::parse`] checks.
///
/// # Panics
/// Never: the ticker is a constant.
#[allow(clippy::expect_used)]
pub fn request(pipeline_id: &str, signal_id: &str, timestamp: i64) -> ExecutionRequest {
    let ticker = Ticker::parse("AAPL").expect("constant ticker");
    ExecutionRequest {
        execution_id: crate::ids::execution_id(pipeline_id, ticker.as_str(), signal_id),
        pipeline_id: pipeline_id.into(),
        user_id: "u1".into(),
        ticker: ticker.clone(),
        signal_context: SignalContext {
            signal_id: signal_id.into(),
            signal_type: "rsi_oversold".into(),
            source: "rsi_generator".into(),
            timestamp,
            tickers: vec![ticker],
            confidence: 75.0,
            signal: Direction::Bullish,
            metadata: SignalMetadata::default(),
        },
        lease_expires_at: timestamp + 720,
        enqueued_at_ms: timestamp * 1000,
    }
}
