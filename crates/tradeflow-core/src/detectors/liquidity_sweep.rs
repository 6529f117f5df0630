//! Liquidity sweep family: price running the stops beyond a swing, then closing back inside.

use serde::{Deserialize, Serialize};

use crate::vocab::{Bar, Direction};

use super::common::{Fired, Ohlcv, price, scaled, window};
use super::structure::{Swing, atr, swing_lows, volume_ratio_at};
use super::{Detection, Detector};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LiquiditySweepConfig {
    /// Swings are searched in the last `lookback_periods` candles.
    pub lookback_periods: usize,
    pub swing_strength: usize,
    /// How far beyond the swing the sweep must reach, in multiples of ATR(14) (the original's
    /// 5 "pips" were $0.0005 on equities).
    pub sweep_tolerance_atr: f64,
}

impl Default for LiquiditySweepConfig {
    fn default() -> Self {
        LiquiditySweepConfig {
            lookback_periods: 20,
            swing_strength: 3,
            sweep_tolerance_atr: 0.1,
        }
    }
}

/// Bullish: a swing low of strength 3 from the last 20 candles, untouched since it formed; a
/// sweep candle's low goes more than 0.1 ATR(14) below it, and this candle, a bullish one
/// (close > open), closes back above the swing low — the sweep is this candle itself or the
/// previous one (which then closed at or below the level: the reclaim happens here). →
/// `liquidity_sweep_bullish` (BULLISH). Bearish: the mirror above a swing high →
/// `liquidity_sweep_bearish` (BEARISH). The original checked neither the reclaiming candle's
/// direction nor a sweep and reclaim within one candle. Confidence 65 + up to 15 for the
/// sweep's depth (full at 1 ATR) + up to 15 for the sweep candle's volume (full at 2×).
#[derive(Debug, Clone, Default)]
pub struct LiquiditySweepDetector {
    pub config: LiquiditySweepConfig,
}

/// (swing, sweep candle, depth) of a bullish sweep reclaimed at `t`, on `low`/`close` (for
/// the bearish side the caller negates the prices).
fn sweep(
    swings: &dyn Fn(usize) -> Vec<Swing>,
    low: &[f64],
    close: &[f64],
    t: usize,
    max_age: usize,
    tolerance: f64,
) -> Option<(Swing, usize, f64)> {
    [t, t.checked_sub(1)?].into_iter().find_map(|k| {
        // The swing is confirmed before the sweep candle and untouched up to it.
        let swing = swings(k.checked_sub(1)?)
            .into_iter()
            .rev()
            .find(|s| t - s.index <= max_age)?;
        let untouched = low[swing.index + 1..k].iter().all(|&l| l >= swing.price);
        let swept = low[k] < swing.price - tolerance;
        let reclaimed = close[t] > swing.price && (k == t || close[k] <= swing.price);
        (untouched && swept && reclaimed).then_some((swing, k, swing.price - low[k]))
    })
}

impl Detector for LiquiditySweepDetector {
    fn name(&self) -> &'static str {
        "liquidity_sweep_generator"
    }

    fn lookback(&self) -> usize {
        self.config.lookback_periods + 30
    }

    fn signal_types(&self) -> &'static [&'static str] {
        &["liquidity_sweep_bullish", "liquidity_sweep_bearish"]
    }

    fn detect(&self, bars: &[Bar], index: usize) -> Option<Detection> {
        let c = &self.config;
        let w = window(bars, index, self.lookback())?;
        let t = w.len() - 1;
        let bar = &w[t];
        let s = Ohlcv::of(w);
        let unit = atr(w)?;
        let tolerance = c.sweep_tolerance_atr * unit;
        let strength = c.swing_strength.max(1);
        let neg = |v: &[f64]| v.iter().map(|x| -x).collect::<Vec<f64>>();
        let (neg_high, neg_close) = (neg(&s.high), neg(&s.close));
        let lows = |last: usize| swing_lows(&s.low, strength, last);
        let highs = |last: usize| swing_lows(&neg_high, strength, last);
        let (signal_type, direction, swing, k, depth, level) = if bar.close > bar.open
            && let Some((sw, k, depth)) =
                sweep(&lows, &s.low, &s.close, t, c.lookback_periods, tolerance)
        {
            (
                "liquidity_sweep_bullish",
                Direction::Bullish,
                sw,
                k,
                depth,
                sw.price,
            )
        } else if bar.close < bar.open
            && let Some((sw, k, depth)) = sweep(
                &highs,
                &neg_high,
                &neg_close,
                t,
                c.lookback_periods,
                tolerance,
            )
        {
            (
                "liquidity_sweep_bearish",
                Direction::Bearish,
                sw,
                k,
                depth,
                -sw.price,
            )
        } else {
            return None;
        };
        let ratio = volume_ratio_at(w, k);
        let confidence =
            scaled(65, depth / unit, 1.0, 15).saturating_add(scaled(0, ratio - 1.0, 1.0, 15));
        let fired = Fired::new(
            self.name(),
            signal_type,
            direction,
            confidence,
            format!(
                "Swept the swing {} of {} candles ago by {} and closed back at {}",
                price(level),
                t - swing.index,
                price(depth),
                price(bar.close)
            ),
        );
        Some(fired.at(
            bar,
            &[
                ("swing_level", level),
                (
                    "sweep_extreme",
                    if direction == Direction::Bullish {
                        s.low[k]
                    } else {
                        s.high[k]
                    },
                ),
                ("sweep_depth_atr", depth / unit),
                ("bars_since_swing", (t - swing.index) as f64),
                ("current_price", bar.close),
            ],
        ))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::super::break_of_structure::tests::path;
    use super::super::test_support::*;
    use super::*;

    #[test]
    fn liquidity_sweep_table() {
        let ls = LiquiditySweepDetector::default();
        // 20 candles around 100 (range 1), a swing low at 23 (low 97.5), confirmed at 26;
        // then the given (open, high, low, close) candles from 30.
        let run = |tail: &[(f64, f64, f64, f64)]| -> Vec<(usize, &'static str)> {
            let mut closes = vec![100.0; 20];
            closes.extend([99.0, 98.5, 98.2, 98.0, 98.5, 99.0, 99.5, 99.8, 100.0, 100.0]);
            closes.extend(tail.iter().map(|c| c.3));
            let mut bars = path(&closes);
            for (b, (o, h, l, c)) in bars[30..].iter_mut().zip(tail) {
                (b.open, b.high, b.low, b.close) = (*o, *h, *l, *c);
            }
            fired(&ls, &bars).iter().map(|f| (f.0, f.1)).collect()
        };
        // Sweep and reclaim in one candle.
        assert_eq!(
            run(&[(98.0, 99.5, 96.5, 99.0)]),
            [(30, "liquidity_sweep_bullish")]
        );
        // Sweep on 30 (closing below), reclaim on 31.
        assert_eq!(
            run(&[(99.0, 99.2, 96.5, 97.0), (97.0, 98.5, 96.9, 98.2)]),
            [(31, "liquidity_sweep_bullish")]
        );
        // The reclaiming candle is bearish: none.
        assert_eq!(run(&[(99.5, 99.6, 96.5, 98.0)]), []);
        // Not far enough below (0.05 < 0.1 ATR): none.
        assert_eq!(run(&[(98.0, 99.5, 97.45, 99.0)]), []);
        // Closed below and stayed below: no reclaim.
        assert_eq!(
            run(&[(99.0, 99.2, 96.5, 97.0), (97.0, 97.4, 96.8, 97.2)]),
            []
        );
    }
}
