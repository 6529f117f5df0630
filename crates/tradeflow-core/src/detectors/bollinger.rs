//! Bollinger Bands family: the close breaking out of (or bouncing back inside) the bands.

use serde::{Deserialize, Serialize};

use crate::indicators;
use crate::vocab::{Bar, Direction};

use super::common::{Fired, Pair, closes, price, scaled, window};
use super::ema_200_crossover::volume_ratio;
use super::{Detection, Detector};

/// Which band events the family reports (one mode per instance, as in the original).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BollingerMode {
    /// The close crosses out of the bands.
    #[default]
    Breakout,
    /// The close comes back inside the bands after closing at or beyond one.
    Bounce,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BollingerConfig {
    pub timeperiod: usize,
    pub nbdev: f64,
    pub mode: BollingerMode,
}

impl Default for BollingerConfig {
    fn default() -> Self {
        BollingerConfig {
            timeperiod: 20,
            nbdev: 2.0,
            mode: BollingerMode::Breakout,
        }
    }
}

/// TA-Lib BBANDS(20, 2, 2, SMA). Breakout mode: the close crosses above the upper band →
/// `bbands_upper_breakout` (BULLISH), below the lower band → `bbands_lower_breakout`
/// (BEARISH). Bounce mode: the close comes back above the lower band → `bbands_lower_bounce`
/// (BULLISH), back below the upper band → `bbands_upper_bounce` (BEARISH). Confidence 60 + up
/// to 20 for the close's distance from the band (full at half a band width, i.e. one σ),
/// + up to 15 for the candle's volume against the 20 before (full at 2×).
#[derive(Debug, Clone, Default)]
pub struct BollingerDetector {
    pub config: BollingerConfig,
}

impl Detector for BollingerDetector {
    fn name(&self) -> &'static str {
        "bollinger_bands_generator"
    }

    fn lookback(&self) -> usize {
        self.config.timeperiod.max(20)
    }

    fn signal_types(&self) -> &'static [&'static str] {
        &[
            "bbands_upper_breakout",
            "bbands_lower_breakout",
            "bbands_lower_bounce",
            "bbands_upper_bounce",
        ]
    }

    fn detect(&self, bars: &[Bar], index: usize) -> Option<Detection> {
        let c = &self.config;
        let w = window(bars, index, self.lookback())?;
        let (bar, before) = w.split_last()?;
        let close = Pair {
            previous: before.last()?.close,
            current: bar.close,
        };
        let bands = indicators::bollinger(&closes(w), c.timeperiod, c.nbdev);
        let upper = Pair::last_two(&bands.upper)?;
        let middle = Pair::last_two(&bands.middle)?.current;
        let lower = Pair::last_two(&bands.lower)?;
        let half_width = upper.current - middle;
        let (signal_type, direction, what, band) = match c.mode {
            BollingerMode::Breakout => {
                if close.crossed_above(upper) {
                    (
                        "bbands_upper_breakout",
                        Direction::Bullish,
                        "broke above the upper",
                        upper,
                    )
                } else if close.crossed_below(lower) {
                    (
                        "bbands_lower_breakout",
                        Direction::Bearish,
                        "broke below the lower",
                        lower,
                    )
                } else {
                    return None;
                }
            }
            BollingerMode::Bounce => {
                if close.previous <= lower.previous && close.current > lower.current {
                    (
                        "bbands_lower_bounce",
                        Direction::Bullish,
                        "came back above the lower",
                        lower,
                    )
                } else if close.previous >= upper.previous && close.current < upper.current {
                    (
                        "bbands_upper_bounce",
                        Direction::Bearish,
                        "came back below the upper",
                        upper,
                    )
                } else {
                    return None;
                }
            }
        };
        let distance = (bar.close - band.current).abs() / half_width;
        let ratio = volume_ratio(before, bar, 20);
        let confidence =
            scaled(60, distance, 1.0, 20).saturating_add(scaled(0, ratio - 1.0, 1.0, 15));
        let fired = Fired::new(
            self.name(),
            signal_type,
            direction,
            confidence,
            format!(
                "Close {} {what} Bollinger band {} ({}, {}; middle {})",
                price(bar.close),
                price(band.current),
                c.timeperiod,
                c.nbdev,
                price(middle)
            ),
        );
        Some(fired.at(
            bar,
            &[
                ("timeperiod", c.timeperiod as f64),
                ("upper_band", upper.current),
                ("middle_band", middle),
                ("lower_band", lower.current),
                (
                    "band_width_pct",
                    (upper.current - lower.current) / middle * 100.0,
                ),
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

    fn series() -> Vec<Bar> {
        // A zig-zag (σ = 0.5), a jump to 105 at 40 (far above the upper band), back to the
        // zig-zag at 41, a drop to 95 at 80 and back at 81.
        let closes: Vec<f64> = (0..100)
            .map(|i| match i {
                40 => 105.0,
                80 => 95.0,
                _ => 100.0 + (i % 2) as f64,
            })
            .collect();
        bars_from_closes(&closes)
    }

    #[test]
    fn breakouts_fire_on_the_candle_that_leaves_the_bands() {
        let bars = series();
        let bb = BollingerDetector::default();
        assert_eq!(
            fired(&bb, &bars),
            [
                (40, "bbands_upper_breakout", Direction::Bullish),
                (80, "bbands_lower_breakout", Direction::Bearish)
            ]
        );
        let d = bb.detect(&bars, 40).unwrap();
        assert_common(&d, &bb, &bars[40]);
        assert!(d.metadata["upper_band"] < 105.0);
        // The first breakout is possible at index 20 (bands defined from 19).
        let mut closes: Vec<f64> = (0..20).map(|i| 100.0 + (i % 2) as f64).collect();
        closes.push(110.0);
        assert_eq!(
            fired(&bb, &bars_from_closes(&closes)),
            [(20, "bbands_upper_breakout", Direction::Bullish)]
        );
    }

    #[test]
    fn bounce_mode_fires_when_the_close_comes_back_inside() {
        let bars = series();
        let bb = BollingerDetector {
            config: BollingerConfig {
                mode: BollingerMode::Bounce,
                ..BollingerConfig::default()
            },
        };
        assert_eq!(
            fired(&bb, &bars),
            [
                (41, "bbands_upper_bounce", Direction::Bearish),
                (81, "bbands_lower_bounce", Direction::Bullish)
            ]
        );
    }
}
