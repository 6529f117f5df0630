//! Parabolic SAR family: the SAR flipping to the other side of price (a stop and reverse).

use serde::{Deserialize, Serialize};

use crate::indicators;
use crate::vocab::{Bar, Direction};

use super::common::{Fired, Ohlcv, price, scaled, smoothed_lookback, window};
use super::{Detection, Detector};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SarConfig {
    pub acceleration: f64,
    pub maximum: f64,
}

impl Default for SarConfig {
    fn default() -> Self {
        SarConfig {
            acceleration: 0.02,
            maximum: 0.2,
        }
    }
}

/// TA-Lib SAR(0.02, 0.2) changes side: below the candle's midpoint after being above it on the
/// previous candle → `sar_bullish_reversal` (BULLISH); above after below →
/// `sar_bearish_reversal` (BEARISH). This is SAR's own reversal (the candle's high or low
/// reached the SAR), not the close crossing it as in the original. Confidence 60 + up to 20 for
/// the length of the trend that reversed (full at 20 candles), + up to 15 for the close's
/// distance from the new SAR (full at 3 %).
#[derive(Debug, Clone, Default)]
pub struct SarDetector {
    pub config: SarConfig,
}

impl Detector for SarDetector {
    fn name(&self) -> &'static str {
        "sar_generator"
    }

    fn lookback(&self) -> usize {
        smoothed_lookback(0)
    }

    fn signal_types(&self) -> &'static [&'static str] {
        &["sar_bullish_reversal", "sar_bearish_reversal"]
    }

    fn detect(&self, bars: &[Bar], index: usize) -> Option<Detection> {
        let c = &self.config;
        let w = window(bars, index, self.lookback())?;
        let bar = w.last()?;
        let s = Ohlcv::of(w);
        let sar = indicators::sar(&s.high, &s.low, c.acceleration, c.maximum);
        // Long: the SAR is below the candle's midpoint (it is at or below the low).
        let long: Vec<Option<bool>> = sar
            .iter()
            .zip(w)
            .map(|(v, b)| v.map(|v| v < (b.high + b.low) / 2.0))
            .collect();
        let [.., Some(was_long), Some(is_long)] = long[..] else {
            return None;
        };
        if was_long == is_long {
            return None;
        }
        let current = sar[sar.len() - 1]?;
        let trend = long[..long.len() - 1]
            .iter()
            .rev()
            .take_while(|l| **l == Some(was_long))
            .count();
        let distance_pct = (bar.close - current).abs() / bar.close * 100.0;
        let (signal_type, direction, side) = if is_long {
            ("sar_bullish_reversal", Direction::Bullish, "below")
        } else {
            ("sar_bearish_reversal", Direction::Bearish, "above")
        };
        let confidence =
            scaled(60, trend as f64, 20.0, 20).saturating_add(scaled(0, distance_pct, 3.0, 15));
        let fired = Fired::new(
            self.name(),
            signal_type,
            direction,
            confidence,
            format!(
                "Parabolic SAR({}, {}) reversed to {} {side} price after {trend} candles, close {}",
                c.acceleration,
                c.maximum,
                price(current),
                price(bar.close)
            ),
        );
        Some(fired.at(
            bar,
            &[
                ("current_sar", current),
                ("sar_distance_pct", distance_pct),
                ("acceleration", c.acceleration),
                ("maximum", c.maximum),
                ("trend_candles", trend as f64),
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
    fn sar_fires_on_each_reversal_once() {
        // Up 30 candles, down 30, up 30: a reversal at each turn.
        let mut closes: Vec<f64> = (0..30).map(|i| 100.0 + f64::from(i)).collect();
        closes.extend((1..=30).map(|i| 129.0 - f64::from(i)));
        closes.extend((1..=30).map(|i| 99.0 + f64::from(i)));
        let bars = bars_from_closes(&closes);
        let sar = SarDetector::default();
        // TA-Lib starts long (bar 1's low did not fall below bar 0's) and reverses at once:
        // bar 1's low touches the initial SAR (bar 0's low).
        let got = fired(&sar, &bars);
        assert_eq!(got[0], (2, "sar_bullish_reversal", Direction::Bullish));
        let got = &got[1..];
        assert_eq!(
            got.iter().map(|f| (f.1, f.2)).collect::<Vec<_>>(),
            [
                ("sar_bearish_reversal", Direction::Bearish),
                ("sar_bullish_reversal", Direction::Bullish)
            ],
            "{got:?}"
        );
        assert!((30..35).contains(&got[0].0) && (60..65).contains(&got[1].0));
        let d = sar.detect(&bars, got[0].0).unwrap();
        assert_common(&d, &sar, &bars[got[0].0]);
        assert!(d.metadata["current_sar"] > bars[got[0].0].high - 1e-9);
        assert!(d.metadata["trend_candles"] >= 29.0);
    }
}
