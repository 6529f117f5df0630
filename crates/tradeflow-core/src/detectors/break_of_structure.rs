//! Break of structure family: in an established trend, the close breaking the latest swing in
//! the trend's direction (continuation). Change of character (`change_of_character.rs`) is the
//! break against the trend and shares [`structure_break`].

use serde::{Deserialize, Serialize};

use crate::vocab::{Bar, Direction};

use super::Detection;
use super::common::{Fired, Ohlcv, price, scaled, window};
use super::structure::{Swing, atr, swing_highs, swing_lows, volume_ratio_at};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StructureConfig {
    /// Swings are searched in the last `lookback_periods` candles.
    pub lookback_periods: usize,
    pub min_swing_strength: usize,
}

impl Default for StructureConfig {
    fn default() -> Self {
        StructureConfig {
            lookback_periods: 20,
            min_swing_strength: 3,
        }
    }
}

/// The trend told by the last two swing highs and the last two swing lows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Trend {
    /// Higher highs and higher lows.
    Up,
    /// Lower highs and lower lows.
    Down,
}

/// What a structure family looks for: a break of the latest swing high in `bullish_in` trend,
/// or of the latest swing low in the other.
pub(super) struct Rule {
    pub generator: &'static str,
    pub bullish: &'static str,
    pub bearish: &'static str,
    /// The trend in which a break of the latest swing high is reported (BOS: up; CHoCH: down).
    pub bullish_in: Trend,
    pub base_confidence: u8,
}

/// The last two swings, if there are two, and whether they rise.
fn last_two(swings: &[Swing]) -> Option<(Swing, Swing)> {
    match swings {
        [.., a, b] => Some((*a, *b)),
        _ => None,
    }
}

/// The window of a structure family: 3 × N candles for the trend's swings plus the swing's
/// confirmation.
pub(super) fn structure_lookback(config: &StructureConfig) -> usize {
    3 * config.lookback_periods + config.min_swing_strength + 1
}

/// Finds the swings of strength s in the last 3 × N candles confirmed by the previous candle,
/// classifies the trend by the last two swing highs and lows (both pairs rising: up; both
/// falling: down; otherwise none), and reports the close crossing the latest swing high
/// (bullish) or low (bearish), if it is at most N candles old, when the trend is the rule's. Confidence `base` + up to 15 for the close beyond the level (full at
/// 1 ATR(14)) + up to 15 for the breaking candle's volume (full at 2× the 20 before).
pub(super) fn structure_break(
    rule: &Rule,
    config: &StructureConfig,
    bars: &[Bar],
    index: usize,
) -> Option<Detection> {
    let w = window(bars, index, structure_lookback(config))?;
    let bar = w.last()?;
    let t = w.len() - 1;
    let previous_close = w.get(t.checked_sub(1)?)?.close;
    let s = Ohlcv::of(w);
    let strength = config.min_swing_strength.max(1);
    let highs = swing_highs(&s.high, strength, t - 1);
    let lows = swing_lows(&s.low, strength, t - 1);
    let ((h1, h2), (l1, l2)) = (last_two(&highs)?, last_two(&lows)?);
    let trend = if h2.price > h1.price && l2.price > l1.price {
        Trend::Up
    } else if h2.price < h1.price && l2.price < l1.price {
        Trend::Down
    } else {
        return None;
    };
    let fresh = |s: Swing| t - s.index <= config.lookback_periods;
    let (signal_type, direction, level, beyond, what) = if trend == rule.bullish_in {
        if !fresh(h2) {
            return None;
        }
        if !(bar.close > h2.price && previous_close <= h2.price) {
            return None;
        }
        (
            rule.bullish,
            Direction::Bullish,
            h2,
            bar.close - h2.price,
            "swing high",
        )
    } else {
        if !(fresh(l2) && bar.close < l2.price && previous_close >= l2.price) {
            return None;
        }
        (
            rule.bearish,
            Direction::Bearish,
            l2,
            l2.price - bar.close,
            "swing low",
        )
    };
    let unit = atr(w)?;
    let ratio = volume_ratio_at(w, t);
    let confidence = scaled(rule.base_confidence, beyond / unit, 1.0, 15).saturating_add(scaled(
        0,
        ratio - 1.0,
        1.0,
        15,
    ));
    let trend_name = match trend {
        Trend::Up => "uptrend",
        Trend::Down => "downtrend",
    };
    let fired = Fired::new(
        rule.generator,
        signal_type,
        direction,
        confidence,
        format!(
            "Close {} broke the latest {what} {} in a {trend_name} (swing highs {} → {}, lows {} → \
             {})",
            price(bar.close),
            price(level.price),
            price(h1.price),
            price(h2.price),
            price(l1.price),
            price(l2.price)
        ),
    );
    Some(fired.at(
        bar,
        &[
            ("structure_level", level.price),
            ("bars_since", (t - level.index) as f64),
            ("trend_up", if trend == Trend::Up { 1.0 } else { 0.0 }),
            ("volume_ratio", ratio),
            ("current_price", bar.close),
        ],
    ))
}

/// In an uptrend (the last two swing highs and the last two swing lows of strength 3 both
/// rising, found in the last 60 candles), the close crosses above the latest swing high, at
/// most N = 20 candles old (the original's N only set how much data was fetched) →
/// `break_of_structure_bullish` (BULLISH); in a downtrend, below the latest swing low →
/// `break_of_structure_bearish` (BEARISH). The original checked no trend (a plain swing break).
/// Confidence 65 + up to 15 (distance beyond the level, full at 1 ATR) + up to 15 (volume,
/// full at 2×).
#[derive(Debug, Clone, Default)]
pub struct BreakOfStructureDetector {
    pub config: StructureConfig,
}

impl super::Detector for BreakOfStructureDetector {
    fn name(&self) -> &'static str {
        "bos_generator"
    }

    fn lookback(&self) -> usize {
        structure_lookback(&self.config)
    }

    fn signal_types(&self) -> &'static [&'static str] {
        &["break_of_structure_bullish", "break_of_structure_bearish"]
    }

    fn detect(&self, bars: &[Bar], index: usize) -> Option<Detection> {
        let rule = Rule {
            generator: self.name(),
            bullish: "break_of_structure_bullish",
            bearish: "break_of_structure_bearish",
            bullish_in: Trend::Up,
            base_confidence: 65,
        };
        structure_break(&rule, &self.config, bars, index)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(super) mod tests {
    use super::super::test_support::*;
    use super::super::{ChangeOfCharacterDetector, Detector};
    use super::*;

    /// Candles through the given closes, with highs and lows 0.5 beyond them.
    pub fn path(closes: &[f64]) -> Vec<Bar> {
        let mut bars = bars_from_closes(closes);
        for b in &mut bars {
            (b.high, b.low, b.open) = (b.close + 0.5, b.close - 0.5, b.close);
        }
        bars
    }

    /// A zig-zag with peaks and troughs of strength 3 (4 candles apart): `levels` alternate
    /// trough, peak, trough, peak…, joined by straight lines; then `tail` closes.
    pub fn waves(levels: &[f64], tail: &[f64]) -> Vec<Bar> {
        let mut closes = vec![levels[0]];
        for pair in levels.windows(2) {
            for k in 1..=4 {
                closes.push(pair[0] + (pair[1] - pair[0]) * f64::from(k) / 4.0);
            }
        }
        closes.extend(tail);
        path(&closes)
    }

    #[test]
    fn bos_and_choch_table() {
        let bos = BreakOfStructureDetector::default();
        let choch = ChangeOfCharacterDetector::default();
        // (name, bars, BOS firings, CHoCH firings); the waves' turning points are at
        // 0, 4, 8, 12, 16, 20; the tail starts at 21.
        let up = [100.0, 104.0, 101.0, 106.0, 103.0, 105.0];
        let down = [110.0, 106.0, 109.0, 104.0, 107.0, 105.0];
        type Case = (
            &'static str,
            Vec<Bar>,
            Vec<(usize, &'static str)>,
            Vec<(usize, &'static str)>,
        );
        let cases: Vec<Case> = vec![
            (
                "uptrend, close breaks the last high 106: BOS bullish",
                waves(&up, &[106.0, 107.0, 108.0]),
                vec![(22, "break_of_structure_bullish")],
                vec![],
            ),
            (
                "uptrend, close breaks the last low 103: CHoCH bearish",
                waves(&up, &[104.0, 102.0, 101.0]),
                vec![],
                vec![(22, "choch_bearish")],
            ),
            (
                "downtrend, close breaks the last high 107: CHoCH bullish",
                waves(&down, &[106.0, 108.0, 109.0]),
                vec![],
                vec![(22, "choch_bullish")],
            ),
            (
                "downtrend, close breaks the last low 104: BOS bearish",
                waves(&down, &[104.5, 103.0, 102.5]),
                vec![(22, "break_of_structure_bearish")],
                vec![],
            ),
            (
                "mixed structure (higher highs, lower lows): nothing",
                waves(
                    &[100.0, 104.0, 99.0, 106.0, 98.0, 105.0],
                    &[106.0, 107.0, 97.0],
                ),
                vec![],
                vec![],
            ),
        ];
        for (name, bars, want_bos, want_choch) in cases {
            let got = |d: &dyn Detector| -> Vec<(usize, &str)> {
                fired(d, &bars).iter().map(|f| (f.0, f.1)).collect()
            };
            assert_eq!(got(&bos), want_bos, "BOS: {name}");
            assert_eq!(got(&choch), want_choch, "CHoCH: {name}");
        }
        let bars = waves(&up, &[106.0, 107.0, 108.0]);
        let d = bos.detect(&bars, 22).unwrap();
        assert_common(&d, &bos, &bars[22]);
        assert_eq!(d.metadata["structure_level"], 106.5);
    }
}
