//! EMA 200 crossover family: the close crossing its 200-candle EMA.

use serde::{Deserialize, Serialize};

use crate::indicators;
use crate::vocab::{Bar, Direction};

use super::common::{Fired, Pair, closes, price, scaled, smoothed_lookback, window};
use super::{Detection, Detector};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Ema200Config {
    pub ema_period: usize,
    /// Candles of the volume average the crossing candle's volume is compared with.
    pub volume_period: usize,
}

impl Default for Ema200Config {
    fn default() -> Self {
        Ema200Config {
            ema_period: 200,
            volume_period: 20,
        }
    }
}

/// The close crosses above TA-Lib EMA(200) → `ema_200_bullish_crossover` (BULLISH); below →
/// `ema_200_bearish_crossover` (BEARISH). Confidence 60 + up to 20 for the close's distance
/// beyond the EMA (full at 2 %), + up to 15 for the crossing candle's volume against the
/// average of the 20 before (full at 2×).
#[derive(Debug, Clone, Default)]
pub struct Ema200CrossoverDetector {
    pub config: Ema200Config,
}

impl Detector for Ema200CrossoverDetector {
    fn name(&self) -> &'static str {
        "ema_200_generator"
    }

    fn lookback(&self) -> usize {
        smoothed_lookback(self.config.ema_period).max(self.config.volume_period)
    }

    fn signal_types(&self) -> &'static [&'static str] {
        &["ema_200_bullish_crossover", "ema_200_bearish_crossover"]
    }

    fn detect(&self, bars: &[Bar], index: usize) -> Option<Detection> {
        let c = &self.config;
        let w = window(bars, index, self.lookback())?;
        let (bar, before) = w.split_last()?;
        let ema = Pair::last_two(&indicators::ema(&closes(w), c.ema_period))?;
        let close = Pair {
            previous: before.last()?.close,
            current: bar.close,
        };
        let (signal_type, direction, verb) = if close.crossed_above(ema) {
            ("ema_200_bullish_crossover", Direction::Bullish, "above")
        } else if close.crossed_below(ema) {
            ("ema_200_bearish_crossover", Direction::Bearish, "below")
        } else {
            return None;
        };
        let distance_pct = (bar.close - ema.current).abs() / ema.current * 100.0;
        let ratio = volume_ratio(before, bar, c.volume_period);
        let confidence =
            scaled(60, distance_pct, 2.0, 20).saturating_add(scaled(0, ratio - 1.0, 1.0, 15));
        let fired = Fired::new(
            self.name(),
            signal_type,
            direction,
            confidence,
            format!(
                "Close {} crossed {verb} EMA({}) {} ({distance_pct:.2}% away, volume {ratio:.2}x \
                 average)",
                price(bar.close),
                c.ema_period,
                price(ema.current)
            ),
        );
        Some(fired.at(
            bar,
            &[
                ("ema_period", c.ema_period as f64),
                ("current_ema", ema.current),
                ("distance_pct", distance_pct),
                ("volume_ratio", ratio),
                ("current_price", bar.close),
            ],
        ))
    }
}

/// `bar.volume` over the mean volume of the last `period` candles of `before` (0 when there
/// is no volume history).
pub(super) fn volume_ratio(before: &[Bar], bar: &Bar, period: usize) -> f64 {
    let recent = &before[before.len().saturating_sub(period)..];
    let mean = recent.iter().map(|b| b.volume).sum::<f64>() / recent.len().max(1) as f64;
    if mean > 0.0 && bar.volume.is_finite() {
        bar.volume / mean
    } else {
        0.0
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::super::test_support::*;
    use super::*;

    #[test]
    fn the_close_crossing_the_ema_fires_once_each_way() {
        let closes: Vec<f64> = (0..400)
            .map(|i| match i {
                0..300 => 100.0,
                300..350 => 101.0,
                _ => 99.0,
            })
            .collect();
        let mut bars = bars_from_closes(&closes);
        bars[300].volume = 2_000.0;
        let d200 = Ema200CrossoverDetector::default();
        assert_eq!(
            fired(&d200, &bars),
            [
                (300, "ema_200_bullish_crossover", Direction::Bullish),
                (350, "ema_200_bearish_crossover", Direction::Bearish)
            ]
        );
        let d = d200.detect(&bars, 300).unwrap();
        assert_common(&d, &d200, &bars[300]);
        // 0.99 % above the EMA (100.01): 60 + 10; volume 2× the average: + 15.
        assert!((d.metadata["distance_pct"] - 0.99).abs() < 0.01);
        assert_eq!(d.confidence, 85);
        // EMA(200) is defined from index 199: the first cross can be at 200.
        let mut closes = vec![100.0; 200];
        closes.push(100.5);
        assert_eq!(
            fired(&d200, &bars_from_closes(&closes)),
            [(200, "ema_200_bullish_crossover", Direction::Bullish)]
        );
    }
}
