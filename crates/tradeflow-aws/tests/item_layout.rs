//! The stored item layout of every type the adapters write with [`to_item`], attribute by
//! attribute (docs/data-model.md): names, types and nesting must not change, or items written
//! before a deploy stop decoding after it. No emulator needed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::json;
use tradeflow_aws::item::{Item, from_item, to_item};
use tradeflow_core::execution::{
    ExecutionRecord, ExecutionRequest, ExecutionStatus, StepResult, StepStatus,
};
use tradeflow_core::order::PaperOrder;
use tradeflow_core::pipeline::Pipeline;

fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.into())
}
fn n(v: &str) -> AttributeValue {
    AttributeValue::N(v.into())
}
fn null() -> AttributeValue {
    AttributeValue::Null(true)
}
fn l(items: Vec<AttributeValue>) -> AttributeValue {
    AttributeValue::L(items)
}
fn m(attrs: &[(&str, AttributeValue)]) -> AttributeValue {
    AttributeValue::M(item(attrs))
}
fn item(attrs: &[(&str, AttributeValue)]) -> Item {
    attrs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect()
}

fn order() -> PaperOrder {
    serde_json::from_value(json!({
        "order_id": "ord-1", "execution_id": "exe-1", "pipeline_id": "p1", "user_id": "u1",
        "ticker": "AAPL", "signal_id": "sig-1", "side": "BUY", "quantity": 250,
        "entry_price": 100.0, "stop_price": 96.5, "target_price": 106.25, "mode": "paper",
        "created_at": 1_750_000_000
    }))
    .unwrap()
}

fn pipeline() -> Pipeline {
    serde_json::from_value(json!({
        "pipeline_id": "p1", "user_id": "u1", "name": "RSI", "is_active": true,
        "trigger_mode": "signal", "tickers": ["AAPL"],
        "signal_subscriptions": [
            {"signal_type": "rsi_oversold", "timeframe": "5", "min_confidence": 70},
            {"signal_type": "macd_cross"}
        ],
        "steps": ["market_snapshot", "risk"],
        "max_runtime_secs": 600,
        "risk": {"account_equity": 50000.0, "risk_per_trade": 0.02, "max_position_fraction": 0.25}
    }))
    .unwrap()
}

pub fn record() -> ExecutionRecord {
    let request: ExecutionRequest = serde_json::from_value(json!({
        "execution_id": "exe-1", "pipeline_id": "p1", "user_id": "u1", "ticker": "AAPL",
        "signal_context": {
            "signal_id": "sig-1", "signal_type": "rsi_oversold", "source": "rsi_generator",
            "timestamp": 1_750_000_000, "tickers": ["AAPL"], "confidence": 75.5,
            "signal": "BULLISH",
            "metadata": {"timeframe": "5", "current_rsi": 28.5, "candle_time": 1_749_999_700}
        },
        "lease_expires_at": 1_750_000_720, "enqueued_at_ms": 1_750_000_000_123_i64
    }))
    .unwrap();
    ExecutionRecord {
        execution_id: "exe-1".into(),
        pipeline_id: "p1".into(),
        user_id: "u1".into(),
        ticker: request.ticker.clone(),
        status: ExecutionStatus::Completed,
        signal_context: request.signal_context,
        created_at: 1_750_000_001,
        started_at: Some(1_750_000_002),
        completed_at: None,
        steps: (0..5)
            .map(|i| StepResult {
                step: format!("step{i}"),
                status: StepStatus::Completed,
                duration_ms: 0.25 + f64::from(i),
                summary: "done".into(),
                outputs: [("entry".to_owned(), 100.5), ("atr".to_owned(), 2.25)].into(),
            })
            .collect(),
        error: None,
        attempts: 1,
        in_progress_until: None,
        order_id: Some("ord-1".into()),
        decision: Some("order_placed".into()),
    }
}

#[test]
fn an_order_item_has_the_documented_layout() {
    let expected = item(&[
        ("order_id", s("ord-1")),
        ("execution_id", s("exe-1")),
        ("pipeline_id", s("p1")),
        ("user_id", s("u1")),
        ("ticker", s("AAPL")),
        ("signal_id", s("sig-1")),
        ("side", s("BUY")),
        ("quantity", n("250")),
        ("entry_price", n("100")),
        ("stop_price", n("96.5")),
        ("target_price", n("106.25")),
        ("mode", s("paper")),
        ("created_at", n("1750000000")),
    ]);
    assert_eq!(to_item(&order()).unwrap(), expected);
    assert_eq!(from_item::<PaperOrder>(expected).unwrap(), order());
}

#[test]
fn a_pipeline_item_has_the_documented_layout() {
    let expected = item(&[
        ("pipeline_id", s("p1")),
        ("user_id", s("u1")),
        ("name", s("RSI")),
        ("is_active", AttributeValue::Bool(true)),
        ("trigger_mode", s("signal")),
        ("tickers", l(vec![s("AAPL")])),
        (
            "signal_subscriptions",
            l(vec![
                m(&[
                    ("signal_type", s("rsi_oversold")),
                    ("timeframe", s("5")),
                    ("min_confidence", n("70")),
                ]),
                // Absent options are left out (`skip_serializing_if`).
                m(&[("signal_type", s("macd_cross"))]),
            ]),
        ),
        ("steps", l(vec![s("market_snapshot"), s("risk")])),
        ("max_runtime_secs", n("600")),
        (
            "risk",
            m(&[
                ("account_equity", n("50000")),
                ("risk_per_trade", n("0.02")),
                ("max_position_fraction", n("0.25")),
            ]),
        ),
    ]);
    assert_eq!(to_item(&pipeline()).unwrap(), expected);
    assert_eq!(from_item::<Pipeline>(expected).unwrap(), pipeline());
}

#[test]
fn an_execution_item_has_the_documented_layout() {
    let step = |i: u32| {
        m(&[
            ("step", s(&format!("step{i}"))),
            ("status", s("COMPLETED")),
            ("duration_ms", n(&format!("{i}.25"))),
            ("summary", s("done")),
            ("outputs", m(&[("entry", n("100.5")), ("atr", n("2.25"))])),
        ])
    };
    let expected = item(&[
        ("execution_id", s("exe-1")),
        ("pipeline_id", s("p1")),
        ("user_id", s("u1")),
        ("ticker", s("AAPL")),
        ("status", s("COMPLETED")),
        (
            "signal_context",
            m(&[
                ("signal_id", s("sig-1")),
                ("signal_type", s("rsi_oversold")),
                ("source", s("rsi_generator")),
                ("timestamp", n("1750000000")),
                ("tickers", l(vec![s("AAPL")])),
                ("confidence", n("75.5")),
                ("signal", s("BULLISH")),
                (
                    "metadata",
                    m(&[
                        ("timeframe", s("5")),
                        ("current_rsi", n("28.5")),
                        ("candle_time", n("1749999700")),
                    ]),
                ),
            ]),
        ),
        ("created_at", n("1750000001")),
        ("started_at", n("1750000002")),
        ("completed_at", null()),
        ("steps", l((0..5).map(step).collect())),
        ("error", null()),
        ("attempts", n("1")),
        ("in_progress_until", null()),
        ("order_id", s("ord-1")),
        ("decision", s("order_placed")),
    ]);
    assert_eq!(to_item(&record()).unwrap(), expected);
    assert_eq!(from_item::<ExecutionRecord>(expected).unwrap(), record());
}

#[test]
fn items_written_by_the_old_json_bridge_still_decode() {
    // The hand-written bridge wrote whole floats as "100.0" and small ones with an exponent.
    let mut old = to_item(&order()).unwrap();
    old.insert("entry_price".into(), n("100.0"));
    old.insert("stop_price".into(), n("9.65e1"));
    assert_eq!(from_item::<PaperOrder>(old).unwrap(), order());
}

/// Encode and decode cost of an execution record with five steps; prints the figures quoted in
/// `item.rs`. Meaningful in release only.
#[test]
#[ignore = "a measurement: cargo test --release -p tradeflow-aws --test item_layout -- --ignored --nocapture"]
fn item_mapping_cost() {
    use std::hint::black_box;
    use std::time::Instant;
    let record = record();
    let encoded = to_item(&record).unwrap();
    let rounds: u32 = 2_000;
    let started = Instant::now();
    for _ in 0..rounds {
        black_box(to_item(black_box(&record)).unwrap());
    }
    let encode = started.elapsed() / rounds;
    let started = Instant::now();
    for _ in 0..rounds {
        black_box(from_item::<ExecutionRecord>(black_box(encoded.clone())).unwrap());
    }
    let decode = started.elapsed() / rounds;
    println!("execution record: encode {encode:?}, decode {decode:?} (clone of the item included)");
}
