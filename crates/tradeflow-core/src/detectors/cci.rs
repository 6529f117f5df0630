//! CCI family: the Commodity Channel Index entering its extreme zones or crossing zero.

use serde::{Deserialize, Serialize};

use crate::indicators;
use crate::vocab::{Bar, Direction};

use super::common::{Fired, Ohlcv, Pair, ZoneEvent, ZoneTiming, price, scaled, window, zone_event};
use super::{Detection, Detector};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CciConfig {
    pub timeperiod: usize,
    pub overbought: f64,
    pub oversold: f64,
    pub timing: ZoneTiming,
}

impl Default for CciConfig {
    fn default() -> Self {
        CciConfig {
            timeperiod: 20,
            overbought: 100.0,
            oversold: -100.0,
            timing: ZoneTiming::Entry,
        }
    }
}

/// TA-Lib CCI(20) (the original configured 20 but computed 14), first matching rule:
/// crosses below -100 → `cci_oversold` (BULLISH); above +100 → `cci_overbought` (BEARISH)
/// (with [`ZoneTiming::Exit`]: when it comes back out); else crosses above 0 →
/// `cci_bullish_zero_cross` (BULLISH), below 0 → `cci_bearish_zero_cross` (BEARISH).
/// Confidence: zones 60 + up to 30 for the depth beyond the level (full at 100 points); zero
/// crosses 50 + up to 20 for the distance from 0 (full at 100).
#[derive(Debug, Clone, Default)]
pub struct CciDetector {
    pub config: CciConfig,
}

impl Detector for CciDetector {
    fn name(&self) -> &'static str {
        "cci_generator"
    }

    fn lookback(&self) -> usize {
        // Exit timing looks back over the stay in the zone.
        self.config.timeperiod + 60
    }

    fn signal_types(&self) -> &'static [&'static str] {
        &[
            "cci_oversold",
            "cci_overbought",
            "cci_bullish_zero_cross",
            "cci_bearish_zero_cross",
        ]
    }

    fn detect(&self, bars: &[Bar], index: usize) -> Option<Detection> {
        let c = &self.config;
        let w = window(bars, index, self.lookback())?;
        let bar = w.last()?;
        let s = Ohlcv::of(w);
        let cci = indicators::cci(&s.high, &s.low, &s.close, c.timeperiod);
        let pair = Pair::last_two(&cci)?;
        let (signal_type, direction, confidence, what) =
            match zone_event(&cci, c.oversold, c.overbought, c.timing) {
                Some(ZoneEvent::Low { depth }) => (
                    "cci_oversold",
                    Direction::Bullish,
                    scaled(60, depth, 100.0, 30),
                    "oversold zone",
                ),
                Some(ZoneEvent::High { depth }) => (
                    "cci_overbought",
                    Direction::Bearish,
                    scaled(60, depth, 100.0, 30),
                    "overbought zone",
                ),
                None if pair.crossed_above(Pair::level(0.0)) => (
                    "cci_bullish_zero_cross",
                    Direction::Bullish,
                    scaled(50, pair.current, 100.0, 20),
                    "zero line upwards",
                ),
                None if pair.crossed_below(Pair::level(0.0)) => (
                    "cci_bearish_zero_cross",
                    Direction::Bearish,
                    scaled(50, -pair.current, 100.0, 20),
                    "zero line downwards",
                ),
                None => return None,
            };
        let fired = Fired::new(
            self.name(),
            signal_type,
            direction,
            confidence,
            format!(
                "CCI({}) crossed into the {what} (from {:.2} to {:.2}) at close {}",
                c.timeperiod,
                pair.previous,
                pair.current,
                price(bar.close)
            ),
        );
        Some(fired.at(
            bar,
            &[
                ("timeperiod", c.timeperiod as f64),
                ("current_cci", pair.current),
                ("previous_cci", pair.previous),
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
    fn cci_reports_zone_entries_before_zero_crosses() {
        // Zig-zag (CCI oscillates around ±60), a jump up (overbought), back to the zig-zag
        // (CCI falls back through 0), a drop (oversold).
        let closes: Vec<f64> = (0..100)
            .map(|i| match i {
                50 => 106.0,
                80 => 94.0,
                _ => 100.0 + (i % 2) as f64,
            })
            .collect();
        let bars = bars_from_closes(&closes);
        let cci = CciDetector::default();
        let got = fired(&cci, &bars);
        assert!(
            got.contains(&(50, "cci_overbought", Direction::Bearish)),
            "{got:?}"
        );
        assert!(
            got.contains(&(80, "cci_oversold", Direction::Bullish)),
            "{got:?}"
        );
        assert!(
            got.iter().any(|f| f.1 == "cci_bullish_zero_cross"),
            "{got:?}"
        );
        assert!(
            got.iter().any(|f| f.1 == "cci_bearish_zero_cross"),
            "{got:?}"
        );
        // CCI(20) is defined from index 19, so the first event can be at 20.
        assert!(got[0].0 >= 20);
        let d = cci.detect(&bars, 50).unwrap();
        assert_common(&d, &cci, &bars[50]);
        assert!(d.metadata["current_cci"] > 100.0);
    }
}
