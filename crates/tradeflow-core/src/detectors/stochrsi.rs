//! StochRSI family: the stochastic of RSI entering its zones, or its %K crossing %D.

use serde::{Deserialize, Serialize};

use crate::indicators;
use crate::vocab::{Bar, Direction};

use super::common::{
    Cross, Fired, Pair, ZoneEvent, ZoneTiming, closes, price, scaled, smoothed_lookback, window,
    zone_event,
};
use super::{Detection, Detector};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StochRsiConfig {
    pub timeperiod: usize,
    pub fastk_period: usize,
    pub fastd_period: usize,
    pub overbought: f64,
    pub oversold: f64,
    pub timing: ZoneTiming,
}

impl Default for StochRsiConfig {
    fn default() -> Self {
        StochRsiConfig {
            timeperiod: 14,
            fastk_period: 14,
            fastd_period: 3,
            overbought: 80.0,
            oversold: 20.0,
            timing: ZoneTiming::Entry,
        }
    }
}

/// TA-Lib STOCHRSI(14, 14, 3, SMA), first matching rule on %K: crosses below 20 →
/// `stochrsi_oversold` (BULLISH); above 80 → `stochrsi_overbought` (BEARISH) (with
/// [`ZoneTiming::Exit`]: when it comes back out); else %K crosses above %D →
/// `stochrsi_bullish_cross` (BULLISH), below → `stochrsi_bearish_cross` (BEARISH). A %D of 0
/// is a value like any other (the original treated it as missing); %D within 1e-9 of %K is
/// equal to it (rounding residue of the running sum). Confidence: zones 60 + 1.5
/// per point beyond the level (at most 90); crosses 50 + up to 15 for the %K-%D gap (full at
/// 20), + 10 inside the zone that favours the cross.
#[derive(Debug, Clone, Default)]
pub struct StochRsiDetector {
    pub config: StochRsiConfig,
}

impl Detector for StochRsiDetector {
    fn name(&self) -> &'static str {
        "stochrsi_generator"
    }

    fn lookback(&self) -> usize {
        smoothed_lookback(self.config.timeperiod)
    }

    fn signal_types(&self) -> &'static [&'static str] {
        &[
            "stochrsi_oversold",
            "stochrsi_overbought",
            "stochrsi_bullish_cross",
            "stochrsi_bearish_cross",
        ]
    }

    fn detect(&self, bars: &[Bar], index: usize) -> Option<Detection> {
        let c = &self.config;
        let w = window(bars, index, self.lookback())?;
        let bar = w.last()?;
        let sr = indicators::stochrsi(&closes(w), c.timeperiod, c.fastk_period, c.fastd_period);
        // %D is a running-sum SMA, as in TA-Lib: a run of %K at 0 or 100 leaves a residue like
        // 2e-14 in %D that would make or hide a cross. %D within 1e-9 of %K counts as equal.
        let k = Pair::last_two(&sr.k)?;
        let d = Pair::last_two(&sr.d)?;
        let snap = |d: f64, k: f64| if (d - k).abs() < 1e-9 { k } else { d };
        let d = Pair {
            previous: snap(d.previous, k.previous),
            current: snap(d.current, k.current),
        };
        let (signal_type, direction, confidence) =
            match zone_event(&sr.k, c.oversold, c.overbought, c.timing) {
                Some(ZoneEvent::Low { depth }) => (
                    "stochrsi_oversold",
                    Direction::Bullish,
                    scaled(60, depth, 20.0, 30),
                ),
                Some(ZoneEvent::High { depth }) => (
                    "stochrsi_overbought",
                    Direction::Bearish,
                    scaled(60, depth, 20.0, 30),
                ),
                None => {
                    let gap = scaled(50, (k.current - d.current).abs(), 20.0, 15);
                    match k.cross(d)? {
                        Cross::Up => (
                            "stochrsi_bullish_cross",
                            Direction::Bullish,
                            gap.saturating_add(if k.current < c.oversold { 10 } else { 0 }),
                        ),
                        Cross::Down => (
                            "stochrsi_bearish_cross",
                            Direction::Bearish,
                            gap.saturating_add(if k.current > c.overbought { 10 } else { 0 }),
                        ),
                    }
                }
            };
        let fired = Fired::new(
            self.name(),
            signal_type,
            direction,
            confidence,
            format!(
                "StochRSI({},{},{}) %K moved from {:.2} to {:.2} (%D {:.2}) at close {}",
                c.timeperiod,
                c.fastk_period,
                c.fastd_period,
                k.previous,
                k.current,
                d.current,
                price(bar.close)
            ),
        );
        Some(fired.at(
            bar,
            &[
                ("current_k", k.current),
                ("previous_k", k.previous),
                ("current_d", d.current),
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
    fn stochrsi_reports_zone_entries_and_crosses_including_a_zero_d() {
        // A sine wave (StochRSI sweeps between its zones), a 20-candle fall (RSI makes a new
        // low every candle: %K and then %D are 0), then a rise: %K leaves 0 and crosses %D = 0,
        // a cross the original suppressed, and then enters the overbought zone.
        let mut closes: Vec<f64> = (0..60)
            .map(|i| 100.0 + 5.0 * (f64::from(i) / 3.0).sin())
            .collect();
        let top = *closes.last().unwrap();
        closes.extend((1..=20).map(|i| top - 3.0 * f64::from(i)));
        closes.extend([top - 59.0, top - 50.0]);
        let bars = bars_from_closes(&closes);
        let sr = StochRsiDetector::default();
        let got = fired(&sr, &bars);
        // StochRSI(14,14,3) is defined from index 29; nothing fires before 30.
        assert!(got[0].0 >= 30);
        let types: Vec<&str> = got.iter().map(|f| f.1).collect();
        assert!(types.contains(&"stochrsi_oversold"), "{got:?}");
        assert!(types.contains(&"stochrsi_overbought"), "{got:?}");
        assert_eq!(
            got[got.len() - 2..],
            [
                (80, "stochrsi_bullish_cross", Direction::Bullish),
                (81, "stochrsi_overbought", Direction::Bearish)
            ],
            "{got:?}"
        );
        let d = sr.detect(&bars, 80).unwrap();
        assert_common(&d, &sr, &bars[80]);
        assert_eq!(d.metadata["previous_k"], 0.0);
        assert!(
            sr.detect(&bars, 79).is_none(),
            "%D reached 0 before: {:?}",
            sr.detect(&bars, 79)
        );
    }
}
