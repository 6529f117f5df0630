//! Aroon family: trend onset, Aroon Up/Down crosses and consolidation.

use serde::{Deserialize, Serialize};

use crate::indicators;
use crate::vocab::{Bar, Direction};

use super::common::{Fired, Ohlcv, price, scaled, window};
use super::{Detection, Detector};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AroonConfig {
    pub timeperiod: usize,
    pub trend_threshold: f64,
}

impl Default for AroonConfig {
    fn default() -> Self {
        AroonConfig {
            timeperiod: 25,
            trend_threshold: 70.0,
        }
    }
}

/// TA-Lib AROON(25), first matching rule on the candle (U = Aroon Up, D = Aroon Down, T = 70):
/// 1. U > T and D < 100 - T, not so on the previous candle → `aroon_uptrend` (BULLISH);
/// 2. D > T and U < 100 - T, likewise → `aroon_downtrend` (BEARISH);
///    (a trend state that already held on the previous candle stops here: nothing fires);
/// 3. U crosses above D → `aroon_bullish_cross` (BULLISH); 4. D crosses above U →
///    `aroon_bearish_cross` (BEARISH);
/// 5. both below 50, not so on the previous candle → `aroon_consolidation` (NEUTRAL).
///
/// Confidence: trends 65 + up to 25 for the spread U - D beyond 2T - 100 (full at 100);
/// crosses 55 + up to 20 for the spread (full at 50); consolidation 50 + up to 20 for how far
/// the higher line is below 50 (full at 0).
#[derive(Debug, Clone, Default)]
pub struct AroonDetector {
    pub config: AroonConfig,
}

impl Detector for AroonDetector {
    fn name(&self) -> &'static str {
        "aroon_generator"
    }

    fn lookback(&self) -> usize {
        self.config.timeperiod + 1
    }

    fn signal_types(&self) -> &'static [&'static str] {
        &[
            "aroon_uptrend",
            "aroon_downtrend",
            "aroon_bullish_cross",
            "aroon_bearish_cross",
            "aroon_consolidation",
        ]
    }

    fn detect(&self, bars: &[Bar], index: usize) -> Option<Detection> {
        let c = &self.config;
        let w = window(bars, index, self.lookback())?;
        let bar = w.last()?;
        let s = Ohlcv::of(w);
        let a = indicators::aroon(&s.high, &s.low, c.timeperiod);
        let [.., Some(up0), Some(up)] = a.up[..] else {
            return None;
        };
        let [.., Some(down0), Some(down)] = a.down[..] else {
            return None;
        };
        let t = c.trend_threshold;
        let uptrend = |u: f64, d: f64| u > t && d < 100.0 - t;
        let consolidating = |u: f64, d: f64| u < 50.0 && d < 50.0;
        let spread = up - down;
        let trend_conf = |x: f64| scaled(65, x - (2.0 * t - 100.0), 200.0 - 2.0 * t, 25);
        let (signal_type, direction, confidence, what) = if uptrend(up, down) {
            if uptrend(up0, down0) {
                return None;
            }
            (
                "aroon_uptrend",
                Direction::Bullish,
                trend_conf(spread),
                "an uptrend starts",
            )
        } else if uptrend(down, up) {
            if uptrend(down0, up0) {
                return None;
            }
            (
                "aroon_downtrend",
                Direction::Bearish,
                trend_conf(-spread),
                "a downtrend starts",
            )
        } else if up > down && up0 <= down0 {
            (
                "aroon_bullish_cross",
                Direction::Bullish,
                scaled(55, spread, 50.0, 20),
                "Aroon Up crossed above Aroon Down",
            )
        } else if down > up && down0 <= up0 {
            (
                "aroon_bearish_cross",
                Direction::Bearish,
                scaled(55, -spread, 50.0, 20),
                "Aroon Down crossed above Aroon Up",
            )
        } else if consolidating(up, down) && !consolidating(up0, down0) {
            (
                "aroon_consolidation",
                Direction::Neutral,
                scaled(50, 50.0 - up.max(down), 50.0, 20),
                "both lines below 50: consolidation",
            )
        } else {
            return None;
        };
        let fired = Fired::new(
            self.name(),
            signal_type,
            direction,
            confidence,
            format!(
                "Aroon({}) up {up:.1}, down {down:.1}: {what} at close {}",
                c.timeperiod,
                price(bar.close)
            ),
        );
        Some(fired.at(
            bar,
            &[
                ("aroon_up", up),
                ("aroon_down", down),
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
    fn aroon_reports_each_rule_once_in_order() {
        // A fall (already a down trend where AROON(25) is first defined), a rise (U jumps to
        // 100 and crosses D, then an uptrend), a fall (the mirror), then flat candles inside
        // the range: no new extremes, both lines decay below 50.
        let mut closes: Vec<f64> = (0..30).map(|i| 200.0 - f64::from(i)).collect();
        closes.extend((1..=30).map(|i| 171.0 + f64::from(i)));
        closes.extend((1..=30).map(|i| 201.0 - 1.5 * f64::from(i)));
        closes.extend(std::iter::repeat_n(170.0, 15));
        let mut bars = bars_from_closes(&closes);
        for bar in bars.iter_mut().skip(90) {
            bar.high = 170.0;
            bar.low = 170.0;
        }
        let aroon = AroonDetector::default();
        let got = fired(&aroon, &bars);
        let types: Vec<&str> = got.iter().map(|f| f.1).collect();
        assert_eq!(
            types,
            [
                "aroon_bullish_cross",
                "aroon_uptrend",
                "aroon_bearish_cross",
                "aroon_downtrend",
                "aroon_consolidation"
            ],
            "{got:?}"
        );
        assert!(got[0].0 >= 30 && got[1].0 > got[0].0);
        let d = aroon.detect(&bars, got[4].0).unwrap();
        assert_common(&d, &aroon, &bars[got[4].0]);
        assert!(d.metadata["aroon_up"] < 50.0 && d.metadata["aroon_down"] < 50.0);
    }
}
