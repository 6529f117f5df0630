//! Volume spike family: unusual volume together with a price move.

use crate::vocab::{Bar, Direction};

use super::common::{Fired, confidence, price, window};
use super::{Detection, Detector};

/// Volume at least 2 × the average volume of the previous 20 candles together with a close at
/// least 1 % away from the previous close → `volume_spike`, BULLISH if the close rose, BEARISH
/// if it fell. An event, not a cross: fires on every candle that satisfies it. Confidence 65 +
/// up to 20 (5 per unit of volume ratio above 2, 2 per % of price move above 1 %).
#[derive(Debug, Clone, Copy, Default)]
pub struct VolumeSpikeDetector;

impl VolumeSpikeDetector {
    pub const AVERAGE_PERIOD: usize = 20;
    pub const MIN_RATIO: f64 = 2.0;
    pub const MIN_MOVE: f64 = 0.01;
    const BASE_CONFIDENCE: u8 = 65;
}

impl Detector for VolumeSpikeDetector {
    fn name(&self) -> &'static str {
        "volume_spike_generator"
    }

    fn lookback(&self) -> usize {
        Self::AVERAGE_PERIOD
    }

    fn detect(&self, bars: &[Bar], index: usize) -> Option<Detection> {
        let w = window(bars, index, self.lookback())?;
        let (bar, previous_bars) = w.split_last()?;
        let previous_close = previous_bars.last()?.close;
        let average_volume =
            previous_bars.iter().map(|b| b.volume).sum::<f64>() / previous_bars.len() as f64;
        if !(average_volume > 0.0 && previous_close > 0.0) {
            return None;
        }
        let ratio = bar.volume / average_volume;
        let change = bar.close / previous_close - 1.0;
        if !(ratio >= Self::MIN_RATIO && change.abs() >= Self::MIN_MOVE) {
            return None;
        }
        let change_pct = change * 100.0;
        let (direction, verb) = if change > 0.0 {
            (Direction::Bullish, "up")
        } else {
            (Direction::Bearish, "down")
        };
        let fired = Fired {
            generator: self.name(),
            signal_type: "volume_spike",
            direction,
            confidence: confidence(
                Self::BASE_CONFIDENCE,
                5.0 * (ratio - Self::MIN_RATIO) + 2.0 * (change_pct.abs() - 1.0),
                20,
            ),
            reasoning: format!(
                "Volume {:.0} is {ratio:.2}x the 20-candle average {average_volume:.0} \
                 with the close {verb} {:.2}% at {}",
                bar.volume,
                change_pct.abs(),
                price(bar.close)
            ),
        };
        Some(fired.at(
            bar,
            &[
                ("volume", bar.volume),
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
    fn volume_spike_fires_on_every_candle_with_volume_and_a_move() {
        // Closes alternate ±0.3 %, volume 100. Events (30+ candles apart so each average is
        // 100): 30: 2.6× and +2 % → fires; 60: 3× but +0.5 % → no; 90: 1.99× and +3 % → no;
        // 120: 2.2× and -1.5 % → fires; 150 and 151: 4× and 10× with +2 % each → both fire.
        let mut closes: Vec<f64> = Vec::new();
        let mut volumes: Vec<f64> = Vec::new();
        let mut close = 100.0;
        for i in 0..170 {
            let (volume, change) = match i {
                30 => (260.0, 0.02),
                60 => (300.0, 0.005),
                90 => (199.0, 0.03),
                120 => (220.0, -0.015),
                150 => (400.0, 0.02),
                151 => (1_000.0, 0.02),
                _ => (100.0, if i % 2 == 0 { 0.003 } else { -0.003 }),
            };
            close *= 1.0 + change;
            closes.push(close);
            volumes.push(volume);
        }
        let mut bars = bars_from_closes(&closes);
        for (bar, volume) in bars.iter_mut().zip(&volumes) {
            bar.volume = *volume;
        }
        assert_eq!(
            fired(&VolumeSpikeDetector, &bars),
            [
                (30, "volume_spike", Direction::Bullish),
                (120, "volume_spike", Direction::Bearish),
                (150, "volume_spike", Direction::Bullish),
                (151, "volume_spike", Direction::Bullish)
            ]
        );
        let d = VolumeSpikeDetector.detect(&bars, 30).unwrap();
        assert_common(&d, &VolumeSpikeDetector, &bars[30]);
        assert_eq!(d.metadata["volume"], 260.0);
        assert!((d.metadata["average_volume"] - 100.0).abs() < 1e-9);
        assert!((d.metadata["volume_ratio"] - 2.6).abs() < 1e-9);
        assert!((d.metadata["price_change_pct"] - 2.0).abs() < 1e-9);
        // 65 + 5 · 0.6 + 2 · 1.0 = 70.
        assert_eq!(d.confidence, 70);
        let d = VolumeSpikeDetector.detect(&bars, 151).unwrap();
        assert!((d.metadata["average_volume"] - 115.0).abs() < 1e-9);
        assert_eq!(d.confidence, 85, "bonus capped at 20");
    }
}
