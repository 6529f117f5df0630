//! Golden cross family: SMA(50) crossing above SMA(200). The death cross (`death_cross.rs`)
//! is its mirror and shares [`sma_cross`].

use serde::{Deserialize, Serialize};

use crate::indicators;
use crate::vocab::{Bar, Direction};

use super::common::{Cross, Fired, Pair, closes, price, scaled, window};
use super::{Detection, Detector};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SmaCrossConfig {
    pub sma_short: usize,
    pub sma_long: usize,
}

impl Default for SmaCrossConfig {
    fn default() -> Self {
        SmaCrossConfig {
            sma_short: 50,
            sma_long: 200,
        }
    }
}

impl SmaCrossConfig {
    /// 5 extra candles for the long average's slope.
    pub(super) fn lookback(&self) -> usize {
        self.sma_long.max(self.sma_short) + 5
    }
}

/// The cross of SMA(short) and SMA(long) on `bars[index]` in the wanted direction.
/// Confidence 60, + 15 when the long average already slopes the cross's way over 5 candles,
/// + up to 15 for the close's distance beyond the short average (full at 2 %).
pub(super) fn sma_cross(
    generator: &'static str,
    config: &SmaCrossConfig,
    wanted: Cross,
    bars: &[Bar],
    index: usize,
) -> Option<Detection> {
    let w = window(bars, index, config.lookback())?;
    let bar = w.last()?;
    let closes = closes(w);
    let short = Pair::last_two(&indicators::sma(&closes, config.sma_short))?;
    let long_line = indicators::sma(&closes, config.sma_long);
    let long = Pair::last_two(&long_line)?;
    if short.cross(long)? != wanted {
        return None;
    }
    let long_before = long_line.len().checked_sub(6).and_then(|i| long_line[i]);
    let (signal_type, direction, verb, sign) = match wanted {
        Cross::Up => ("golden_cross", Direction::Bullish, "above", 1.0),
        Cross::Down => ("death_cross", Direction::Bearish, "below", -1.0),
    };
    let slope_agrees = long_before.is_some_and(|b| sign * (long.current - b) > 0.0);
    let beyond_pct = sign * (bar.close - short.current) / short.current * 100.0;
    let confidence =
        scaled(60, beyond_pct, 2.0, 15).saturating_add(if slope_agrees { 15 } else { 0 });
    let fired = Fired::new(
        generator,
        signal_type,
        direction,
        confidence,
        format!(
            "SMA({}) {} crossed {verb} SMA({}) {} at close {}",
            config.sma_short,
            price(short.current),
            config.sma_long,
            price(long.current),
            price(bar.close)
        ),
    );
    Some(fired.at(
        bar,
        &[
            ("sma_short", config.sma_short as f64),
            ("sma_long", config.sma_long as f64),
            ("current_sma_short", short.current),
            ("current_sma_long", long.current),
            ("current_price", bar.close),
        ],
    ))
}

/// TA-Lib SMA(50) crosses above SMA(200) → `golden_cross` (BULLISH), on the crossing candle
/// only (the original re-emitted it for 5 candles).
#[derive(Debug, Clone, Default)]
pub struct GoldenCrossDetector {
    pub config: SmaCrossConfig,
}

impl Detector for GoldenCrossDetector {
    fn name(&self) -> &'static str {
        "golden_cross_generator"
    }

    fn lookback(&self) -> usize {
        self.config.lookback()
    }

    fn signal_types(&self) -> &'static [&'static str] {
        &["golden_cross"]
    }

    fn detect(&self, bars: &[Bar], index: usize) -> Option<Detection> {
        sma_cross(self.name(), &self.config, Cross::Up, bars, index)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::super::DeathCrossDetector;
    use super::super::test_support::*;
    use super::*;

    #[test]
    fn golden_and_death_crosses_fire_once_each() {
        // 250 candles at 100 (SMAs equal), a step up to 110 (SMA 50 rises faster: golden
        // cross at 250), then a step down to 80 at 400 (death cross a few candles later).
        let closes: Vec<f64> = (0..500)
            .map(|i| match i {
                0..250 => 100.0,
                250..400 => 110.0,
                _ => 80.0,
            })
            .collect();
        let bars = bars_from_closes(&closes);
        let golden = GoldenCrossDetector::default();
        let death = DeathCrossDetector::default();
        assert_eq!(
            fired(&golden, &bars),
            [(250, "golden_cross", Direction::Bullish)]
        );
        let got = fired(&death, &bars);
        assert_eq!(got.len(), 1);
        assert_eq!((got[0].1, got[0].2), ("death_cross", Direction::Bearish));
        assert!((400..460).contains(&got[0].0), "{got:?}");
        let d = golden.detect(&bars, 250).unwrap();
        assert_common(&d, &golden, &bars[250]);
        assert!(d.metadata["current_sma_short"] > d.metadata["current_sma_long"]);
        // SMA 200 up from 100 to 100.05 over 5 candles, close 110 ≥ 2 % above SMA 50 100.2.
        assert_eq!(d.confidence, 90);
    }

    #[test]
    fn the_cross_can_fire_on_the_first_candle_after_sma_200_is_defined() {
        let mut closes = vec![100.0; 200];
        closes.push(120.0);
        let bars = bars_from_closes(&closes);
        assert_eq!(
            fired(&GoldenCrossDetector::default(), &bars),
            [(200, "golden_cross", Direction::Bullish)]
        );
    }
}
