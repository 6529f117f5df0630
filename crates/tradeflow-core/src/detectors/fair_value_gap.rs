//! Fair value gap family: a three-candle imbalance (the third candle's range does not overlap
//! the first's) left by a displacement candle.

use serde::{Deserialize, Serialize};

use crate::vocab::{Bar, Direction};

use super::common::{Fired, price, scaled, window};
use super::structure::{atr, volume_ratio_at};
use super::{Detection, Detector};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FairValueGapConfig {
    /// Minimum gap in multiples of ATR(14) (the original's 10 "pips" were $0.001 on equities).
    pub min_gap_atr: f64,
}

impl Default for FairValueGapConfig {
    fn default() -> Self {
        FairValueGapConfig { min_gap_atr: 0.1 }
    }
}

/// On the candle that completes it: the low of this candle above the high of the candle two
/// before, by at least 0.1 ATR(14), with a bullish middle candle (close > open) →
/// `fvg_bullish` (BULLISH); the high below the low two before, with a bearish middle candle →
/// `fvg_bearish` (BEARISH). Each gap is reported once, on its completing closed candle.
/// Confidence 60 + up to 25 for the gap's size (full at 1 ATR) + up to 10 for the middle
/// candle's volume (full at 2× the 20 before).
#[derive(Debug, Clone, Default)]
pub struct FairValueGapDetector {
    pub config: FairValueGapConfig,
}

impl Detector for FairValueGapDetector {
    fn name(&self) -> &'static str {
        "fvg_generator"
    }

    fn lookback(&self) -> usize {
        40
    }

    fn signal_types(&self) -> &'static [&'static str] {
        &["fvg_bullish", "fvg_bearish"]
    }

    fn detect(&self, bars: &[Bar], index: usize) -> Option<Detection> {
        let w = window(bars, index, self.lookback())?;
        let t = w.len().checked_sub(1)?;
        let (first, middle, bar) = (w.get(t.checked_sub(2)?)?, &w[t - 1], &w[t]);
        let (signal_type, direction, gap_low, gap_high) =
            if bar.low > first.high && middle.close > middle.open {
                ("fvg_bullish", Direction::Bullish, first.high, bar.low)
            } else if bar.high < first.low && middle.close < middle.open {
                ("fvg_bearish", Direction::Bearish, bar.high, first.low)
            } else {
                return None;
            };
        let unit = atr(w)?;
        let gap = gap_high - gap_low;
        if gap < self.config.min_gap_atr * unit {
            return None;
        }
        let ratio = volume_ratio_at(w, t - 1);
        let confidence =
            scaled(60, gap / unit, 1.0, 25).saturating_add(scaled(0, ratio - 1.0, 1.0, 10));
        let fired = Fired::new(
            self.name(),
            signal_type,
            direction,
            confidence,
            format!(
                "Fair value gap {} - {} ({:.2} ATR) left by the candle before, close {}",
                price(gap_low),
                price(gap_high),
                gap / unit,
                price(bar.close)
            ),
        );
        Some(fired.at(
            bar,
            &[
                ("gap_low", gap_low),
                ("gap_high", gap_high),
                ("gap_atr", gap / unit),
                ("middle_candle_time", middle.time as f64),
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
    fn fair_value_gap_table() {
        let fvg = FairValueGapDetector::default();
        // 20 quiet candles (range 1, ATR 1), then three candles (open, high, low, close).
        let run = |c: [(f64, f64, f64, f64); 3]| -> Vec<(usize, &'static str)> {
            let mut bars = path(&[100.0; 23]);
            for (b, (o, h, l, cl)) in bars[20..].iter_mut().zip(c) {
                (b.open, b.high, b.low, b.close) = (o, h, l, cl);
            }
            fired(&fvg, &bars).iter().map(|f| (f.0, f.1)).collect()
        };
        let up = [
            (100.0, 100.5, 99.5, 100.0),
            (100.2, 103.0, 100.0, 102.8),
            (102.8, 103.5, 101.0, 103.2),
        ];
        assert_eq!(run(up), [(22, "fvg_bullish")], "gap 100.5 - 101");
        let mut bearish_middle = up;
        bearish_middle[1] = (102.8, 103.0, 100.0, 100.2);
        assert_eq!(
            run(bearish_middle),
            [],
            "the middle candle must be a displacement up"
        );
        let mut overlap = up;
        overlap[2].2 = 100.5;
        assert_eq!(run(overlap), [], "low = first high: no gap");
        let mut tiny = up;
        tiny[2].2 = 100.55;
        assert_eq!(run(tiny), [], "gap 0.05 < 0.1 ATR");
        let down = up.map(|(o, h, l, c)| (200.0 - o, 200.0 - l, 200.0 - h, 200.0 - c));
        assert_eq!(run(down), [(22, "fvg_bearish")]);
        let mut bars = path(&[100.0; 23]);
        for (b, (o, h, l, cl)) in bars[20..].iter_mut().zip(up) {
            (b.open, b.high, b.low, b.close) = (o, h, l, cl);
        }
        let d = fvg.detect(&bars, 22).unwrap();
        assert_common(&d, &fvg, &bars[22]);
        assert_eq!(
            (d.metadata["gap_low"], d.metadata["gap_high"]),
            (100.5, 101.0)
        );
    }
}
