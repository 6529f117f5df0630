//! Signal detectors: the generator families of the old platform, evaluated on closed candles.
//!
//! A [`Detector`] looks at one candle `bars[index]` and reports a [`Detection`] when its
//! condition fires there. Cross families fire only on the candle where the condition starts
//! (a cross between `index - 1` and `index`), so a condition that persists is not re-emitted on
//! the following candles; the volume spike is an event and fires on every candle that has one.
//!
//! Each detector computes its indicators over the fixed window
//! `bars[index - lookback ..= index]`, never over anything before or after it. The result for
//! a candle therefore does not depend on how much history the caller fetched, so re-scanning the
//! same candle always gives the same detection (what signal ids and de-duplication rely on).
//! The EMA-based families use a 250-bar lookback, enough for the EMA seeds to be forgotten
//! (the weight left on the seed is below 1e-8).
//!
//! One file per family; the shared window, cross and confidence helpers are in `common.rs`. A new
//! family is a new file implementing [`Detector`], its `mod` line and a line in
//! [`all_detectors`].

use std::collections::BTreeMap;

use serde::Serialize;

use crate::vocab::{Bar, Direction};

mod common;

mod bollinger;
mod ema_crossover;
mod golden_cross;
mod macd;
mod rsi;
mod volume_spike;

pub use bollinger::BollingerDetector;
pub use ema_crossover::EmaCrossoverDetector;
pub use golden_cross::GoldenCrossDetector;
pub use macd::MacdDetector;
pub use rsi::RsiDetector;
pub use volume_spike::VolumeSpikeDetector;

/// What a detector found on one candle.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Detection {
    /// The generator family, e.g. `"rsi_generator"` (the signal's `source`).
    pub generator: &'static str,
    /// snake_case signal type, e.g. `"rsi_oversold"`.
    pub signal_type: &'static str,
    pub direction: Direction,
    /// 0..=100.
    pub confidence: u8,
    /// A human sentence with the numbers.
    pub reasoning: String,
    /// Open time of the candle that fired (Unix seconds).
    pub candle_time: i64,
    /// The indicator values that fired it, e.g. `current_rsi`, `previous_rsi`, `current_price`.
    pub metadata: BTreeMap<String, f64>,
}

/// One signal family.
pub trait Detector: Send + Sync {
    /// The generator id, e.g. `"rsi_generator"`.
    fn name(&self) -> &'static str;
    /// Number of bars needed before the evaluated candle: `detect(bars, index)` needs
    /// `index >= lookback()` and reads exactly `bars[index - lookback() ..= index]`.
    fn lookback(&self) -> usize;
    /// Evaluates the candle `bars[index]`. `None` when nothing fires, when there is not enough
    /// history, or when `index` is out of range. Never panics.
    fn detect(&self, bars: &[Bar], index: usize) -> Option<Detection>;
}

/// Every detector, with the parameters of the old platform.
pub fn all_detectors() -> Vec<Box<dyn Detector>> {
    vec![
        Box::new(RsiDetector),
        Box::new(GoldenCrossDetector),
        Box::new(MacdDetector),
        Box::new(EmaCrossoverDetector),
        Box::new(BollingerDetector),
        Box::new(VolumeSpikeDetector),
    ]
}

/// The largest [`Detector::lookback`] of [`all_detectors`]: fetch `required_lookback() + 1`
/// closed bars to evaluate the newest one with every detector.
pub fn required_lookback() -> usize {
    all_detectors()
        .iter()
        .map(|d| d.lookback())
        .max()
        .unwrap_or(0)
}

/// Series builders and assertions shared by the families' tests.
#[cfg(test)]
mod test_support {
    use super::*;

    /// Candles from closes (open = previous close, wicks 0.1 % beyond) with a constant volume.
    pub fn bars_from_closes(closes: &[f64]) -> Vec<Bar> {
        closes
            .iter()
            .enumerate()
            .map(|(i, &close)| {
                let open = if i == 0 { close } else { closes[i - 1] };
                Bar {
                    time: 1_700_000_000 + 60 * i as i64,
                    open,
                    high: open.max(close) * 1.001,
                    low: open.min(close) * 0.999,
                    close,
                    volume: 1_000.0,
                }
            })
            .collect()
    }

    /// Every (index, signal_type, direction) the detector fires on over the whole series.
    pub fn fired(detector: &dyn Detector, bars: &[Bar]) -> Vec<(usize, &'static str, Direction)> {
        (0..bars.len())
            .filter_map(|i| {
                detector
                    .detect(bars, i)
                    .map(|d| (i, d.signal_type, d.direction))
            })
            .collect()
    }

    /// A zig-zag of ±1 around 100 (RSI ≈ 50, tiny Bollinger bands), ending on an up move when
    /// `len` is even.
    pub fn zigzag(len: usize) -> Vec<f64> {
        (0..len).map(|i| 100.0 + (i % 2) as f64).collect()
    }

    pub fn assert_common(d: &Detection, detector: &dyn Detector, bar: &Bar) {
        assert_eq!(d.generator, detector.name());
        assert_eq!(d.candle_time, bar.time);
        assert_eq!(d.metadata["current_price"], bar.close);
        assert!((65..=100).contains(&d.confidence), "{}", d.confidence);
        assert!(!d.reasoning.is_empty());
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::test_support::*;
    use super::*;
    use crate::market::{MarketData, SyntheticFeed};
    use crate::vocab::Timeframe;

    #[test]
    fn too_little_history_or_a_bad_index_detects_nothing() {
        let bars = bars_from_closes(&zigzag(300));
        for detector in all_detectors() {
            let lookback = detector.lookback();
            assert!(detector.detect(&[], 0).is_none());
            assert!(detector.detect(&bars[..lookback], lookback - 1).is_none());
            assert!(detector.detect(&bars, lookback - 1).is_none());
            assert!(detector.detect(&bars, bars.len()).is_none());
            assert!(detector.detect(&bars, usize::MAX).is_none());
        }
        // Garbage values never fire and never panic.
        let mut bad = bars.clone();
        for bar in bad.iter_mut().skip(100) {
            bar.close = f64::NAN;
            bar.volume = f64::INFINITY;
        }
        for detector in all_detectors() {
            assert!(
                fired(detector.as_ref(), &bad)
                    .iter()
                    .all(|(i, ..)| *i < 100)
            );
        }
    }

    #[test]
    fn a_detection_depends_only_on_its_window() {
        let feed = SyntheticFeed::new(5);
        let bars: Vec<Bar> = (0..700)
            .map(|k| feed.bar("AAPL", Timeframe::H1, k))
            .collect();
        for detector in all_detectors() {
            let lookback = detector.lookback();
            for i in (lookback..700).step_by(7) {
                let full = detector.detect(&bars, i);
                assert_eq!(detector.detect(&bars[..=i], i), full);
                assert_eq!(detector.detect(&bars[i - lookback..=i], lookback), full);
            }
        }
    }

    #[test]
    fn registry_lists_every_family_once() {
        let names: Vec<&str> = all_detectors().iter().map(|d| d.name()).collect();
        assert_eq!(
            names,
            [
                "rsi_generator",
                "golden_cross_generator",
                "macd_generator",
                "ema_crossover_generator",
                "bollinger_generator",
                "volume_spike_generator"
            ]
        );
        assert_eq!(required_lookback(), 250);
    }

    #[tokio::test]
    async fn the_synthetic_feed_exercises_every_family() {
        let feed = SyntheticFeed::new(42);
        let detectors = all_detectors();
        for (ticker, timeframe) in [
            ("AAPL", Timeframe::D1),
            ("BTCUSD", Timeframe::M5),
            ("MSFT", Timeframe::H1),
        ] {
            let bars = feed
                .closed_bars(ticker, timeframe, 1_732_550_400, 2_000)
                .await
                .unwrap();
            assert_eq!(bars.len(), 2_000);
            let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
            for detector in &detectors {
                for i in 0..bars.len() {
                    if let Some(d) = detector.detect(&bars, i) {
                        assert!(d.metadata.values().all(|v| v.is_finite()));
                        assert!(serde_json::to_string(&d).is_ok());
                        *counts.entry(d.signal_type).or_default() += 1;
                    }
                }
            }
            for signal_type in [
                "rsi_oversold",
                "rsi_overbought",
                "golden_cross",
                "death_cross",
                "macd_bullish",
                "macd_bearish",
                "ema_bullish_cross",
                "ema_bearish_cross",
                "bollinger_breakout_up",
                "bollinger_breakout_down",
                "volume_spike",
            ] {
                assert!(
                    counts.get(signal_type).copied().unwrap_or(0) >= 1,
                    "{ticker}/{timeframe}: no {signal_type} in {counts:?}"
                );
            }
            eprintln!("{ticker}/{timeframe}: {counts:?}");
        }
    }
}
