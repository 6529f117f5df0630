//! Signal detectors: the generator families of the old platform, evaluated on closed candles.
//!
//! A [`Detector`] looks at one candle `bars[index]` and reports a [`Detection`] when its
//! condition fires there. Cross families fire only on the candle where the condition starts
//! (a cross between `index - 1` and `index`), so a condition that persists is not re-emitted on
//! the following candles; the volume spike is an event and fires on every candle that has one.
//!
//! Each detector computes its indicators with TA-Lib's definitions (seeding and warm-up
//! included, see `indicators.rs`) over the candle's window `bars[index - lookback ..= index]`,
//! or over `bars[..= index]` when the series starts later than that: a family fires as soon as
//! its indicator is defined (RSI(14) from the 16th candle), not only once a full window exists.
//! Nothing after the candle is read. With a fixed window the result for a candle does not
//! depend on how much history the caller fetched beyond the lookback, so re-scanning the same
//! candle gives the same detection (what signal ids and de-duplication rely on); the generator
//! always fetches the lookback before the first candle it evaluates, or the instrument's whole
//! history when it is shorter. The EMA and Wilder families use a 250-candle window (5 × the
//! period above 50), enough for the seed to be forgotten (its weight is below 1e-8 for the
//! default periods, about 3e-4 for EMA 200).
//!
//! Every family has a config struct with the original's parameters as defaults, deserializable
//! from JSON with only the fields to change (see [`detectors_from_json`]).
//!
//! One file per family; the shared window, cross and confidence helpers are in `common.rs`. A new
//! family is a new file implementing [`Detector`], its `mod` line and a line in
//! [`all_detectors`].

use std::collections::BTreeMap;

use serde::Serialize;

use crate::vocab::{Bar, Direction, Timeframe};

mod common;

mod accumulation_distribution;
mod adx;
mod aroon;
mod atr;
mod bollinger;
mod break_of_structure;
mod cci;
mod change_of_character;
mod death_cross;
mod ema_200_crossover;
mod ema_crossover;
mod fair_value_gap;
mod golden_cross;
mod htf_trend_alignment;
mod liquidity_sweep;
mod macd;
mod mfi;
mod momentum_divergence;
mod obv;
mod order_block;
mod rsi;
mod sar;
mod stochastic;
mod stochrsi;
mod structure;
mod swing_point_break;
mod volume_profile_poc;
mod volume_spike;
mod williams_r;

pub use accumulation_distribution::{
    AccumulationDistributionConfig, AccumulationDistributionDetector,
};
pub use adx::{AdxConfig, AdxDetector};
pub use aroon::{AroonConfig, AroonDetector};
pub use atr::{AtrConfig, AtrDetector};
pub use bollinger::{BollingerConfig, BollingerDetector, BollingerMode};
pub use break_of_structure::{BreakOfStructureDetector, StructureConfig};
pub use cci::{CciConfig, CciDetector};
pub use change_of_character::{ChangeOfCharacterDetector, ChochConfig};
pub use common::ZoneTiming;
pub use death_cross::DeathCrossDetector;
pub use ema_200_crossover::{Ema200Config, Ema200CrossoverDetector};
pub use ema_crossover::{EmaCrossoverConfig, EmaCrossoverDetector};
pub use fair_value_gap::{FairValueGapConfig, FairValueGapDetector};
pub use golden_cross::{GoldenCrossDetector, SmaCrossConfig};
pub use htf_trend_alignment::{HtfTrendAlignmentDetector, HtfTrendConfig};
pub use liquidity_sweep::{LiquiditySweepConfig, LiquiditySweepDetector};
pub use macd::{MacdConfig, MacdDetector};
pub use mfi::{MfiConfig, MfiDetector};
pub use momentum_divergence::{
    DivergenceIndicator, MomentumDivergenceConfig, MomentumDivergenceDetector,
};
pub use obv::{ObvConfig, ObvDetector};
pub use order_block::{OrderBlockConfig, OrderBlockDetector};
pub use rsi::{RsiConfig, RsiDetector};
pub use sar::{SarConfig, SarDetector};
pub use stochastic::{StochasticConfig, StochasticDetector};
pub use stochrsi::{StochRsiConfig, StochRsiDetector};
pub use swing_point_break::{SwingPointBreakDetector, SwingPointConfig};
pub use volume_profile_poc::{VolumeProfileConfig, VolumeProfileDetector};
pub use volume_spike::{VolumeSpikeConfig, VolumeSpikeDetector};
pub use williams_r::{WillrConfig, WillrDetector};

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
    /// Number of bars read before the evaluated candle: `detect(bars, index)` reads
    /// `bars[index - lookback() ..= index]` (from `bars[0]` when `index < lookback()`).
    fn lookback(&self) -> usize;
    /// Every `signal_type` this family can emit.
    fn signal_types(&self) -> &'static [&'static str];
    /// Evaluates the candle `bars[index]`. `None` when nothing fires, when there is not enough
    /// history, or when `index` is out of range. Never panics.
    fn detect(&self, bars: &[Bar], index: usize) -> Option<Detection>;
    /// The higher timeframes this family reads for candles of `own`, each with how many of its
    /// closed candles it needs (its window there). Empty, the default: the family reads only the
    /// candle's own series.
    fn higher_timeframes(&self, own: Timeframe) -> Vec<(Timeframe, usize)> {
        let _ = own;
        Vec::new()
    }
    /// Evaluates `bars[index]`, a candle of timeframe `own`, with the higher series the
    /// generator fetched for [`Detector::higher_timeframes`] (a series the source does not have
    /// is absent). A family reads, of each higher series, only the candles CLOSED at or before
    /// the evaluated candle's close (the one still forming then would be the future). The
    /// default ignores them: [`Detector::detect`].
    fn detect_with(
        &self,
        bars: &[Bar],
        index: usize,
        own: Timeframe,
        higher: &[HigherSeries<'_>],
    ) -> Option<Detection> {
        let _ = (own, higher);
        self.detect(bars, index)
    }
}

/// One higher-timeframe series handed to [`Detector::detect_with`]: candles of `timeframe`,
/// oldest first, open times strictly increasing.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HigherSeries<'a> {
    pub timeframe: Timeframe,
    pub bars: &'a [Bar],
}

impl<'a> HigherSeries<'a> {
    /// The candles closed at or before `time` (Unix seconds), oldest first.
    pub fn closed_by(&self, time: i64) -> &'a [Bar] {
        let tf = self.timeframe;
        let bars = self.bars;
        &bars[..bars.partition_point(|b| b.close_time(tf) <= time)]
    }
}

/// The higher series the `detectors` read for candles of `own`: each timeframe once, with the
/// most candles any of them needs, shortest timeframe first.
pub fn higher_timeframes_of(
    detectors: &[Box<dyn Detector>],
    own: Timeframe,
) -> Vec<(Timeframe, usize)> {
    let mut needed: BTreeMap<Timeframe, usize> = BTreeMap::new();
    for detector in detectors {
        for (tf, count) in detector.higher_timeframes(own) {
            let n = needed.entry(tf).or_default();
            *n = (*n).max(count);
        }
    }
    needed.into_iter().collect()
}

/// Every detector, with the parameters of the old platform.
pub fn all_detectors() -> Vec<Box<dyn Detector>> {
    FAMILIES
        .iter()
        .filter_map(|(_, build)| build(&serde_json::Value::Null).ok())
        .collect()
}

type Build = fn(&serde_json::Value) -> Result<Box<dyn Detector>, serde_json::Error>;

/// A family's config from JSON (`null` or `{}`: the defaults; unknown fields are refused).
fn config<T: serde::de::DeserializeOwned + Default>(
    value: &serde_json::Value,
) -> Result<T, serde_json::Error> {
    if value.is_null() {
        Ok(T::default())
    } else {
        serde_json::from_value(value.clone())
    }
}

macro_rules! family {
    ($key:literal, $detector:ident) => {
        ($key, |v| {
            Ok(Box::new($detector { config: config(v)? }) as Box<dyn Detector>)
        })
    };
}

/// Every family: its key in [`detectors_from_json`] and its constructor, in registry order.
const FAMILIES: &[(&str, Build)] = &[
    family!("rsi", RsiDetector),
    family!("golden_cross", GoldenCrossDetector),
    family!("death_cross", DeathCrossDetector),
    family!("macd", MacdDetector),
    family!("ema_crossover", EmaCrossoverDetector),
    family!("ema_200_crossover", Ema200CrossoverDetector),
    family!("bollinger_bands", BollingerDetector),
    family!("volume_spike", VolumeSpikeDetector),
    family!(
        "accumulation_distribution",
        AccumulationDistributionDetector
    ),
    family!("adx", AdxDetector),
    family!("aroon", AroonDetector),
    family!("atr", AtrDetector),
    family!("cci", CciDetector),
    family!("mfi", MfiDetector),
    family!("obv", ObvDetector),
    family!("sar", SarDetector),
    family!("stochastic", StochasticDetector),
    family!("stochrsi", StochRsiDetector),
    family!("williams_r", WillrDetector),
    family!("swing_point_break", SwingPointBreakDetector),
    family!("break_of_structure", BreakOfStructureDetector),
    family!("change_of_character", ChangeOfCharacterDetector),
    family!("fair_value_gap", FairValueGapDetector),
    family!("order_block", OrderBlockDetector),
    family!("liquidity_sweep", LiquiditySweepDetector),
    family!("volume_profile_poc", VolumeProfileDetector),
    family!("momentum_divergence", MomentumDivergenceDetector),
    family!("htf_trend_alignment", HtfTrendAlignmentDetector),
];

/// The family keys [`detectors_from_json`] accepts, in registry order.
pub fn family_keys() -> Vec<&'static str> {
    FAMILIES.iter().map(|(k, _)| *k).collect()
}

/// Every detector, with the parameters in `overrides` replacing the defaults: a JSON object
/// keyed by family (see [`family_keys`]) whose values hold only the fields to change, e.g.
/// `{"rsi": {"period": 21, "timing": "exit"}, "bollinger_bands": {"mode": "bounce"}}`.
/// An unknown family or field is an error naming it.
pub fn detectors_from_json(overrides: &str) -> Result<Vec<Box<dyn Detector>>, String> {
    let overrides: serde_json::Map<String, serde_json::Value> = if overrides.trim().is_empty() {
        serde_json::Map::new()
    } else {
        serde_json::from_str(overrides).map_err(|e| format!("family parameters: {e}"))?
    };
    if let Some(unknown) = overrides
        .keys()
        .find(|k| !family_keys().contains(&k.as_str()))
    {
        return Err(format!(
            "family parameters: unknown family {unknown:?} (known: {})",
            family_keys().join(", ")
        ));
    }
    FAMILIES
        .iter()
        .map(|(key, build)| {
            build(overrides.get(*key).unwrap_or(&serde_json::Value::Null))
                .map_err(|e| format!("family parameters of {key}: {e}"))
        })
        .collect()
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
        assert!((50..=100).contains(&d.confidence), "{}", d.confidence);
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
            assert!(detector.detect(&[], 0).is_none());
            assert!(
                detector.detect(&bars[..1], 0).is_none(),
                "{}",
                detector.name()
            );
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
            for i in (0..700).step_by(7) {
                let full = detector.detect(&bars, i);
                assert_eq!(detector.detect(&bars[..=i], i), full);
                let start = i.saturating_sub(lookback);
                assert_eq!(detector.detect(&bars[start..=i], i - start), full);
            }
        }
    }

    #[test]
    fn registry_lists_every_family_once_with_the_originals_names() {
        let detectors = all_detectors();
        let listed: Vec<(&str, &[&str])> = detectors
            .iter()
            .map(|d| (d.name(), d.signal_types()))
            .collect();
        let expected: Vec<(&str, &[&str])> = EXPECTED.to_vec();
        assert_eq!(listed, expected);
        assert_eq!(family_keys().len(), detectors.len());
        // The generator fetches this much history before a stream's first new candle: set by
        // EMA 200 (5 × 200; the higher-timeframe family reads the higher series themselves).
        assert_eq!(required_lookback(), 1_000);
    }

    /// Each family's source and signal types, as the original named them.
    const EXPECTED: &[(&str, &[&str])] = &[
        ("rsi_generator", &["rsi_oversold", "rsi_overbought"]),
        ("golden_cross_generator", &["golden_cross"]),
        ("death_cross_generator", &["death_cross"]),
        ("macd_generator", &["macd_bullish", "macd_bearish"]),
        (
            "ema_crossover_generator",
            &["ema_bullish_crossover", "ema_bearish_crossover"],
        ),
        (
            "ema_200_generator",
            &["ema_200_bullish_crossover", "ema_200_bearish_crossover"],
        ),
        (
            "bollinger_bands_generator",
            &[
                "bbands_upper_breakout",
                "bbands_lower_breakout",
                "bbands_lower_bounce",
                "bbands_upper_bounce",
            ],
        ),
        ("volume_spike_generator", &["volume_spike"]),
        (
            "accumulation_distribution_generator",
            &["accumulation_signal", "distribution_signal"],
        ),
        ("adx_generator", &["adx_strong_trend", "adx_weak_trend"]),
        (
            "aroon_generator",
            &[
                "aroon_uptrend",
                "aroon_downtrend",
                "aroon_bullish_cross",
                "aroon_bearish_cross",
                "aroon_consolidation",
            ],
        ),
        (
            "atr_generator",
            &["atr_volatility_spike", "atr_volatility_compression"],
        ),
        (
            "cci_generator",
            &[
                "cci_oversold",
                "cci_overbought",
                "cci_bullish_zero_cross",
                "cci_bearish_zero_cross",
            ],
        ),
        ("mfi_generator", &["mfi_oversold", "mfi_overbought"]),
        (
            "obv_generator",
            &[
                "obv_bullish_divergence",
                "obv_bearish_divergence",
                "obv_bullish_breakout",
                "obv_bearish_breakdown",
            ],
        ),
        (
            "sar_generator",
            &["sar_bullish_reversal", "sar_bearish_reversal"],
        ),
        ("stochastic_generator", &["stoch_bullish", "stoch_bearish"]),
        (
            "stochrsi_generator",
            &[
                "stochrsi_oversold",
                "stochrsi_overbought",
                "stochrsi_bullish_cross",
                "stochrsi_bearish_cross",
            ],
        ),
        (
            "willr_generator",
            &[
                "willr_oversold",
                "willr_overbought",
                "willr_bullish_momentum",
                "willr_bearish_momentum",
            ],
        ),
        (
            "swing_point_generator",
            &["swing_point_break_bullish", "swing_point_break_bearish"],
        ),
        (
            "bos_generator",
            &["break_of_structure_bullish", "break_of_structure_bearish"],
        ),
        ("choch_generator", &["choch_bullish", "choch_bearish"]),
        ("fvg_generator", &["fvg_bullish", "fvg_bearish"]),
        (
            "order_block_generator",
            &["order_block_bullish", "order_block_bearish"],
        ),
        (
            "liquidity_sweep_generator",
            &["liquidity_sweep_bullish", "liquidity_sweep_bearish"],
        ),
        (
            "poc_break_generator",
            &["poc_break_bullish", "poc_break_bearish"],
        ),
        (
            "rsi_divergence_generator",
            &["rsi_bullish_divergence", "rsi_bearish_divergence"],
        ),
        (
            "htf_trend_alignment_generator",
            &["htf_trend_aligned_bullish", "htf_trend_aligned_bearish"],
        ),
    ];

    #[test]
    fn family_parameters_override_the_defaults_from_json() {
        let detectors = detectors_from_json(r#"{"rsi": {"period": 21}}"#).unwrap();
        assert_eq!(detectors.len(), all_detectors().len());
        assert_eq!(detectors_from_json("").unwrap().len(), detectors.len());
        let err = |json: &str| detectors_from_json(json).err().unwrap();
        assert!(err(r#"{"rsi": {"perod": 21}}"#).contains("perod"));
        assert!(err(r#"{"rsii": {}}"#).contains("rsii"));
        assert!(err("[1]").contains("family parameters"));
        // The override is used: RSI(2) fires where RSI(14) cannot yet.
        let bars = bars_from_closes(&[100.0, 101.0, 102.0, 90.0]);
        let rsi2 = detectors_from_json(r#"{"rsi": {"period": 2}}"#).unwrap();
        assert!(rsi2[0].detect(&bars, 3).is_some());
        assert!(all_detectors()[0].detect(&bars, 3).is_none());
    }

    #[tokio::test]
    async fn the_synthetic_feed_exercises_every_family() {
        let feed = SyntheticFeed::new(42);
        let detectors = all_detectors();
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
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
            for detector in &detectors {
                // The higher series a family reads, from the same feed.
                let mut fetched = Vec::new();
                for (tf, _) in detector.higher_timeframes(timeframe) {
                    let higher = feed
                        .closed_bars(ticker, tf, 1_732_550_400, 2_000)
                        .await
                        .unwrap();
                    fetched.push((tf, higher));
                }
                let higher: Vec<HigherSeries<'_>> = fetched
                    .iter()
                    .map(|(timeframe, bars)| HigherSeries {
                        timeframe: *timeframe,
                        bars,
                    })
                    .collect();
                for i in 0..bars.len() {
                    if let Some(d) = detector.detect_with(&bars, i, timeframe, &higher) {
                        assert!(d.metadata.values().all(|v| v.is_finite()), "{d:?}");
                        assert!((0..=100).contains(&d.confidence));
                        assert!(detector.signal_types().contains(&d.signal_type));
                        assert!(serde_json::to_string(&d).is_ok());
                        *counts.entry(d.signal_type).or_default() += 1;
                    }
                }
            }
        }
        eprintln!("{counts:?}");
        // Every type of the default configuration shows up (bounce types need bounce mode).
        for detector in &detectors {
            for signal_type in detector.signal_types() {
                // Bounce types need bounce mode; the synthetic feed's volatility is constant,
                // so ATR never contracts to 0.7 × its average.
                if signal_type.contains("bounce") || *signal_type == "atr_volatility_compression" {
                    continue;
                }
                assert!(
                    counts.get(signal_type).copied().unwrap_or(0) >= 1,
                    "no {signal_type} in {counts:?}"
                );
            }
        }
    }
}
