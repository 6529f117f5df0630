//! MACD family: the MACD line crossing its signal line.

use crate::indicators;
use crate::vocab::{Bar, Direction};

use super::common::{Cross, Fired, Pair, SMOOTHED_LOOKBACK, closes, confidence, price, window};
use super::{Detection, Detector};

/// MACD(12, 26, 9) line crosses above its signal line → `macd_bullish` (BULLISH); below →
/// `macd_bearish` (BEARISH). Confidence 70, + 5 when the cross happens on the far side of the
/// zero line (a bullish cross below zero, a bearish cross above zero).
#[derive(Debug, Clone, Copy, Default)]
pub struct MacdDetector;

impl MacdDetector {
    pub const FAST: usize = 12;
    pub const SLOW: usize = 26;
    pub const SIGNAL: usize = 9;
    const BASE_CONFIDENCE: u8 = 70;
}

impl Detector for MacdDetector {
    fn name(&self) -> &'static str {
        "macd_generator"
    }

    fn lookback(&self) -> usize {
        SMOOTHED_LOOKBACK
    }

    fn detect(&self, bars: &[Bar], index: usize) -> Option<Detection> {
        let w = window(bars, index, self.lookback())?;
        let bar = w.last()?;
        let m = indicators::macd(&closes(w), Self::FAST, Self::SLOW, Self::SIGNAL);
        let line = Pair::last_two(&m.macd)?.current;
        let signal = Pair::last_two(&m.signal)?.current;
        // The histogram is line − signal: its cross of zero is the line's cross of the signal.
        let histogram = Pair::last_two(&m.histogram)?;
        let hist = histogram.current;
        let (signal_type, direction, verb, far_side) = match histogram.cross(Pair::level(0.0))? {
            Cross::Up => ("macd_bullish", Direction::Bullish, "above", line < 0.0),
            Cross::Down => ("macd_bearish", Direction::Bearish, "below", line > 0.0),
        };
        let fired = Fired {
            generator: self.name(),
            signal_type,
            direction,
            confidence: confidence(Self::BASE_CONFIDENCE, if far_side { 5.0 } else { 0.0 }, 5),
            reasoning: format!(
                "MACD(12,26,9) line {line:.4} crossed {verb} its signal line {signal:.4} \
                 (histogram {hist:.4}) at close {}",
                price(bar.close)
            ),
        };
        Some(fired.at(
            bar,
            &[
                ("macd", line),
                ("macd_signal", signal),
                ("macd_histogram", hist),
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
    use crate::indicators;

    #[test]
    fn macd_fires_when_the_line_crosses_its_signal() {
        // Flat (MACD = signal = 0), a ramp up from 270 (the line jumps above the lagging
        // signal), then a gap down to 120 at 310 and a ramp down (the line drops below it).
        let closes: Vec<f64> = (0..340)
            .map(|i| match i {
                0..270 => 100.0,
                270..310 => 100.0 + f64::from(i - 269),
                _ => 120.0 - f64::from(i - 310),
            })
            .collect();
        let bars = bars_from_closes(&closes);
        assert_eq!(
            fired(&MacdDetector, &bars),
            [
                (270, "macd_bullish", Direction::Bullish),
                (310, "macd_bearish", Direction::Bearish)
            ]
        );
        let d = MacdDetector.detect(&bars, 310).unwrap();
        assert_common(&d, &MacdDetector, &bars[310]);
        let m = indicators::macd(&closes[60..=310], 12, 26, 9);
        assert_eq!(d.metadata["macd"], m.macd[250].unwrap());
        assert_eq!(d.metadata["macd_signal"], m.signal[250].unwrap());
        assert_eq!(d.metadata["macd_histogram"], m.histogram[250].unwrap());
        assert!(d.metadata["macd_histogram"] < 0.0);
        // A bearish cross above the zero line earns the bonus.
        assert!(d.metadata["macd"] > 0.0);
        assert_eq!(d.confidence, 75);
    }
}
