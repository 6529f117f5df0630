//! Bollinger family: the close breaking out of the bands.

use crate::indicators;
use crate::vocab::{Bar, Direction};

use super::common::{Fired, Pair, closes, confidence, price, window};
use super::{Detection, Detector};

/// The close crosses above the upper Bollinger band (20, 2) → `bollinger_breakout_up`
/// (BULLISH); below the lower band → `bollinger_breakout_down` (BEARISH). Confidence 70 + up
/// to 10 (20 per band half-width of overshoot beyond the band).
#[derive(Debug, Clone, Copy, Default)]
pub struct BollingerDetector;

impl BollingerDetector {
    pub const PERIOD: usize = 20;
    pub const K: f64 = 2.0;
    const BASE_CONFIDENCE: u8 = 70;
}

impl Detector for BollingerDetector {
    fn name(&self) -> &'static str {
        "bollinger_generator"
    }

    fn lookback(&self) -> usize {
        Self::PERIOD
    }

    fn detect(&self, bars: &[Bar], index: usize) -> Option<Detection> {
        let w = window(bars, index, self.lookback())?;
        let bar = w.last()?;
        let closes_pair = Pair {
            previous: w.get(w.len().checked_sub(2)?)?.close,
            current: bar.close,
        };
        let bands = indicators::bollinger(&closes(w), Self::PERIOD, Self::K);
        let upper_band = Pair::last_two(&bands.upper)?;
        let middle = Pair::last_two(&bands.middle)?.current;
        let lower_band = Pair::last_two(&bands.lower)?;
        let (close, upper, lower) = (bar.close, upper_band.current, lower_band.current);
        let half_width = upper - middle;
        let fired = if closes_pair.crossed_above(upper_band) {
            Fired {
                generator: self.name(),
                signal_type: "bollinger_breakout_up",
                direction: Direction::Bullish,
                confidence: confidence(
                    Self::BASE_CONFIDENCE,
                    20.0 * (close - upper) / half_width,
                    10,
                ),
                reasoning: format!(
                    "Close {} broke above the upper Bollinger band {} (20, 2; middle {})",
                    price(close),
                    price(upper),
                    price(middle)
                ),
            }
        } else if closes_pair.crossed_below(lower_band) {
            Fired {
                generator: self.name(),
                signal_type: "bollinger_breakout_down",
                direction: Direction::Bearish,
                confidence: confidence(
                    Self::BASE_CONFIDENCE,
                    20.0 * (lower - close) / half_width,
                    10,
                ),
                reasoning: format!(
                    "Close {} broke below the lower Bollinger band {} (20, 2; middle {})",
                    price(close),
                    price(lower),
                    price(middle)
                ),
            }
        } else {
            return None;
        };
        Some(fired.at(
            bar,
            &[
                ("upper_band", upper),
                ("middle_band", middle),
                ("lower_band", lower),
                ("current_price", close),
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
    fn bollinger_fires_on_the_close_that_leaves_the_bands() {
        // Zig-zag 100/101 (bands ≈ 100.5 ± 1), a breakout to 105 and 106 at 40, back to the
        // zig-zag, a breakdown to 95 and 94 at 80.
        let mut closes = zigzag(40);
        closes.extend([105.0, 106.0]);
        closes.extend(zigzag(38));
        closes.extend([95.0, 94.0]);
        closes.extend(zigzag(10));
        let bars = bars_from_closes(&closes);
        assert_eq!(
            fired(&BollingerDetector, &bars),
            [
                (40, "bollinger_breakout_up", Direction::Bullish),
                (80, "bollinger_breakout_down", Direction::Bearish)
            ]
        );
        let d = BollingerDetector.detect(&bars, 40).unwrap();
        assert_common(&d, &BollingerDetector, &bars[40]);
        let window = &closes[21..=40];
        let mean = window.iter().sum::<f64>() / 20.0;
        let sd = (window.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / 20.0).sqrt();
        assert!((d.metadata["middle_band"] - mean).abs() < 1e-9);
        assert!((d.metadata["upper_band"] - (mean + 2.0 * sd)).abs() < 1e-9);
        assert!((d.metadata["lower_band"] - (mean - 2.0 * sd)).abs() < 1e-9);
        assert!(d.metadata["current_price"] > d.metadata["upper_band"]);
    }
}
