//! Golden / death cross family: SMA(50) crossing SMA(200).

use crate::indicators;
use crate::vocab::{Bar, Direction};

use super::common::{Cross, Fired, Pair, closes, confidence, price, window};
use super::{Detection, Detector};

/// SMA(50) crosses above SMA(200) → `golden_cross` (BULLISH); below → `death_cross`
/// (BEARISH). Confidence 80 + up to 5 (5 per % of spread between the averages).
#[derive(Debug, Clone, Copy, Default)]
pub struct GoldenCrossDetector;

impl GoldenCrossDetector {
    pub const SHORT: usize = 50;
    pub const LONG: usize = 200;
    const BASE_CONFIDENCE: u8 = 80;
}

impl Detector for GoldenCrossDetector {
    fn name(&self) -> &'static str {
        "golden_cross_generator"
    }

    fn lookback(&self) -> usize {
        Self::LONG
    }

    fn detect(&self, bars: &[Bar], index: usize) -> Option<Detection> {
        let w = window(bars, index, self.lookback())?;
        let bar = w.last()?;
        let closes = closes(w);
        let short = Pair::last_two(&indicators::sma(&closes, Self::SHORT))?;
        let long = Pair::last_two(&indicators::sma(&closes, Self::LONG))?;
        let (short, long, cross) = (short.current, long.current, short.cross(long)?);
        let spread_pct = (short - long).abs() / long * 100.0;
        let (signal_type, direction, verb) = match cross {
            Cross::Up => ("golden_cross", Direction::Bullish, "above"),
            Cross::Down => ("death_cross", Direction::Bearish, "below"),
        };
        let fired = Fired {
            generator: self.name(),
            signal_type,
            direction,
            confidence: confidence(Self::BASE_CONFIDENCE, 5.0 * spread_pct, 5),
            reasoning: format!(
                "SMA(50) {} crossed {verb} SMA(200) {} at close {}",
                price(short),
                price(long),
                price(bar.close)
            ),
        };
        Some(fired.at(
            bar,
            &[
                ("sma_short", short),
                ("sma_long", long),
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
    fn golden_and_death_crosses_fire_where_the_averages_cross() {
        // 100 × 200, 90 × 50, then 121. SMA50 drops below SMA200 at 200 (99.8 < 99.95). With
        // m closes of 121: SMA50 = 90 + 0.62·m, SMA200 = 97.5 + 0.105·m, above from m = 15.
        let closes: Vec<f64> = (0..320)
            .map(|i| match i {
                0..200 => 100.0,
                200..250 => 90.0,
                _ => 121.0,
            })
            .collect();
        let bars = bars_from_closes(&closes);
        assert_eq!(
            fired(&GoldenCrossDetector, &bars),
            [
                (200, "death_cross", Direction::Bearish),
                (264, "golden_cross", Direction::Bullish)
            ]
        );
        let d = GoldenCrossDetector.detect(&bars, 264).unwrap();
        assert_common(&d, &GoldenCrossDetector, &bars[264]);
        assert!((d.metadata["sma_short"] - (90.0 + 0.62 * 15.0)).abs() < 1e-9);
        assert!((d.metadata["sma_long"] - (97.5 + 0.105 * 15.0)).abs() < 1e-9);
        assert!((80..=85).contains(&d.confidence));
    }
}
