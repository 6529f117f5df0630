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

use std::collections::BTreeMap;

use serde::Serialize;

use crate::indicators;
use crate::vocab::{Bar, Direction};

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

/// Lookback of the families built on EMAs or Wilder smoothing (see the module documentation).
const SMOOTHED_LOOKBACK: usize = 250;

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// `bars[index - lookback ..= index]`, if `index` is in range and has that much history.
fn window(bars: &[Bar], index: usize, lookback: usize) -> Option<&[Bar]> {
    let start = index.checked_sub(lookback)?;
    bars.get(start..=index)
}

fn closes(bars: &[Bar]) -> Vec<f64> {
    bars.iter().map(|b| b.close).collect()
}

/// The last two values of an indicator series, `(previous, current)`, if both are defined and
/// finite.
fn last_two(series: &[Option<f64>]) -> Option<(f64, f64)> {
    match series {
        [.., Some(previous), Some(current)] if previous.is_finite() && current.is_finite() => {
            Some((*previous, *current))
        }
        _ => None,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cross {
    Up,
    Down,
}

/// How `a - b` moved from the previous candle to the current one: up through zero (from
/// `<= 0` to `> 0`) or down through zero (from `>= 0` to `< 0`).
fn cross(previous_diff: f64, current_diff: f64) -> Option<Cross> {
    if previous_diff <= 0.0 && current_diff > 0.0 {
        Some(Cross::Up)
    } else if previous_diff >= 0.0 && current_diff < 0.0 {
        Some(Cross::Down)
    } else {
        None
    }
}

/// `base` plus a strength bonus limited to `0..=max_bonus` (a non-finite bonus counts as 0),
/// clamped to 0..=100.
fn confidence(base: u8, bonus: f64, max_bonus: u8) -> u8 {
    let bonus = if bonus.is_finite() {
        bonus.clamp(0.0, f64::from(max_bonus))
    } else {
        0.0
    };
    (f64::from(base) + bonus).round().clamp(0.0, 100.0) as u8
}

/// A price with enough digits for both equities and sub-dollar instruments.
fn price(x: f64) -> String {
    if x.abs() >= 1.0 {
        format!("{x:.2}")
    } else {
        format!("{x:.6}")
    }
}

struct Fired {
    generator: &'static str,
    signal_type: &'static str,
    direction: Direction,
    confidence: u8,
    reasoning: String,
}

impl Fired {
    fn at(self, bar: &Bar, metadata: &[(&str, f64)]) -> Detection {
        Detection {
            generator: self.generator,
            signal_type: self.signal_type,
            direction: self.direction,
            confidence: self.confidence,
            reasoning: self.reasoning,
            candle_time: bar.time,
            metadata: metadata
                .iter()
                .map(|(k, v)| ((*k).to_owned(), *v))
                .collect(),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// RSI
// ---------------------------------------------------------------------------------------------

/// RSI(14) crosses below 30 → `rsi_oversold` (BULLISH); crosses above 70 → `rsi_overbought`
/// (BEARISH). Confidence 70 + up to 15 (2 per RSI point beyond the threshold).
#[derive(Debug, Clone, Copy, Default)]
pub struct RsiDetector;

impl RsiDetector {
    pub const PERIOD: usize = 14;
    pub const OVERSOLD: f64 = 30.0;
    pub const OVERBOUGHT: f64 = 70.0;
    const BASE_CONFIDENCE: u8 = 70;
}

impl Detector for RsiDetector {
    fn name(&self) -> &'static str {
        "rsi_generator"
    }

    fn lookback(&self) -> usize {
        SMOOTHED_LOOKBACK
    }

    fn detect(&self, bars: &[Bar], index: usize) -> Option<Detection> {
        let w = window(bars, index, self.lookback())?;
        let bar = w.last()?;
        let (previous, current) = last_two(&indicators::rsi(&closes(w), Self::PERIOD))?;
        let fired = if previous >= Self::OVERSOLD && current < Self::OVERSOLD {
            Fired {
                generator: self.name(),
                signal_type: "rsi_oversold",
                direction: Direction::Bullish,
                confidence: confidence(Self::BASE_CONFIDENCE, 2.0 * (Self::OVERSOLD - current), 15),
                reasoning: format!(
                    "RSI(14) crossed below 30 (from {previous:.2} to {current:.2}) \
                     at close {}: oversold",
                    price(bar.close)
                ),
            }
        } else if previous <= Self::OVERBOUGHT && current > Self::OVERBOUGHT {
            Fired {
                generator: self.name(),
                signal_type: "rsi_overbought",
                direction: Direction::Bearish,
                confidence: confidence(
                    Self::BASE_CONFIDENCE,
                    2.0 * (current - Self::OVERBOUGHT),
                    15,
                ),
                reasoning: format!(
                    "RSI(14) crossed above 70 (from {previous:.2} to {current:.2}) \
                     at close {}: overbought",
                    price(bar.close)
                ),
            }
        } else {
            return None;
        };
        Some(fired.at(
            bar,
            &[
                ("current_rsi", current),
                ("previous_rsi", previous),
                ("current_price", bar.close),
            ],
        ))
    }
}

// ---------------------------------------------------------------------------------------------
// Golden / death cross
// ---------------------------------------------------------------------------------------------

/// SMA(50) crosses above SMA(200) → `golden_cross` (BULLISH); below → `death_cross`
/// (BEARISH). Confidence 80 + up to 5 (5 per % of spread between the averages).
#[derive(Debug, Clone, Copy, Default)]
pub struct GoldenCrossDetector;

impl GoldenCrossDetector {
    pub const SHORT: usize = 50;
    pub const LONG: usize = 200;
    const BASE_CONFIDENCE: u8 = 80;
}

impl Detector for GoldenCrossDetector {
    fn name(&self) -> &'static str {
        "golden_cross_generator"
    }

    fn lookback(&self) -> usize {
        Self::LONG
    }

    fn detect(&self, bars: &[Bar], index: usize) -> Option<Detection> {
        let w = window(bars, index, self.lookback())?;
        let bar = w.last()?;
        let closes = closes(w);
        let (short_prev, short) = last_two(&indicators::sma(&closes, Self::SHORT))?;
        let (long_prev, long) = last_two(&indicators::sma(&closes, Self::LONG))?;
        let spread_pct = (short - long).abs() / long * 100.0;
        let (signal_type, direction, verb) = match cross(short_prev - long_prev, short - long)? {
            Cross::Up => ("golden_cross", Direction::Bullish, "above"),
            Cross::Down => ("death_cross", Direction::Bearish, "below"),
        };
        let fired = Fired {
            generator: self.name(),
            signal_type,
            direction,
            confidence: confidence(Self::BASE_CONFIDENCE, 5.0 * spread_pct, 5),
            reasoning: format!(
                "SMA(50) {} crossed {verb} SMA(200) {} at close {}",
                price(short),
                price(long),
                price(bar.close)
            ),
        };
        Some(fired.at(
            bar,
            &[
                ("sma_short", short),
                ("sma_long", long),
                ("current_price", bar.close),
            ],
        ))
    }
}

// ---------------------------------------------------------------------------------------------
// MACD
// ---------------------------------------------------------------------------------------------

/// MACD(12, 26, 9) line crosses above its signal line → `macd_bullish` (BULLISH); below →
/// `macd_bearish` (BEARISH). Confidence 70, + 5 when the cross happens on the far side of the
/// zero line (a bullish cross below zero, a bearish cross above zero).
#[derive(Debug, Clone, Copy, Default)]
pub struct MacdDetector;

impl MacdDetector {
    pub const FAST: usize = 12;
    pub const SLOW: usize = 26;
    pub const SIGNAL: usize = 9;
    const BASE_CONFIDENCE: u8 = 70;
}

impl Detector for MacdDetector {
    fn name(&self) -> &'static str {
        "macd_generator"
    }

    fn lookback(&self) -> usize {
        SMOOTHED_LOOKBACK
    }

    fn detect(&self, bars: &[Bar], index: usize) -> Option<Detection> {
        let w = window(bars, index, self.lookback())?;
        let bar = w.last()?;
        let m = indicators::macd(&closes(w), Self::FAST, Self::SLOW, Self::SIGNAL);
        let (_, line) = last_two(&m.macd)?;
        let (_, signal) = last_two(&m.signal)?;
        let (hist_prev, hist) = last_two(&m.histogram)?;
        let (signal_type, direction, verb, far_side) = match cross(hist_prev, hist)? {
            Cross::Up => ("macd_bullish", Direction::Bullish, "above", line < 0.0),
            Cross::Down => ("macd_bearish", Direction::Bearish, "below", line > 0.0),
        };
        let fired = Fired {
            generator: self.name(),
            signal_type,
            direction,
            confidence: confidence(Self::BASE_CONFIDENCE, if far_side { 5.0 } else { 0.0 }, 5),
            reasoning: format!(
                "MACD(12,26,9) line {line:.4} crossed {verb} its signal line {signal:.4} \
                 (histogram {hist:.4}) at close {}",
                price(bar.close)
            ),
        };
        Some(fired.at(
            bar,
            &[
                ("macd", line),
                ("macd_signal", signal),
                ("macd_histogram", hist),
                ("current_price", bar.close),
            ],
        ))
    }
}

// ---------------------------------------------------------------------------------------------
// EMA crossover
// ---------------------------------------------------------------------------------------------

/// EMA(12) crosses above EMA(26) → `ema_bullish_cross` (BULLISH); below →
/// `ema_bearish_cross` (BEARISH). Confidence 65, + 5 when the close is beyond both averages
/// in the direction of the cross.
#[derive(Debug, Clone, Copy, Default)]
pub struct EmaCrossoverDetector;

impl EmaCrossoverDetector {
    pub const FAST: usize = 12;
    pub const SLOW: usize = 26;
    const BASE_CONFIDENCE: u8 = 65;
}

impl Detector for EmaCrossoverDetector {
    fn name(&self) -> &'static str {
        "ema_crossover_generator"
    }

    fn lookback(&self) -> usize {
        SMOOTHED_LOOKBACK
    }

    fn detect(&self, bars: &[Bar], index: usize) -> Option<Detection> {
        let w = window(bars, index, self.lookback())?;
        let bar = w.last()?;
        let closes = closes(w);
        let (fast_prev, fast) = last_two(&indicators::ema(&closes, Self::FAST))?;
        let (slow_prev, slow) = last_two(&indicators::ema(&closes, Self::SLOW))?;
        let (signal_type, direction, verb, confirmed) =
            match cross(fast_prev - slow_prev, fast - slow)? {
                Cross::Up => (
                    "ema_bullish_cross",
                    Direction::Bullish,
                    "above",
                    bar.close > fast,
                ),
                Cross::Down => (
                    "ema_bearish_cross",
                    Direction::Bearish,
                    "below",
                    bar.close < fast,
                ),
            };
        let fired = Fired {
            generator: self.name(),
            signal_type,
            direction,
            confidence: confidence(Self::BASE_CONFIDENCE, if confirmed { 5.0 } else { 0.0 }, 5),
            reasoning: format!(
                "EMA(12) {} crossed {verb} EMA(26) {} at close {}",
                price(fast),
                price(slow),
                price(bar.close)
            ),
        };
        Some(fired.at(
            bar,
            &[
                ("ema_fast", fast),
                ("ema_slow", slow),
                ("current_price", bar.close),
            ],
        ))
    }
}

// ---------------------------------------------------------------------------------------------
// Bollinger breakout
// ---------------------------------------------------------------------------------------------

/// The close crosses above the upper Bollinger band (20, 2) → `bollinger_breakout_up`
/// (BULLISH); below the lower band → `bollinger_breakout_down` (BEARISH). Confidence 70 + up
/// to 10 (20 per band half-width of overshoot beyond the band).
#[derive(Debug, Clone, Copy, Default)]
pub struct BollingerDetector;

impl BollingerDetector {
    pub const PERIOD: usize = 20;
    pub const K: f64 = 2.0;
    const BASE_CONFIDENCE: u8 = 70;
}

impl Detector for BollingerDetector {
    fn name(&self) -> &'static str {
        "bollinger_generator"
    }

    fn lookback(&self) -> usize {
        Self::PERIOD
    }

    fn detect(&self, bars: &[Bar], index: usize) -> Option<Detection> {
        let w = window(bars, index, self.lookback())?;
        let bar = w.last()?;
        let previous_close = w.get(w.len().checked_sub(2)?)?.close;
        let bands = indicators::bollinger(&closes(w), Self::PERIOD, Self::K);
        let (upper_prev, upper) = last_two(&bands.upper)?;
        let (_, middle) = last_two(&bands.middle)?;
        let (lower_prev, lower) = last_two(&bands.lower)?;
        let close = bar.close;
        let half_width = upper - middle;
        let fired = if previous_close <= upper_prev && close > upper {
            Fired {
                generator: self.name(),
                signal_type: "bollinger_breakout_up",
                direction: Direction::Bullish,
                confidence: confidence(
                    Self::BASE_CONFIDENCE,
                    20.0 * (close - upper) / half_width,
                    10,
                ),
                reasoning: format!(
                    "Close {} broke above the upper Bollinger band {} (20, 2; middle {})",
                    price(close),
                    price(upper),
                    price(middle)
                ),
            }
        } else if previous_close >= lower_prev && close < lower {
            Fired {
                generator: self.name(),
                signal_type: "bollinger_breakout_down",
                direction: Direction::Bearish,
                confidence: confidence(
                    Self::BASE_CONFIDENCE,
                    20.0 * (lower - close) / half_width,
                    10,
                ),
                reasoning: format!(
                    "Close {} broke below the lower Bollinger band {} (20, 2; middle {})",
                    price(close),
                    price(lower),
                    price(middle)
                ),
            }
        } else {
            return None;
        };
        Some(fired.at(
            bar,
            &[
                ("upper_band", upper),
                ("middle_band", middle),
                ("lower_band", lower),
                ("current_price", close),
            ],
        ))
    }
}

// ---------------------------------------------------------------------------------------------
// Volume spike
// ---------------------------------------------------------------------------------------------

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
    use super::*;
    use crate::market::{MarketData, SyntheticFeed};
    use crate::vocab::Timeframe;

    /// Candles from closes (open = previous close, wicks 0.1 % beyond) with a constant volume.
    fn bars_from_closes(closes: &[f64]) -> Vec<Bar> {
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
    fn fired(detector: &dyn Detector, bars: &[Bar]) -> Vec<(usize, &'static str, Direction)> {
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
    fn zigzag(len: usize) -> Vec<f64> {
        (0..len).map(|i| 100.0 + (i % 2) as f64).collect()
    }

    fn assert_common(d: &Detection, detector: &dyn Detector, bar: &Bar) {
        assert_eq!(d.generator, detector.name());
        assert_eq!(d.candle_time, bar.time);
        assert_eq!(d.metadata["current_price"], bar.close);
        assert!((65..=100).contains(&d.confidence), "{}", d.confidence);
        assert!(!d.reasoning.is_empty());
    }

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
        assert_eq!(
            fired(&RsiDetector, &bars),
            [(267, "rsi_oversold", Direction::Bullish)]
        );
        let d = RsiDetector.detect(&bars, 267).unwrap();
        assert_common(&d, &RsiDetector, &bars[267]);
        let expected = 100.0 * (14.0 / 27.0) * (13.0f64 / 14.0).powi(8);
        assert!((d.metadata["current_rsi"] - expected).abs() < 1e-6);
        assert!(d.metadata["previous_rsi"] >= 30.0);
        assert!(d.reasoning.contains("crossed below 30"), "{}", d.reasoning);
        assert!(RsiDetector.detect(&bars, 268).is_none(), "not re-emitted");

        // Mirror image: after a down move the averages are swapped, 8 rises cross 70.
        let mut closes = zigzag(261); // last index 260 is a down move
        for j in 1..=12 {
            closes.push(100.0 + f64::from(j));
        }
        let bars = bars_from_closes(&closes);
        assert_eq!(
            fired(&RsiDetector, &bars),
            [(268, "rsi_overbought", Direction::Bearish)]
        );
        let d = RsiDetector.detect(&bars, 268).unwrap();
        assert!((d.metadata["current_rsi"] - (100.0 - expected)).abs() < 1e-6);
    }

    #[test]
    fn golden_and_death_crosses_fire_where_the_averages_cross() {
        // 100 × 200, 90 × 50, then 121. SMA50 drops below SMA200 at 200 (99.8 < 99.95). With
        // m closes of 121: SMA50 = 90 + 0.62·m, SMA200 = 97.5 + 0.105·m, above from m = 15.
        let closes: Vec<f64> = (0..320)
            .map(|i| match i {
                0..200 => 100.0,
                200..250 => 90.0,
                _ => 121.0,
            })
            .collect();
        let bars = bars_from_closes(&closes);
        assert_eq!(
            fired(&GoldenCrossDetector, &bars),
            [
                (200, "death_cross", Direction::Bearish),
                (264, "golden_cross", Direction::Bullish)
            ]
        );
        let d = GoldenCrossDetector.detect(&bars, 264).unwrap();
        assert_common(&d, &GoldenCrossDetector, &bars[264]);
        assert!((d.metadata["sma_short"] - (90.0 + 0.62 * 15.0)).abs() < 1e-9);
        assert!((d.metadata["sma_long"] - (97.5 + 0.105 * 15.0)).abs() < 1e-9);
        assert!((80..=85).contains(&d.confidence));
    }

    #[test]
    fn macd_fires_when_the_line_crosses_its_signal() {
        // Flat (MACD = signal = 0), a ramp up from 270 (the line jumps above the lagging
        // signal), then a gap down to 120 at 310 and a ramp down (the line drops below it).
        let closes: Vec<f64> = (0..340)
            .map(|i| match i {
                0..270 => 100.0,
                270..310 => 100.0 + f64::from(i - 269),
                _ => 120.0 - f64::from(i - 310),
            })
            .collect();
        let bars = bars_from_closes(&closes);
        assert_eq!(
            fired(&MacdDetector, &bars),
            [
                (270, "macd_bullish", Direction::Bullish),
                (310, "macd_bearish", Direction::Bearish)
            ]
        );
        let d = MacdDetector.detect(&bars, 310).unwrap();
        assert_common(&d, &MacdDetector, &bars[310]);
        let m = indicators::macd(&closes[60..=310], 12, 26, 9);
        assert_eq!(d.metadata["macd"], m.macd[250].unwrap());
        assert_eq!(d.metadata["macd_signal"], m.signal[250].unwrap());
        assert_eq!(d.metadata["macd_histogram"], m.histogram[250].unwrap());
        assert!(d.metadata["macd_histogram"] < 0.0);
        // A bearish cross above the zero line earns the bonus.
        assert!(d.metadata["macd"] > 0.0);
        assert_eq!(d.confidence, 75);
    }

    #[test]
    fn ema_crossover_fires_on_steps_up_and_down() {
        let closes: Vec<f64> = (0..320)
            .map(|i| match i {
                0..260 => 100.0,
                260..300 => 110.0,
                _ => 90.0,
            })
            .collect();
        let bars = bars_from_closes(&closes);
        assert_eq!(
            fired(&EmaCrossoverDetector, &bars),
            [
                (260, "ema_bullish_cross", Direction::Bullish),
                (300, "ema_bearish_cross", Direction::Bearish)
            ]
        );
        let d = EmaCrossoverDetector.detect(&bars, 260).unwrap();
        assert_common(&d, &EmaCrossoverDetector, &bars[260]);
        // Both EMAs were exactly 100; one step of 10 moves them by k·10.
        assert!((d.metadata["ema_fast"] - (100.0 + 10.0 * 2.0 / 13.0)).abs() < 1e-9);
        assert!((d.metadata["ema_slow"] - (100.0 + 10.0 * 2.0 / 27.0)).abs() < 1e-9);
        assert_eq!(d.confidence, 70);
    }

    #[test]
    fn bollinger_fires_on_the_close_that_leaves_the_bands() {
        // Zig-zag 100/101 (bands ≈ 100.5 ± 1), a breakout to 105 and 106 at 40, back to the
        // zig-zag, a breakdown to 95 and 94 at 80.
        let mut closes = zigzag(40);
        closes.extend([105.0, 106.0]);
        closes.extend(zigzag(38));
        closes.extend([95.0, 94.0]);
        closes.extend(zigzag(10));
        let bars = bars_from_closes(&closes);
        assert_eq!(
            fired(&BollingerDetector, &bars),
            [
                (40, "bollinger_breakout_up", Direction::Bullish),
                (80, "bollinger_breakout_down", Direction::Bearish)
            ]
        );
        let d = BollingerDetector.detect(&bars, 40).unwrap();
        assert_common(&d, &BollingerDetector, &bars[40]);
        let window = &closes[21..=40];
        let mean = window.iter().sum::<f64>() / 20.0;
        let sd = (window.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / 20.0).sqrt();
        assert!((d.metadata["middle_band"] - mean).abs() < 1e-9);
        assert!((d.metadata["upper_band"] - (mean + 2.0 * sd)).abs() < 1e-9);
        assert!((d.metadata["lower_band"] - (mean - 2.0 * sd)).abs() < 1e-9);
        assert!(d.metadata["current_price"] > d.metadata["upper_band"]);
    }

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

    #[test]
    fn confidence_is_clamped() {
        assert_eq!(confidence(70, -5.0, 10), 70);
        assert_eq!(confidence(70, 50.0, 10), 80);
        assert_eq!(confidence(70, f64::NAN, 10), 70);
        assert_eq!(confidence(95, 10.0, 10), 100);
        assert_eq!(confidence(200, 0.0, 10), 100);
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
