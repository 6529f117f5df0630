//! Momentum divergence family: price making a lower low (higher high) while RSI (or the MACD
//! line) makes a higher low (lower high) at the same pivots.

use serde::{Deserialize, Serialize};

use crate::indicators;
use crate::vocab::{Bar, Direction};

use super::common::{Fired, Ohlcv, closes, price, scaled, smoothed_lookback, window};
use super::structure::{swing_highs, swing_lows};
use super::{Detection, Detector};

/// The oscillator the divergence is read on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DivergenceIndicator {
    #[default]
    Rsi,
    Macd,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MomentumDivergenceConfig {
    pub indicator: DivergenceIndicator,
    pub rsi_period: usize,
    /// The two pivots are at most this many candles apart.
    pub lookback_periods: usize,
    /// Pivot strength: candles on each side.
    pub pivot_window: usize,
}

impl Default for MomentumDivergenceConfig {
    fn default() -> Self {
        MomentumDivergenceConfig {
            indicator: DivergenceIndicator::Rsi,
            rsi_period: 14,
            lookback_periods: 14,
            pivot_window: 2,
        }
    }
}

/// Pivots of strength 2 on the candles' lows (highs), the indicator read at the same candles
/// (TA-Lib RSI(14), or the MACD(12,26,9) line). On the candle that confirms a new pivot low P2
/// (2 candles after it): the previous pivot low P1 is at most 14 candles before it, price made a
/// lower low (low(P2) < low(P1)) and the indicator a higher low (I(P2) > I(P1)) →
/// `rsi_bullish_divergence` (BULLISH); pivot highs with a higher high and a lower indicator high
/// → `rsi_bearish_divergence` (BEARISH) (`macd_*_divergence` in MACD mode). Unlike the
/// original, the price and indicator pivots are the same candles, highs and lows are used
/// instead of closes, and each divergence is reported once. Confidence 60 + up to 20 for the
/// indicator's disagreement (RSI: full at 10 points; MACD: full at 0.5 % of the price) + 10 when
/// the first pivot was in the RSI's extreme zone (below 30 / above 70).
#[derive(Debug, Clone, Default)]
pub struct MomentumDivergenceDetector {
    pub config: MomentumDivergenceConfig,
}

impl Detector for MomentumDivergenceDetector {
    fn name(&self) -> &'static str {
        match self.config.indicator {
            DivergenceIndicator::Rsi => "rsi_divergence_generator",
            DivergenceIndicator::Macd => "macd_divergence_generator",
        }
    }

    fn lookback(&self) -> usize {
        smoothed_lookback(self.config.rsi_period.max(35))
    }

    fn signal_types(&self) -> &'static [&'static str] {
        match self.config.indicator {
            DivergenceIndicator::Rsi => &["rsi_bullish_divergence", "rsi_bearish_divergence"],
            DivergenceIndicator::Macd => &["macd_bullish_divergence", "macd_bearish_divergence"],
        }
    }

    fn detect(&self, bars: &[Bar], index: usize) -> Option<Detection> {
        let c = &self.config;
        let w = window(bars, index, self.lookback())?;
        let t = w.len() - 1;
        let bar = &w[t];
        let s = Ohlcv::of(w);
        let strength = c.pivot_window.max(1);
        let p2_index = t.checked_sub(strength)?;
        let ind = match c.indicator {
            DivergenceIndicator::Rsi => indicators::rsi(&closes(w), c.rsi_period),
            DivergenceIndicator::Macd => indicators::macd(&closes(w), 12, 26, 9).macd,
        };
        // The pivot confirmed by this candle and the one before it, both with an indicator value.
        let pair = |pivots: Vec<super::structure::Swing>| {
            let (p1, p2) = match pivots.as_slice() {
                [.., p1, p2] if p2.index == p2_index => (*p1, *p2),
                _ => return None,
            };
            if p2.index - p1.index > c.lookback_periods {
                return None;
            }
            Some((p1, p2, ind[p1.index]?, ind[p2.index]?))
        };
        let (signal_type, direction, p1, p2, i1, i2) = if let Some((p1, p2, i1, i2)) =
            pair(swing_lows(&s.low, strength, t))
                .filter(|(p1, p2, i1, i2)| p2.price < p1.price && i2 > i1)
        {
            let kind = match c.indicator {
                DivergenceIndicator::Rsi => "rsi_bullish_divergence",
                DivergenceIndicator::Macd => "macd_bullish_divergence",
            };
            (kind, Direction::Bullish, p1, p2, i1, i2)
        } else if let Some((p1, p2, i1, i2)) = pair(swing_highs(&s.high, strength, t))
            .filter(|(p1, p2, i1, i2)| p2.price > p1.price && i2 < i1)
        {
            let kind = match c.indicator {
                DivergenceIndicator::Rsi => "rsi_bearish_divergence",
                DivergenceIndicator::Macd => "macd_bearish_divergence",
            };
            (kind, Direction::Bearish, p1, p2, i1, i2)
        } else {
            return None;
        };
        let (disagreement, full, extreme) = match c.indicator {
            DivergenceIndicator::Rsi => (
                (i2 - i1).abs(),
                10.0,
                if direction == Direction::Bullish {
                    i1 < 30.0
                } else {
                    i1 > 70.0
                },
            ),
            DivergenceIndicator::Macd => ((i2 - i1).abs() / bar.close * 100.0, 0.5, false),
        };
        let confidence =
            scaled(60, disagreement, full, 20).saturating_add(if extreme { 10 } else { 0 });
        let fired = Fired::new(
            self.name(),
            signal_type,
            direction,
            confidence,
            format!(
                "Price pivots {} → {} while {} went {i1:.2} → {i2:.2} ({} candles apart), close {}",
                price(p1.price),
                price(p2.price),
                match c.indicator {
                    DivergenceIndicator::Rsi => "RSI",
                    DivergenceIndicator::Macd => "MACD",
                },
                p2.index - p1.index,
                price(bar.close)
            ),
        );
        Some(fired.at(
            bar,
            &[
                ("price_pivot_1", p1.price),
                ("price_pivot_2", p2.price),
                ("indicator_pivot_1", i1),
                ("indicator_pivot_2", i2),
                ("bars_between", (p2.index - p1.index) as f64),
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
    fn divergence_table() {
        let md = MomentumDivergenceDetector::default();
        let run = |closes: &[f64]| -> Vec<(usize, &'static str)> {
            fired(&md, &path(closes))
                .iter()
                .map(|f| (f.0, f.1))
                .collect()
        };
        // A hard fall to a low at 30 (90), a bounce, then a slow drift to a slightly lower low
        // at 38 (89.5): price lower low, RSI higher low → bullish, confirmed at 40.
        let mut closes = vec![100.0; 20];
        closes.extend((1..=10).map(|i| 100.0 - f64::from(i)));
        closes.extend([
            92.0, 93.0, 92.8, 92.4, 91.8, 91.0, 90.4, 89.9, 89.5, 90.5, 91.5, 92.0,
        ]);
        assert_eq!(run(&closes), [(40, "rsi_bullish_divergence")]);
        // The same with a higher second low: no divergence.
        let mut higher = closes.clone();
        higher[38] = 90.6;
        higher[37] = 90.8;
        assert_eq!(run(&higher), []);
        // Mirror: bearish.
        let mirror: Vec<f64> = closes.iter().map(|c| 200.0 - c).collect();
        assert_eq!(run(&mirror), [(40, "rsi_bearish_divergence")]);
        let bars = path(&closes);
        let d = md.detect(&bars, 40).unwrap();
        assert_common(&d, &md, &bars[40]);
        assert!(d.metadata["indicator_pivot_2"] > d.metadata["indicator_pivot_1"]);
        assert_eq!(d.metadata["price_pivot_1"], 89.5);
    }
}
