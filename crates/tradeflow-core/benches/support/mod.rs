#![allow(dead_code)] // each bench uses part of it
//! Deterministic pipelines and signals for the benchmarks.

use tradeflow_core::pipeline::Pipeline;
use tradeflow_core::signal::Signal;

pub const SIGNAL_TYPES: [&str; 11] = [
    "rsi_oversold",
    "rsi_overbought",
    "golden_cross",
    "death_cross",
    "macd_bullish",
    "macd_bearish",
    "ema_bullish_crossover",
    "ema_bearish_crossover",
    "bbands_upper_breakout",
    "bbands_lower_breakout",
    "volume_spike",
];

/// A small deterministic generator (SplitMix64).
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

pub fn ticker(i: u64) -> String {
    format!("T{i:03}")
}

/// `n` active signal pipelines over a universe of `universe` tickers: 1–5 tickers each, 0–3
/// subscriptions (a quarter take every type), some with timeframe and confidence filters.
pub fn pipelines(n: usize, universe: u64, seed: u64) -> Vec<Pipeline> {
    let mut rng = Rng::new(seed);
    (0..n)
        .map(|i| {
            let tickers: Vec<String> = (0..1 + rng.below(5)).map(|_| ticker(rng.below(universe))).collect();
            let subs: Vec<serde_json::Value> = if rng.below(4) == 0 {
                Vec::new()
            } else {
                (0..1 + rng.below(3))
                    .map(|_| {
                        let signal_type = SIGNAL_TYPES[rng.below(11) as usize];
                        let mut s = serde_json::json!({"signal_type": signal_type});
                        if rng.below(2) == 0 {
                            let tf = ["5", "60", "D"][rng.below(3) as usize];
                            s["timeframe"] = serde_json::json!(tf);
                        }
                        if rng.below(2) == 0 {
                            s["min_confidence"] = serde_json::json!(50 + rng.below(40));
                        }
                        s
                    })
                    .collect()
            };
            let mut uniq = tickers;
            uniq.sort();
            uniq.dedup();
            serde_json::from_value(serde_json::json!({
                "pipeline_id": format!("pl-{i}"), "user_id": format!("user-{}", i % 97), "name": format!("pipeline {i}"),
                "is_active": true, "trigger_mode": "signal", "tickers": uniq, "signal_subscriptions": subs
            }))
            .unwrap_or_else(|e| panic!("fixture pipeline: {e}"))
        })
        .collect()
}

/// `n` signals with 1–3 tickers each.
pub fn signals(n: usize, universe: u64, seed: u64) -> Vec<Signal> {
    let mut rng = Rng::new(seed);
    (0..n)
        .map(|i| {
            let timeframe = ["5", "60", "D"][rng.below(3) as usize];
            let signal_type = SIGNAL_TYPES[rng.below(11) as usize];
            let mut tickers: Vec<u64> = (0..1 + rng.below(3)).map(|_| rng.below(universe)).collect();
            tickers.sort();
            tickers.dedup();
            serde_json::from_value(serde_json::json!({
                "signal_id": format!("sig-{i}"), "signal_type": signal_type,
                "source": "bench", "timestamp": 1_750_000_000 + i as i64,
                "tickers": tickers.iter().map(|t| serde_json::json!({"ticker": ticker(*t), "signal": "BULLISH", "confidence": 50 + rng.below(50)})).collect::<Vec<_>>(),
                "metadata": {"timeframe": timeframe}
            }))
            .unwrap_or_else(|e| panic!("fixture signal: {e}"))
        })
        .collect()
}
