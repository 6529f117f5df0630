//! Williams %R family: %R entering its extreme zones or crossing its midline.

use serde::{Deserialize, Serialize};

use crate::indicators;
use crate::vocab::{Bar, Direction};

use super::common::{Fired, Ohlcv, Pair, ZoneEvent, ZoneTiming, price, scaled, window, zone_event};
use super::{Detection, Detector};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WillrConfig {
    pub timeperiod: usize,
    pub overbought: f64,
    pub oversold: f64,
    pub midline: f64,
    pub timing: ZoneTiming,
}

impl Default for WillrConfig {
    fn default() -> Self {
        WillrConfig {
            timeperiod: 14,
            overbought: -20.0,
            oversold: -80.0,
            midline: -50.0,
            timing: ZoneTiming::Entry,
        }
    }
}

/// TA-Lib WILLR(14), first matching rule: crosses below -80 → `willr_oversold` (BULLISH);
/// above -20 → `willr_overbought` (BEARISH) (with [`ZoneTiming::Exit`]: when it comes back
/// out); else crosses above -50 → `willr_bullish_momentum` (BULLISH), below -50 →
/// `willr_bearish_momentum` (BEARISH). Confidence: zones 60 + 3 per point beyond the level
/// (at most 90); midline 50 + 1 per point past -50 (at most 70).
#[derive(Debug, Clone, Default)]
pub struct WillrDetector {
    pub config: WillrConfig,
}

impl Detector for WillrDetector {
    fn name(&self) -> &'static str {
        "willr_generator"
    }

    fn lookback(&self) -> usize {
        self.config.timeperiod + 60
    }

    fn signal_types(&self) -> &'static [&'static str] {
        &[
            "willr_oversold",
            "willr_overbought",
            "willr_bullish_momentum",
            "willr_bearish_momentum",
        ]
    }

    fn detect(&self, bars: &[Bar], index: usize) -> Option<Detection> {
        let c = &self.config;
        let w = window(bars, index, self.lookback())?;
        let bar = w.last()?;
        let s = Ohlcv::of(w);
        let r = indicators::willr(&s.high, &s.low, &s.close, c.timeperiod);
        let pair = Pair::last_two(&r)?;
        let mid = Pair::level(c.midline);
        let (signal_type, direction, confidence) =
            match zone_event(&r, c.oversold, c.overbought, c.timing) {
                Some(ZoneEvent::Low { depth }) => (
                    "willr_oversold",
                    Direction::Bullish,
                    scaled(60, depth, 10.0, 30),
                ),
                Some(ZoneEvent::High { depth }) => (
                    "willr_overbought",
                    Direction::Bearish,
                    scaled(60, depth, 10.0, 30),
                ),
                None if pair.crossed_above(mid) => (
                    "willr_bullish_momentum",
                    Direction::Bullish,
                    scaled(50, pair.current - c.midline, 20.0, 20),
                ),
                None if pair.crossed_below(mid) => (
                    "willr_bearish_momentum",
                    Direction::Bearish,
                    scaled(50, c.midline - pair.current, 20.0, 20),
                ),
                None => return None,
            };
        let fired = Fired::new(
            self.name(),
            signal_type,
            direction,
            confidence,
            format!(
                "Williams %R({}) moved from {:.2} to {:.2} at close {}",
                c.timeperiod,
                pair.previous,
                pair.current,
                price(bar.close)
            ),
        );
        Some(fired.at(
            bar,
            &[
                ("current_willr", pair.current),
                ("previous_willr", pair.previous),
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
    fn willr_reports_zones_and_midline_crosses() {
        // A rise (%R near 0), one candle straight to the bottom of the range (through -50 and
        // -80 at once: the zone event wins), then a recovery: -73.5 (back out of the zone,
        // nothing at entry timing), then -37 (above the midline).
        let mut closes: Vec<f64> = (0..20).map(|i| 100.0 + f64::from(i)).collect();
        closes.push(100.0); // from the top of the range (%R ≈ 0) to the bottom
        closes.extend([105.0, 112.0]);
        let bars = bars_from_closes(&closes);
        let willr = WillrDetector::default();
        let got = fired(&willr, &bars);
        assert_eq!(
            got,
            [
                (20, "willr_oversold", Direction::Bullish),
                (22, "willr_bullish_momentum", Direction::Bullish)
            ]
        );
        let d = willr.detect(&bars, 20).unwrap();
        assert_common(&d, &willr, &bars[20]);
        assert!(d.metadata["current_willr"] < -80.0);
    }
}
