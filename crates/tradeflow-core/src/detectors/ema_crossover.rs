//! EMA crossover family: EMA(12) crossing EMA(26).

use serde::{Deserialize, Serialize};

use crate::indicators;
use crate::vocab::{Bar, Direction};

use super::common::{Cross, Fired, Pair, closes, price, scaled, smoothed_lookback, window};
use super::{Detection, Detector};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EmaCrossoverConfig {
    pub ema_fast: usize,
    pub ema_slow: usize,
}

impl Default for EmaCrossoverConfig {
    fn default() -> Self {
        EmaCrossoverConfig {
            ema_fast: 12,
            ema_slow: 26,
        }
    }
}

/// TA-Lib EMA(12) crosses above EMA(26) → `ema_bullish_crossover` (BULLISH); below →
/// `ema_bearish_crossover` (BEARISH), on the crossing candle only. Confidence 60, + 15 when the
/// close is beyond both averages in the cross's direction, + up to 15 when the slow EMA already
/// slopes that way (full at 1 % over 5 candles).
#[derive(Debug, Clone, Default)]
pub struct EmaCrossoverDetector {
    pub config: EmaCrossoverConfig,
}

impl Detector for EmaCrossoverDetector {
    fn name(&self) -> &'static str {
        "ema_crossover_generator"
    }

    fn lookback(&self) -> usize {
        smoothed_lookback(self.config.ema_slow.max(self.config.ema_fast))
    }

    fn signal_types(&self) -> &'static [&'static str] {
        &["ema_bullish_crossover", "ema_bearish_crossover"]
    }

    fn detect(&self, bars: &[Bar], index: usize) -> Option<Detection> {
        let c = &self.config;
        let w = window(bars, index, self.lookback())?;
        let bar = w.last()?;
        let closes = closes(w);
        let fast = Pair::last_two(&indicators::ema(&closes, c.ema_fast))?;
        let slow_line = indicators::ema(&closes, c.ema_slow);
        let slow = Pair::last_two(&slow_line)?;
        let slope_pct = match slow_line.len().checked_sub(6).and_then(|i| slow_line[i]) {
            Some(before) => (slow.current - before) / before * 100.0,
            None => 0.0,
        };
        let (signal_type, direction, verb, beyond, slope) = match fast.cross(slow)? {
            Cross::Up => (
                "ema_bullish_crossover",
                Direction::Bullish,
                "above",
                bar.close > fast.current && bar.close > slow.current,
                slope_pct,
            ),
            Cross::Down => (
                "ema_bearish_crossover",
                Direction::Bearish,
                "below",
                bar.close < fast.current && bar.close < slow.current,
                -slope_pct,
            ),
        };
        let confidence = scaled(60, slope, 1.0, 15).saturating_add(if beyond { 15 } else { 0 });
        let fired = Fired::new(
            self.name(),
            signal_type,
            direction,
            confidence,
            format!(
                "EMA({}) {} crossed {verb} EMA({}) {} at close {}",
                c.ema_fast,
                price(fast.current),
                c.ema_slow,
                price(slow.current),
                price(bar.close)
            ),
        );
        Some(fired.at(
            bar,
            &[
                ("ema_fast", c.ema_fast as f64),
                ("ema_slow", c.ema_slow as f64),
                ("current_fast_ema", fast.current),
                ("current_slow_ema", slow.current),
                ("current_price", bar.close),
            ],
        ))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::super::test_support::*;
    use super::*;

    #[test]
    fn ema_crossover_fires_once_per_cross() {
        // Flat, then up from 260 (fast crosses above slow), then a drop from 300 (below).
        let closes: Vec<f64> = (0..340)
            .map(|i| match i {
                0..260 => 100.0,
                260..300 => 100.0 + f64::from(i - 259) * 0.5,
                _ => 120.0 - f64::from(i - 299),
            })
            .collect();
        let bars = bars_from_closes(&closes);
        let ema = EmaCrossoverDetector::default();
        let got = fired(&ema, &bars);
        assert_eq!(
            got,
            [
                (260, "ema_bullish_crossover", Direction::Bullish),
                (got[1].0, "ema_bearish_crossover", Direction::Bearish)
            ]
        );
        assert!((300..320).contains(&got[1].0), "{got:?}");
        let d = ema.detect(&bars, 260).unwrap();
        assert_common(&d, &ema, &bars[260]);
        assert!(d.metadata["current_fast_ema"] > d.metadata["current_slow_ema"]);
        // Close beyond both averages: + 15; the slow EMA rose 0.04 % over 5 candles: + 1.
        assert_eq!(d.confidence, 76);
    }

    #[test]
    fn ema_crossover_can_fire_from_the_first_candle_after_the_slow_seed() {
        // EMA(26) is defined from index 25: the first cross can be at 26.
        let mut closes = vec![100.0; 26];
        closes.push(103.0);
        let bars = bars_from_closes(&closes);
        assert_eq!(
            fired(&EmaCrossoverDetector::default(), &bars),
            [(26, "ema_bullish_crossover", Direction::Bullish)]
        );
    }
}
