//! What the families share: the evaluation window, the previous/current pair of an indicator,
//! crossing detection, confidence and price formatting.

use crate::vocab::{Bar, Direction};

use super::Detection;

/// Lookback of the families built on EMAs or Wilder smoothing (see the module documentation).
pub(super) const SMOOTHED_LOOKBACK: usize = 250;

/// `bars[index - lookback ..= index]`, if `index` is in range and has that much history.
pub(super) fn window(bars: &[Bar], index: usize, lookback: usize) -> Option<&[Bar]> {
    let start = index.checked_sub(lookback)?;
    bars.get(start..=index)
}

pub(super) fn closes(bars: &[Bar]) -> Vec<f64> {
    bars.iter().map(|b| b.close).collect()
}

/// A value on the previous candle and on the current (evaluated) one.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Pair {
    pub previous: f64,
    pub current: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Cross {
    /// From at or below the other line to above it.
    Up,
    /// From at or above the other line to below it.
    Down,
}

impl Pair {
    /// A fixed threshold, the same on both candles.
    pub fn level(value: f64) -> Self {
        Pair {
            previous: value,
            current: value,
        }
    }

    /// The last two values of an indicator series, if both are defined and finite.
    pub fn last_two(series: &[Option<f64>]) -> Option<Self> {
        match series {
            [.., Some(previous), Some(current)] if previous.is_finite() && current.is_finite() => {
                Some(Pair {
                    previous: *previous,
                    current: *current,
                })
            }
            _ => None,
        }
    }

    /// How this line moved against `other` from the previous candle to the current one: up
    /// through it (from `<=` to `>`), down through it (from `>=` to `<`), or neither.
    pub fn cross(self, other: Pair) -> Option<Cross> {
        if self.previous <= other.previous && self.current > other.current {
            Some(Cross::Up)
        } else if self.previous >= other.previous && self.current < other.current {
            Some(Cross::Down)
        } else {
            None
        }
    }

    /// Entered the zone above `other` on this candle.
    pub fn crossed_above(self, other: Pair) -> bool {
        self.cross(other) == Some(Cross::Up)
    }

    /// Entered the zone below `other` on this candle.
    pub fn crossed_below(self, other: Pair) -> bool {
        self.cross(other) == Some(Cross::Down)
    }
}

/// `base` plus a strength bonus limited to `0..=max_bonus` (a non-finite bonus counts as 0),
/// clamped to 0..=100.
pub(super) fn confidence(base: u8, bonus: f64, max_bonus: u8) -> u8 {
    let bonus = if bonus.is_finite() {
        bonus.clamp(0.0, f64::from(max_bonus))
    } else {
        0.0
    };
    (f64::from(base) + bonus).round().clamp(0.0, 100.0) as u8
}

/// A price with enough digits for both equities and sub-dollar instruments.
pub(super) fn price(x: f64) -> String {
    if x.abs() >= 1.0 {
        format!("{x:.2}")
    } else {
        format!("{x:.6}")
    }
}

/// A family's verdict on one candle, before the candle's time and the metadata are attached.
pub(super) struct Fired {
    pub generator: &'static str,
    pub signal_type: &'static str,
    pub direction: Direction,
    pub confidence: u8,
    pub reasoning: String,
}

impl Fired {
    pub fn at(self, bar: &Bar, metadata: &[(&str, f64)]) -> Detection {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn confidence_is_clamped() {
        assert_eq!(confidence(70, -5.0, 10), 70);
        assert_eq!(confidence(70, 50.0, 10), 80);
        assert_eq!(confidence(70, f64::NAN, 10), 70);
        assert_eq!(confidence(95, 10.0, 10), 100);
        assert_eq!(confidence(200, 0.0, 10), 100);
    }

    #[test]
    fn crosses_need_a_strict_move_through_the_other_line() {
        let level = Pair::level(30.0);
        let p = |previous, current| Pair { previous, current };
        assert_eq!(p(30.0, 29.9).cross(level), Some(Cross::Down));
        assert_eq!(p(30.0, 30.1).cross(level), Some(Cross::Up));
        assert_eq!(p(29.0, 30.0).cross(level), None);
        assert_eq!(p(29.0, 28.0).cross(level), None);
        assert!(p(1.0, 3.0).crossed_above(p(2.0, 2.5)));
        assert!(p(3.0, 1.0).crossed_below(p(2.0, 2.0)));
    }
}
