//! ADX family: trend strength (ADX) rising above the strong-trend level or falling below the
//! weak-trend level.

use serde::{Deserialize, Serialize};

use crate::indicators;
use crate::vocab::{Bar, Direction};

use super::common::{Fired, Ohlcv, Pair, price, scaled, smoothed_lookback, window};
use super::{Detection, Detector};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdxConfig {
    pub timeperiod: usize,
    pub strong_trend: f64,
    pub weak_trend: f64,
}

impl Default for AdxConfig {
    fn default() -> Self {
        AdxConfig {
            timeperiod: 14,
            strong_trend: 25.0,
            weak_trend: 20.0,
        }
    }
}

/// TA-Lib ADX(14) crosses above 25 → `adx_strong_trend`; below 20 → `adx_weak_trend` (both
/// NEUTRAL: ADX measures strength, not direction; the +DI and -DI in the metadata tell the
/// side). Confidence 60 + up to 20 for the distance past the level (full at 10 points above 25,
/// 5 points below 20), + up to 15 for a strong trend whose +DI/-DI spread is clear (full at 20).
#[derive(Debug, Clone, Default)]
pub struct AdxDetector {
    pub config: AdxConfig,
}

impl Detector for AdxDetector {
    fn name(&self) -> &'static str {
        "adx_generator"
    }

    fn lookback(&self) -> usize {
        smoothed_lookback(2 * self.config.timeperiod)
    }

    fn signal_types(&self) -> &'static [&'static str] {
        &["adx_strong_trend", "adx_weak_trend"]
    }

    fn detect(&self, bars: &[Bar], index: usize) -> Option<Detection> {
        let c = &self.config;
        let w = window(bars, index, self.lookback())?;
        let bar = w.last()?;
        let s = Ohlcv::of(w);
        let a = indicators::adx(&s.high, &s.low, &s.close, c.timeperiod);
        let adx = Pair::last_two(&a.adx)?;
        let plus_di = Pair::last_two(&a.plus_di)?.current;
        let minus_di = Pair::last_two(&a.minus_di)?.current;
        let (signal_type, threshold, confidence, what) =
            if adx.crossed_above(Pair::level(c.strong_trend)) {
                (
                    "adx_strong_trend",
                    c.strong_trend,
                    scaled(60, adx.current - c.strong_trend, 10.0, 20).saturating_add(scaled(
                        0,
                        (plus_di - minus_di).abs(),
                        20.0,
                        15,
                    )),
                    "rose above",
                )
            } else if adx.crossed_below(Pair::level(c.weak_trend)) {
                (
                    "adx_weak_trend",
                    c.weak_trend,
                    scaled(60, c.weak_trend - adx.current, 5.0, 20),
                    "fell below",
                )
            } else {
                return None;
            };
        let fired = Fired::new(
            self.name(),
            signal_type,
            Direction::Neutral,
            confidence,
            format!(
                "ADX({}) {what} {threshold} (from {:.2} to {:.2}; +DI {plus_di:.2}, -DI \
                 {minus_di:.2}) at close {}",
                c.timeperiod,
                adx.previous,
                adx.current,
                price(bar.close)
            ),
        );
        Some(fired.at(
            bar,
            &[
                ("current_adx", adx.current),
                ("previous_adx", adx.previous),
                ("threshold", threshold),
                ("plus_di", plus_di),
                ("minus_di", minus_di),
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

    /// Candles alternating between two ranges (+DM and -DM take turns: ADX stays low), a
    /// steady climb (ADX rises through 25), then alternating again (it decays through 20).
    fn range_trend_range() -> Vec<Bar> {
        let mut bars = bars_from_closes(&vec![100.0; 160]);
        for (i, b) in bars.iter_mut().enumerate() {
            let mid = match i {
                0..60 => 100.0 + (i % 2) as f64,
                60..100 => 100.0 + (i - 59) as f64,
                _ => 140.0 + (i % 2) as f64,
            };
            (b.open, b.close, b.high, b.low) = (mid, mid, mid + 1.0, mid - 1.0);
        }
        bars
    }

    #[test]
    fn adx_fires_when_a_trend_starts_and_when_it_fades() {
        let bars = range_trend_range();
        let adx = AdxDetector::default();
        let got = fired(&adx, &bars);
        assert_eq!(
            got.iter().map(|f| f.1).collect::<Vec<_>>(),
            ["adx_strong_trend", "adx_weak_trend"],
            "{got:?}"
        );
        assert!((60..80).contains(&got[0].0) && got[1].0 > 100, "{got:?}");
        let d = adx.detect(&bars, got[0].0).unwrap();
        assert_common(&d, &adx, &bars[got[0].0]);
        assert_eq!(d.direction, Direction::Neutral);
        assert!(d.metadata["plus_di"] > d.metadata["minus_di"]);
        assert!(d.metadata["previous_adx"] <= 25.0 && d.metadata["current_adx"] > 25.0);
    }
}
