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
use crate::ports::OrderStore;
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

/// Prepares the paper order. The executor writes it with the run's end, in one write with the
/// final record and the lease release (the order id derives from the execution id, so an order
/// an earlier attempt placed is found and recorded instead).
pub struct PaperOrderStep;

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
        let summary = format!(
            "paper order {} placed with the run's result",
            order.order_id
        );
        let outputs = [
            ("quantity", order.quantity as f64),
            ("entry_price", order.entry_price),
            ("stop_price", order.stop_price),
            ("target_price", order.target_price),
        ];
        ctx.order = Some(order);
        Ok(StepOutput::go(summary, &outputs))
    }
}

/// The built-in step implementations, looked up by kind.
pub struct BuiltinSteps {
    steps: Vec<Box<dyn Step>>,
    orders: Arc<dyn OrderStore>,
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
                Box::new(PaperOrderStep),
            ],
            orders,
        }
    }

    /// The orders table (the executor reads an earlier attempt's order back from it).
    pub fn orders(&self) -> &dyn OrderStore {
        self.orders.as_ref()
    }

    pub fn get(&self, kind: StepKind) -> Option<&dyn Step> {
        self.steps
            .iter()
            .find(|s| s.kind() == kind)
            .map(|s| s.as_ref())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    //! Each rule of the built-in steps as a table, with its edges. Prices are chosen so every
    //! figure is exact in `f64` (constant true range 2 → ATR 14 of exactly 2).

    use std::sync::Mutex;

    use serde_json::json;

    use super::*;
    use crate::execution::SignalContext;
    use crate::market::MarketDataError;
    use crate::pipeline::RiskSettings;
    use crate::signal::SignalMetadata;
    use crate::vocab::Ticker;

    const NOW: i64 = 1_750_000_000;

    /// Candles with these closes, `open = close`, high and low `spread` away.
    fn bars(closes: &[f64], spread: f64) -> Vec<Bar> {
        closes
            .iter()
            .enumerate()
            .map(|(i, &close)| Bar {
                time: 1_000_000 + 300 * i as i64,
                open: close,
                high: close + spread,
                low: close - spread,
                close,
                volume: 1_000.0,
            })
            .collect()
    }

    fn flat(n: usize, spread: f64) -> Vec<Bar> {
        bars(&vec![100.0; n], spread)
    }

    fn ctx(signal: Direction) -> StepContext {
        let ticker = Ticker::parse("AAPL").unwrap();
        let signal_id = "sig-test".to_owned();
        let pipeline: Pipeline = serde_json::from_value(json!({
            "pipeline_id": "p1", "user_id": "u1", "name": "p1", "is_active": true,
            "trigger_mode": "signal", "tickers": ["AAPL"]
        }))
        .unwrap();
        StepContext {
            request: ExecutionRequest {
                execution_id: crate::ids::execution_id("p1", "AAPL", &signal_id),
                pipeline_id: "p1".into(),
                user_id: "u1".into(),
                ticker: ticker.clone(),
                signal_context: SignalContext {
                    signal_id,
                    signal_type: "rsi_oversold".into(),
                    source: "rsi_generator".into(),
                    timestamp: NOW - 60,
                    tickers: vec![ticker],
                    confidence: 80.0,
                    signal,
                    metadata: SignalMetadata {
                        timeframe: Some(Timeframe::M15),
                        values: Default::default(),
                    },
                },
                lease_expires_at: NOW + 720,
                enqueued_at_ms: NOW * 1000,
            },
            pipeline,
            now: NOW,
            bars: Vec::new(),
            bias: None,
            plan: None,
            quantity: None,
            order: None,
        }
    }

    fn permanent(result: Result<StepOutput, StepError>) -> String {
        match result {
            Err(StepError::Permanent(message)) => message,
            other => panic!("expected a permanent error, got {other:?}"),
        }
    }

    // ---- market snapshot -------------------------------------------------------------------

    enum Answer {
        Bars(usize),
        Io,
        UnknownTicker,
    }

    /// A market that answers as told and records what it was asked.
    struct FixedMarket {
        answer: Answer,
        asked: Mutex<Vec<(String, Timeframe, i64, usize)>>,
    }

    #[async_trait]
    impl MarketData for FixedMarket {
        async fn closed_bars(
            &self,
            ticker: &str,
            timeframe: Timeframe,
            now: i64,
            count: usize,
        ) -> Result<Vec<Bar>, MarketDataError> {
            self.asked
                .lock()
                .unwrap()
                .push((ticker.to_owned(), timeframe, now, count));
            match self.answer {
                Answer::Bars(n) => Ok(flat(n.min(count), 1.0)),
                Answer::Io => Err(MarketDataError::Io {
                    path: "feed".into(),
                    source: std::io::Error::other("down"),
                }),
                Answer::UnknownTicker => Err(MarketDataError::UnknownTicker {
                    ticker: ticker.to_owned(),
                    timeframe,
                }),
            }
        }

        async fn closed_bars_after(
            &self,
            _ticker: &str,
            _timeframe: Timeframe,
            _now: i64,
            _after: i64,
            _history: usize,
            _count: usize,
        ) -> Result<Vec<Bar>, MarketDataError> {
            unreachable!("the steps read the latest candles only")
        }
    }

    #[tokio::test]
    async fn the_snapshot_reads_the_signals_series_and_needs_enough_candles() {
        // (case, candles the market has, signal's timeframe, expected candles or error kind)
        #[rustfmt::skip]
        type Case = (&'static str, Answer, Option<Timeframe>, Result<usize, &'static str>);
        #[rustfmt::skip]
        let table: [Case; 6] = [
            ("plenty",                    Answer::Bars(500),     Some(Timeframe::M15), Ok(100)),
            ("exactly the minimum",       Answer::Bars(51),      Some(Timeframe::M15), Ok(51)),
            ("one short",                 Answer::Bars(50),      Some(Timeframe::M15), Err("permanent")),
            ("no timeframe: the default", Answer::Bars(100),     None,                 Ok(100)),
            ("I/O failure",               Answer::Io,            Some(Timeframe::M15), Err("transient")),
            ("unknown ticker",            Answer::UnknownTicker, Some(Timeframe::M15), Err("permanent")),
        ];
        for (case, answer, timeframe, expected) in table {
            let market = Arc::new(FixedMarket {
                answer,
                asked: Mutex::new(Vec::new()),
            });
            let step = MarketSnapshotStep {
                market: market.clone(),
                default_timeframe: Timeframe::H1,
            };
            let mut c = ctx(Direction::Bullish);
            c.request.signal_context.metadata.timeframe = timeframe;
            let result = step.run(&mut c).await;
            assert_eq!(
                market.asked.lock().unwrap().as_slice(),
                [(
                    "AAPL".to_owned(),
                    timeframe.unwrap_or(Timeframe::H1),
                    NOW - 60,
                    SNAPSHOT_BARS
                )],
                "{case}: asks for the signal's ticker and timeframe up to the signal's time"
            );
            match (expected, result) {
                (Ok(n), Ok(out)) => {
                    assert_eq!(c.bars.len(), n, "{case}");
                    assert_eq!(out.flow, StepFlow::Continue, "{case}");
                    assert_eq!(out.outputs["candles"], n as f64, "{case}");
                    assert_eq!(out.outputs["last_close"], 100.0, "{case}");
                }
                (Err("transient"), Err(StepError::Transient(_))) => {}
                (Err("permanent"), Err(StepError::Permanent(_))) => {
                    assert!(c.bars.is_empty(), "{case}: no partial snapshot kept");
                }
                (expected, got) => panic!("{case}: expected {expected:?}, got {got:?}"),
            }
        }
    }

    // ---- bias ------------------------------------------------------------------------------

    #[tokio::test]
    async fn bias_is_bullish_or_bearish_only_when_close_and_both_averages_line_up() {
        let rising: Vec<f64> = (1..=60).map(f64::from).collect();
        let falling: Vec<f64> = rising.iter().rev().copied().collect();
        let then = |series: &[f64], last: f64| {
            let mut closes = series[..59].to_vec();
            closes.push(last);
            closes
        };
        // After 1..=59 the averages with the last close c are SMA 20 = (950 + c) / 20 and
        // SMA 50 = (1715 + c) / 50; after 60..=2, (209 + c) / 20 and (1325 + c) / 50.
        #[rustfmt::skip]
        let table: [(&str, Vec<f64>, Direction); 9] = [
            ("rising: close > SMA 20 > SMA 50",        rising.clone(),         Direction::Bullish),
            ("falling: close < SMA 20 < SMA 50",       falling.clone(),        Direction::Bearish),
            ("flat: ties are not a trend",             vec![100.0; 60],        Direction::Neutral),
            ("uptrend, close between the averages",    then(&rising, 40.0),    Direction::Neutral),
            ("uptrend, close below both",              then(&rising, 1.0),     Direction::Neutral),
            ("downtrend, close between the averages",  then(&falling, 15.0),   Direction::Neutral),
            ("downtrend, close above both",            then(&falling, 200.0),  Direction::Neutral),
            ("exactly 50 candles",                     rising[10..].to_vec(),  Direction::Bullish),
            ("exactly 50 candles, falling",            falling[..50].to_vec(), Direction::Bearish),
        ];
        for (case, closes, expected) in table {
            let mut c = ctx(Direction::Bullish);
            c.bars = bars(&closes, 1.0);
            let out = BiasStep.run(&mut c).await.unwrap();
            assert_eq!(c.bias, Some(expected), "{case}: {}", out.summary);
            assert_eq!(out.flow, StepFlow::Continue, "{case}");
            assert_eq!(out.outputs["close"], *closes.last().unwrap(), "{case}");
        }
        // The averages it reports: closes 1..=60 → SMA 20 = mean(41..=60), SMA 50 = mean(11..=60).
        let mut c = ctx(Direction::Bullish);
        c.bars = bars(&rising, 1.0);
        let out = BiasStep.run(&mut c).await.unwrap();
        assert_eq!((out.outputs["sma_20"], out.outputs["sma_50"]), (50.5, 35.5));
    }

    #[tokio::test]
    async fn bias_needs_fifty_candles() {
        for n in [0, 1, 49] {
            let mut c = ctx(Direction::Bullish);
            c.bars = flat(n, 1.0);
            assert!(
                permanent(BiasStep.run(&mut c).await).contains("at least 50"),
                "{n} candles"
            );
            assert_eq!(c.bias, None);
        }
    }

    // ---- strategy --------------------------------------------------------------------------

    #[tokio::test]
    async fn the_plan_follows_the_signal_and_halves_the_size_against_the_trend() {
        use Direction::{Bearish, Bullish, Neutral};
        // (signal, bias) → (side, stop, target, size factor); entry 100, ATR 2.
        let table = [
            (Bullish, None, OrderSide::Buy, 96.0, 106.0, 1.0),
            (Bullish, Some(Bullish), OrderSide::Buy, 96.0, 106.0, 1.0),
            (Bullish, Some(Neutral), OrderSide::Buy, 96.0, 106.0, 1.0),
            (Bullish, Some(Bearish), OrderSide::Buy, 96.0, 106.0, 0.5),
            (Bearish, None, OrderSide::Sell, 104.0, 94.0, 1.0),
            (Bearish, Some(Bearish), OrderSide::Sell, 104.0, 94.0, 1.0),
            (Bearish, Some(Neutral), OrderSide::Sell, 104.0, 94.0, 1.0),
            (Bearish, Some(Bullish), OrderSide::Sell, 104.0, 94.0, 0.5),
        ];
        for (signal, bias, side, stop, target, size_factor) in table {
            let case = format!("{signal:?} signal, bias {bias:?}");
            let mut c = ctx(signal);
            c.bars = flat(60, 1.0);
            c.bias = bias;
            let out = StrategyStep.run(&mut c).await.unwrap();
            assert_eq!(out.flow, StepFlow::Continue, "{case}");
            assert_eq!(
                c.plan,
                Some(TradePlan {
                    side,
                    entry: 100.0,
                    stop,
                    target,
                    size_factor,
                }),
                "{case}"
            );
            assert_eq!(out.outputs["atr"], 2.0, "{case}");
            assert_eq!(out.outputs["size_factor"], size_factor, "{case}");
            assert_eq!(
                out.summary.contains("half size against the trend"),
                size_factor == 0.5,
                "{case}: {}",
                out.summary
            );
        }
    }

    #[tokio::test]
    async fn no_trade_on_a_neutral_signal_or_without_volatility() {
        for bias in [
            None,
            Some(Direction::Bullish),
            Some(Direction::Bearish),
            Some(Direction::Neutral),
        ] {
            let mut c = ctx(Direction::Neutral);
            c.bars = flat(60, 1.0);
            c.bias = bias;
            let out = StrategyStep.run(&mut c).await.unwrap();
            assert_eq!(
                out.flow,
                StepFlow::Stop("no_trade_neutral_signal"),
                "{bias:?}"
            );
            assert_eq!(c.plan, None);
        }
        for signal in [Direction::Bullish, Direction::Bearish] {
            let mut c = ctx(signal);
            c.bars = flat(60, 0.0);
            let out = StrategyStep.run(&mut c).await.unwrap();
            assert_eq!(
                out.flow,
                StepFlow::Stop("no_trade_no_volatility"),
                "{signal:?}"
            );
            assert_eq!(c.plan, None);
        }
    }

    #[tokio::test]
    async fn the_strategy_needs_fifteen_candles_for_atr_14() {
        let mut c = ctx(Direction::Bullish);
        c.bars = flat(14, 1.0);
        assert!(permanent(StrategyStep.run(&mut c).await).contains("ATR 14"));
        c.bars = flat(15, 1.0);
        assert_eq!(
            StrategyStep.run(&mut c).await.unwrap().flow,
            StepFlow::Continue
        );
    }

    // ---- risk ------------------------------------------------------------------------------

    #[tokio::test]
    async fn the_size_risks_a_fraction_of_equity_capped_by_the_largest_position() {
        // (case, equity, risk per trade, max position fraction, entry, stop, size factor,
        //  expected whole units; 0 = no trade)
        type Case = (&'static str, f64, f64, f64, f64, f64, f64, u64);
        #[rustfmt::skip]
        let table: [Case; 14] = [
            ("risk binds: 1000 / 4",                 100_000.0, 0.01, 0.5,    100.0,  96.0, 1.0,  250),
            ("cap binds: 20 000 / 100",              100_000.0, 0.01, 0.2,    100.0,  96.0, 1.0,  200),
            ("risk equals the cap",                  100_000.0, 0.01, 0.25,   100.0,  96.0, 1.0,  250),
            ("sell: the distance is absolute",       100_000.0, 0.01, 0.5,    100.0, 104.0, 1.0,  250),
            ("counter-trend: half the risk",         100_000.0, 0.01, 0.5,    100.0,  96.0, 0.5,  125),
            ("counter-trend: the cap is not halved", 100_000.0, 0.01, 0.1,    100.0,  96.0, 0.5,  100),
            ("rounds down: 333.33",                  100_000.0, 0.01, 1.0,    100.0,  97.0, 1.0,  333),
            ("fractional prices: 200 / 0.15",         10_000.0, 0.02, 0.5,      2.5,  2.35, 1.0, 1333),
            ("exactly one unit",                         400.0, 0.01, 1.0,    100.0,  96.0, 1.0,    1),
            ("1.5 units round down to 1",                600.0, 0.01, 1.0,    100.0,  96.0, 1.0,    1),
            ("half of 1.5 rounds to zero",               600.0, 0.01, 1.0,    100.0,  96.0, 0.5,    0),
            ("risk rounds to zero: 0.75",                300.0, 0.01, 1.0,    100.0,  96.0, 1.0,    0),
            ("cap rounds to zero: 0.5",              100_000.0, 0.01, 0.0005, 100.0,  96.0, 1.0,    0),
            ("no equity",                                  0.0, 0.01, 0.2,    100.0,  96.0, 1.0,    0),
        ];
        for (case, equity, risk, cap, entry, stop, size_factor, expected) in table {
            let mut c = ctx(Direction::Bullish);
            c.pipeline.risk = RiskSettings {
                account_equity: equity,
                risk_per_trade: risk,
                max_position_fraction: cap,
            };
            c.plan = Some(TradePlan {
                side: if stop < entry {
                    OrderSide::Buy
                } else {
                    OrderSide::Sell
                },
                entry,
                stop,
                target: entry,
                size_factor,
            });
            let out = RiskStep.run(&mut c).await.unwrap();
            assert_eq!(out.outputs["quantity"], expected as f64, "{case}");
            if expected == 0 {
                assert_eq!(out.flow, StepFlow::Stop("no_trade_size_zero"), "{case}");
                assert_eq!(c.quantity, None, "{case}");
            } else {
                assert_eq!(out.flow, StepFlow::Continue, "{case}");
                assert_eq!(c.quantity, Some(expected), "{case}");
                let q = expected as f64;
                assert_eq!(out.outputs["notional"], q * entry, "{case}");
                assert_eq!(
                    out.outputs["risk_amount"],
                    q * (entry - stop).abs(),
                    "{case}"
                );
                assert!(q * entry <= equity * cap, "{case}: within the cap");
            }
        }
    }

    #[tokio::test]
    async fn risk_needs_a_plan() {
        let mut c = ctx(Direction::Bullish);
        assert!(permanent(RiskStep.run(&mut c).await).contains("strategy step"));
        assert_eq!(c.quantity, None);
    }

    // ---- paper order -----------------------------------------------------------------------

    fn planned(side: OrderSide, quantity: Option<u64>) -> StepContext {
        let mut c = ctx(Direction::Bullish);
        c.plan = Some(TradePlan {
            side,
            entry: 100.0,
            stop: 96.0,
            target: 106.0,
            size_factor: 1.0,
        });
        c.quantity = quantity;
        c
    }

    /// The step prepares the order (the executor writes it with the run's end): its id derives
    /// from the execution, so every attempt of one execution prepares the same order id.
    #[tokio::test]
    async fn the_order_is_prepared_with_an_id_derived_from_the_execution() {
        let step = PaperOrderStep;
        let mut c = planned(OrderSide::Buy, Some(7));
        let first = step.run(&mut c).await.unwrap();
        assert!(first.summary.contains("placed"), "{}", first.summary);
        let order = c.order.clone().unwrap();
        assert_eq!(
            order,
            PaperOrder {
                order_id: crate::ids::order_id(&c.request.execution_id),
                execution_id: c.request.execution_id.clone(),
                pipeline_id: "p1".into(),
                user_id: "u1".into(),
                ticker: Ticker::parse("AAPL").unwrap(),
                signal_id: "sig-test".into(),
                side: OrderSide::Buy,
                quantity: 7,
                entry_price: 100.0,
                stop_price: 96.0,
                target_price: 106.0,
                mode: "paper".into(),
                created_at: NOW,
            }
        );
        let mut again = planned(OrderSide::Buy, Some(7));
        step.run(&mut again).await.unwrap();
        assert_eq!(again.order.unwrap().order_id, order.order_id);
    }

    #[tokio::test]
    async fn the_order_step_needs_a_size() {
        let step = PaperOrderStep;
        for mut c in [planned(OrderSide::Sell, None), ctx(Direction::Bearish)] {
            assert!(permanent(step.run(&mut c).await).contains("strategy and risk"));
            assert!(c.order.is_none());
        }
    }
}
