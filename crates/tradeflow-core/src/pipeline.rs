//! Pipelines: what a user subscribes to and the steps run when a signal triggers it.
//!
//! Stored in the pipelines table as one item per pipeline with these attribute names (see
//! `docs/data-model.md`).

use serde::{Deserialize, Serialize};

use crate::vocab::{SignalType, Ticker, Timeframe};

/// Default lease and hard time limit of a run: the old system auto-failed runs after 12 minutes.
pub const DEFAULT_MAX_RUNTIME_SECS: u32 = 720;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TriggerMode {
    /// Run when a matching signal arrives (the dispatcher's pipelines).
    Signal,
    /// Run on a schedule (not dispatched by signals).
    Periodic,
    /// Run only when a user asks.
    Manual,
}

/// One subscription: a signal type, optionally narrowed to a timeframe and a minimum confidence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Subscription {
    pub signal_type: SignalType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeframe: Option<Timeframe>,
    /// 0–100, compared with the ticker's confidence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_confidence: Option<f64>,
}

/// The built-in deterministic paper-trading steps, run in the order the pipeline lists them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepKind {
    MarketSnapshot,
    Bias,
    Strategy,
    Risk,
    PaperOrder,
}

impl StepKind {
    pub const ALL: [StepKind; 5] = [
        StepKind::MarketSnapshot,
        StepKind::Bias,
        StepKind::Strategy,
        StepKind::Risk,
        StepKind::PaperOrder,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            StepKind::MarketSnapshot => "market_snapshot",
            StepKind::Bias => "bias",
            StepKind::Strategy => "strategy",
            StepKind::Risk => "risk",
            StepKind::PaperOrder => "paper_order",
        }
    }
}

/// Paper-account limits used by the risk step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RiskSettings {
    /// Paper account equity in quote currency.
    pub account_equity: f64,
    /// Fraction of equity put at risk between entry and stop (0.01 = 1 %).
    pub risk_per_trade: f64,
    /// Largest position notional as a fraction of equity.
    pub max_position_fraction: f64,
}

impl Default for RiskSettings {
    fn default() -> Self {
        RiskSettings {
            account_equity: 100_000.0,
            risk_per_trade: 0.01,
            max_position_fraction: 0.2,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pipeline {
    pub pipeline_id: String,
    pub user_id: String,
    pub name: String,
    pub is_active: bool,
    pub trigger_mode: TriggerMode,
    pub tickers: Vec<Ticker>,
    /// Empty means every signal type.
    #[serde(default)]
    pub signal_subscriptions: Vec<Subscription>,
    #[serde(default = "default_steps")]
    pub steps: Vec<StepKind>,
    #[serde(default = "default_max_runtime")]
    pub max_runtime_secs: u32,
    #[serde(default)]
    pub risk: RiskSettings,
}

fn default_steps() -> Vec<StepKind> {
    StepKind::ALL.to_vec()
}

fn default_max_runtime() -> u32 {
    DEFAULT_MAX_RUNTIME_SECS
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("invalid pipeline {pipeline_id}: {reason}")]
pub struct PipelineError {
    pub pipeline_id: String,
    pub reason: String,
}

impl Pipeline {
    /// Checks the invariants serde cannot express.
    pub fn validate(&self) -> Result<(), PipelineError> {
        let fail = |reason: String| {
            Err(PipelineError {
                pipeline_id: self.pipeline_id.clone(),
                reason,
            })
        };
        if self.pipeline_id.trim().is_empty() || self.user_id.trim().is_empty() {
            return fail("pipeline_id and user_id are required".into());
        }
        if self.max_runtime_secs == 0 || self.max_runtime_secs > 3600 {
            return fail(format!(
                "max_runtime_secs {} is not within 1 to 3600",
                self.max_runtime_secs
            ));
        }
        for s in &self.signal_subscriptions {
            if let Some(m) = s.min_confidence
                && (!m.is_finite() || !(0.0..=100.0).contains(&m))
            {
                return fail(format!("min_confidence {m} is not within 0 to 100"));
            }
        }
        let r = &self.risk;
        let fractions_ok = r.risk_per_trade > 0.0
            && r.risk_per_trade <= 0.1
            && r.max_position_fraction > 0.0
            && r.max_position_fraction <= 1.0;
        if !(r.account_equity.is_finite() && r.account_equity > 0.0 && fractions_ok) {
            return fail("risk settings out of range".into());
        }
        if self.steps.contains(&StepKind::PaperOrder) && !self.steps.contains(&StepKind::Risk) {
            return fail("paper_order needs the risk step before it".into());
        }
        Ok(())
    }

    /// Active and triggered by signals: the pipelines the dispatcher caches.
    pub fn is_signal_triggered(&self) -> bool {
        self.is_active && self.trigger_mode == TriggerMode::Signal
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn defaults_fill_in_steps_runtime_and_risk() {
        let p: Pipeline = serde_json::from_value(serde_json::json!({
            "pipeline_id": "p1", "user_id": "u1", "name": "n", "is_active": true,
            "trigger_mode": "signal", "tickers": ["aapl"],
            "signal_subscriptions": [{"signal_type": "rsi_oversold", "timeframe": "5", "min_confidence": 70}]
        }))
        .unwrap();
        assert_eq!(p.steps, StepKind::ALL.to_vec());
        assert_eq!(p.max_runtime_secs, 720);
        assert_eq!(p.tickers[0].as_str(), "AAPL");
        assert!(p.validate().is_ok());
        assert!(p.is_signal_triggered());
    }

    #[test]
    fn validation_rejects_out_of_range_settings() {
        let mut p: Pipeline = serde_json::from_value(serde_json::json!({
            "pipeline_id": "p1", "user_id": "u1", "name": "n", "is_active": true,
            "trigger_mode": "signal", "tickers": ["AAPL"],
            "signal_subscriptions": [{"signal_type": "rsi_oversold", "min_confidence": 170}]
        }))
        .unwrap();
        assert!(p.validate().unwrap_err().reason.contains("min_confidence"));
        p.signal_subscriptions.clear();
        p.max_runtime_secs = 0;
        assert!(p.validate().is_err());
        p.max_runtime_secs = 60;
        p.steps = vec![StepKind::PaperOrder];
        assert!(p.validate().is_err());
    }
}
