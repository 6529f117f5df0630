//! RSI family: RSI(14) entering the oversold or overbought zone.

use serde::{Deserialize, Serialize};

use crate::indicators;
use crate::vocab::{Bar, Direction};

use super::common::{
    Fired, SMOOTHED_LOOKBACK, ZoneEvent, ZoneTiming, closes, price, scaled, smoothed_lookback,
    window, zone_event,
};
use super::{Detection, Detector};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RsiConfig {
    pub period: usize,
    pub oversold: f64,
    pub overbought: f64,
    pub timing: ZoneTiming,
}

impl Default for RsiConfig {
    fn default() -> Self {
        RsiConfig {
            period: 14,
            oversold: 30.0,
            overbought: 70.0,
            timing: ZoneTiming::Entry,
        }
    }
}

/// TA-Lib RSI(14) crosses below 30 → `rsi_oversold` (BULLISH); above 70 → `rsi_overbought`
/// (BEARISH); with [`ZoneTiming::Exit`], when it comes back out of the zone instead.
/// Confidence 60 + 3 per RSI point beyond the threshold (the stay's extreme on exit), at most 90.
#[derive(Debug, Clone, Default)]
pub struct RsiDetector {
    pub config: RsiConfig,
}

impl Detector for RsiDetector {
    fn name(&self) -> &'static str {
        "rsi_generator"
    }

    fn lookback(&self) -> usize {
        smoothed_lookback(self.config.period).max(SMOOTHED_LOOKBACK)
    }

    fn signal_types(&self) -> &'static [&'static str] {
        &["rsi_oversold", "rsi_overbought"]
    }

    fn detect(&self, bars: &[Bar], index: usize) -> Option<Detection> {
        let c = &self.config;
        let w = window(bars, index, self.lookback())?;
        let bar = w.last()?;
        let rsi = indicators::rsi(&closes(w), c.period);
        let [.., Some(previous), Some(current)] = rsi[..] else {
            return None;
        };
        let verb = match c.timing {
            ZoneTiming::Entry => "entered",
            ZoneTiming::Exit => "left",
        };
        let (fired, threshold) = match zone_event(&rsi, c.oversold, c.overbought, c.timing)? {
            ZoneEvent::Low { depth } => (
                Fired::new(
                    self.name(),
                    "rsi_oversold",
                    Direction::Bullish,
                    scaled(60, depth, 10.0, 30),
                    format!(
                        "RSI({}) {verb} the oversold zone below {} (from {previous:.2} to \
                         {current:.2}) at close {}",
                        c.period,
                        c.oversold,
                        price(bar.close)
                    ),
                ),
                c.oversold,
            ),
            ZoneEvent::High { depth } => (
                Fired::new(
                    self.name(),
                    "rsi_overbought",
                    Direction::Bearish,
                    scaled(60, depth, 10.0, 30),
                    format!(
                        "RSI({}) {verb} the overbought zone above {} (from {previous:.2} to \
                         {current:.2}) at close {}",
                        c.period,
                        c.overbought,
                        price(bar.close)
                    ),
                ),
                c.overbought,
            ),
        };
        Some(fired.at(
            bar,
            &[
                ("rsi_period", c.period as f64),
                ("current_rsi", current),
                ("previous_rsi", previous),
                ("threshold", threshold),
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
        let rsi = RsiDetector::default();
        assert_eq!(
            fired(&rsi, &bars),
            [(267, "rsi_oversold", Direction::Bullish)]
        );
        let d = rsi.detect(&bars, 267).unwrap();
        assert_common(&d, &rsi, &bars[267]);
        let expected = 100.0 * (14.0 / 27.0) * (13.0f64 / 14.0).powi(8);
        assert!((d.metadata["current_rsi"] - expected).abs() < 1e-6);
        assert!(d.metadata["previous_rsi"] >= 30.0);
        // 60 + 3 · (30 − 28.67) = 64.
        assert_eq!(d.confidence, 64);
        assert!(
            d.reasoning.contains("oversold zone below 30"),
            "{}",
            d.reasoning
        );
        assert!(rsi.detect(&bars, 268).is_none(), "not re-emitted");

        // Mirror image: after a down move the averages are swapped, 8 rises cross 70.
        let mut closes = zigzag(261); // last index 260 is a down move
        for j in 1..=12 {
            closes.push(100.0 + f64::from(j));
        }
        let bars = bars_from_closes(&closes);
        assert_eq!(
            fired(&rsi, &bars),
            [(268, "rsi_overbought", Direction::Bearish)]
        );
        let d = rsi.detect(&bars, 268).unwrap();
        assert!((d.metadata["current_rsi"] - (100.0 - expected)).abs() < 1e-6);
    }

    #[test]
    fn rsi_fires_as_soon_as_ta_lib_defines_it() {
        // RSI(14) is defined from index 14; the first cross it can show is at index 15.
        // 14 rises (RSI 100 at index 14), then a big drop: below 70 at 15, no fire; a series
        // that falls from the start is at RSI 0 on its first value: nothing to cross.
        let mut closes: Vec<f64> = (0..15).map(|i| 100.0 - f64::from(i)).collect();
        closes.push(120.0); // RSI jumps from 0 to above 70 at index 15
        let bars = bars_from_closes(&closes);
        assert_eq!(
            fired(&RsiDetector::default(), &bars),
            [(15, "rsi_overbought", Direction::Bearish)]
        );
    }

    #[test]
    fn exit_timing_fires_when_rsi_comes_back_out_with_the_depth_of_the_stay() {
        let mut closes = zigzag(260);
        for j in 1..=12 {
            closes.push(101.0 - f64::from(j));
        }
        for j in 1..=6 {
            closes.push(89.0 + 2.0 * f64::from(j));
        }
        let bars = bars_from_closes(&closes);
        let rsi = RsiDetector {
            config: RsiConfig {
                timing: ZoneTiming::Exit,
                ..RsiConfig::default()
            },
        };
        let got = fired(&rsi, &bars);
        assert_eq!(got.len(), 1, "{got:?}");
        let (i, kind, dir) = got[0];
        assert_eq!((kind, dir), ("rsi_oversold", Direction::Bullish));
        assert!(i > 271, "after the fall ends at 271: {i}");
        let d = rsi.detect(&bars, i).unwrap();
        assert!(d.metadata["current_rsi"] >= 30.0 && d.metadata["previous_rsi"] < 30.0);
        assert!(d.confidence > 80, "a deep stay: {}", d.confidence);
    }
}
