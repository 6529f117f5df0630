//! MACD family: the MACD line crossing its signal line.

use serde::{Deserialize, Serialize};

use crate::indicators;
use crate::vocab::{Bar, Direction};

use super::common::{Cross, Fired, Pair, closes, price, scaled, smoothed_lookback, window};
use super::{Detection, Detector};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MacdConfig {
    pub fast_period: usize,
    pub slow_period: usize,
    pub signal_period: usize,
}

impl Default for MacdConfig {
    fn default() -> Self {
        MacdConfig {
            fast_period: 12,
            slow_period: 26,
            signal_period: 9,
        }
    }
}

/// TA-Lib MACD(12, 26, 9): the line crosses above its signal line → `macd_bullish` (BULLISH);
/// below → `macd_bearish` (BEARISH). Confidence 60, + 15 when the cross happens on the far side
/// of the zero line (a bullish cross below zero, a bearish one above), + up to 15 for the
/// histogram's size (full at 0.2 % of the price).
#[derive(Debug, Clone, Default)]
pub struct MacdDetector {
    pub config: MacdConfig,
}

impl Detector for MacdDetector {
    fn name(&self) -> &'static str {
        "macd_generator"
    }

    fn lookback(&self) -> usize {
        let c = &self.config;
        smoothed_lookback(c.slow_period.max(c.fast_period) + c.signal_period)
    }

    fn signal_types(&self) -> &'static [&'static str] {
        &["macd_bullish", "macd_bearish"]
    }

    fn detect(&self, bars: &[Bar], index: usize) -> Option<Detection> {
        let c = &self.config;
        let w = window(bars, index, self.lookback())?;
        let bar = w.last()?;
        let m = indicators::macd(&closes(w), c.fast_period, c.slow_period, c.signal_period);
        let line = Pair::last_two(&m.macd)?;
        let signal = Pair::last_two(&m.signal)?;
        let hist = Pair::last_two(&m.histogram)?.current;
        let (signal_type, direction, verb, far_side) = match line.cross(signal)? {
            Cross::Up => (
                "macd_bullish",
                Direction::Bullish,
                "above",
                line.current < 0.0,
            ),
            Cross::Down => (
                "macd_bearish",
                Direction::Bearish,
                "below",
                line.current > 0.0,
            ),
        };
        let confidence = scaled(60, hist.abs() / bar.close.abs() * 100.0, 0.2, 15)
            .saturating_add(if far_side { 15 } else { 0 });
        let fired = Fired::new(
            self.name(),
            signal_type,
            direction,
            confidence,
            format!(
                "MACD({},{},{}) line {:.4} crossed {verb} its signal line {:.4} (histogram \
                 {hist:.4}) at close {}",
                c.fast_period,
                c.slow_period,
                c.signal_period,
                line.current,
                signal.current,
                price(bar.close)
            ),
        );
        Some(fired.at(
            bar,
            &[
                ("current_macd", line.current),
                ("current_signal", signal.current),
                ("current_histogram", hist),
                ("previous_macd", line.previous),
                ("previous_signal", signal.previous),
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
        let macd = MacdDetector::default();
        assert_eq!(
            fired(&macd, &bars),
            [
                (270, "macd_bullish", Direction::Bullish),
                (310, "macd_bearish", Direction::Bearish)
            ]
        );
        let d = macd.detect(&bars, 310).unwrap();
        assert_common(&d, &macd, &bars[310]);
        let m = indicators::macd(&closes[310 - 250..=310], 12, 26, 9);
        assert_eq!(d.metadata["current_macd"], m.macd[250].unwrap());
        assert_eq!(d.metadata["current_signal"], m.signal[250].unwrap());
        assert_eq!(d.metadata["current_histogram"], m.histogram[250].unwrap());
        assert!(d.metadata["current_histogram"] < 0.0);
        // A bearish cross above the zero line, histogram beyond 0.2 % of the price: 60+15+15.
        assert!(d.metadata["current_macd"] > 0.0);
        assert_eq!(d.confidence, 90);
    }

    #[test]
    fn macd_fires_from_index_34_where_ta_lib_starts_the_signal_line() {
        // The signal line is defined from index 33: a cross at 34 is the first possible one.
        let mut closes = vec![100.0; 34];
        closes.push(101.0);
        let bars = bars_from_closes(&closes);
        assert_eq!(
            fired(&MacdDetector::default(), &bars),
            [(34, "macd_bullish", Direction::Bullish)]
        );
    }
}
