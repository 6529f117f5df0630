//! Volume spike family: a candle's volume far above the average of the candles before it.

use serde::{Deserialize, Serialize};

use crate::vocab::{Bar, Direction};

use super::common::{Fired, price, scaled, window};
use super::{Detection, Detector};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VolumeSpikeConfig {
    pub volume_period: usize,
    pub spike_threshold: f64,
    /// Bias from the candle's body (false: always NEUTRAL).
    pub use_price_direction: bool,
    /// A body smaller than this (in % of the open) is NEUTRAL.
    pub min_price_change_pct: f64,
}

impl Default for VolumeSpikeConfig {
    fn default() -> Self {
        VolumeSpikeConfig {
            volume_period: 20,
            spike_threshold: 2.0,
            use_price_direction: true,
            min_price_change_pct: 1.0,
        }
    }
}

/// Volume at least 2 × the mean volume of the 20 candles **before** it (the original included
/// the spike candle in its own average) → `volume_spike`: BULLISH when the candle's body
/// `(close - open) / open` is at least +1 %, BEARISH at most -1 %, NEUTRAL in between. Each
/// candle is its own event (a spike on two candles in a row is two signals). Confidence 55 +
/// up to 25 for the volume ratio beyond the threshold (full at threshold + 3), + up to 15 for
/// the body (full at 3 %).
#[derive(Debug, Clone, Default)]
pub struct VolumeSpikeDetector {
    pub config: VolumeSpikeConfig,
}

impl Detector for VolumeSpikeDetector {
    fn name(&self) -> &'static str {
        "volume_spike_generator"
    }

    fn lookback(&self) -> usize {
        self.config.volume_period.max(1)
    }

    fn signal_types(&self) -> &'static [&'static str] {
        &["volume_spike"]
    }

    fn detect(&self, bars: &[Bar], index: usize) -> Option<Detection> {
        let c = &self.config;
        let w = window(bars, index, self.lookback())?;
        let (bar, before) = w.split_last()?;
        if before.len() < c.volume_period.max(1) {
            return None;
        }
        let average_volume = before.iter().map(|b| b.volume).sum::<f64>() / before.len() as f64;
        if !(average_volume > 0.0 && bar.open > 0.0) {
            return None;
        }
        let ratio = bar.volume / average_volume;
        if !(ratio >= c.spike_threshold && ratio.is_finite()) {
            return None;
        }
        let change_pct = (bar.close - bar.open) / bar.open * 100.0;
        if !change_pct.is_finite() {
            return None;
        }
        let direction = if !c.use_price_direction || change_pct.abs() < c.min_price_change_pct {
            Direction::Neutral
        } else if change_pct > 0.0 {
            Direction::Bullish
        } else {
            Direction::Bearish
        };
        let confidence = scaled(55, ratio - c.spike_threshold, 3.0, 25).saturating_add(scaled(
            0,
            change_pct.abs(),
            3.0,
            15,
        ));
        let fired = Fired::new(
            self.name(),
            "volume_spike",
            direction,
            confidence,
            format!(
                "Volume {:.0} is {ratio:.2}x the {}-candle average {average_volume:.0}, candle \
                 body {change_pct:+.2}% at close {}",
                bar.volume,
                c.volume_period,
                price(bar.close)
            ),
        );
        Some(fired.at(
            bar,
            &[
                ("volume_period", c.volume_period as f64),
                ("spike_threshold", c.spike_threshold),
                ("current_volume", bar.volume),
                ("average_volume", average_volume),
                ("volume_ratio", ratio),
                ("price_change_pct", change_pct),
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
    fn volume_spike_fires_on_every_candle_with_a_spike_biased_by_its_body() {
        // Volume 100 except: 30: 2.6× with a +2 % body → BULLISH; 60: 3× with a +0.5 % body →
        // NEUTRAL; 90: 1.99× → nothing; 120: 2.2× with -1.5 % → BEARISH; 150 and 151: 4× and
        // 10× with +2 % each → both fire (151's average includes 150's spike).
        let mut bars = bars_from_closes(&zigzag(170));
        for (i, (volume, body)) in [
            (30, (260.0, 0.02)),
            (60, (300.0, 0.005)),
            (90, (199.0, 0.03)),
            (120, (220.0, -0.015)),
            (150, (400.0, 0.02)),
            (151, (1_000.0, 0.02)),
        ] {
            let bar: &mut Bar = &mut bars[i];
            bar.volume = volume;
            bar.close = bar.open * (1.0 + body);
        }
        for bar in &mut bars {
            if bar.volume == 1_000.0 {
                bar.volume = 100.0;
            }
        }
        bars[151].volume = 1_000.0;
        let vs = VolumeSpikeDetector::default();
        assert_eq!(
            fired(&vs, &bars),
            [
                (30, "volume_spike", Direction::Bullish),
                (60, "volume_spike", Direction::Neutral),
                (120, "volume_spike", Direction::Bearish),
                (150, "volume_spike", Direction::Bullish),
                (151, "volume_spike", Direction::Bullish)
            ]
        );
        let d = vs.detect(&bars, 30).unwrap();
        assert_common(&d, &vs, &bars[30]);
        assert!((d.metadata["average_volume"] - 100.0).abs() < 1e-9);
        assert!((d.metadata["volume_ratio"] - 2.6).abs() < 1e-9);
        assert!((d.metadata["price_change_pct"] - 2.0).abs() < 1e-9);
        // 55 + 25 · 0.6/3 + 15 · 2/3 = 70.
        assert_eq!(d.confidence, 70);
        let d = vs.detect(&bars, 151).unwrap();
        assert!((d.metadata["average_volume"] - 115.0).abs() < 1e-9);
        assert_eq!(d.confidence, 55 + 25 + 10);
        // The first candle with 20 candles before it can fire.
        let mut early = bars_from_closes(&zigzag(21));
        early[20].volume = 5_000.0;
        assert_eq!(
            fired(&vs, &early),
            [(20, "volume_spike", Direction::Neutral)]
        );
    }
}
