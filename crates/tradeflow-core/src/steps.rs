//! The built-in deterministic paper-trading steps: market snapshot → bias → strategy → risk →
//! paper order.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;

use crate::error::error_chain;
use crate::execution::ExecutionRequest;
use crate::indicators;
use crate::market::MarketData;
use crate::order::{OrderSide, PaperOrder};
use crate::pipeline::{Pipeline, StepKind};
use crate::ports::{OrderStore, PlaceOutcome};
use crate::vocab::{Bar, Direction, Timeframe};

/// Candles the market snapshot reads (SMA 50 and ATR 14 need fewer).
pub const SNAPSHOT_BARS: usize = 100;
/// The fewest candles the later steps can work with.
pub const MIN_SNAPSHOT_BARS: usize = 51;

/// Everything the steps read and produce, passed from one to the next.
#[derive(Debug, Clone)]
pub struct StepContext {
    pub request: ExecutionRequest,
    pub pipeline: Pipeline,
    /// Unix seconds when the run started.
    pub now: i64,
    pub bars: Vec<Bar>,
    pub bias: Option<Direction>,
    pub plan: Option<TradePlan>,
    pub quantity: Option<u64>,
    pub order: Option<PaperOrder>,
}

/// Entry, stop and target from the strategy step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TradePlan {
    pub side: OrderSide,
    pub entry: f64,
    pub stop: f64,
    pub target: f64,
    /// 1.0, or 0.5 when the trend bias disagrees with the signal.
    pub size_factor: f64,
}

/// What a step decided.
#[derive(Debug, Clone, PartialEq)]
pub enum StepFlow {
    Continue,
    /// No trade: the run completes without the remaining steps. The label says why.
    Stop(&'static str),
}

#[derive(Debug, Clone, PartialEq)]
pub struct StepOutput {
    pub summary: String,
    pub outputs: BTreeMap<String, f64>,
    pub flow: StepFlow,
}

impl StepOutput {
    fn go(summary: String, outputs: &[(&str, f64)]) -> Self {
        StepOutput {
            summary,
            outputs: outputs.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect(),
            flow: StepFlow::Continue,
        }
    }
}

/// Why a step did not complete.
///
/// The payload is a reason string on purpose: it is domain data, not a diagnostic. A permanent
/// reason becomes the failed step's `summary` and the execution's `error`, stored on the record
/// users read; a transient one becomes the retry reason in logs and metrics. When a step fails
/// because a port failed, [`StepError::from_port`] classifies it by the port error's own
/// `is_retryable()` and renders its whole `source()` chain into the reason, so nothing of the
/// cause is lost, and the record stays plain serialisable data.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StepError {
    /// The same step may succeed on a later delivery (market data or store unavailable).
    #[error("transient: {0}")]
    Transient(String),
    /// The run cannot succeed; the execution ends FAILED.
    #[error("{0}")]
    Permanent(String),
}

impl StepError {
    /// A failure of a port the step called, transient exactly when the port says retrying can
    /// help.
    pub fn from_port(error: &(dyn std::error::Error + 'static), retryable: bool) -> Self {
        if retryable {
            StepError::Transient(error_chain(error))
        } else {
            StepError::Permanent(error_chain(error))
        }
    }

    pub fn is_retryable(&self) -> bool {
        matches!(self, StepError::Transient(_))
    }
}

/// One step of a pipeline.
#[async_trait]
pub trait Step: Send + Sync {
    fn kind(&self) -> StepKind;
    /// Runs the step. Must be deterministic for the same context and idempotent in its effects
    /// (a retried run may run it again).
    async fn run(&self, ctx: &mut StepContext) -> Result<StepOutput, StepError>;
}

/// Reads the candles of the signal's ticker and timeframe up to the signal's time.
pub struct MarketSnapshotStep {
    pub market: Arc<dyn MarketData>,
    pub default_timeframe: Timeframe,
}

#[async_trait]
impl Step for MarketSnapshotStep {
    fn kind(&self) -> StepKind {
        StepKind::MarketSnapshot
    }
    async fn run(&self, ctx: &mut StepContext) -> Result<StepOutput, StepError> {
        let timeframe = ctx
            .request
            .signal_context
            .metadata
            .timeframe
            .unwrap_or(self.default_timeframe);
        let bars = self
            .market
            .closed_bars(
                ctx.request.ticker.as_str(),
                timeframe,
                ctx.request.signal_context.timestamp,
                SNAPSHOT_BARS,
            )
            .await
            .map_err(|e| StepError::from_port(&e, e.is_retryable()))?;
        if bars.len() < MIN_SNAPSHOT_BARS {
            return Err(StepError::Permanent(format!(
                "only {} candles of {} {} before the signal; {MIN_SNAPSHOT_BARS} needed",
                bars.len(),
                ctx.request.ticker,
                timeframe.as_str()
            )));
        }
        let last = bars[bars.len() - 1];
        ctx.bars = bars;
        Ok(StepOutput::go(
            format!("{} candles, last close {:.2}", ctx.bars.len(), last.close),
            &[
                ("last_close", last.close),
                ("candles", ctx.bars.len() as f64),
            ],
        ))
    }
}

fn last_value(series: &[Option<f64>]) -> Option<f64> {
    series.last().copied().flatten()
}

/// Trend bias: close above SMA 20 above SMA 50 is bullish, the mirror bearish, else neutral.
pub struct BiasStep;

#[async_trait]
impl Step for BiasStep {
    fn kind(&self) -> StepKind {
        StepKind::Bias
    }
    async fn run(&self, ctx: &mut StepContext) -> Result<StepOutput, StepError> {
        let closes: Vec<f64> = ctx.bars.iter().map(|b| b.close).collect();
        let (Some(fast), Some(slow), Some(close)) = (
            last_value(&indicators::sma(&closes, 20)),
            last_value(&indicators::sma(&closes, 50)),
            closes.last().copied(),
        ) else {
            return Err(StepError::Permanent(
                "bias needs a market snapshot of at least 50 candles".into(),
            ));
        };
        let bias = if close > fast && fast > slow {
            Direction::Bullish
        } else if close < fast && fast < slow {
            Direction::Bearish
        } else {
            Direction::Neutral
        };
        ctx.bias = Some(bias);
        Ok(StepOutput::go(
            format!("bias {bias:?}: close {close:.2}, SMA20 {fast:.2}, SMA50 {slow:.2}"),
            &[("sma_20", fast), ("sma_50", slow), ("close", close)],
        ))
    }
}

/// Entry at the last close, stop 2 ATR away, target 3 ATR away, in the signal's direction.
pub struct StrategyStep;

#[async_trait]
impl Step for StrategyStep {
    fn kind(&self) -> StepKind {
        StepKind::Strategy
    }
    async fn run(&self, ctx: &mut StepContext) -> Result<StepOutput, StepError> {
        let side = match ctx.request.signal_context.signal {
            Direction::Bullish => OrderSide::Buy,
            Direction::Bearish => OrderSide::Sell,
            Direction::Neutral => {
                return Ok(StepOutput {
                    summary: "neutral signal: no trade".into(),
                    outputs: BTreeMap::new(),
                    flow: StepFlow::Stop("no_trade_neutral_signal"),
                });
            }
        };
        let high: Vec<f64> = ctx.bars.iter().map(|b| b.high).collect();
        let low: Vec<f64> = ctx.bars.iter().map(|b| b.low).collect();
        let close: Vec<f64> = ctx.bars.iter().map(|b| b.close).collect();
        let (Some(atr), Some(entry)) = (
            last_value(&indicators::atr(&high, &low, &close, 14)),
            close.last().copied(),
        ) else {
            return Err(StepError::Permanent("strategy needs ATR 14".into()));
        };
        if atr <= 0.0 {
            return Ok(StepOutput {
                summary: "no volatility: no trade".into(),
                outputs: BTreeMap::new(),
                flow: StepFlow::Stop("no_trade_no_volatility"),
            });
        }
        let sign = if side == OrderSide::Buy { 1.0 } else { -1.0 };
        let against = matches!(
            (side, ctx.bias),
            (OrderSide::Buy, Some(Direction::Bearish))
                | (OrderSide::Sell, Some(Direction::Bullish))
        );
        let plan = TradePlan {
            side,
            entry,
            stop: entry - sign * 2.0 * atr,
            target: entry + sign * 3.0 * atr,
            size_factor: if against { 0.5 } else { 1.0 },
        };
        ctx.plan = Some(plan);
        Ok(StepOutput::go(
            format!(
                "{side:?} at {entry:.2}, stop {:.2}, target {:.2}{}",
                plan.stop,
                plan.target,
                if against {
                    ", half size against the trend"
                } else {
                    ""
                }
            ),
            &[
                ("entry", entry),
                ("stop", plan.stop),
                ("target", plan.target),
                ("atr", atr),
                ("size_factor", plan.size_factor),
            ],
        ))
    }
}

/// Sizes the position: risk a fixed fraction of equity between entry and stop, capped by the
/// largest position allowed.
pub struct RiskStep;

#[async_trait]
impl Step for RiskStep {
    fn kind(&self) -> StepKind {
        StepKind::Risk
    }
    async fn run(&self, ctx: &mut StepContext) -> Result<StepOutput, StepError> {
        let Some(plan) = ctx.plan else {
            return Err(StepError::Permanent(
                "risk needs the strategy step before it".into(),
            ));
        };
        let r = &ctx.pipeline.risk;
        let risk_amount = r.account_equity * r.risk_per_trade * plan.size_factor;
        let per_unit = (plan.entry - plan.stop).abs();
        let by_risk = (risk_amount / per_unit).floor();
        let by_cap = (r.account_equity * r.max_position_fraction / plan.entry).floor();
        let quantity = by_risk.min(by_cap).max(0.0);
        if !quantity.is_finite() || quantity < 1.0 {
            return Ok(StepOutput {
                summary: "position size rounds to zero: no trade".into(),
                outputs: BTreeMap::from([("quantity".to_owned(), 0.0)]),
                flow: StepFlow::Stop("no_trade_size_zero"),
            });
        }
        ctx.quantity = Some(quantity as u64);
        Ok(StepOutput::go(
            format!(
                "{quantity} units, notional {:.2}, risking {:.2}",
                quantity * plan.entry,
                quantity * per_unit
            ),
            &[
                ("quantity", quantity),
                ("notional", quantity * plan.entry),
                ("risk_amount", quantity * per_unit),
            ],
        ))
    }
}

/// Writes the paper order intent (idempotent: the order id derives from the execution id).
pub struct PaperOrderStep {
    pub orders: Arc<dyn OrderStore>,
}

#[async_trait]
impl Step for PaperOrderStep {
    fn kind(&self) -> StepKind {
        StepKind::PaperOrder
    }
    async fn run(&self, ctx: &mut StepContext) -> Result<StepOutput, StepError> {
        let (Some(plan), Some(quantity)) = (ctx.plan, ctx.quantity) else {
            return Err(StepError::Permanent(
                "paper_order needs the strategy and risk steps before it".into(),
            ));
        };
        let order = PaperOrder {
            order_id: crate::ids::order_id(&ctx.request.execution_id),
            execution_id: ctx.request.execution_id.clone(),
            pipeline_id: ctx.request.pipeline_id.clone(),
            user_id: ctx.request.user_id.clone(),
            ticker: ctx.request.ticker.clone(),
            signal_id: ctx.request.signal_context.signal_id.clone(),
            side: plan.side,
            quantity,
            entry_price: plan.entry,
            stop_price: plan.stop,
            target_price: plan.target,
            mode: "paper".into(),
            created_at: ctx.now,
        };
        let outcome = self
            .orders
            .place(&order)
            .await
            .map_err(|e| StepError::from_port(&e, e.is_retryable()))?;
        let summary = match outcome {
            PlaceOutcome::Created => format!("paper order {} placed", order.order_id),
            PlaceOutcome::AlreadyExists => {
                format!(
                    "paper order {} already placed by an earlier attempt",
                    order.order_id
                )
            }
        };
        ctx.order = Some(order);
        Ok(StepOutput::go(summary, &[("quantity", quantity as f64)]))
    }
}

/// The built-in step implementations, looked up by kind.
pub struct BuiltinSteps {
    steps: Vec<Box<dyn Step>>,
}

impl BuiltinSteps {
    pub fn new(
        market: Arc<dyn MarketData>,
        orders: Arc<dyn OrderStore>,
        default_timeframe: Timeframe,
    ) -> Self {
        BuiltinSteps {
            steps: vec![
                Box::new(MarketSnapshotStep {
                    market,
                    default_timeframe,
                }),
                Box::new(BiasStep),
                Box::new(StrategyStep),
                Box::new(RiskStep),
                Box::new(PaperOrderStep { orders }),
            ],
        }
    }

    pub fn get(&self, kind: StepKind) -> Option<&dyn Step> {
        self.steps
            .iter()
            .find(|s| s.kind() == kind)
            .map(|s| s.as_ref())
    }
}
