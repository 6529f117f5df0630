//! ATR family: volatility (ATR) expanding well above, or contracting well below, its recent
//! average.

use serde::{Deserialize, Serialize};

use crate::indicators;
use crate::vocab::{Bar, Direction};

use super::common::{Fired, Ohlcv, price, scaled, smoothed_lookback, window};
use super::{Detection, Detector};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AtrConfig {
    pub timeperiod: usize,
    pub spike_multiplier: f64,
    pub compression_multiplier: f64,
    pub lookback_for_average: usize,
}

impl Default for AtrConfig {
    fn default() -> Self {
        AtrConfig {
            timeperiod: 14,
            spike_multiplier: 1.5,
            compression_multiplier: 0.7,
            lookback_for_average: 30,
        }
    }
}

/// TA-Lib ATR(14) against Ā, the mean ATR of the 30 candles before this one: ATR crosses above
/// 1.5 × Ā → `atr_volatility_spike`; below 0.7 × Ā → `atr_volatility_compression` (both
/// NEUTRAL; the previous candle's ATR is compared with the same Ā). Confidence 55 + up to 30:
/// a spike by its ratio ATR/Ā beyond 1.5 (full at 2.5), a compression by its ratio below 0.7
/// (full at 0.4).
#[derive(Debug, Clone, Default)]
pub struct AtrDetector {
    pub config: AtrConfig,
}

impl Detector for AtrDetector {
    fn name(&self) -> &'static str {
        "atr_generator"
    }

    fn lookback(&self) -> usize {
        smoothed_lookback(self.config.timeperiod)
            .max(self.config.timeperiod + self.config.lookback_for_average + 1)
    }

    fn signal_types(&self) -> &'static [&'static str] {
        &["atr_volatility_spike", "atr_volatility_compression"]
    }

    fn detect(&self, bars: &[Bar], index: usize) -> Option<Detection> {
        let c = &self.config;
        let w = window(bars, index, self.lookback())?;
        let bar = w.last()?;
        let s = Ohlcv::of(w);
        let atr = indicators::atr(&s.high, &s.low, &s.close, c.timeperiod);
        let n = atr.len();
        let (current, previous) = (atr[n - 1]?, atr.get(n.checked_sub(2)?).copied()??);
        let before = &atr[n.checked_sub(1 + c.lookback_for_average)?..n - 1];
        if before.is_empty() {
            return None;
        }
        let mut sum = 0.0;
        for v in before {
            sum += (*v)?;
        }
        let average = sum / before.len() as f64;
        if average.is_nan() || average <= 0.0 {
            return None;
        }
        let ratio = current / average;
        let (spike, compression) = (
            c.spike_multiplier * average,
            c.compression_multiplier * average,
        );
        let (signal_type, confidence, what, key, pct) = if current > spike && previous <= spike {
            (
                "atr_volatility_spike",
                scaled(55, ratio - c.spike_multiplier, 1.0, 30),
                "rose above",
                "atr_increase_pct",
                (ratio - 1.0) * 100.0,
            )
        } else if current < compression && previous >= compression {
            (
                "atr_volatility_compression",
                scaled(55, c.compression_multiplier - ratio, 0.3, 30),
                "fell below",
                "atr_decrease_pct",
                (1.0 - ratio) * 100.0,
            )
        } else {
            return None;
        };
        let fired = Fired::new(
            self.name(),
            signal_type,
            Direction::Neutral,
            confidence,
            format!(
                "ATR({}) {} {what} {} times its {}-candle average {} at close {}",
                c.timeperiod,
                price(current),
                if signal_type == "atr_volatility_spike" {
                    c.spike_multiplier
                } else {
                    c.compression_multiplier
                },
                c.lookback_for_average,
                price(average),
                price(bar.close)
            ),
        );
        Some(fired.at(
            bar,
            &[
                ("current_atr", current),
                ("average_atr", average),
                (key, pct),
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
    fn atr_fires_on_a_volatility_spike_and_on_the_following_calm() {
        // Candles of range 2 (zig-zag of ±1 with wide wicks), a burst of range-10 candles,
        // then candles of range 0.2: the spike and, later, the compression.
        let mut bars = bars_from_closes(&zigzag(130));
        for (i, bar) in bars.iter_mut().enumerate() {
            let half = match i {
                0..80 => 1.0,
                80..84 => 5.0,
                _ => 0.1,
            };
            bar.open = 100.0;
            bar.close = 100.0;
            bar.high = 100.0 + half;
            bar.low = 100.0 - half;
        }
        let atr = AtrDetector::default();
        let got = fired(&atr, &bars);
        assert_eq!(
            got.iter().map(|f| f.1).collect::<Vec<_>>(),
            ["atr_volatility_spike", "atr_volatility_compression"],
            "{got:?}"
        );
        // The first wide candle lifts ATR from 2 to (2·13 + 10)/14 = 2.57 (< 3 = 1.5 × 2),
        // the second to (2.57·13 + 10)/14 = 3.10.
        assert_eq!(got[0].0, 81);
        let d = atr.detect(&bars, 81).unwrap();
        assert_common(&d, &atr, &bars[81]);
        assert!((d.metadata["average_atr"] - (29.0 * 2.0 + 36.0 / 14.0) / 30.0).abs() < 1e-9);
        assert!(got[1].0 > 84);
    }
}
