//! RSI family: RSI(14) entering the oversold or overbought zone.

use crate::indicators;
use crate::vocab::{Bar, Direction};

use super::common::{Fired, Pair, SMOOTHED_LOOKBACK, closes, confidence, price, window};
use super::{Detection, Detector};

/// RSI(14) crosses below 30 → `rsi_oversold` (BULLISH); crosses above 70 → `rsi_overbought`
/// (BEARISH). Confidence 70 + up to 15 (2 per RSI point beyond the threshold).
#[derive(Debug, Clone, Copy, Default)]
pub struct RsiDetector;

impl RsiDetector {
    pub const PERIOD: usize = 14;
    pub const OVERSOLD: f64 = 30.0;
    pub const OVERBOUGHT: f64 = 70.0;
    const BASE_CONFIDENCE: u8 = 70;
}

impl Detector for RsiDetector {
    fn name(&self) -> &'static str {
        "rsi_generator"
    }

    fn lookback(&self) -> usize {
        SMOOTHED_LOOKBACK
    }

    fn detect(&self, bars: &[Bar], index: usize) -> Option<Detection> {
        let w = window(bars, index, self.lookback())?;
        let bar = w.last()?;
        let rsi = Pair::last_two(&indicators::rsi(&closes(w), Self::PERIOD))?;
        let Pair { previous, current } = rsi;
        let fired = if rsi.crossed_below(Pair::level(Self::OVERSOLD)) {
            Fired {
                generator: self.name(),
                signal_type: "rsi_oversold",
                direction: Direction::Bullish,
                confidence: confidence(Self::BASE_CONFIDENCE, 2.0 * (Self::OVERSOLD - current), 15),
                reasoning: format!(
                    "RSI(14) crossed below 30 (from {previous:.2} to {current:.2}) \
                     at close {}: oversold",
                    price(bar.close)
                ),
            }
        } else if rsi.crossed_above(Pair::level(Self::OVERBOUGHT)) {
            Fired {
                generator: self.name(),
                signal_type: "rsi_overbought",
                direction: Direction::Bearish,
                confidence: confidence(
                    Self::BASE_CONFIDENCE,
                    2.0 * (current - Self::OVERBOUGHT),
                    15,
                ),
                reasoning: format!(
                    "RSI(14) crossed above 70 (from {previous:.2} to {current:.2}) \
                     at close {}: overbought",
                    price(bar.close)
                ),
            }
        } else {
            return None;
        };
        Some(fired.at(
            bar,
            &[
                ("current_rsi", current),
                ("previous_rsi", previous),
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
    fn rsi_fires_once_on_the_cross_below_30_and_above_70() {
        // Steady state of the zig-zag after an up move: avg gain 14/27, avg loss 13/27, so
        // after n straight moves of 1 the RSI is 100·(14/27)·(13/14)^n: 30.88 after 7 drops,
        // 28.67 after 8.
        let mut closes = zigzag(260); // last index 259 is an up move
        for j in 1..=12 {
            closes.push(101.0 - f64::from(j));
        }
        let bars = bars_from_closes(&closes);
        assert_eq!(
            fired(&RsiDetector, &bars),
            [(267, "rsi_oversold", Direction::Bullish)]
        );
        let d = RsiDetector.detect(&bars, 267).unwrap();
        assert_common(&d, &RsiDetector, &bars[267]);
        let expected = 100.0 * (14.0 / 27.0) * (13.0f64 / 14.0).powi(8);
        assert!((d.metadata["current_rsi"] - expected).abs() < 1e-6);
        assert!(d.metadata["previous_rsi"] >= 30.0);
        assert!(d.reasoning.contains("crossed below 30"), "{}", d.reasoning);
        assert!(RsiDetector.detect(&bars, 268).is_none(), "not re-emitted");

        // Mirror image: after a down move the averages are swapped, 8 rises cross 70.
        let mut closes = zigzag(261); // last index 260 is a down move
        for j in 1..=12 {
            closes.push(100.0 + f64::from(j));
        }
        let bars = bars_from_closes(&closes);
        assert_eq!(
            fired(&RsiDetector, &bars),
            [(268, "rsi_overbought", Direction::Bearish)]
        );
        let d = RsiDetector.detect(&bars, 268).unwrap();
        assert!((d.metadata["current_rsi"] - (100.0 - expected)).abs() < 1e-6);
    }
}
