//! Swing point break family: the close breaking the latest swing high or low.

use serde::{Deserialize, Serialize};

use crate::vocab::{Bar, Direction};

use super::common::{Fired, Ohlcv, price, scaled, window};
use super::structure::{Swing, atr, swing_highs, swing_lows};
use super::{Detection, Detector};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SwingPointConfig {
    /// Only swings at most this many candles old count.
    pub lookback_periods: usize,
    pub min_swing_strength: usize,
}

impl Default for SwingPointConfig {
    fn default() -> Self {
        SwingPointConfig {
            lookback_periods: 20,
            min_swing_strength: 2,
        }
    }
}

/// The latest swing high of strength s = 2 (strictly above the 2 highs before it, at least the
/// 2 after) at most N = 20 candles old: the close crosses above it (from at or below on the
/// previous candle) → `swing_point_break_bullish` (BULLISH); the latest swing low, crossed
/// below → `swing_point_break_bearish` (BEARISH). Unlike the original, N limits the search.
/// Confidence 65 + up to 15 for the swing's recency (full when it is s + 1 candles old) + up
/// to 15 for the close beyond the level (full at 1 ATR(14)).
#[derive(Debug, Clone, Default)]
pub struct SwingPointBreakDetector {
    pub config: SwingPointConfig,
}

/// The latest swing in `swings` at most `max_age` candles before `t`.
pub(super) fn latest(swings: &[Swing], t: usize, max_age: usize) -> Option<Swing> {
    swings.last().copied().filter(|s| t - s.index <= max_age)
}

impl Detector for SwingPointBreakDetector {
    fn name(&self) -> &'static str {
        "swing_point_generator"
    }

    fn lookback(&self) -> usize {
        self.config.lookback_periods + 30
    }

    fn signal_types(&self) -> &'static [&'static str] {
        &["swing_point_break_bullish", "swing_point_break_bearish"]
    }

    fn detect(&self, bars: &[Bar], index: usize) -> Option<Detection> {
        let c = &self.config;
        let w = window(bars, index, self.lookback())?;
        let bar = w.last()?;
        let t = w.len() - 1;
        let previous_close = w.get(t.checked_sub(1)?)?.close;
        let s = Ohlcv::of(w);
        let strength = c.min_swing_strength.max(1);
        // Swings confirmed by the previous candle (one confirmed by this candle cannot be
        // broken by it).
        let high = latest(
            &swing_highs(&s.high, strength, t - 1),
            t,
            c.lookback_periods,
        );
        let low = latest(&swing_lows(&s.low, strength, t - 1), t, c.lookback_periods);
        let (signal_type, direction, swing, key, beyond) = match (high, low) {
            (Some(h), _) if bar.close > h.price && previous_close <= h.price => (
                "swing_point_break_bullish",
                Direction::Bullish,
                h,
                "swing_high",
                bar.close - h.price,
            ),
            (_, Some(l)) if bar.close < l.price && previous_close >= l.price => (
                "swing_point_break_bearish",
                Direction::Bearish,
                l,
                "swing_low",
                l.price - bar.close,
            ),
            _ => return None,
        };
        let unit = atr(w)?;
        let age = t - swing.index;
        let confidence = scaled(
            65,
            (c.lookback_periods + strength + 1).saturating_sub(age) as f64,
            c.lookback_periods as f64,
            15,
        )
        .saturating_add(scaled(0, beyond / unit, 1.0, 15));
        let fired = Fired::new(
            self.name(),
            signal_type,
            direction,
            confidence,
            format!(
                "Close {} broke the {} {} of {age} candles ago",
                price(bar.close),
                key.replace('_', " "),
                price(swing.price)
            ),
        );
        Some(fired.at(
            bar,
            &[
                (key, swing.price),
                ("bars_ago", age as f64),
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

    /// Candles with the given highs and lows (open = low, close = the given close).
    pub fn hlc(rows: &[(f64, f64, f64)]) -> Vec<Bar> {
        let mut bars = bars_from_closes(&vec![100.0; rows.len()]);
        for (b, (h, l, c)) in bars.iter_mut().zip(rows) {
            (b.high, b.low, b.close, b.open) = (*h, *l, *c, (*h + *l) / 2.0);
        }
        bars
    }

    #[test]
    fn swing_point_break_table() {
        let sp = SwingPointBreakDetector::default();
        // A swing high at 2 (105), confirmed at 4; the close crosses 105 at 6.
        let up = [
            (101.0, 99.0, 100.0),
            (102.0, 100.0, 101.0),
            (105.0, 101.0, 104.0),
            (103.0, 100.0, 101.0),
            (102.0, 99.0, 100.0),
            (104.0, 100.0, 103.0),
            (107.0, 103.0, 106.0),
            (108.0, 105.0, 107.0),
        ];
        type Case = (
            &'static str,
            Vec<(f64, f64, f64)>,
            Vec<(usize, &'static str)>,
        );
        let cases: Vec<Case> = vec![
            (
                "break of the swing high",
                up.to_vec(),
                vec![(6, "swing_point_break_bullish")],
            ),
            (
                "close exactly at the level does not break",
                {
                    let mut v = up.to_vec();
                    v[6].2 = 105.0;
                    v[7].2 = 104.0;
                    v
                },
                vec![],
            ),
            (
                "a wick through the level is not a break",
                {
                    let mut v = up.to_vec();
                    v[6] = (106.0, 103.0, 104.5);
                    v[7] = (105.5, 103.0, 104.0);
                    v
                },
                vec![],
            ),
            (
                "mirror: break of the swing low",
                up.iter()
                    .map(|(h, l, c)| (200.0 - l, 200.0 - h, 200.0 - c))
                    .collect(),
                vec![(6, "swing_point_break_bearish")],
            ),
        ];
        for (name, rows, expected) in cases {
            let got: Vec<(usize, &str)> =
                fired(&sp, &hlc(&rows)).iter().map(|f| (f.0, f.1)).collect();
            assert_eq!(got, expected, "{name}");
        }
        let bars = hlc(&up);
        let d = sp.detect(&bars, 6).unwrap();
        assert_common(&d, &sp, &bars[6]);
        assert_eq!(d.metadata["swing_high"], 105.0);
        assert_eq!(d.metadata["bars_ago"], 4.0);
    }

    #[test]
    fn a_swing_older_than_the_lookback_is_ignored() {
        let mut rows = vec![
            (101.0, 99.0, 100.0),
            (102.0, 100.0, 101.0),
            (105.0, 101.0, 104.0),
            (103.0, 100.0, 101.0),
        ];
        rows.extend(std::iter::repeat_n((102.0, 100.0, 101.0), 25));
        rows.push((107.0, 103.0, 106.0));
        let bars = hlc(&rows);
        assert!(fired(&SwingPointBreakDetector::default(), &bars).is_empty());
        let wide = SwingPointBreakDetector {
            config: SwingPointConfig {
                lookback_periods: 30,
                ..SwingPointConfig::default()
            },
        };
        assert_eq!(fired(&wide, &bars).len(), 1);
    }
}
