//! What the families share: the evaluation window, the previous/current pair of an indicator,
//! crossing detection, confidence and price formatting.

use crate::vocab::{Bar, Direction};

use super::Detection;

/// Series of `Option<f64>` from plain values (for rules written on indicator outputs).
#[allow(dead_code)]
pub(super) fn defined(values: &[f64]) -> Vec<Option<f64>> {
    values.iter().map(|v| Some(*v)).collect()
}

/// Lookback of the families built on EMAs or Wilder smoothing with periods up to 50: after 250
/// bars the seed's weight in the value is below 1e-8 for a 26-period EMA or a 14-period Wilder
/// average (see the module documentation). Longer periods use [`smoothed_lookback`].
pub(super) const SMOOTHED_LOOKBACK: usize = 250;

/// [`SMOOTHED_LOOKBACK`], or 5 × `period` for periods above 50 (EMA 200: 1000 bars, where
/// the seed's weight is about 3e-4).
pub(super) fn smoothed_lookback(period: usize) -> usize {
    SMOOTHED_LOOKBACK.max(period.saturating_mul(5))
}

/// The candle's evaluation window: `bars[index - lookback ..= index]`, or `bars[..= index]`
/// when the series holds less history than that (the indicators then start where the series
/// starts, as TA-Lib does, and fire as soon as they are defined). `None` if `index` is out of
/// range.
pub(super) fn window(bars: &[Bar], index: usize, lookback: usize) -> Option<&[Bar]> {
    let w = bars.get(index.saturating_sub(lookback)..=index)?;
    let bar = w.last()?;
    // A candle with garbage values is never evaluated.
    let finite = [bar.open, bar.high, bar.low, bar.close, bar.volume]
        .iter()
        .all(|v| v.is_finite());
    (finite && bar.volume >= 0.0).then_some(w)
}

pub(super) fn closes(bars: &[Bar]) -> Vec<f64> {
    bars.iter().map(|b| b.close).collect()
}

/// The columns of a window of candles.
pub(super) struct Ohlcv {
    pub high: Vec<f64>,
    pub low: Vec<f64>,
    pub close: Vec<f64>,
    pub volume: Vec<f64>,
}

impl Ohlcv {
    pub fn of(bars: &[Bar]) -> Self {
        Ohlcv {
            high: bars.iter().map(|b| b.high).collect(),
            low: bars.iter().map(|b| b.low).collect(),
            close: bars.iter().map(|b| b.close).collect(),
            volume: bars.iter().map(|b| b.volume).collect(),
        }
    }
}

/// When an oscillator's zone signal fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ZoneTiming {
    /// On the candle where the oscillator enters the zone (the original's timing: an
    /// "oversold" BULLISH signal while it is still falling).
    #[default]
    Entry,
    /// On the candle where it leaves the zone again (the turn back, a confirmed reversal).
    Exit,
}

/// An oscillator's zone event on the last candle of `series`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum ZoneEvent {
    /// Entered (or, with [`ZoneTiming::Exit`], left) the zone below `low`. `depth` is how far
    /// below `low` it went: the current value on entry, the extreme of the stay on exit.
    Low {
        depth: f64,
    },
    High {
        depth: f64,
    },
}

/// The zone event of the last value of `series` against `low` and `high` (strict inside the
/// zone, non-strict outside: entering below 30 is from `>= 30` to `< 30`).
pub(super) fn zone_event(
    series: &[Option<f64>],
    low: f64,
    high: f64,
    timing: ZoneTiming,
) -> Option<ZoneEvent> {
    let pair = Pair::last_two(series)?;
    match timing {
        ZoneTiming::Entry => {
            if pair.crossed_below(Pair::level(low)) {
                Some(ZoneEvent::Low {
                    depth: low - pair.current,
                })
            } else if pair.crossed_above(Pair::level(high)) {
                Some(ZoneEvent::High {
                    depth: pair.current - high,
                })
            } else {
                None
            }
        }
        ZoneTiming::Exit => {
            let stay = |inside: &dyn Fn(f64) -> bool| {
                series[..series.len() - 1]
                    .iter()
                    .rev()
                    .map_while(|v| v.filter(|x| inside(*x)))
                    .collect::<Vec<f64>>()
            };
            if pair.previous < low && pair.current >= low {
                let extreme = stay(&|x| x < low).into_iter().fold(low, f64::min);
                Some(ZoneEvent::Low {
                    depth: low - extreme,
                })
            } else if pair.previous > high && pair.current <= high {
                let extreme = stay(&|x| x > high).into_iter().fold(high, f64::max);
                Some(ZoneEvent::High {
                    depth: extreme - high,
                })
            } else {
                None
            }
        }
    }
}

/// `base + max_bonus * min(1, strength / full)`, clamped to 0..=100 (a non-finite or negative
/// strength adds nothing). The common shape of the families' confidence: a base for the
/// condition itself, and a bonus that grows linearly with how strongly it holds and is full at
/// `full`.
pub(super) fn scaled(base: u8, strength: f64, full: f64, max_bonus: u8) -> u8 {
    let ratio = if strength.is_finite() && full > 0.0 {
        (strength / full).clamp(0.0, 1.0)
    } else {
        0.0
    };
    confidence(base, ratio * f64::from(max_bonus), max_bonus)
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
    pub fn new(
        generator: &'static str,
        signal_type: &'static str,
        direction: Direction,
        confidence: u8,
        reasoning: String,
    ) -> Self {
        Fired {
            generator,
            signal_type,
            direction,
            confidence,
            reasoning,
        }
    }

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
    fn zone_events_fire_on_entry_or_on_exit() {
        let s = |v: &[f64]| defined(v);
        let e = ZoneTiming::Entry;
        let x = ZoneTiming::Exit;
        assert_eq!(
            zone_event(&s(&[31.0, 30.0, 25.0]), 30.0, 70.0, e),
            Some(ZoneEvent::Low { depth: 5.0 })
        );
        assert_eq!(zone_event(&s(&[29.0, 25.0]), 30.0, 70.0, e), None);
        assert_eq!(
            zone_event(&s(&[69.0, 70.0, 72.0]), 30.0, 70.0, e),
            Some(ZoneEvent::High { depth: 2.0 })
        );
        // Exit: the depth is the extreme of the stay in the zone.
        assert_eq!(
            zone_event(&s(&[40.0, 28.0, 21.0, 26.0, 30.0]), 30.0, 70.0, x),
            Some(ZoneEvent::Low { depth: 9.0 })
        );
        assert_eq!(zone_event(&s(&[28.0, 29.0]), 30.0, 70.0, x), None);
        assert_eq!(
            zone_event(&s(&[75.0, 80.0, 69.0]), 30.0, 70.0, x),
            Some(ZoneEvent::High { depth: 10.0 })
        );
        assert_eq!(zone_event(&[None, Some(20.0)], 30.0, 70.0, e), None);
    }

    #[test]
    fn scaled_confidence_grows_linearly_to_its_cap() {
        assert_eq!(scaled(60, 0.0, 10.0, 30), 60);
        assert_eq!(scaled(60, 5.0, 10.0, 30), 75);
        assert_eq!(scaled(60, 50.0, 10.0, 30), 90);
        assert_eq!(scaled(60, -1.0, 10.0, 30), 60);
        assert_eq!(scaled(60, f64::NAN, 10.0, 30), 60);
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
