//! Stochastic family: slow %K crossing slow %D.

use serde::{Deserialize, Serialize};

use crate::indicators;
use crate::vocab::{Bar, Direction};

use super::common::{Cross, Fired, Ohlcv, Pair, price, scaled, window};
use super::{Detection, Detector};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StochasticConfig {
    pub fastk_period: usize,
    pub slowk_period: usize,
    pub slowd_period: usize,
    pub overbought: f64,
    pub oversold: f64,
}

impl Default for StochasticConfig {
    fn default() -> Self {
        StochasticConfig {
            fastk_period: 14,
            slowk_period: 3,
            slowd_period: 3,
            overbought: 80.0,
            oversold: 20.0,
        }
    }
}

/// TA-Lib STOCH(14, 3, 3, SMA): slow %K crosses above slow %D → `stoch_bullish` (BULLISH);
/// below → `stoch_bearish` (BEARISH). Confidence 55, + 20 when the cross happens in the zone
/// that favours it (a bullish cross with %K below 20, a bearish one above 80), + up to 15 for
/// the %K-%D gap after the cross (full at 10 points).
#[derive(Debug, Clone, Default)]
pub struct StochasticDetector {
    pub config: StochasticConfig,
}

impl Detector for StochasticDetector {
    fn name(&self) -> &'static str {
        "stochastic_generator"
    }

    fn lookback(&self) -> usize {
        let c = &self.config;
        c.fastk_period + c.slowk_period + c.slowd_period
    }

    fn signal_types(&self) -> &'static [&'static str] {
        &["stoch_bullish", "stoch_bearish"]
    }

    fn detect(&self, bars: &[Bar], index: usize) -> Option<Detection> {
        let c = &self.config;
        let w = window(bars, index, self.lookback())?;
        let bar = w.last()?;
        let s = Ohlcv::of(w);
        let st = indicators::stoch(
            &s.high,
            &s.low,
            &s.close,
            c.fastk_period,
            c.slowk_period,
            c.slowd_period,
        );
        let k = Pair::last_two(&st.k)?;
        let d = Pair::last_two(&st.d)?;
        let (signal_type, direction, in_zone, key) = match k.cross(d)? {
            Cross::Up => (
                "stoch_bullish",
                Direction::Bullish,
                k.current < c.oversold,
                "in_oversold",
            ),
            Cross::Down => (
                "stoch_bearish",
                Direction::Bearish,
                k.current > c.overbought,
                "in_overbought",
            ),
        };
        let confidence = scaled(55, (k.current - d.current).abs(), 10.0, 15)
            .saturating_add(if in_zone { 20 } else { 0 });
        let fired = Fired::new(
            self.name(),
            signal_type,
            direction,
            confidence,
            format!(
                "Stochastic %K {:.2} crossed %D {:.2}{} at close {}",
                k.current,
                d.current,
                if in_zone { " inside the zone" } else { "" },
                price(bar.close)
            ),
        );
        Some(fired.at(
            bar,
            &[
                ("current_k", k.current),
                ("current_d", d.current),
                ("previous_k", k.previous),
                ("previous_d", d.previous),
                (key, if in_zone { 1.0 } else { 0.0 }),
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
    fn stochastic_crosses_fire_once_with_a_zone_bonus() {
        // A long fall (%K and %D pinned near 0), then a rise: %K turns up through %D while
        // still below 20; then a fall from the top: %K crosses down above 80.
        let mut closes: Vec<f64> = (0..30).map(|i| 200.0 - 2.0 * f64::from(i)).collect();
        closes.extend((1..=15).map(|i| 142.0 + 4.0 * f64::from(i)));
        closes.extend((1..=5).map(|i| 202.0 - 0.5 * f64::from(i)));
        let bars = bars_from_closes(&closes);
        let st = StochasticDetector::default();
        let got = fired(&st, &bars);
        assert_eq!(
            got,
            [
                (30, "stoch_bullish", Direction::Bullish),
                (45, "stoch_bearish", Direction::Bearish)
            ]
        );
        let d = st.detect(&bars, 30).unwrap();
        assert_common(&d, &st, &bars[30]);
        assert_eq!(d.metadata["in_oversold"], 1.0);
        assert!(d.confidence >= 75);
    }
}
