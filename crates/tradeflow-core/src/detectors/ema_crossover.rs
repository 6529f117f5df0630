//! EMA crossover family: EMA(12) crossing EMA(26).

use crate::indicators;
use crate::vocab::{Bar, Direction};

use super::common::{Cross, Fired, Pair, SMOOTHED_LOOKBACK, closes, confidence, price, window};
use super::{Detection, Detector};

/// EMA(12) crosses above EMA(26) → `ema_bullish_cross` (BULLISH); below →
/// `ema_bearish_cross` (BEARISH). Confidence 65, + 5 when the close is beyond both averages
/// in the direction of the cross.
#[derive(Debug, Clone, Copy, Default)]
pub struct EmaCrossoverDetector;

impl EmaCrossoverDetector {
    pub const FAST: usize = 12;
    pub const SLOW: usize = 26;
    const BASE_CONFIDENCE: u8 = 65;
}

impl Detector for EmaCrossoverDetector {
    fn name(&self) -> &'static str {
        "ema_crossover_generator"
    }

    fn lookback(&self) -> usize {
        SMOOTHED_LOOKBACK
    }

    fn detect(&self, bars: &[Bar], index: usize) -> Option<Detection> {
        let w = window(bars, index, self.lookback())?;
        let bar = w.last()?;
        let closes = closes(w);
        let fast = Pair::last_two(&indicators::ema(&closes, Self::FAST))?;
        let slow = Pair::last_two(&indicators::ema(&closes, Self::SLOW))?;
        let (fast, slow, cross) = (fast.current, slow.current, fast.cross(slow)?);
        let (signal_type, direction, verb, confirmed) = match cross {
            Cross::Up => (
                "ema_bullish_cross",
                Direction::Bullish,
                "above",
                bar.close > fast,
            ),
            Cross::Down => (
                "ema_bearish_cross",
                Direction::Bearish,
                "below",
                bar.close < fast,
            ),
        };
        let fired = Fired {
            generator: self.name(),
            signal_type,
            direction,
            confidence: confidence(Self::BASE_CONFIDENCE, if confirmed { 5.0 } else { 0.0 }, 5),
            reasoning: format!(
                "EMA(12) {} crossed {verb} EMA(26) {} at close {}",
                price(fast),
                price(slow),
                price(bar.close)
            ),
        };
        Some(fired.at(
            bar,
            &[
                ("ema_fast", fast),
                ("ema_slow", slow),
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
    fn ema_crossover_fires_on_steps_up_and_down() {
        let closes: Vec<f64> = (0..320)
            .map(|i| match i {
                0..260 => 100.0,
                260..300 => 110.0,
                _ => 90.0,
            })
            .collect();
        let bars = bars_from_closes(&closes);
        assert_eq!(
            fired(&EmaCrossoverDetector, &bars),
            [
                (260, "ema_bullish_cross", Direction::Bullish),
                (300, "ema_bearish_cross", Direction::Bearish)
            ]
        );
        let d = EmaCrossoverDetector.detect(&bars, 260).unwrap();
        assert_common(&d, &EmaCrossoverDetector, &bars[260]);
        // Both EMAs were exactly 100; one step of 10 moves them by k·10.
        assert!((d.metadata["ema_fast"] - (100.0 + 10.0 * 2.0 / 13.0)).abs() < 1e-9);
        assert!((d.metadata["ema_slow"] - (100.0 + 10.0 * 2.0 / 27.0)).abs() < 1e-9);
        assert_eq!(d.confidence, 70);
    }
}
